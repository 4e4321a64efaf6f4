"""The classroom's live page in a real browser: `playbooks/classroom.yml` builds three labs, each with its own
Kubernetes API double, while student02's API is down; headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by selenium) loads artifacts' status.html as a file while the run goes on and after it,
then after `classroom-status.yml` run with the same (temporary) inventory.

Checks the rows, each lab's state word and symbol, the failing lab's one-line reason, the generated time, the
retry command (built from the inventory actually used) and that student names are shown as text, never as HTML;
saves screenshots in artifacts/tests/classroom-live/ (or $ISTIO_LAB_TEST_ARTIFACTS).

Needs one API per lab: runs against the doubles only.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import shared_path
from tests.helpers import REPO, free_port, platform_vars, run_playbook
from tests.kube_double import KubeDouble
from tests.verify_envoy import EnvoyLikeServer

pytestmark = [pytest.mark.api, pytest.mark.slow]

STUDENTS = ["student01", "student02", "student03"]
FAILING = "student02"
# A name a page must show as text: markup in it would be a hole.
NAMES = {"student01": "Ada <b>Lovelace</b>", "student02": "Alan & Turing", "student03": "Grace \"Hopper\""}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
ARTIFACTS = Path(os.environ.get("ISTIO_LAB_TEST_ARTIFACTS") or REPO / "artifacts" / "tests") / "classroom-live"

if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
    pytest.skip("the live page test needs one cluster per lab: API doubles only", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (scripts/setup)")
    if not CHROMIUM or not os.path.exists(CHROMEDRIVER):
        pytest.skip("no chromium/chromedriver: scripts/setup installs Debian's chromium and chromium-driver as root")
    from selenium.webdriver.chrome.service import Service

    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"chromium-profile-{os.getpid()}"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # The network is closed: without these flags Chromium hangs on look-ups; as root it needs --no-sandbox.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,720"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    crds = shared_path() / "crds" / "istio-1.30.3-crds.yaml"
    if not crds.is_file():
        pytest.skip(f"Istio CRDs not found at {crds}")
    root = tmp_path_factory.mktemp("live")
    (root / "tmp").mkdir()
    (root / "kubeconfigs").mkdir()
    doubles, envoys = [], []
    kubeconfigs = {s: root / "kubeconfigs" / f"{s}.yaml" for s in STUDENTS}
    try:
        for student in STUDENTS:
            if student == FAILING:  # nothing listens on its port: the student's API is down
                KubeDouble(port=free_port()).write_kubeconfig(kubeconfigs[student])
                continue
            double = KubeDouble(crds=[crds]).start()
            doubles.append(double)
            double.write_kubeconfig(kubeconfigs[student])
        env = {"TMPDIR": str(root / "tmp"), "ANSIBLE_RETRY_FILES_ENABLED": "1",
               "ANSIBLE_RETRY_FILES_SAVE_PATH": str(root / "retry")}
        roster = root / "roster.csv"
        with roster.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "name", "kubeconfig", "context", "machines"])
            for student in STUDENTS:
                writer.writerow([student, NAMES[student], str(kubeconfigs[student]), "", ""])
        inventory = root / "my-class"  # not inventory/classroom: the retry command must name this one
        result = run_playbook("playbooks/classroom-inventory.yml", env=env, extra_vars={
            "classroom_inventory_roster": str(roster), "classroom_inventory_dir": str(inventory),
            "classroom_inventory_address_ranges": "127.21.0.0/28", "classroom_inventory_domain": "lab.test"})
        assert result.rc == 0, result
        labs = yaml.safe_load((inventory / "hosts.yml").read_text())["all"]["children"]["labs"]["hosts"]
        port = free_port()
        for student in STUDENTS:
            envoys.append(EnvoyLikeServer(labs[student]["lab_ingress_ip"], port, routes={"*": 200}).start())
        platform = platform_vars(shared_path() / "upstream", root, "", "")
        del platform["metallb_address_range"], platform["lab_ingress_ip"]
        extra_vars = {**platform, "lab_enabled_chapters": ["1"], "lab_verify_ingress_ip": "{{ lab_ingress_ip }}",
                      "lab_verify_http_port": port, "lab_verify_retries": 0,
                      "lab_verify_report_dir": str(root / "artifacts"), "classroom_handout_dir": str(root / "handouts"),
                      "classroom_status_dir": str(root / "status")}
        yield {"root": root, "inventory": inventory, "env": env, "extra_vars": extra_vars, "status": root / "status",
               "retry": root / "retry" / "classroom.retry"}
    finally:
        for envoy in envoys:
            envoy.stop()
        for double in doubles:
            double.stop()


def screenshot(driver, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path


def page_rows(driver):
    """{lab: {state, text, cells}} as the browser shows the table, read in one script: the page
    re-renders its rows every 2 s, so elements found one call earlier may be gone."""
    found = driver.execute_script(
        "return Array.from(document.querySelectorAll('#rows tr')).map(row => ["
        "row.id, row.getAttribute('data-state'), Array.from(row.querySelectorAll('td')).map(td => td.innerText)]);")
    return {row_id.removeprefix("lab-"): {"state": state, "cells": [cell.strip() for cell in cells]}
            for row_id, state, cells in found}


def wait_for(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(message)


def read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@pytest.fixture(scope="module")
def build(room, browser):
    """The classroom run, with the page loaded in the browser while it goes on (what it showed is kept)."""
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("result", run_playbook(
        "playbooks/classroom.yml", inventory=room["inventory"], env=room["env"], extra_vars=room["extra_vars"],
        timeout=1200)))
    runner.start()
    live = room["status"] / "live.json"
    # Mid-run: the failing lab has already failed, the others are still being built.
    seen = wait_for(lambda: (lambda state: state if state and state["state"] == "running" and any(
        lab["state"] == "failed" for lab in state["labs"]) else None)(read_json(live)), 600,
        "live.json never showed a running class with the failed lab")
    browser.get((room["status"] / "status.html").as_uri())
    wait_for(lambda: len(page_rows(browser)) == len(STUDENTS), 15, "the page never showed the three labs")
    time.sleep(2.5)  # one more refresh, so the page shows the stage the run is in
    outcome["mid_rows"] = page_rows(browser)
    outcome["mid_title"] = browser.find_element("id", "title").text
    outcome["mid_totals"] = browser.find_element("id", "totals").text
    outcome["mid_state"] = seen
    outcome["mid_screenshot"] = screenshot(browser, "mid-run")
    runner.join()
    return outcome


def test_the_page_shows_the_class_while_the_run_goes_on(build):
    rows = build["mid_rows"]
    assert sorted(rows) == STUDENTS
    assert "running" in build["mid_title"], build["mid_title"]
    # Failed labs first; a word and a symbol for each state.
    assert list(rows)[0] == FAILING, rows
    assert rows[FAILING]["state"] == "failed" and rows[FAILING]["cells"][0] == "\u2717 failed", rows[FAILING]
    assert "unreachable" in rows[FAILING]["cells"][4].lower(), rows[FAILING]
    for student in STUDENTS:
        if student != FAILING:
            assert rows[student]["cells"][0] in ("\u25b6 running", "\u2026 waiting"), rows[student]
    assert "1 failed" in build["mid_totals"] and "3 labs" in build["mid_totals"], build["mid_totals"]
    assert build["mid_screenshot"].stat().st_size > 10_000


def test_the_state_file_is_whole_and_documented_fields_are_there(build, room):
    state = json.loads((room["status"] / "live.json").read_text())
    assert state["state"] == "finished" and state["playbook"] == "classroom.yml"
    assert state["inventory"] == [str(room["inventory"])]
    assert state["totals"] == {"labs": 3, "waiting": 0, "running": 0, "done": 2, "failed": 1, "not_run": 0}
    labs = {lab["lab"]: lab for lab in state["labs"]}
    assert labs[FAILING]["state"] == "failed" and labs[FAILING]["reason"], labs[FAILING]
    assert "\n" not in labs[FAILING]["reason"] and len(labs[FAILING]["reason"]) <= 200
    assert labs[FAILING]["stages"][labs[FAILING]["stage"]] == "failed"
    for student in STUDENTS:
        if student != FAILING:
            assert labs[student]["state"] == "done" and labs[student]["elapsed_s"] > 0, labs[student]
            assert labs[student]["stages"]["verify"] == "done" and labs[student]["stages"]["tenants"] == "skipped"
    order = ["check", "tenants", "credentials", "metallb", "istio", "addons", "apps", "routes", "verify", "handouts",
             "status"]
    assert [stage for stage in state["stages"] if stage in order] == order, state["stages"]
    # Written whole then renamed: no temporary file is left behind.
    assert sorted(p.name for p in room["status"].iterdir() if p.name.startswith(".")) == []
    # The data of a page opened as a file is the same.
    script = (room["status"] / "live.js").read_text()
    assert json.loads(script.removeprefix("window.istioLabLive = ").rstrip().removesuffix(";")) == state


def test_after_the_run_the_page_is_the_status_page(build, room, browser):
    assert build["result"].rc != 0, build["result"]  # one lab failed
    browser.get((room["status"] / "status.html").as_uri())
    wait_for(lambda: "finished" in browser.find_element("id", "title").text, 15, "the page never showed the end")
    rows = page_rows(browser)
    assert list(rows)[0] == FAILING and rows[FAILING]["state"] == "failed"
    for student in STUDENTS:
        if student != FAILING:
            cells = rows[student]["cells"]
            assert rows[student]["state"] == "healthy" and cells[0] == "\u2713 healthy", cells
            assert "Istio 1.30.3" in cells[5], cells  # the lab's platform versions
            assert "\u2713" in cells[6] and "200" in cells[6], cells  # its routes
        # Names are text, never markup.
        assert NAMES[student] in rows[student]["cells"][1], rows[student]
    assert browser.find_elements("css selector", "#rows b") == []
    status_meta = browser.find_element("id", "status-meta").text
    status = json.loads((room["status"] / "status.js").read_text().removeprefix("window.istioLabStatus = ")
                        .rstrip().removesuffix(";"))
    # When it was made: the control machine's local time with its offset, and UTC.
    local, utc = status["generated_local"], status["generated_utc"]
    assert f"{local[:10]} {local[11:19]} {local[19:]} (control machine)" in status_meta, status_meta
    assert f"= {utc[:10]} {utc[11:19]} UTC" in status_meta, status_meta
    assert "by istio-lab 1.0.0" in status_meta
    retry = browser.find_element("id", "retry-command").text
    assert retry == f"ansible-playbook playbooks/classroom.yml -i {room['inventory']} --limit @{room['retry']}", retry
    # Sortable: by student name, then back to failed first.
    browser.find_element("css selector", ".sort button[data-sort='lab']").click()
    assert list(page_rows(browser)) == STUDENTS
    browser.find_element("css selector", ".sort button[data-sort='state']").click()
    assert list(page_rows(browser))[0] == FAILING
    # Readable at 1280x720: nothing wider than the window.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1280
    screenshot(browser, "after-run")


def test_the_status_playbook_names_the_inventory_it_used(build, room, browser):
    result = run_playbook("playbooks/classroom-status.yml", inventory=room["inventory"], env=room["env"],
                          extra_vars=room["extra_vars"], timeout=600)
    assert result.recap[FAILING]["failed"] == 0, result
    state = json.loads((room["status"] / "live.json").read_text())
    assert state["playbook"] == "classroom-status.yml" and state["state"] == "finished"
    status = json.loads((room["status"] / "status.js").read_text().removeprefix("window.istioLabStatus = ")
                        .rstrip().removesuffix(";"))
    assert f"-i {room['inventory']} " in status["retry_command"], status["retry_command"]
    assert "inventory/classroom" not in status["retry_command"]
    browser.get((room["status"] / "status.html").as_uri())
    wait_for(lambda: "classroom-status.yml finished" in browser.find_element("id", "title").text, 15,
             "the page never showed the status run")
    rows = page_rows(browser)
    assert rows[FAILING]["state"] == "failed" and "API unreachable" in rows[FAILING]["cells"][4], rows[FAILING]
    screenshot(browser, "status-run")
