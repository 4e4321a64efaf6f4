"""The start of an exercise (playbooks/exercise.yml, issue 28) against a Kubernetes API: the double, or a real
cluster with ISTIO_LAB_TEST_KUBECONFIG. One lab, chapter 1, in four runs sharing one build:

1. `--check` on a lab that holds istio-lab's answer key (chapter.yml's Gateway and VirtualService): no write;
2. the start: the answer key goes, tomcat comes up, the student's route is not there, and the starting point
   answers 404 from Envoy (artifacts/lab/exercise-1-start.json, beside an untouched verify.json); started again, it
   changes nothing;
3. after the student wrote their own Gateway and VirtualService (plain manifests, no labels): a second start
   keeps them as they are (not overwritten, not adopted), lists them, and does not fail the lab for answering.

No Envoy runs here: the probes go to tests/verify_envoy.py on a loopback address.
"""

import json

import pytest
import yaml

from tests.helpers import REPO, run_playbook
from tests.verify_envoy import Answer, EnvoyLikeServer

pytestmark = pytest.mark.api

ISTIO = "networking.istio.io/v1"
CATALOGUE = yaml.safe_load((REPO / "inventory/group_vars/all/chapters.yml").read_text())["lab_chapters"]
ANSWER_LABELS = {"app.kubernetes.io/managed-by": "istio-lab", "istio-lab.io/chapter": "1"}


def chapter_1(kind, labels=None):
    """Chapter 1's Gateway or VirtualService as the catalogue has it (the course's manifest)."""
    key = {"Gateway": "gateways", "VirtualService": "virtual_services"}[kind]
    obj = CATALOGUE["1"][key][0]
    meta = {"name": obj["name"], "namespace": obj["namespace"]}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": ISTIO, "kind": kind, "metadata": meta, "spec": obj["spec"]}


def flat(text):
    return " ".join(text.split())


@pytest.fixture
def lab(kube, tmp_path):
    kube.ensure_namespace("istio-system")
    kube.ensure_namespace("microservice", {"istio-injection": "enabled"})
    for kind in ("Gateway", "VirtualService"):  # the answer key, as chapter.yml leaves it
        kube.create(chapter_1(kind, ANSWER_LABELS))
    envoy = EnvoyLikeServer("127.0.0.5", 0, routes={}).start()  # every host: 404 from istio-envoy
    reports = tmp_path / "artifacts"
    (reports / "lab").mkdir(parents=True)
    (reports / "lab" / "verify.json").write_text("{}")  # the build's report: the start must leave it
    extra = {"chapter": "1", "lab_verify_ingress_ip": envoy.address, "lab_verify_http_port": envoy.port,
             "lab_verify_retries": 0, "lab_verify_report_dir": str(reports)}
    try:
        yield {"envoy": envoy, "reports": reports, "extra": extra}
    finally:
        envoy.stop()
        if not kube.is_double:
            for kind in ("VirtualService", "Gateway"):
                kube.delete(ISTIO, kind, chapter_1(kind)["metadata"]["name"], "microservice")
            run_playbook("playbooks/reset-chapter.yml", kube, extra_vars={"chapter": "1", "reset_confirm": True})


def test_the_exercise_starts_without_the_students_objects_and_keeps_theirs(kube, lab):
    refs = {kind: (ISTIO, kind, chapter_1(kind)["metadata"]["name"], "microservice")
            for kind in ("Gateway", "VirtualService")}

    # 1. --check writes nothing: the answer key stays, tomcat is not deployed, no report is written.
    mark = kube.mark()
    dry = run_playbook("playbooks/exercise.yml", kube, check=True, extra_vars=lab["extra"])
    assert dry.rc == 0 and dry.failed == 0, dry
    assert kube.writes(mark) == []
    assert all(kube.get(*ref) for ref in refs.values())
    assert not (lab["reports"] / "lab" / "exercise-1-start.json").exists()

    # 2. The start: istio-lab's copies of the student's objects go, the rest of the chapter comes up, 404 before.
    result = run_playbook("playbooks/exercise.yml", kube, extra_vars=lab["extra"])
    assert result.rc == 0 and result.failed == 0, result
    assert [kube.get(*ref) for ref in refs.values()] == [None, None]
    assert kube.get("apps/v1", "Deployment", "tomcat", "microservice")
    assert kube.get("v1", "Service", "tomcat", "microservice")
    start = json.loads((lab["reports"] / "lab" / "exercise-1-start.json").read_text())
    assert start["ok"] is True, start
    assert {(p["host"], p["expected_status"], p["status"], p["server"]) for p in start["probes"]} >= {
        ("", 404, 404, "istio-envoy")}, start
    assert (lab["reports"] / "lab" / "exercise-1-start.md").exists()
    assert (lab["reports"] / "lab" / "verify.json").read_text() == "{}"
    # Started already: a second start changes nothing.
    mark = kube.mark()
    again = run_playbook("playbooks/exercise.yml", kube, extra_vars=lab["extra"])
    assert again.rc == 0 and again.changed == 0, again
    assert kube.writes(mark) == []

    # 3. The student writes their own Gateway and VirtualService (no labels); their route answers.
    for kind in ("Gateway", "VirtualService"):
        kube.create(chapter_1(kind))
    theirs = {kind: kube.get(*ref)["metadata"]["resourceVersion"] for kind, ref in refs.items()}
    lab["envoy"].routes["*"] = [Answer(200)]
    mark = kube.mark()
    again = run_playbook("playbooks/exercise.yml", kube, extra_vars=lab["extra"])
    assert again.rc == 0 and again.failed == 0, again
    for kind, ref in refs.items():
        live = kube.get(*ref)
        assert live["metadata"]["resourceVersion"] == theirs[kind], kind  # not overwritten
        assert not (live["metadata"].get("labels") or {}), live["metadata"]  # not adopted
    assert [w for w in kube.writes(mark) if "istio" in w.get("path", "")] == [], kube.writes(mark)
    assert ("own Gateway microservice/ingressgateway80, VirtualService microservice/tomcat-virtualservice: "
            "istio-lab never overwrites them") in flat(again.stdout), again
    start = json.loads((lab["reports"] / "lab" / "exercise-1-start.json").read_text())
    assert start["ok"] is False  # reported: the student's route already answers
