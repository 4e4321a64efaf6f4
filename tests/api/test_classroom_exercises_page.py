"""The class page's exercise columns and the status probe's budget (issues 27 and 28), on three labs, each with its
own API double, student02's API down (a port nothing listens on):

- `classroom-status.yml` answers within 60 s (each lab's probe has `classroom_status_timeout`, 10 s) and names the
  dead lab "unreachable";
- the page (headless Chromium, one load) shows one column per exercise found in artifacts/<lab>/check-*.json
  (written here in the agreed format), in chapter order: done, not yet with its reason, unreachable; status.json
  and status.md carry them;
- the live page follows a run of a playbook named check.yml (without the play variable), and its exercise cells
  fill in as the run writes check files.

Needs one API per lab: runs against the doubles only.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.api.test_classroom_live import browser, page_rows, read_json, screenshot, wait_for  # noqa: F401
from tests.helpers import Classroom, run_playbook

pytestmark = [pytest.mark.api]

STUDENTS = ["student01", "student02", "student03"]
DEAD = "student02"


def check(lab, chapter, state, reason=""):
    """A check file in the format agreed for issue 28 (check.yml writes it)."""
    return {"lab": lab, "chapter": chapter, "title": {"1": "Bookinfo in", "2": "Telemetry"}.get(chapter, "x"),
            "state": state, "reason": reason, "explanation": [reason] if reason else [], "hint": None,
            "ingress_ip": "", "probes": [], "student_objects": [], "checked_at": "2026-12-04T10:00:00+00:00"}


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    classroom = Classroom(tmp_path_factory.mktemp("exercises"), STUDENTS, unreachable=DEAD).start()
    try:
        classroom.generate_inventory()
        classroom.start_envoys()
        checks = {"student01": [check("student01", "2", "not_yet", "no route for grafana-istio.lab.test yet"),
                                check("student01", "1", "done")],
                  DEAD: [check(DEAD, "1", "unreachable", "the lab's API did not answer")]}
        for lab, items in checks.items():
            (classroom.reports / lab).mkdir(parents=True, exist_ok=True)
            for item in items:
                (classroom.reports / lab / f"check-{item['chapter']}.json").write_text(json.dumps(item))
        yield classroom
    finally:
        classroom.stop()


@pytest.fixture(scope="module")
def status_run(room):
    started = time.monotonic()
    result = run_playbook("playbooks/classroom-status.yml", inventory=room.inventory, env=room.env,
                          extra_vars=room.extra_vars(), timeout=300)
    return result, time.monotonic() - started


def test_a_dead_lab_is_reported_unreachable_within_seconds(status_run, room):
    result, took = status_run
    assert took < 60, (took, result)
    assert result.recap[DEAD]["failed"] == 0, result
    rows = {row["student"]: row for row in json.loads((room.status / "status.json").read_text())}
    assert rows[DEAD]["reachable"] == "no" and rows[DEAD]["state"] == "failed", rows[DEAD]
    assert any(p.startswith("API unreachable") for p in rows[DEAD]["problems"]), rows[DEAD]
    assert all(rows[s]["reachable"] == "yes" for s in STUDENTS if s != DEAD), rows


def test_the_status_data_has_each_labs_exercises_in_chapter_order(status_run, room):
    rows = {row["student"]: row for row in json.loads((room.status / "status.json").read_text())}
    assert [(c["chapter"], c["state"]) for c in rows["student01"]["exercises"]] == [("1", "done"), ("2", "not_yet")]
    assert rows[DEAD]["exercises"][0]["state"] == "unreachable" and rows["student03"]["exercises"] == []
    markdown = (room.status / "status.md").read_text()
    assert "| exercise 1 | exercise 2 |" in markdown, markdown
    assert "| not yet: no route for grafana-istio.lab.test yet |" in markdown, markdown


def test_the_page_shows_one_column_per_exercise(status_run, room, browser):  # noqa: F811
    browser.get((room.status / "status.html").as_uri())
    wait_for(lambda: len(page_rows(browser)) == len(STUDENTS), 15, "the page never showed the three labs")
    headers = browser.execute_script(
        "return Array.from(document.querySelectorAll('thead th.exercise')).map(th => th.innerText);")
    assert [" ".join(h.split()) for h in headers] == ["Exercise 1 Bookinfo in", "Exercise 2 Telemetry"], headers
    rows = page_rows(browser)
    assert rows["student01"]["cells"][7] == "\u2713 done", rows["student01"]
    assert rows["student01"]["cells"][8].startswith("\u2717 not yet"), rows["student01"]
    assert "no route for grafana-istio.lab.test yet" in rows["student01"]["cells"][8]
    assert rows[DEAD]["cells"][7].startswith("? unreachable") and rows[DEAD]["cells"][8] == "\u2013", rows[DEAD]
    assert rows["student03"]["cells"][7:] == ["\u2013", "\u2013"], rows["student03"]
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1280
    screenshot(browser, "exercise-columns")


def test_the_live_page_follows_check_yml_as_it_writes_the_checks(status_run, room):
    # A stand-in for branch i28-check's playbook: the callback follows it by name and reads the files it writes.
    playbook = room.root / "check.yml"
    playbook.write_text("""---
- name: Check the exercise
  hosts: labs
  gather_facts: false
  tasks:
    - name: Write the check
      ansible.builtin.copy:
        dest: "{{ lab_verify_report_dir }}/{{ inventory_hostname }}/check-3.json"
        content: '{"lab": "{{ inventory_hostname }}", "chapter": "3", "title": "Canary", "state": "done",
                   "reason": "", "checked_at": "2026-12-04T10:05:00+00:00"}'
        mode: "0644"
      delegate_to: localhost

    - name: Give the page a moment
      ansible.builtin.pause:
        seconds: 3
""")
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("result", run_playbook(
        str(playbook), inventory=room.inventory, env=room.env, extra_vars=room.extra_vars(), timeout=300)))
    runner.start()
    live = room.status / "live.json"
    mid = wait_for(lambda: (lambda state: state if state and state["playbook"] == "check.yml" and state["state"] ==
                            "running" and all(any(c["chapter"] == "3" for c in lab["exercises"])
                                              for lab in state["labs"]) else None)(read_json(live)),
                   120, "live.json never showed check.yml's checks while it ran")
    runner.join()
    assert outcome["result"].rc == 0, outcome["result"]
    labs = {lab["lab"]: lab for lab in mid["labs"]}
    assert [c["chapter"] for c in labs["student01"]["exercises"]] == ["1", "2", "3"]
    assert json.loads(live.read_text())["state"] == "finished"
