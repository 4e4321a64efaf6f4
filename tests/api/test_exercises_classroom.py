"""An exercise for a whole class (issue 28, "Done when"): three labs, each with its own API double, student03's API
down (a port nothing listens on). One class build shared by every assertion:

1. `exercise.yml -e chapter=1 -i <class>` starts chapter 1's exercise on the class (the 404 before, on each
   reachable lab's Envoy stand-in; the dead lab fails the start alone);
2. the students work: student01 writes the course's Gateway and VirtualService (plain manifests, no labels);
   student02 the same with a Gateway selector the ingress pods do not carry. Each lab's Envoy stand-in routes by
   the lab's own objects (tests/verify_envoy.py ClusterEnvoy): 404 before, then 200 for student01 and still 404 for
   student02;
3. `check.yml -e chapter=1 -i <class>` checks the class while headless Chromium (as test_classroom_live.py) watches
   the live page.

Asserts: the recap fails exactly the labs not done (stuck and unreachable), the retry file names them, the check
files say done / not yet (with a reason) / unreachable, the page shows the exercise column live and after the run,
and the check made no write to any lab's API. Saves the page's screenshot (artifacts/tests/exercises-classroom/;
docs/exercises-page.png is one of them).

Needs one API per lab: runs against the doubles only.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from tests.api.test_classroom_live import browser, page_rows, read_json, wait_for  # noqa: F401
from tests.helpers import REPO, Classroom, run_playbook
from tests.verify_envoy import ClusterEnvoy, EnvoyLikeServer

pytestmark = [pytest.mark.api, pytest.mark.slow]

STUDENTS = ["student01", "student02", "student03"]
DONE, STUCK, DEAD = STUDENTS
ISTIO = "networking.istio.io/v1"
EXERCISE_COLUMN = 7  # the page's fixed columns come first
ARTIFACTS = Path(os.environ.get("ISTIO_LAB_TEST_ARTIFACTS") or REPO / "artifacts" / "tests") / "exercises-classroom"

if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
    pytest.skip("a class needs one cluster per lab: API doubles only", allow_module_level=True)


def gateway(selector):
    return {"apiVersion": ISTIO, "kind": "Gateway",
            "metadata": {"name": "ingressgateway80", "namespace": "microservice"},
            "spec": {"selector": selector,
                     "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}}


# The course's VirtualService, as a student types it.
VIRTUAL_SERVICE = {
    "apiVersion": ISTIO, "kind": "VirtualService",
    "metadata": {"name": "tomcat-virtualservice", "namespace": "microservice"},
    "spec": {"hosts": ["*"], "gateways": ["ingressgateway80"],
             "http": [{"route": [{"destination": {"host": "tomcat.microservice.svc.cluster.local",
                                                  "port": {"number": 80}}}]}]}}


def screenshot(driver, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    classroom = Classroom(tmp_path_factory.mktemp("exercises-class"), STUDENTS, unreachable=DEAD).start()
    try:
        classroom.generate_inventory()
        classroom.start_envoys(lambda student, address, port: ClusterEnvoy(classroom.targets[student], address, port)
                               if student in classroom.targets else EnvoyLikeServer(address, port))
        for student in (DONE, STUCK):  # what the platform stages would have made
            classroom.targets[student].ensure_namespace("istio-system")
        yield classroom
    finally:
        classroom.stop()


def extra_vars(room):
    return room.extra_vars(chapter="1", lab_exercise_check_retries=0, lab_exercise_check_timeout=5)


@pytest.fixture(scope="module")
def started(room):
    """exercise.yml over the class: the start of chapter 1's exercise."""
    result = run_playbook("playbooks/exercise.yml", inventory=room.inventory, env=room.env,
                          extra_vars=extra_vars(room))
    retry = room.retry_dir / "exercise.retry"
    return {"result": result, "retry": retry.read_text().split() if retry.exists() else None}


@pytest.fixture(scope="module")
def lesson(room, started, browser):  # noqa: F811
    """The students' work, then check.yml watched live in the browser."""
    room.targets[DONE].create(gateway({"istio": "ingressgateway"}))
    room.targets[DONE].create(VIRTUAL_SERVICE)
    room.targets[STUCK].create(gateway({"istio": "ingress-gateway"}))  # a selector no ingress pod carries
    room.targets[STUCK].create(VIRTUAL_SERVICE)
    marks = {student: room.targets[student].mark() for student in (DONE, STUCK)}

    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("result", run_playbook(
        "playbooks/check.yml", inventory=room.inventory, env=room.env, extra_vars=extra_vars(room),
        timeout=600)))
    runner.start()
    live = room.status / "live.json"
    outcome["mid_state"] = wait_for(lambda: (lambda state: state if state and state.get("playbook") == "check.yml"
                                             and state["state"] == "running" else None)(read_json(live)), 300,
                                    "live.json never showed check.yml running")
    browser.get((room.status / "status.html").as_uri())
    wait_for(lambda: len(page_rows(browser)) == len(STUDENTS), 15, "the page never showed the three labs")
    outcome["mid_title"] = browser.find_element("id", "title").text
    runner.join()
    outcome["writes"] = {student: room.targets[student].writes(mark) for student, mark in marks.items()}
    return outcome


def test_the_exercise_starts_on_every_reachable_lab(started, room):
    result = started["result"]
    for student in (DONE, STUCK):
        assert result.recap[student]["failed"] == 0 and result.recap[student]["unreachable"] == 0, result
        report = json.loads((room.reports / student / "exercise-1-start.json").read_text())
        assert report["ok"] and report["probes"][0]["expected_status"] == 404, report
        assert room.targets[student].get("apps/v1", "Deployment", "tomcat", "microservice")
    assert result.recap[DEAD]["failed"] + result.recap[DEAD]["unreachable"] > 0, result
    assert started["retry"] == [DEAD]


def test_the_recap_and_the_retry_file_name_exactly_the_labs_not_done(lesson, room):
    result = lesson["result"]
    assert result.rc != 0, result
    assert result.recap[DONE]["failed"] == 0 and result.recap[DONE]["unreachable"] == 0, result
    for student in (STUCK, DEAD):
        assert result.recap[student]["failed"] + result.recap[student]["unreachable"] > 0, result
    assert sorted((room.retry_dir / "check.retry").read_text().split()) == [STUCK, DEAD]


def test_the_check_files_say_done_not_yet_and_unreachable(lesson, room):
    checks = {s: json.loads((room.reports / s / "check-1.json").read_text()) for s in STUDENTS}
    assert {s: c["state"] for s, c in checks.items()} == {DONE: "done", STUCK: "not_yet", DEAD: "unreachable"}
    assert checks[STUCK]["reason"] and "\n" not in checks[STUCK]["reason"], checks[STUCK]
    assert checks[STUCK]["explanation"], checks[STUCK]
    for student, check in checks.items():
        assert check["lab"] == student and check["chapter"] == "1", check
    # Every file says when the check ran, an unreachable lab's too (it was tried then).
    assert all(check["checked_at"] for check in checks.values()), checks
    # Found by what they do, not by labels: the student's own objects.
    assert {(o["kind"], o["name"]) for o in checks[DONE]["student_objects"]} == {
        ("Gateway", "ingressgateway80"), ("VirtualService", "tomcat-virtualservice")}, checks[DONE]
    assert (room.reports / STUCK / "check-1.md").exists()


def test_the_check_makes_no_write(lesson):
    assert lesson["writes"] == {DONE: [], STUCK: []}, lesson["writes"]


def test_the_page_shows_the_exercise_column_live_and_after(lesson, room, browser):  # noqa: F811
    assert "check.yml" in lesson["mid_title"] and "running" in lesson["mid_title"], lesson["mid_title"]
    browser.get((room.status / "status.html").as_uri())
    wait_for(lambda: "finished" in browser.find_element("id", "title").text, 15, "the page never showed the end")
    wait_for(lambda: all(len(row["cells"]) > EXERCISE_COLUMN for row in page_rows(browser).values()), 15,
             "the page never showed the exercise column")
    headers = browser.execute_script(
        "return Array.from(document.querySelectorAll('thead th.exercise')).map(th => th.innerText);")
    assert [" ".join(h.split()) for h in headers] == ["Exercise 1 Publish a service through a Gateway"], headers
    rows = page_rows(browser)
    assert rows[DONE]["cells"][EXERCISE_COLUMN] == "\u2713 done", rows[DONE]
    assert rows[STUCK]["cells"][EXERCISE_COLUMN].startswith("\u2717 not yet"), rows[STUCK]
    assert len(rows[STUCK]["cells"][EXERCISE_COLUMN]) > len("\u2717 not yet") + 5, rows[STUCK]  # with the reason
    assert rows[DEAD]["cells"][EXERCISE_COLUMN].startswith("? unreachable"), rows[DEAD]
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1280
    assert screenshot(browser, "exercise-column").stat().st_size > 10_000
