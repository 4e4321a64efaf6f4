"""Chapters 5 and 6 (issue 16): traffic shifting between tomcat v1 and v2,
and leaving the mesh through the egress gateway. Both are data in the
catalogue like chapters 1-4: brought up with playbooks/chapter.yml (lesson
step by variable for chapter 5), and reset, saved and restored by
playbooks/{reset,save,restore}-chapter.yml unchanged. Against a Kubernetes
API (the double, or a real cluster with ISTIO_LAB_TEST_KUBECONFIG); checked
through the API only. The external host of chapter 6 is never dialled."""


import pytest
import yaml
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.applyset import PART_OF, set_id

from tests.api.test_chapters import comparable, snapshot, versions
from tests.helpers import REPO, run_module, run_playbook

pytestmark = pytest.mark.api

CATALOGUE = yaml.safe_load((REPO / "inventory/group_vars/all/chapters.yml").read_text())["lab_chapters"]
ISTIO = "networking.istio.io/v1"
CHAPTER_LABEL = "istio-lab.io/chapter"
MANAGED = {"app.kubernetes.io/managed-by": "istio-lab"}
DOMAIN = "kubernets.cn"
EXTERNAL = "external.example"  # chapter 6's host in these tests: never dialled
KINDS = {"service_entries": "ServiceEntry", "gateways": "Gateway", "virtual_services": "VirtualService",
         "destination_rules": "DestinationRule"}
APP_NAMESPACE = {"tomcat": "microservice", "tomcat-v2": "microservice", "curl": "egress"}


def chapter_objects(chapter):
    """(apiVersion, kind, namespace, name) of everything a chapter brings, from the catalogue."""
    entry = CATALOGUE[chapter]
    objects = [("v1", "Namespace", None, ns) for ns in entry["namespaces"]]
    for app in entry["apps"]:
        objects += [("apps/v1", "Deployment", APP_NAMESPACE[app], app), ("v1", "Service", APP_NAMESPACE[app], app)]
    for key, kind in KINDS.items():
        objects += [(ISTIO, kind, obj["namespace"], obj["name"]) for obj in entry.get(key) or []]
    return objects


@pytest.fixture
def platform(kube):
    """The platform Services chapters 1-6 require (the ingress and egress gateways' Services)."""
    created = []
    kube.ensure_namespace("istio-system")
    for name, labels, ports in (
        ("istio-ingressgateway", {"app": "istio-ingressgateway", "istio": "ingressgateway"},
         [{"name": "http2", "port": 80, "targetPort": 8080}]),
        ("istio-egressgateway", {"app": "istio-egressgateway", "istio": "egressgateway"},
         [{"name": "http2", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443, "targetPort": 8443}]),
    ):
        if kube.get("v1", "Service", name, "istio-system") is None:
            kube.create({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": name, "namespace": "istio-system", "labels": labels},
                         "spec": {"selector": labels, "ports": ports}})
            created.append(name)
    refs = [("v1", "Service", "istio-system", name) for name in ("istio-ingressgateway", "istio-egressgateway")]
    yield refs
    if not kube.is_double:
        run_module("lab_chapter_objects", {"chapter": "all", "state": "absent"}, kube=kube)
        for name in created:
            kube.delete("v1", "Service", name, "istio-system")


def ok(result):
    assert result.rc == 0 and result.failed == 0, str(result)
    return result


def chapter(kube, playbook, chapter_id, **extra):
    return ok(run_playbook(f"playbooks/{playbook}.yml", kube=kube, extra_vars={"chapter": chapter_id, **extra}))


def test_chapter_4_puts_endpoints_in_both_subsets_behind_the_one_service(kube, platform):
    chapter(kube, "chapter", "1")
    chapter(kube, "chapter", "4")
    v1 = kube.get("apps/v1", "Deployment", "tomcat", "microservice")
    v2 = kube.get("apps/v1", "Deployment", "tomcat-v2", "microservice")
    assert v1["metadata"]["labels"][CHAPTER_LABEL] == "1" and v2["metadata"]["labels"][CHAPTER_LABEL] == "4"
    assert v1["spec"]["template"]["metadata"]["labels"].items() >= {"app": "tomcat", "version": "v1"}.items()
    assert v2["spec"]["template"]["metadata"]["labels"].items() >= {"app": "tomcat", "version": "v2"}.items()
    assert [p["containerPort"] for p in v2["spec"]["template"]["spec"]["containers"][0]["ports"]] == [8080]
    # the contract's Service is unchanged and selects both versions
    tomcat = kube.get("v1", "Service", "tomcat", "microservice")
    assert tomcat["spec"]["selector"] == {"app": "tomcat"}
    assert tomcat["metadata"]["labels"][CHAPTER_LABEL] == "1"
    rule = kube.get(ISTIO, "DestinationRule", "tomcat", "microservice")
    subsets = {s["name"]: s["labels"] for s in rule["spec"]["subsets"]}
    for version, deployment in (("v1", v1), ("v2", v2)):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert subsets[version].items() <= pod_labels.items()
        assert tomcat["spec"]["selector"].items() <= pod_labels.items()
    # the tomcat Service's ready endpoints are pods of both subsets
    slices = kube.list("discovery.k8s.io/v1", "EndpointSlice", "microservice",
                       label_selector="kubernetes.io/service-name=tomcat")
    pods = [kube.get("v1", "Pod", e["targetRef"]["name"], "microservice") for s in slices for e in s["endpoints"]
            if (e.get("conditions") or {}).get("ready") is not False]
    versions_ready = {p["metadata"]["labels"].get("version") for p in pods if p}
    assert versions_ready == {"v1", "v2"}, versions_ready


def test_chapter_5_steps_and_round_trip(kube, platform, tmp_path):
    chapter(kube, "chapter", "1")
    refused = run_playbook("playbooks/chapter.yml", kube=kube, extra_vars={"chapter": "5"})
    assert refused.rc != 0 and "builds on chapter(s) 4" in " ".join(refused.stdout.split()), str(refused)
    chapter(kube, "chapter", "4")
    chapter(kube, "chapter", "5")
    vs = kube.get(ISTIO, "VirtualService", "tomcat-shift", "microservice")
    assert vs["metadata"]["labels"] == {**MANAGED, CHAPTER_LABEL: "5", PART_OF: set_id("chapter-5")}
    assert vs["spec"]["hosts"] == [f"tomcat.{DOMAIN}"] and vs["spec"]["gateways"] == ["ingressgateway80"]
    route = vs["spec"]["http"][0]["route"]
    assert [(d["destination"]["subset"], d["weight"]) for d in route] == [("v1", 90), ("v2", 10)]
    assert [d["headers"]["response"]["set"] for d in route] == [{"x-istio-lab-subset": "v1"},
                                                               {"x-istio-lab-subset": "v2"}]

    for step, weights in ((2, [50, 50]), (3, [0, 100])):
        chapter(kube, "chapter", "5", lab_traffic_shift_step=step)
        route = kube.get(ISTIO, "VirtualService", "tomcat-shift", "microservice")["spec"]["http"][0]["route"]
        assert [d["weight"] for d in route] == weights, step

    others = chapter_objects("1") + chapter_objects("4")
    untouched = versions(snapshot(kube, others + platform))
    objects = chapter_objects("5")
    originals = snapshot(kube, objects)
    saves = tmp_path / "saves"
    chapter(kube, "save-chapter", "5", lab_saves_dir=str(saves))
    manifest = yaml.safe_load((saves / "lab" / "5" / "manifest.yml").read_text())
    assert {(e["kind"], e["name"]) for e in manifest["objects"]} == {("VirtualService", "tomcat-shift")}

    reset = chapter(kube, "reset-chapter", "5", reset_confirm="yes")
    assert reset.changed >= 1
    assert snapshot(kube, objects) == dict.fromkeys(objects)
    assert versions(snapshot(kube, others + platform)) == untouched
    assert chapter(kube, "reset-chapter", "5", reset_confirm="yes").changed == 0

    chapter(kube, "restore-chapter", "5", lab_saves_dir=str(saves))
    restored = snapshot(kube, objects)
    assert {ref: comparable(obj) for ref, obj in restored.items()} == \
        {ref: comparable(obj) for ref, obj in originals.items()}
    assert versions(snapshot(kube, others + platform)) == untouched


def test_chapter_6_round_trip(kube, platform, tmp_path):
    chapter(kube, "chapter", "6", lab_egress_host=EXTERNAL)
    objects = chapter_objects("6")
    assert {ref[1] for ref in objects} == {"Namespace", "Deployment", "Service", "ServiceEntry", "Gateway",
                                           "VirtualService", "DestinationRule"}
    originals = snapshot(kube, objects)
    assert all(originals.values()), [ref for ref, obj in originals.items() if obj is None]
    for obj in originals.values():
        assert obj["metadata"]["labels"].items() >= {**MANAGED, CHAPTER_LABEL: "6"}.items()

    entry = originals[(ISTIO, "ServiceEntry", "egress", "external-http")]
    assert entry["spec"]["hosts"] == [EXTERNAL] and entry["spec"]["resolution"] == "DNS"
    gateway = originals[(ISTIO, "Gateway", "egress", "istio-egressgateway")]
    assert gateway["spec"]["selector"] == {"istio": "egressgateway"}
    assert gateway["spec"]["servers"][0]["hosts"] == [EXTERNAL]
    vs = originals[(ISTIO, "VirtualService", "egress", "external-through-egress-gateway")]
    assert vs["spec"]["gateways"] == ["istio-egressgateway", "mesh"]
    assert [r["match"][0]["gateways"] for r in vs["spec"]["http"]] == [["mesh"], ["istio-egressgateway"]]
    assert [r["route"][0]["destination"]["host"] for r in vs["spec"]["http"]] == [
        "istio-egressgateway.istio-system.svc.cluster.local", EXTERNAL]
    client = originals[("apps/v1", "Deployment", "egress", "curl")]
    assert client["spec"]["template"]["spec"]["containers"][0]["command"] == ["/bin/sleep", "infinity"]
    assert originals[("v1", "Namespace", None, "egress")]["metadata"]["labels"]["istio-injection"] == "enabled"

    # the route table sees the mesh hop and the egress route, with no problem
    info = run_module("istio_route_info", {}, kube=kube)
    assert info["problems"] == [], info["problems"]
    [egress] = info["egress_routes"]
    assert egress["host"] == EXTERNAL and egress["service_entries"] == ["egress/external-http"]
    assert egress["mesh_hops"][0]["via"] == ["istio-system/istio-egressgateway"]

    untouched = versions(snapshot(kube, platform))
    saves = tmp_path / "saves"
    chapter(kube, "save-chapter", "6", lab_saves_dir=str(saves))
    manifest = yaml.safe_load((saves / "lab" / "6" / "manifest.yml").read_text())
    listed = {(e["kind"], e["namespace"] or None, e["name"]) for e in manifest["objects"]}
    assert listed == {(kind, namespace, name) for _, kind, namespace, name in objects}

    dry = run_playbook("playbooks/reset-chapter.yml", kube=kube, extra_vars={"chapter": "6"}, check=True)
    ok(dry)
    assert all(snapshot(kube, objects).values())
    reset = chapter(kube, "reset-chapter", "6", reset_confirm="yes")
    assert reset.changed >= 1
    assert snapshot(kube, objects) == dict.fromkeys(objects)
    assert versions(snapshot(kube, platform)) == untouched
    assert chapter(kube, "reset-chapter", "6", reset_confirm="yes").changed == 0

    chapter(kube, "restore-chapter", "6", lab_saves_dir=str(saves))
    restored = snapshot(kube, objects)
    assert all(restored.values())
    assert {ref: comparable(obj) for ref, obj in restored.items()} == \
        {ref: comparable(obj) for ref, obj in originals.items()}
    again = run_playbook("playbooks/restore-chapter.yml", kube=kube,
                         extra_vars={"chapter": "6", "lab_saves_dir": str(saves)})
    ok(again)
    assert again.changed == 0, str(again)
