"""playbooks/upgrade.yml over a classroom inventory (issue 20, "A whole class"):
three labs, each with its own API double, built by classroom.yml on the
previous releases (Istio 1.29.6, MetalLB 0.15.3), then upgraded in one run
while one lab's gate fails after the Istio step: that lab is rolled back to
1.29.6 and verifies, the others are upgraded, the recap and the retry file
name that lab only; a re-run over the upgraded labs writes nothing.

The failing gate is real breakage, as in tests/api/test_upgrade.py: that
lab's Envoy stand-in stops routing once its ingress gateway runs 1.30.3.
Chapters 1-4 only (the upgrade's gates probe every enabled chapter; 5 and 6
add nothing to what a class run shows). Boundaries as in test_upgrade.py and
test_classroom.py: istioctl is the test double, pods "run" because the
doubles' controllers mark workloads ready. Needs one cluster per lab: API
doubles only."""

from __future__ import annotations

import base64
import json
import os

import pytest
import yaml

from tests.helpers import OLD, Classroom, image, record, run_playbook
from tests.verify_envoy import UpgradeEnvoy

pytestmark = [pytest.mark.api, pytest.mark.slow]

STUDENTS = ["ada", "bob", "cyd"]
BROKEN = "bob"  # this lab's ingress gateway does not route once it runs the new release
ADDRESS_RANGE = "127.22.0.0/22"  # the address plan's loopback range for this class
NEW = "1.30.3"

if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
    pytest.skip("a classroom needs one cluster per lab: API doubles only", allow_module_level=True)


def grafana_password(room, student):
    return yaml.safe_load((room.handouts / student / "grafana-credentials.txt").read_text())["password"]


def test_a_class_upgrades_while_the_lab_whose_gate_fails_is_rolled_back_and_named(tmp_path):
    room = Classroom(tmp_path, STUDENTS, address_range=ADDRESS_RANGE).start()
    try:
        room.generate_inventory()
        room.start_envoys(lambda student, address, port: UpgradeEnvoy(
            room.targets[student], broken_on=NEW if student == BROKEN else None, address=address, port=port,
            domain=room.hostvars[student]["lab_domain"]))
        values = room.upgrade_vars(lab_enabled_chapters=["1", "2", "3", "4"], lab_egress_host="external.example",
                                   lab_verify_mesh_probes=False)
        built = run_playbook("playbooks/classroom.yml", inventory=room.inventory, env=room.env,
                             extra_vars={**values, **OLD}, timeout=1800)
        assert built.rc == 0 and built.failed == 0, built
        for target in room.targets.values():
            assert record(target)["istio_version"] == OLD["istio_version"]

        # the pins (1.30.3 / 0.16.1) come from the inventory's group_vars, as an instructor sets them
        result = run_playbook("playbooks/upgrade.yml", inventory=room.inventory, env=room.env, extra_vars=values,
                              timeout=1800)
        assert result.rc != 0, result
        assert {s: result.recap[s]["failed"] for s in STUDENTS} == {"ada": 0, "bob": 1, "cyd": 0}, result
        assert all(result.recap[s]["unreachable"] == 0 for s in STUDENTS), result
        text = " ".join(result.stdout.split())
        failure = f"Upgrade step istio ({OLD['istio_version']} -> {NEW}) failed:"
        assert failure in text and f"fatal: [{BROKEN}]" in text, text[-4000:]
        assert not [s for s in STUDENTS if s != BROKEN and f"fatal: [{s}]" in text], text[-4000:]
        assert "Rolled back to 1.29.6, which verifies." in text
        assert (room.retry_dir / "upgrade.retry").read_text().split() == [BROKEN]

        for student, target in room.targets.items():
            data = record(target)
            report = json.loads((room.reports / student / "verify.json").read_text())
            assert report["ok"] is True, (student, report)
            # each student's own Grafana password survives the addons step (and its absence from the output)
            secret = target.get("v1", "Secret", "grafana-admin", "istio-system")
            assert base64.b64decode(secret["data"]["password"]).decode() == grafana_password(room, student), student
            assert grafana_password(room, student) not in result.stdout + result.stderr
            if student == BROKEN:
                assert (data["istio_version"], data["metallb_version"], data["istio_revisions"]) == \
                    ("1.29.6", "0.15.3", "default")
                assert [h["step"] for h in json.loads(data["history"])] == ["istio"]
                assert json.loads(data["history"])[0]["result"].startswith("rolled back: ")
                assert image(target, "istiod") == "docker.io/istio/pilot:1.29.6"
                assert target.get("apps/v1", "Deployment", "istiod-1-30-3", "istio-system") is None
                assert image(target, "istio-ingressgateway") == "docker.io/istio/proxyv2:1.29.6"
                assert image(target, "controller", "metallb-system").endswith("v0.15.3")  # later steps never ran
            else:
                assert (data["istio_version"], data["metallb_version"], data["istio_revisions"]) == \
                    (NEW, "0.16.1", "1-30-3"), student
                assert [(h["step"], h["result"]) for h in json.loads(data["history"])] == \
                    [("istio", "ok"), ("metallb", "ok"), ("addons", "ok")], student
                assert image(target, "istiod-1-30-3") == f"docker.io/istio/pilot:{NEW}"
                assert target.get("apps/v1", "Deployment", "istiod", "istio-system") is None
                assert image(target, "istio-ingressgateway") == f"docker.io/istio/proxyv2:{NEW}"
                assert image(target, "controller", "metallb-system").endswith("v0.16.1")

        # the upgraded labs again: nothing to upgrade, no write anywhere (the failed lab is not even read)
        marks = {student: target.mark() for student, target in room.targets.items()}
        upgraded = [s for s in STUDENTS if s != BROKEN]
        again = run_playbook("playbooks/upgrade.yml", inventory=room.inventory, env=room.env, extra_vars=values,
                             limit=",".join(upgraded), timeout=1200)
        assert again.rc == 0 and again.changed == 0 and sorted(again.recap) == upgraded, again
        assert " ".join(again.stdout.split()).count("Nothing to upgrade") == len(upgraded), again
        for student, target in room.targets.items():
            assert target.writes(marks[student]) == [], student
        assert room.targets[BROKEN].requests(marks[BROKEN]) == []
    finally:
        room.stop()
