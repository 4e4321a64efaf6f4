"""The status page's exercise columns (issue 28): check.yml's artifacts/<lab>/check-<chapter>.json read by the
status role (filter classroom_status_rows, status_page) and the live callback, one reader for both
(module_utils/istio_lab/check_files.py)."""

import importlib.util
import json
import sys
from pathlib import Path

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.check_files import (
    chapter_key,
    exercise_columns,
    read_checks,
)

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins" / "filter"))
import classroom  # noqa: E402

spec = importlib.util.spec_from_file_location("classroom_live", REPO / "plugins" / "callback" / "classroom_live.py")
live = importlib.util.module_from_spec(spec)
spec.loader.exec_module(live)


def check(lab, chapter, state, reason="", title=None):
    """A check file's content in the format agreed for issue 28."""
    return {"lab": lab, "chapter": chapter, "title": title or f"Chapter {chapter}", "state": state, "reason": reason,
            "explanation": [reason] if reason else [], "hint": None, "ingress_ip": "127.21.0.1", "probes": [],
            "student_objects": [], "checked_at": "2026-12-04T10:00:00+00:00"}


def write_checks(root, lab, *checks):
    folder = root / lab
    folder.mkdir(parents=True, exist_ok=True)
    for item in checks:
        (folder / f"check-{item['chapter']}.json").write_text(json.dumps(item))


def test_a_labs_checks_are_read_in_chapter_order_with_one_line_reasons(tmp_path):
    write_checks(tmp_path, "s1", check("s1", "10", "done"), check("s1", "2", "not_yet", "no route for\n  grafana yet"),
                 check("s1", "1", "unreachable", "API down"), check("s1", "3", "exploded"))
    (tmp_path / "s1" / "check-5.json").write_text("{half")
    (tmp_path / "s1" / "verify.json").write_text("{}")  # not a check
    cells = read_checks(tmp_path, "s1")
    assert [(c["chapter"], c["state"]) for c in cells] == [("1", "unreachable"), ("2", "not_yet"), ("3", "unknown"),
                                                           ("5", "unknown"), ("10", "done")]
    assert cells[1] == {"chapter": "2", "title": "Chapter 2", "state": "not_yet", "reason": "no route for grafana yet",
                        "checked_at": "2026-12-04T10:00:00+00:00"}
    assert cells[3]["reason"].startswith("cannot read check-5.json")
    assert read_checks(tmp_path, "nobody") == [] and read_checks(tmp_path / "absent", "s1") == []
    assert sorted(["10a", "2", "10", "x", "1"], key=chapter_key) == ["1", "2", "10", "10a", "x"]


def test_rows_carry_the_checks_and_the_page_one_column_per_exercise_checked(tmp_path):
    write_checks(tmp_path, "s1", check("s1", "2", "done"))
    write_checks(tmp_path, "s2", check("s2", "1", "not_yet", "no Gateway yet", title="Traffic in"),
                 check("s2", "2", "not_yet", "no route"))
    labs = [{"student": s, "probe": {"reachable": True, "platform_problems": []}, "routes": []}
            for s in ("s1", "s2", "s3")]
    rows = classroom.status_rows(labs, report_dir=str(tmp_path))
    assert [len(row["exercises"]) for row in rows] == [1, 2, 0]
    page = classroom.status_page(rows, "retry", "1.0.0")
    assert page["exercises"] == [{"chapter": "1", "title": "Traffic in"}, {"chapter": "2", "title": "Chapter 2"}]
    # No check ran: no column (and rows built without a report folder carry none).
    assert classroom.status_page(classroom.status_rows(labs), "retry", "1.0.0")["exercises"] == []
    assert exercise_columns([]) == []


def test_the_live_state_carries_each_labs_checks_as_read_at_the_write(tmp_path):
    state = live.LiveState("check.yml", [], ["s1", "s2"], {})
    write_checks(tmp_path, "s1", check("s1", "1", "done"))
    data = state.as_dict({lab: read_checks(tmp_path, lab) for lab in state.labs})
    assert [lab["exercises"] for lab in data["labs"]][1] == []
    assert data["labs"][0]["exercises"][0]["state"] == "done"
    assert "check.yml" in live.LIVE_PLAYBOOKS


def test_the_callback_reads_a_labs_checks_again_only_when_one_changed(tmp_path):
    callback = live.CallbackModule.__new__(live.CallbackModule)
    callback._state, callback._reports, callback._checks = live.LiveState("check.yml", [], ["s1", "s2"], {}), \
        str(tmp_path), {}
    write_checks(tmp_path, "s1", check("s1", "1", "not_yet", "no Gateway yet"))
    assert [c["state"] for c in callback._exercises()["s1"]] == ["not_yet"] and callback._exercises()["s2"] == []
    reads = []
    original, live.read_checks = live.read_checks, lambda *args: reads.append(args) or original(*args)
    try:
        callback._exercises()
        assert reads == []  # nothing changed: nothing read
        update = tmp_path / "s1" / ".check-1.json.tmp"
        update.write_text(json.dumps(check("s1", "1", "done")))
        update.rename(tmp_path / "s1" / "check-1.json")  # as copy writes it: whole, then renamed
        assert [c["state"] for c in callback._exercises()["s1"]] == ["done"] and len(reads) == 1
        (tmp_path / "s1" / "check-1.json").write_text(json.dumps(check("s1", "1", "not_yet", "no route yet")))
        assert callback._exercises()["s1"][0]["reason"] == "no route yet"  # written in place: read again too
    finally:
        live.read_checks = original
