"""check.yml over a class (issue 28), one run: every lab checked in parallel by one module process, read-only;
ada is done, bob is at the exercise's start, cyd's API does not answer. The recap fails exactly bob and cyd, the
retry file names them, each lab's artifacts/<lab>/check-2.{json,md} says its state, and a re-check that finds the
same rewrites no file. The live page and its exercise column are tested with the classroom's page (status.html)."""

import json

import pytest

from tests.api.test_exercise_check import STUDENT, apply_yaml, make_platform
from tests.helpers import Classroom, run_playbook
from tests.verify_envoy import ClusterEnvoy, EnvoyLikeServer

pytestmark = pytest.mark.api

STUDENTS = ["ada", "bob", "cyd"]


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    room = Classroom(tmp_path_factory.mktemp("check-class"), STUDENTS, "cyd", "127.21.0.0/22").start()
    try:
        room.generate_inventory()
        for target in room.targets.values():
            make_platform(target)
        apply_yaml(room.targets["ada"], STUDENT["2"].replace("kubernets.cn", "ada.lab.test"))  # the lab's lab_domain
        room.start_envoys(lambda student, address, port: ClusterEnvoy(room.targets[student], address, port)
                          if student in room.targets else EnvoyLikeServer(address, port))
        marks = {student: target.mark() for student, target in room.targets.items()}
        extra = {**room.extra_vars(), "lab_exercise_check_retries": 0, "lab_exercise_check_timeout": 5}
        room.run = run_playbook("playbooks/check.yml", inventory=room.inventory, env=room.env, extra_vars=extra,
                                cli_vars={"chapter": "2"})
        room.writes = {student: room.targets[student].writes(marks[student]) for student in marks}
        room.retry = (room.retry_dir / "check.retry").read_text()
        room.files = {student: (room.reports / student / "check-2.json") for student in STUDENTS}
        room.mtimes = {student: path.stat().st_mtime_ns for student, path in room.files.items() if path.exists()}
        room.again = run_playbook("playbooks/check.yml", inventory=room.inventory, env=room.env, extra_vars=extra,
                                  cli_vars={"chapter": "2"}, limit="ada,bob")
        yield room
    finally:
        room.stop()


def test_the_recap_fails_exactly_the_labs_not_done_and_the_retry_file_names_them(checked):
    recap = checked.run.recap
    assert recap["ada"]["failed"] == 0, checked.run
    assert recap["bob"]["failed"] == 1 and recap["cyd"]["failed"] == 1, checked.run
    assert sorted(checked.retry.split()) == ["bob", "cyd"]


def test_each_lab_has_its_report(checked):
    reports = {student: json.loads(path.read_text()) for student, path in checked.files.items()}
    assert {s: r["state"] for s, r in reports.items()} == {"ada": "done", "bob": "not_yet", "cyd": "unreachable"}
    assert reports["bob"]["reason"] == "no route for prometheus-istio.bob.lab.test yet"
    assert "cannot reach the Kubernetes API" in reports["cyd"]["reason"]
    assert sorted((o["kind"], o["name"]) for o in reports["ada"]["student_objects"]) == [
        ("Gateway", "gateway"), ("VirtualService", "prometheus-istio")]
    for student, report in reports.items():
        assert (report["lab"], report["chapter"], report["title"]) == (student, "2", "Expose Prometheus")
        assert set(report) == {"lab", "chapter", "title", "state", "reason", "explanation", "hint", "ingress_ip",
                               "probes", "student_objects", "checked_at"}
        markdown = (checked.reports / student / "check-2.md").read_text()
        assert markdown.startswith(f"# Chapter 2: Expose Prometheus - {student}")
    bob = (checked.reports / "bob" / "check-2.md").read_text()
    assert "**not yet**: no route for prometheus-istio.bob.lab.test yet" in bob


def test_the_check_writes_nothing_and_a_recheck_rewrites_no_file(checked):
    assert checked.writes == {"ada": [], "bob": []}
    assert checked.again.recap["ada"]["failed"] == 0 and checked.again.recap["bob"]["failed"] == 1, checked.again
    assert {s: p.stat().st_mtime_ns for s, p in checked.files.items() if s != "cyd"} == {
        s: m for s, m in checked.mtimes.items() if s != "cyd"}
    assert "changed: [" not in checked.again.stdout, checked.again
