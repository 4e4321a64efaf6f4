"""The live page's pure logic: the callback's state (plugins/callback/classroom_live.py), the filter that picks
the files to write (lab_changed_files), the platform versions and the status page's data."""

import importlib.util
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins" / "filter"))
import classroom  # noqa: E402
import lab_changed_files  # noqa: E402

spec = importlib.util.spec_from_file_location("classroom_live", REPO / "plugins" / "callback" / "classroom_live.py")
live = importlib.util.module_from_spec(spec)
spec.loader.exec_module(live)


def test_only_missing_or_different_files_are_to_be_written(tmp_path):
    (tmp_path / "same.md").write_text("été\n")
    (tmp_path / "other.md").write_text("old\n")
    files = {"same.md": "été\n", "other.md": "new\n", "missing.json": "{}", "trailing.md": "x"}
    (tmp_path / "trailing.md").write_text("x\n")  # a newline more is a difference
    assert lab_changed_files.lab_changed_files(files, str(tmp_path)) == ["other.md", "missing.json", "trailing.md"]
    assert lab_changed_files.lab_changed_files(files, str(tmp_path / "absent")) == list(files)
    assert lab_changed_files.lab_changed_files({}, str(tmp_path)) == []


def test_versions_come_from_the_record_then_the_istio_install():
    records = [{"namespace": "istio-lab", "name": "istio-lab-record"},
               {"namespace": "istio-system", "name": "istio-lab-install"}]
    record = {"kind": "ConfigMap", "metadata": {"namespace": "istio-lab", "name": "istio-lab-record"},
              "data": {"istio_version": "1.30.3", "istio_revisions": "1-30-3,1-29-6", "metallb_version": "0.16.1",
                       "addons": "grafana,kiali", "tooling": "istio-lab/1.0.0", "updated_at": "2026-12-03T10:00:00Z"}}
    install = {"kind": "ConfigMap", "metadata": {"namespace": "istio-system", "name": "istio-lab-install"},
               "data": {"version": "1.29.6"}}
    deployment = {"kind": "Deployment", "metadata": {"namespace": "istio-lab", "name": "istio-lab-record"}}
    assert classroom.platform_versions([deployment, install, None, record], records) == {
        "source": "record", "istio": "1.30.3", "istio_revisions": "1-30-3,1-29-6", "metallb": "0.16.1",
        "addons": "grafana,kiali", "tooling": "istio-lab/1.0.0", "updated_at": "2026-12-03T10:00:00Z"}
    fallback = classroom.platform_versions([None, install], records)
    assert (fallback["source"], fallback["istio"], fallback["metallb"]) == ("install", "1.29.6", "")
    assert classroom.platform_versions([None, None], records)["source"] == ""
    assert classroom.platform_versions([], [])["istio"] == ""


def test_the_status_data_says_when_in_local_time_and_utc_and_by_which_istio_lab():
    now = datetime(2026, 12, 3, 15, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    page = classroom.status_page([{"student": "s1"}], "ansible-playbook  x\n -i y", "1.0.0", now=now)
    assert page == {"format": 1, "generated_utc": "2026-12-03T14:04:05+00:00",
                    "generated_local": "2026-12-03T15:04:05+01:00", "version": "1.0.0",
                    "retry_command": "ansible-playbook x -i y", "exercises": [], "labs": [{"student": "s1"}]}
    assert classroom.collection_version(str(REPO)) == "1.0.0"
    assert classroom.collection_version(str(REPO / "absent")) == "unknown"


def test_a_failure_reason_is_one_line_from_the_message_or_the_failed_item():
    assert live.failure_reason({"msg": "\n  The cluster is unreachable:   nothing answered\nmore"}) == \
        "The cluster is unreachable: nothing answered"
    assert live.failure_reason({"msg": "One or more items failed",
                                "results": [{"msg": "fine"}, {"failed": True, "msg": "webhook refused"}]}) == \
        "webhook refused"
    assert live.failure_reason({"stderr": "boom"}) == "boom"
    assert live.failure_reason({}) == "failed"
    long = live.failure_reason({"msg": "x" * 500})
    assert len(long) == live.REASON_LENGTH and long.endswith("\u2026")


def test_the_state_follows_each_lab_through_the_stages():
    state = live.LiveState("classroom.yml", ["inv"], ["a", "b", "c"], {"a": "Ada <b>"})
    state.start_stage("check")
    for lab in "abc":
        state.task_started(lab, "Check")
        state.task_ran(lab)
    state.start_stage("tenants")
    for lab in "abc":
        state.task_started(lab, "Create the tenant")  # then skipped: no result that ran
    state.start_stage("metallb")
    state.task_started("b", "Check the cluster")
    state.task_failed("b", "Check the cluster", "The cluster is unreachable")
    state.task_started("a", "Apply MetalLB")
    middle = state.as_dict()
    labs = {lab["lab"]: lab for lab in middle["labs"]}
    assert middle["state"] == "running" and middle["stage"] == "metallb"
    assert middle["stages"] == ["check", "tenants", "metallb"]
    assert labs["a"]["stages"] == {"check": "done", "tenants": "skipped", "metallb": "running"}
    assert (labs["a"]["state"], labs["a"]["stage"], labs["a"]["task"]) == ("running", "metallb", "Apply MetalLB")
    assert (labs["b"]["state"], labs["b"]["reason"], labs["b"]["stages"]["metallb"]) == (
        "failed", "The cluster is unreachable", "failed")
    assert labs["a"]["name"] == "Ada <b>"  # as is: the page shows it as text
    assert middle["totals"] == {"labs": 3, "waiting": 0, "running": 2, "done": 0, "failed": 1, "not_run": 0}
    state.task_ran("a")
    state.task_started("b", "a later task")  # a failed lab stays failed
    state.finish()
    end = state.as_dict()
    labs = {lab["lab"]: lab for lab in end["labs"]}
    assert end["state"] == "finished" and end["finished_at"]
    assert labs["a"]["state"] == "done" and labs["a"]["stages"]["metallb"] == "done"
    assert labs["c"]["state"] == "done" and "metallb" not in labs["c"]["stages"]
    assert labs["b"]["state"] == "failed"
    assert end["totals"] == {"labs": 3, "waiting": 0, "running": 0, "done": 2, "failed": 1, "not_run": 0}
    json.dumps(end)  # the state file is JSON


def test_writes_are_whole_files_renamed_into_place(tmp_path):
    target = tmp_path / "live.json"
    target.write_text("old")
    live.write_atomic(str(target), b"new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["live.json"]
    assert oct(target.stat().st_mode & 0o777) == "0o644"
