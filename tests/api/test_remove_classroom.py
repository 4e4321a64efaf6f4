"""playbooks/remove-platform.yml over a classroom inventory (issue 20, "A whole
class"): three labs, each with its own API double but one whose API is down,
built by classroom.yml (chapter 1 only: the removal of chapters is
tests/api/test_remove_platform.py's); one lab also holds a user's own
namespace, Deployment and VirtualService. --check over the class lists what
would go on each reachable lab and writes nothing; the removal, asked once for
the whole class (-e remove_confirm=yes), takes istio-lab's objects from the
reachable labs only (the user's stay), the unreachable lab fails alone and the
recap, the retry file and the live page name it; a re-run over the removed
labs writes nothing.

Boundaries as in test_classroom.py: istioctl is the test double, pods "run"
because the doubles' controllers mark workloads ready. Needs one cluster per
lab: API doubles only."""

from __future__ import annotations

import json
import os

import pytest

from tests.api.test_remove_platform import PLATFORM_NAMESPACES, assert_user_objects_stay, managed_left, user_objects
from tests.conftest import wait_namespaces_gone
from tests.helpers import Classroom, run_playbook

pytestmark = [pytest.mark.api, pytest.mark.slow]

STUDENTS = ["ada", "bob", "cyd"]
UNREACHABLE = "bob"
USER = "cyd"  # this lab also holds a user's own objects
ADDRESS_RANGE = "127.23.0.0/22"  # the address plan's loopback range for this class

if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
    pytest.skip("a classroom needs one cluster per lab: API doubles only", allow_module_level=True)


def test_a_class_is_removed_while_the_unreachable_lab_is_named(tmp_path):
    room = Classroom(tmp_path, STUDENTS, UNREACHABLE, ADDRESS_RANGE).start()
    reachable = [s for s in STUDENTS if s != UNREACHABLE]
    try:
        room.generate_inventory()
        room.start_envoys()
        values = room.extra_vars(lab_verify_mesh_probes=False)
        env = {**room.env, "ISTIOCTL_DOUBLE_LOG": str(tmp_path / "istioctl.log")}
        built = run_playbook("playbooks/classroom.yml", inventory=room.inventory, env=env, extra_vars=values,
                             timeout=900)
        assert built.recap[UNREACHABLE]["failed"] == 1, built
        assert all(built.recap[s]["failed"] == 0 for s in reachable), built
        user_objects(room.targets[USER])
        for student in reachable:
            assert managed_left(room.targets[student]), student
        live = room.status / "live.json"

        # unconfirmed (nobody answers): asked once for the whole class, refused everywhere, nothing written
        marks = {s: t.mark() for s, t in room.targets.items()}
        refused = run_playbook("playbooks/remove-platform.yml", inventory=room.inventory, env=env,
                               extra_vars=values, timeout=600)
        assert refused.rc != 0, refused
        assert all(refused.recap[s]["changed"] == 0 and refused.recap[s]["failed"] == 1 for s in STUDENTS), refused
        asked = refused.stdout.split("TASK [Ask before removing the platform]", 1)[1].split("TASK [", 1)[0]
        assert len([line for line in asked.splitlines() if line.startswith(("ok:", "changed:"))]) == 1, asked
        text = " ".join(refused.stdout.split())
        assert [s for s in reachable if f"fatal: [{s}]: FAILED! => assertion" in text] == reachable, text[-4000:]
        assert "Removal not confirmed; nothing was changed." in text, text[-4000:]
        assert sorted((room.retry_dir / "remove-platform.retry").read_text().split()) == STUDENTS
        for student, target in room.targets.items():
            assert target.writes(marks[student]) == [], student
        state = json.loads(live.read_text())
        assert state["playbook"] == "remove-platform.yml" and state["totals"]["failed"] == 3, state
        before_check = live.read_text()

        # --check --diff over the class: each reachable lab lists what would go; nothing is written, no question
        marks = {s: t.mark() for s, t in room.targets.items()}
        check = run_playbook("playbooks/remove-platform.yml", inventory=room.inventory, env=env, extra_vars=values,
                             check=True, diff=True, timeout=600)
        assert check.recap[UNREACHABLE]["failed"] + check.recap[UNREACHABLE]["unreachable"] == 1, check
        assert all(check.recap[s]["failed"] == 0 for s in reachable), check
        text = " ".join(check.stdout.split())
        assert "Deployment.apps istio-system/zipkin (pruned)" in text, text[-4000:]
        assert text.count("would run istioctl uninstall for revision(s) default") == len(reachable), text[-4000:]
        assert "Type yes to go on" not in text
        for student, target in room.targets.items():
            assert target.writes(marks[student]) == [], student
        assert live.read_text() == before_check  # check mode leaves the live page alone

        # the removal: asked once for the class (-e remove_confirm=yes answers), one lab fails, the others go on
        removed = run_playbook("playbooks/remove-platform.yml", inventory=room.inventory, env=env,
                               extra_vars=values, cli_vars={"remove_confirm": "yes"}, timeout=900)
        assert removed.rc != 0, removed
        assert removed.recap[UNREACHABLE]["failed"] + removed.recap[UNREACHABLE]["unreachable"] == 1, removed
        assert all(removed.recap[s]["failed"] == 0 and removed.recap[s]["unreachable"] == 0 for s in reachable), \
            removed
        assert (room.retry_dir / "remove-platform.retry").read_text().split() == [UNREACHABLE]
        text = " ".join(removed.stdout.split())
        assert not [s for s in reachable if f"fatal: [{s}]" in text], text[-4000:]
        for student in reachable:
            target = room.targets[student]
            wait_namespaces_gone(target, PLATFORM_NAMESPACES)
            assert managed_left(target) == [], student
            assert target.get("apps/v1", "Deployment", "istiod", "istio-system") is None, student
        assert_user_objects_stay(room.targets[USER])
        calls = [json.loads(line)["argv"] for line in (tmp_path / "istioctl.log").read_text().splitlines()]
        assert calls.count(["uninstall", "-y", "--revision", "default"]) == len(reachable), calls

        state = json.loads(live.read_text())
        assert (state["playbook"], state["state"], state["stages"]) == ("remove-platform.yml", "finished",
                                                                        ["remove"]), state
        labs = {lab["lab"]: lab for lab in state["labs"]}
        assert labs[UNREACHABLE]["state"] == "failed" and labs[UNREACHABLE]["reason"], labs[UNREACHABLE]
        assert all(labs[s]["state"] == "done" and labs[s]["stages"] == {"remove": "done"} for s in reachable), labs

        # the removed labs again: nothing to remove, no write
        marks = {s: t.mark() for s, t in room.targets.items()}
        again = run_playbook("playbooks/remove-platform.yml", inventory=room.inventory, env=env, extra_vars=values,
                             cli_vars={"remove_confirm": "yes"}, limit=",".join(reachable), timeout=600)
        assert again.rc == 0 and again.changed == 0 and sorted(again.recap) == reachable, again
        for student, target in room.targets.items():
            assert target.writes(marks[student]) == [], student
        assert_user_objects_stay(room.targets[USER])
    finally:
        room.stop()
