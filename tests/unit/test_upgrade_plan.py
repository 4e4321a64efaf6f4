"""The platform record and the upgrade's plan (plugins/filter/lab_upgrade.py):
what upgrade.yml decides before any write."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("lab_upgrade_filter", REPO / "plugins" / "filter" / "lab_upgrade.py")
upgrade = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(upgrade)

SUPPORT = yaml.safe_load((REPO / "roles" / "lab_upgrade" / "defaults" / "main.yml").read_text())[
    "lab_upgrade_istio_kubernetes_support"]
PINS = {"istio_version": "1.30.3", "metallb_version": "0.16.1", "addons": ["prometheus", "grafana", "kiali", "zipkin"]}


def recorded(istio="1.29.6", metallb="0.15.3", addons=("prometheus", "grafana", "kiali", "zipkin"), revisions=None,
             addons_version=None):
    data = {"istio_version": istio, "metallb_version": metallb, "addons": ",".join(addons),
            "istio_revisions": revisions or "default", "tooling": "istio-lab/1.0.0", "history": "[]"}
    if addons_version:
        data["addons_version"] = addons_version
    return upgrade.lab_record_parse([{"data": data}, None])


def test_revision_names_are_dns_labels():
    assert upgrade.lab_istio_revision("1.30.3") == "1-30-3"
    with pytest.raises(AnsibleFilterError):
        upgrade.lab_istio_revision("latest")


def test_a_lab_built_before_the_record_is_read_from_the_install_record():
    parsed = upgrade.lab_record_parse([None, {"data": {"version": "1.29.6", "operator-sha256": "x"}}])
    assert parsed["exists"] is False
    assert (parsed["istio_version"], parsed["istio_revisions"], parsed["metallb_version"]) == \
        ("1.29.6", ["default"], "")
    assert upgrade.lab_record_parse([None, None])["istio_version"] == ""


def test_the_plan_upgrades_istio_then_metallb_then_the_addons():
    plan = upgrade.lab_upgrade_plan(recorded(), PINS, "v1.36.2", SUPPORT)
    assert plan["refusals"] == []
    assert [s["step"] for s in plan["steps"]] == ["istio", "metallb", "addons"]
    assert plan["istio"] == {"from": "1.29.6", "to": "1.30.3"}
    assert plan["metallb"] == {"from": "0.15.3", "to": "0.16.1"}


def test_nothing_to_upgrade_is_an_empty_plan():
    plan = upgrade.lab_upgrade_plan(recorded("1.30.3", "0.16.1"), PINS, "", SUPPORT)
    assert plan == {"steps": [], "refusals": [], "istio": None, "metallb": None, "addons": False}


def test_an_addon_list_change_alone_is_an_addons_step():
    plan = upgrade.lab_upgrade_plan(recorded("1.30.3", "0.16.1", addons=("prometheus",)), PINS, "", SUPPORT)
    assert [s["step"] for s in plan["steps"]] == ["addons"]


def test_addons_left_on_an_older_release_are_an_addons_step():
    # a record from before addons_version: the addons came with the recorded Istio release
    assert recorded("1.30.3", "0.16.1")["addons_version"] == "1.30.3"
    # the Istio step passed, then MetalLB's (or the addons' own) was rolled back: the addons are still 1.29.6's
    plan = upgrade.lab_upgrade_plan(recorded("1.30.3", "0.15.3", addons_version="1.29.6"), PINS, "", SUPPORT)
    assert [(s["step"], s["from"], s["to"]) for s in plan["steps"]] == [
        ("metallb", "0.15.3", "0.16.1"),
        ("addons", "1.29.6 (prometheus,grafana,kiali,zipkin)", "1.30.3 (prometheus,grafana,kiali,zipkin)")]
    assert plan["addons"] is True and plan["istio"] is None
    # and the record says which release's addons run, written when that alone changes
    current = recorded("1.30.3", "0.16.1", addons_version="1.29.6")
    desired = {"istio_version": "1.30.3", "istio_revisions": ["default"], "metallb_version": "0.16.1",
               "addons": ["prometheus", "grafana", "kiali", "zipkin"], "tooling": "istio-lab/1.0.0"}
    assert upgrade.lab_record_manifest(current, {**desired, "addons_version": "1.29.6"}, "t") is None
    assert upgrade.lab_record_manifest(current, {**desired, "addons_version": "1.30.3"}, "t")["data"][
        "addons_version"] == "1.30.3"


@pytest.mark.parametrize("pins, kubernetes, allow, expected", [
    ({"istio_version": "1.29.5"}, "1.36", False, "a downgrade is refused unless -e lab_upgrade_allow_downgrade=true"),
    ({"metallb_version": "0.14.9"}, "1.36", False, "MetalLB 0.14.9 is older than the recorded 0.15.3"),
    ({"istio_version": "1.32.0"}, "1.36", False, "skips 3 minor versions"),
    ({"istio_version": "1.26.0"}, "1.36", True, "skips 3 minor versions"),
    ({}, "v1.31.4", False, "Kubernetes 1.31 is outside Istio 1.30's supported range 1.32-1.36"),
    ({}, "v1.37.0", False, "Kubernetes 1.37 is outside Istio 1.30's supported range 1.32-1.36"),
    ({"istio_version": "1.31.0"}, "1.36", False, "no supported Kubernetes range is known for Istio 1.31"),
])
def test_the_plan_refuses(pins, kubernetes, allow, expected):
    plan = upgrade.lab_upgrade_plan(recorded(), {**PINS, **pins}, kubernetes, SUPPORT, allow)
    assert any(expected in refusal for refusal in plan["refusals"]), plan["refusals"]


def test_an_allowed_downgrade_and_a_two_minor_jump_pass():
    assert upgrade.lab_upgrade_plan(recorded(), {**PINS, "istio_version": "1.29.5"}, "1.35", SUPPORT,
                                    True)["refusals"] == []
    assert upgrade.lab_upgrade_plan(recorded("1.28.2"), PINS, "1.34", SUPPORT)["refusals"] == []


def test_a_string_flag_is_refused_until_converted():
    with pytest.raises(AnsibleFilterError, match=r"\| bool"):
        upgrade.lab_upgrade_plan(recorded(), PINS, "1.36", SUPPORT, "true")


def test_nothing_recorded_is_refused():
    plan = upgrade.lab_upgrade_plan(upgrade.lab_record_parse([None, None]), PINS, "1.36", SUPPORT)
    assert "build the lab with site.yml first" in plan["refusals"][0]


def test_the_record_is_written_only_when_it_differs_or_a_step_is_added():
    desired = {"istio_version": "1.29.6", "istio_revisions": ["default"], "metallb_version": "0.15.3",
               "addons": ["prometheus", "grafana", "kiali", "zipkin"], "tooling": "istio-lab/1.0.0"}
    current = recorded()
    assert upgrade.lab_record_manifest(current, desired, "2026-12-03T10:00:00Z") is None
    step = {"step": "istio", "from": "1.29.6", "to": "1.30.3", "result": "ok"}
    manifest = upgrade.lab_record_manifest(current, {**desired, "istio_version": "1.30.3",
                                                     "istio_revisions": ["1-30-3"]},
                                           "2026-12-03T10:00:00Z", [step],
                                           {"app.kubernetes.io/managed-by": "istio-lab"})
    assert manifest["metadata"] == {"name": "istio-lab-record", "namespace": "istio-lab",
                                    "labels": {"app.kubernetes.io/managed-by": "istio-lab"}}
    data = manifest["data"]
    assert (data["istio_version"], data["istio_revisions"], data["updated_at"]) == \
        ("1.30.3", "1-30-3", "2026-12-03T10:00:00Z")
    assert json.loads(data["history"]) == [{**step, "at": "2026-12-03T10:00:00Z"}]
    # a missing record is always written, even when the install record says the same
    assert upgrade.lab_record_manifest({**current, "exists": False}, desired, "t") is not None


def test_the_recorded_tooling_is_the_collection_version():
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    tooling = yaml.safe_load((REPO / "roles" / "lab_record" / "vars" / "main.yml").read_text())["lab_record_tooling"]
    assert tooling == f"istio-lab/{galaxy['version']}"


def test_the_shared_pins_equal_the_roles_defaults():
    shared = yaml.safe_load((REPO / "inventory" / "group_vars" / "all" / "lab.yml").read_text())
    metallb = yaml.safe_load((REPO / "roles" / "metallb" / "defaults" / "main.yml").read_text())
    addons = yaml.safe_load((REPO / "roles" / "istio_addons" / "defaults" / "main.yml").read_text())
    assert shared["metallb_version"] == metallb["metallb_version"]
    assert shared["istio_addons_enabled"] == addons["istio_addons_enabled"]


def test_the_status_page_reads_the_record_the_upgrade_writes():
    """The writer (lab_record_manifest) and the status page's reader (classroom.platform_versions) agree."""
    spec = importlib.util.spec_from_file_location("classroom_filter", REPO / "plugins" / "filter" / "classroom.py")
    classroom = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(classroom)
    record = upgrade.lab_record_manifest(
        recorded(), {**PINS, "istio_revisions": ["1-30-3"], "tooling": "istio-lab/1.0.0"}, "2026-12-03T15:00:00Z",
        steps=[{"step": "istio", "from": "1.29.6", "to": "1.30.3", "result": "ok"}])
    wanted = [{"namespace": record["metadata"]["namespace"], "name": record["metadata"]["name"]},
              {"namespace": "istio-system", "name": "istio-lab-install"}]
    versions = classroom.platform_versions([record, None], wanted)
    assert versions == {"source": "record", "istio": "1.30.3", "istio_revisions": "1-30-3", "metallb": "0.16.1",
                        "addons": "prometheus,grafana,kiali,zipkin", "tooling": "istio-lab/1.0.0",
                        "updated_at": "2026-12-03T15:00:00Z"}
    assert classroom.platform_versions([None, None], wanted)["source"] == ""


def test_the_istioctl_double_names_a_revisions_objects_as_istioctl_does():
    import importlib.machinery

    loader = importlib.machinery.SourceFileLoader("istioctl_double_rev", str(REPO / "tests" / "bin" / "istioctl"))
    spec = importlib.util.spec_from_loader("istioctl_double_rev", loader)
    double = importlib.util.module_from_spec(spec)
    loader.exec_module(double)
    operator = {"profile": "demo", "tag": "1.30.3",
                "components": {"ingressGateways": [{"name": "istio-ingressgateway", "enabled": True}]}}
    objects, _ = double.demo_objects(operator, "1-30-3")
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {("Deployment", "istiod-1-30-3"), ("Service", "istiod-1-30-3"), ("ConfigMap", "istio-1-30-3"),
            ("MutatingWebhookConfiguration", "istio-sidecar-injector-1-30-3"),
            ("Deployment", "istio-ingressgateway")} <= names
    assert all(o["metadata"].get("labels", {}).get("istio.io/rev") == "1-30-3" for o in objects
               if o["kind"] != "Namespace")
    webhook = next(o for o in objects if o["kind"] == "MutatingWebhookConfiguration")
    assert webhook["webhooks"][0]["namespaceSelector"] == {"matchLabels": {"istio.io/rev": "1-30-3"}}
    default, _ = double.demo_objects(operator)
    assert {("Deployment", "istiod"), ("MutatingWebhookConfiguration", "istio-sidecar-injector")} <= \
        {(o["kind"], o["metadata"]["name"]) for o in default}
    with pytest.raises(double.Refused):
        double.check_revision("1.30.3")
