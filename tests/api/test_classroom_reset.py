"""Classroom resets against API doubles whose deleted namespaces stay
Terminating for a while, as on a real kube-apiserver
(stored-forms/namespace-deletion.json): a reset of one student's chapter, or
of every chapter of the whole class, then the chapter again at once.

Three students, each with their own double (a class of dedicated clusters):
needs several clusters, so it runs against the doubles only."""

from __future__ import annotations

import csv
import os

import pytest
import yaml

from tests.conftest import KubeTarget, shared_path
from tests.helpers import run_playbook
from tests.kube_double import KubeDouble

pytestmark = pytest.mark.api

STUDENTS = ["student01", "student02", "student03"]
CHAPTER1 = [("v1", "Namespace", None, "microservice"), ("apps/v1", "Deployment", "microservice", "tomcat"),
            ("v1", "Service", "microservice", "tomcat"),
            ("networking.istio.io/v1", "Gateway", "microservice", "ingressgateway80"),
            ("networking.istio.io/v1", "VirtualService", "microservice", "tomcat-virtualservice")]
DELAY = 2.0  # seconds a deleted namespace stays Terminating: longer than a poll, shorter than a test

if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
    pytest.skip("a class needs one cluster per student: API doubles only", allow_module_level=True)


@pytest.fixture
def classroom(tmp_path):
    crds = shared_path() / "crds" / "istio-1.30.3-crds.yaml"
    if not crds.is_file():
        pytest.skip(f"Istio CRDs not found at {crds}")
    doubles, targets = {}, {}
    roster = tmp_path / "roster.csv"
    try:
        with roster.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "name", "kubeconfig", "context", "machines"])
            for student in STUDENTS:
                double = doubles[student] = KubeDouble(crds=[crds], namespace_deletion_delay=DELAY).start()
                kubeconfig = double.write_kubeconfig(tmp_path / f"{student}.yaml")
                workdir = tmp_path / "clients" / student
                workdir.mkdir(parents=True)
                targets[student] = KubeTarget(kubeconfig, "double", double, double, workdir)
                writer.writerow([student, student.title(), kubeconfig, "", ""])
        inventory = tmp_path / "inventory"
        made = run_playbook("playbooks/classroom-inventory.yml", env={"TMPDIR": str(tmp_path)}, extra_vars={
            "classroom_inventory_roster": str(roster), "classroom_inventory_dir": str(inventory),
            "classroom_inventory_address_ranges": "127.20.0.0/24", "classroom_inventory_domain": "lab.test"})
        assert made.rc == 0, made
        yield {"inventory": inventory, "targets": targets, "env": {"TMPDIR": str(tmp_path)}}
    finally:
        for double in doubles.values():
            double.stop()


def play(room, playbook, chapter, limit=None):
    result = run_playbook(playbook, inventory=room["inventory"], env=room["env"], limit=limit,
                          extra_vars={"chapter": chapter, "reset_confirm": "yes"})
    assert result.rc == 0 and result.failed == 0, result
    return result


def state(target):
    """Each chapter 1 object's resourceVersion (None when absent, "terminating" when being deleted)."""
    found = {}
    for api_version, kind, namespace, name in CHAPTER1:
        obj = target.get(api_version, kind, name, namespace)
        meta = (obj or {}).get("metadata") or {}
        found[(kind, name)] = None if obj is None else ("terminating" if meta.get("deletionTimestamp")
                                                        else meta["resourceVersion"])
    return found


def test_reset_one_student_then_the_class_and_bring_the_chapter_up_again_at_once(classroom):
    targets = classroom["targets"]
    play(classroom, "playbooks/chapter.yml", "1")
    before = {s: state(t) for s, t in targets.items()}
    assert all(all(v not in (None, "terminating") for v in found.values()) for found in before.values()), before

    # One student's reset waits until their namespace is gone; the chapter comes back at once.
    play(classroom, "playbooks/reset-chapter.yml", "1", limit="student02")
    assert set(state(targets["student02"]).values()) == {None}
    play(classroom, "playbooks/chapter.yml", "1", limit="student02")
    assert None not in state(targets["student02"]).values()
    assert {s: state(targets[s]) for s in ("student01", "student03")} == {
        s: before[s] for s in ("student01", "student03")}, "another student's lab was touched"

    # The whole class back to the bare platform, then the chapter again for everybody.
    play(classroom, "playbooks/reset-chapter.yml", "all")
    assert all(set(state(t).values()) == {None} for t in targets.values())
    play(classroom, "playbooks/chapter.yml", "1")
    assert all(None not in state(t).values() and "terminating" not in state(t).values() for t in targets.values())
    assert yaml.safe_load((classroom["inventory"] / "hosts.yml").read_text())  # the class inventory was used
