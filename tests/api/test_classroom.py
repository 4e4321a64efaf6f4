"""A classroom carried over from last term, each student with their own Kubernetes API double on loopback:
built in one `playbooks/classroom.yml` run on the previous releases (Istio 1.29.6, MetalLB 0.15.3), every
stage (MetalLB, Istio, addons, apps, routes, verify, handouts, status), while student02's API is
deliberately unreachable; student02 is then built alone from the retry file, and the last test upgrades the
whole class to the pins (Istio 1.30.3, MetalLB 0.16.1) in one `playbooks/upgrade.yml` run (issue 20).

The smallest class that shows each behaviour (issue 29): three labs with two forks, so the labs run in
batches, as a class larger than `forks` (40 in ansible.cfg) does; the roster out of id order, so the page's
id order shows; the unreachable lab in the middle of that order. The 30-lab figures (wall, CPU, requests) are
the benchmark's: `bench/run --scenarios site,upgrade --labs 30` (docs/bench.md, docs/testing.md).

Each lab's pool and ingress IP come from the address plan (127.20.0.x); the
doubles' controllers mark workloads ready and give out MetalLB addresses as a
built platform would; Istio is installed by istioctl's test double
(tests/bin/istioctl); each student's ingress IP is served by a local
Envoy-like HTTP server (tests/verify_envoy.py), since no Envoy runs here.
The upgrade's rollback of a lab whose gate fails, and the no-write re-run,
are shown on three labs by test_upgrade_classroom.py.

Needs one cluster per lab: runs against the double only (a real cluster set with
ISTIO_LAB_TEST_KUBECONFIG cannot stand in for three). The shared-cluster RBAC
test, which does run against a real cluster, is in test_classroom_tenant.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat

import pytest
import yaml

from tests.helpers import OLD, Classroom, image, record, run_playbook

pytestmark = [pytest.mark.api, pytest.mark.slow]

STUDENTS = ["student03", "student01", "student02"]  # the roster's order, not the ids' order
BY_ID = sorted(STUDENTS)
FORKS = 2  # fewer than the labs: ansible runs them in batches
NEW = {"istio_version": "1.30.3", "metallb_version": "0.16.1"}  # the pins of the inventory's group_vars
UNREACHABLE = "student02"
# The address plan gives each lab a MetalLB pool and an ingress IP in it.
ADDRESS_RANGE = "127.20.0.0/22"
PLATFORM = [("metallb-system", "controller"), ("istio-system", "istiod"),
            ("istio-system", "istio-ingressgateway"), ("istio-system", "istio-egressgateway"),
            ("istio-system", "prometheus"), ("istio-system", "grafana"), ("istio-system", "kiali"),
            ("istio-system", "zipkin")]

if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
    pytest.skip("the classroom test needs one cluster per lab: API doubles only", allow_module_level=True)


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    room = Classroom(tmp_path_factory.mktemp("classroom"), STUDENTS, UNREACHABLE, ADDRESS_RANGE).start()
    try:
        room.env["ANSIBLE_FORKS"] = str(FORKS)
        room.generate_inventory()
        room.start_envoys()
        room.build = run_playbook("playbooks/classroom.yml", inventory=room.inventory, env=room.env,
                                  extra_vars=last_term(room), timeout=1200)
        yield room
    finally:
        room.stop()


def last_term(room, **more):
    """The class's values until the upgrade: last term's releases (OLD), every source named after its version."""
    return {**room.upgrade_vars(**more), **OLD}


def own_values(room, student):
    lab = room.hostvars[student]
    return {"ip": lab["lab_ingress_ip"], "domain": lab["lab_domain"]}


def password_of(room, student):
    return yaml.safe_load((room.handouts / student / "grafana-credentials.txt").read_text())["password"]


def test_every_reachable_lab_is_built_and_the_unreachable_one_is_reported(classroom):
    result = classroom.build
    assert result.rc != 0, result  # one lab failed
    for student in STUDENTS:
        recap = result.recap[student]
        if student == UNREACHABLE:
            assert recap["failed"] == 1, result
        else:
            assert recap["failed"] == 0 and recap["unreachable"] == 0, (student, result)
    assert "The cluster is unreachable" in result.stdout
    retry_file = classroom.retry_dir / "classroom.retry"
    assert retry_file.read_text().split() == [UNREACHABLE]
    # The callback folds long messages over several lines: compare with whitespace collapsed.
    output = " ".join(result.stdout.split())
    assert f"1 of 3 labs failed: {UNREACHABLE}. The others are built. Retry the failed ones alone with: " \
           f"ansible-playbook playbooks/classroom.yml -i {classroom.inventory} --limit @{retry_file}" in output, result


def test_every_stage_built_each_students_platform_through_their_own_api(classroom):
    for student, target in classroom.targets.items():
        lab = classroom.hostvars[student]
        for namespace, name in PLATFORM:
            deployment = target.get("apps/v1", "Deployment", name, namespace)
            assert deployment and deployment["status"].get("availableReplicas") == 1, (student, name)
        pools = target.list("metallb.io/v1beta1", "IPAddressPool", "metallb-system")
        assert [p["spec"]["addresses"] for p in pools] == [[lab["metallb_address_range"]]], student
        ingress = target.get("v1", "Service", "istio-ingressgateway", "istio-system")
        assert ingress["status"]["loadBalancer"]["ingress"][0]["ip"] == lab["lab_ingress_ip"], student
        # Each student's Grafana reads the password of that student's handout.
        secret = target.get("v1", "Secret", "grafana-admin", "istio-system")
        assert base64.b64decode(secret["data"]["password"]).decode() == password_of(classroom, student), student


def test_the_built_labs_have_the_chapter_through_their_own_api(classroom):
    for student, target in classroom.targets.items():
        gateway = target.get("networking.istio.io/v1", "Gateway", "ingressgateway80", "microservice")
        service = target.get("networking.istio.io/v1", "VirtualService", "tomcat-virtualservice", "microservice")
        tomcat = target.get("apps/v1", "Deployment", "tomcat", "microservice")
        assert gateway and service and tomcat, student
        assert gateway["metadata"]["labels"]["istio-lab.io/chapter"] == "1"
        report = json.loads((classroom.reports / student / "verify.json").read_text())
        assert report["ok"] is True and report["ingress_ip"] == own_values(classroom, student)["ip"], student
    assert not (classroom.reports / UNREACHABLE / "verify.json").exists()


def test_each_student_was_probed_on_their_own_ingress_ip(classroom):
    for envoy, student in zip(classroom.envoys, STUDENTS, strict=True):
        if student == UNREACHABLE:
            assert envoy.requests == []
        else:
            assert envoy.requests, student


def test_status_page_has_one_row_per_student_and_shows_the_failure(classroom):
    rows = {row["student"]: row for row in json.loads((classroom.status / "status.json").read_text())}
    assert list(rows) == BY_ID  # in id order, whatever the roster's
    for student, row in rows.items():
        if student == UNREACHABLE:
            assert row["state"] == "failed"
            assert "the lab failed during this run" in row["problems"]
        else:
            assert (row["state"], row["reachable"], row["platform"]) == ("healthy", "yes", "ready"), row
            ip = own_values(classroom, student)["ip"]
            assert [(r["url"], r["status"], r["ok"]) for r in row["routes"]][0] == (f"http://{ip}:{classroom.envoy_port}/",
                                                                                     200, True)
    markdown = (classroom.status / "status.md").read_text()
    # The page (status.html, tested in a browser by test_classroom_live.py) draws status.js: the same rows.
    page = json.loads((classroom.status / "status.js").read_text().removeprefix("window.istioLabStatus = ")
                      .rstrip().removesuffix(";"))
    retry = f"--limit @{classroom.retry_dir / 'classroom.retry'}"
    assert "2 of 3 labs healthy" in markdown
    assert page["labs"] == list(rows.values())
    assert re.search(rf"^\| {UNREACHABLE} \| Student Number3 \| failed \|", markdown, re.M)
    assert retry in markdown and retry in page["retry_command"]
    assert markdown.count("| healthy |") == 2
    assert [m.group(1) for m in re.finditer(r"^\| (student\d+) \|", markdown, re.M)] == BY_ID


def test_handouts_hold_the_students_own_values_only_with_secrets_0600(classroom):
    passwords = {s: password_of(classroom, s) for s in STUDENTS}  # generated for every student, student07 too
    assert len(set(passwords.values())) == len(STUDENTS)
    for student in STUDENTS:
        folder = classroom.handouts / student
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        if student == UNREACHABLE:
            assert sorted(p.name for p in folder.iterdir()) == ["grafana-credentials.txt"]
            continue
        assert sorted(p.name for p in folder.iterdir()) == ["README.md", "grafana-credentials.txt", "kubeconfig"]
        for path in folder.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        # Built from the student's own kubeconfig: its one context, cluster and user (issue 12).
        assert yaml.safe_load((folder / "kubeconfig").read_text()) == {
            k: v for k, v in yaml.safe_load(classroom.kubeconfigs[student].read_text()).items() if k != "preferences"}
        page = (folder / "README.md").read_text()
        own = own_values(classroom, student)
        assert passwords[student] in page
        assert f"{own['ip']} istio-lab-no-route" not in page  # only the chapter's hosts
        assert f"curl -i http://{own['ip']}/" in page
        assert f"*.{own['domain']}" in page
        for other in STUDENTS:
            if other == student:
                continue
            other_values = own_values(classroom, other)
            assert passwords[other] not in page, (student, other)
            assert not re.search(rf"\b{other}\b", page), (student, other)
            assert not re.search(rf"(?<![\d.]){re.escape(other_values['ip'])}(?![\d])", page), (student, other)


def test_no_password_appears_in_the_play_output(classroom):
    output = classroom.build.stdout + classroom.build.stderr
    for student in STUDENTS:
        assert password_of(classroom, student) not in output, student


def test_check_mode_rewrites_no_handout_and_no_status_page(classroom):
    def snapshot():
        files = [*classroom.handouts.rglob("*"), *classroom.status.rglob("*")]
        return {str(p): (p.stat().st_mtime_ns, p.read_bytes()) for p in files if p.is_file()}

    before = snapshot()
    result = run_playbook("playbooks/classroom.yml", inventory=classroom.inventory, env=classroom.env, check=True,
                          extra_vars=last_term(classroom, classroom_stages=["handouts", "status"]), timeout=1200)
    assert result.rc == 0, result  # student07's API is not contacted by these stages
    assert snapshot() == before


def test_classroom_status_playbook_shows_the_unreachable_api(classroom):
    result = run_playbook("playbooks/classroom-status.yml", inventory=classroom.inventory, env=classroom.env,
                          extra_vars=last_term(classroom), timeout=1200)
    rows = {row["student"]: row for row in json.loads((classroom.status / "status.json").read_text())}
    assert rows[UNREACHABLE]["reachable"] == "no" and rows[UNREACHABLE]["state"] == "failed", result
    assert any(p.startswith("API unreachable") for p in rows[UNREACHABLE]["problems"])
    assert all(rows[s]["state"] == "healthy" for s in STUDENTS if s != UNREACHABLE), result
    assert result.recap[UNREACHABLE]["failed"] == 0  # probing a dead lab is not an error: its row says it


def test_retrying_the_failed_student_alone_builds_them_and_touches_nobody_else(classroom):
    classroom.revive_unreachable()
    others_before = {s: t.mark() for s, t in classroom.targets.items() if s != UNREACHABLE}
    retry = f"@{classroom.retry_dir / 'classroom.retry'}"
    result = run_playbook("playbooks/classroom.yml", inventory=classroom.inventory, env=classroom.env,
                          limit=retry, extra_vars=last_term(classroom), timeout=1200)
    assert result.rc == 0, result
    assert [h for h in result.recap if h.startswith("student")] == [UNREACHABLE]
    assert classroom.targets[UNREACHABLE].get("networking.istio.io/v1", "VirtualService", "tomcat-virtualservice",
                                              "microservice")
    for student, mark in others_before.items():
        assert classroom.targets[student].requests(mark) == [], student
    assert sorted(p.name for p in (classroom.handouts / UNREACHABLE).iterdir()) == [
        "README.md", "grafana-credentials.txt", "kubeconfig"]


def chapter_objects(target):
    return {(kind, item["metadata"]["name"]): item["spec"]
            for kind in ("Gateway", "VirtualService", "DestinationRule")
            for item in target.list("networking.istio.io/v1", kind, "microservice")}


def test_the_whole_class_upgrades_to_the_pins_in_one_run(classroom):
    """After the retry every lab runs last term's releases; one upgrade.yml run, with the pins of the
    inventory's group_vars as an instructor sets them, upgrades every one of them."""
    before = {}
    for student, target in classroom.targets.items():
        assert (record(target)["istio_version"], image(target, "istiod")) == \
            (OLD["istio_version"], f"docker.io/istio/pilot:{OLD['istio_version']}"), student
        before[student] = chapter_objects(target)
        assert ("VirtualService", "tomcat-virtualservice") in before[student], student
        (classroom.reports / student / "verify.json").unlink()  # the upgrade's last gate writes it again
    result = run_playbook("playbooks/upgrade.yml", inventory=classroom.inventory, env=classroom.env,
                          extra_vars=classroom.upgrade_vars(), timeout=1200)
    assert result.rc == 0, result
    assert sorted(h for h in result.recap if h.startswith("student")) == BY_ID, result
    output = result.stdout + result.stderr
    for student, target in classroom.targets.items():
        assert result.recap[student]["failed"] == 0 and result.recap[student]["unreachable"] == 0, (student, result)
        data = record(target)
        assert (data["istio_version"], data["metallb_version"], data["istio_revisions"]) == \
            (NEW["istio_version"], NEW["metallb_version"], "1-30-3"), student
        assert [(h["step"], h["result"]) for h in json.loads(data["history"])] == \
            [("istio", "ok"), ("metallb", "ok"), ("addons", "ok")], student
        assert image(target, "istiod-1-30-3") == f"docker.io/istio/pilot:{NEW['istio_version']}", student
        assert target.get("apps/v1", "Deployment", "istiod", "istio-system") is None, student
        assert image(target, "istio-ingressgateway") == f"docker.io/istio/proxyv2:{NEW['istio_version']}", student
        assert image(target, "controller", "metallb-system").endswith(f"v{NEW['metallb_version']}"), student
        assert chapter_objects(target) == before[student], student  # the students' chapter is untouched
        secret = target.get("v1", "Secret", "grafana-admin", "istio-system")
        assert base64.b64decode(secret["data"]["password"]).decode() == password_of(classroom, student), student
        assert password_of(classroom, student) not in output, student
        report = json.loads((classroom.reports / student / "verify.json").read_text())
        assert report["ok"] is True and report["ingress_ip"] == own_values(classroom, student)["ip"], student
