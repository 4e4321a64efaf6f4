"""The run's plan (plugins/filter/lab_plan.py, issue 27): every condition a stage
of site.yml used to find only once reached, after the earlier stages wrote, is
refused by the plan before the first write. One row per condition: the
inventory that makes it, the stage that used to find it, and the message,
which names both sides."""

import importlib.util
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("lab_plan_filters", REPO / "plugins/filter/lab_plan.py")
F = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(F)

ALL = ["metallb", "istio", "addons", "apps", "routes", "verify"]
POOL = "127.242.0.10-127.242.0.20"


def _yaml(path):
    return yaml.safe_load((REPO / path).read_text(encoding="utf-8"))


SHARED = _yaml("inventory/group_vars/all/chapters.yml")
# lab_chapters as Ansible renders it with the inventory's defaults.
_RENDERED = (REPO / "inventory/group_vars/all/chapters.yml").read_text(encoding="utf-8")
for _text, _value in (("{{ lab_domain }}", "kubernets.cn"), ("{{ lab_egress_host }}", "edition.cnn.com"),
                      ('"{{ lab_traffic_shift_weights.v1 }}"', "90"), ('"{{ lab_traffic_shift_weights.v2 }}"', "10")):
    _RENDERED = _RENDERED.replace(_text, _value)
CATALOGUE = yaml.safe_load(_RENDERED)["lab_chapters"]
LAB = _yaml("inventory/group_vars/all/lab.yml")
APPS = _yaml("roles/lab_apps/defaults/main.yml")["lab_apps_catalogue"]


def settings(**changes):
    """The inventory's defaults as the plan task hands them (tasks/plan.yml), with a valid pool."""
    values = {
        "stages": ALL, "chapters": ["1", "2", "3", "4"], "enabled": ["1", "2", "3", "4"],
        "chapters_variable": "lab_enabled_chapters", "apps": APPS, "addons": LAB["istio_addons_enabled"],
        "egress_gateway": True, "pool": POOL, "reserved": [], "node_addresses": ["127.0.0.1"],
        "ingress_ip": "127.242.0.10", "traffic_shift_step": 1, "traffic_shift_steps": SHARED["lab_traffic_shift_steps"],
    }
    values.update(changes)
    if "chapters" in changes and "enabled" not in changes:
        values["enabled"] = values["chapters"]
    return values


# A chapter of one's own with a negative route weight: istiod refuses the VirtualService.
BAD_ROUTES = {"7": {"virtual_services": [{"name": "bad-weights", "namespace": "microservice", "spec": {
    "hosts": ["tomcat.microservice.svc.cluster.local"], "http": [{"route": [
        {"destination": {"host": "tomcat.microservice.svc.cluster.local"}, "weight": -5}]}]}}]}}


def refusals(catalogue=None, **changes):
    return F.lab_plan_refusals({**CATALOGUE, **BAD_ROUTES} if catalogue is None else catalogue, settings(**changes))


# condition, inventory (changes to the defaults), the stage that used to find it, words of the message
CONDITIONS = [
    ("addon-left-out", {"addons": ["prometheus", "grafana", "kiali"]}, "routes",
     "chapter 3 routes to zipkin (Service istio-system/zipkin), which istio_addons_enabled leaves out: "
     "add zipkin to istio_addons_enabled or take chapter 3 out of lab_enabled_chapters"),
    ("addon-left-out", {"addons": ["grafana", "kiali", "zipkin"]}, "routes",
     "chapter 2 routes to prometheus (Service istio-system/prometheus), which istio_addons_enabled leaves out"),
    ("egress-gateway-left-out", {"chapters": ["1", "6"], "egress_gateway": False}, "routes",
     "chapter 6 routes to Service istio-system/istio-egressgateway, which istio_egress_gateway_enabled=false "
     "leaves out: turn the egress gateway on or take chapter 6 out of lab_enabled_chapters"),
    ("chapter-needs-chapter", {"chapters": ["2", "3", "4"]}, "apps",
     "chapter 4 builds on chapter 1 (Service microservice/tomcat), which lab_enabled_chapters leaves out: "
     "add chapter(s) 1 or take chapter 4 out"),
    ("unknown-chapter", {"chapters": ["1", "9"]}, "apps",
     "lab_enabled_chapters names chapter(s) 9, which lab_chapters does not define"),
    ("unknown-app", {"apps": {k: v for k, v in APPS.items() if k != "tomcat-v2"}}, "apps",
     "chapter 4 deploys app(s) tomcat-v2, which lab_apps_catalogue does not define"),
    ("route-rules", {"chapters": ["1", "7"]}, "routes",
     "chapter 7's VirtualService microservice/bad-weights breaks istiod's rules (spec.http[0].route[0].weight: "
     "weight -5 is negative: weights are 0..100): fix it in lab_chapters (or a variable it uses, such as "
     "lab_domain) or take chapter 7 out of lab_enabled_chapters"),
    ("app-service-port", {"apps": {**APPS, "tomcat": {**APPS["tomcat"], "service_port": 8080}}}, "routes",
     "chapter 1 routes to port 80 of Service microservice/tomcat, which lab_apps_catalogue gives port 8080 "
     "(tomcat.service_port)"),
    ("traffic-shift-step", {"chapters": ["1", "4", "5"], "traffic_shift_step": 4}, "routes",
     "chapter 5 shifts traffic by lab_traffic_shift_step=4, which lab_traffic_shift_steps does not have "
     "(steps 1-3)"),
    ("unknown-addon", {"addons": ["prometheus", "grafana", "kiali", "zipkin", "skywalking"]}, "addons",
     "istio_addons_enabled names skywalking, which istio-lab does not install"),
    ("zipkin-with-jaeger", {"addons": ["prometheus", "grafana", "kiali", "zipkin", "jaeger"]}, "addons",
     "istio_addons_enabled lists both zipkin and jaeger"),
    ("role-option", {"options": {"lab_routes_validate": "warning", "lab_routes_state": F.UNSET}}, "routes",
     "the routes stage's role lab_routes refuses the value set: lab_routes_validate='warning' is not one of "
     "strict, warn (fix it in the inventory or the -e)"),
    ("role-option", {"options": {"lab_wait_timeout": "5m", "lab_apps_prune": None}}, "metallb",
     "the metallb stage's role metallb refuses the value set: lab_wait_timeout='5m' is not a valid int"),
    ("role-option", {"options": {"lab_routes_check_services": "maybe", "lab_apps_prune": "yes"}}, "routes",
     "lab_routes_check_services='maybe' is not a valid bool"),
    ("role-option", {"options": {"lab_verify_retries": "many"}}, "verify",
     "the verify stage's role lab_verify refuses the value set: lab_verify_retries='many' is not a valid int"),
    ("address-pool", {"pool": ""}, "metallb", "metallb_address_range is empty"),
    ("address-pool", {"pool": "127.242.0.20-127.242.0.10"}, "metallb", "is reversed"),
    ("address-pool", {"pool": "127.0.0.1-127.0.0.20", "ingress_ip": ""}, "metallb",
     "metallb_address_range '127.0.0.1-127.0.0.20' includes node or reserved address(es) 127.0.0.1"),
    ("address-pool", {"reserved": ["127.242.0.15"]}, "metallb", "includes node or reserved address(es) 127.242.0.15"),
    ("ingress-ip-outside-pool", {"ingress_ip": "127.242.0.30"}, "metallb",
     "lab_ingress_ip '127.242.0.30' is outside metallb_address_range '127.242.0.10-127.242.0.20'"),
]


def test_the_defaults_pass():
    assert refusals() == []
    assert refusals(chapters=["1", "2", "3", "4", "5", "6"]) == []


@pytest.mark.parametrize(("condition", "changes", "stage", "message"), CONDITIONS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CONDITIONS)])
def test_each_condition_is_refused_naming_both_sides(condition, changes, stage, message):
    found = refusals(**changes)
    assert [(r["condition"], r["stage"]) for r in found] == [(condition, stage)], found
    assert message in found[0]["message"]


def test_the_table_covers_every_condition():
    assert {c[0] for c in CONDITIONS} == set(F.CONCERNS) == set(F.FOUND_BY)


def test_the_options_to_look_up_are_the_stage_roles_own():
    names = F.lab_plan_options(["routes"])
    assert "lab_routes_validate" in names and "lab_chapters" not in names and "metallb_address_range" not in names
    assert F.lab_plan_options([]) == []
    assert refusals(options={name: F.UNSET for name in F.lab_plan_options(ALL)}) == []


def test_the_addons_known_are_the_addons_role_s():
    files = _yaml("roles/istio_addons/vars/main.yml")["istio_addons_files"]
    assert set(F.ADDON_SERVICES) == set(files)


@pytest.mark.parametrize(("stages", "expected"), [
    (["metallb"], ["address-pool"]),
    (["istio"], []),  # the pool itself is MetalLB's; the ingress IP is inside it
    (["addons"], ["addon-left-out", "zipkin-with-jaeger"]),
    (["apps"], ["unknown-app"]),
    (["routes"], ["addon-left-out"]),
    ([], []),
])
def test_a_stage_playbook_checks_what_its_stage_writes(stages, expected):
    # A bad pool, prometheus left out (chapter 2), zipkin with jaeger, an app missing (chapter 4).
    found = refusals(stages=stages, pool="", addons=["grafana", "kiali", "jaeger", "zipkin"],
                     apps={k: v for k, v in APPS.items() if k != "tomcat-v2"})
    assert sorted({r["condition"] for r in found}) == sorted(expected)


def test_the_ingress_ip_is_checked_against_the_pool_by_the_istio_stage_alone():
    found = refusals(stages=["istio"], ingress_ip="127.242.0.30")
    assert [r["condition"] for r in found] == ["ingress-ip-outside-pool"]


def test_jaeger_provides_zipkin_s_service():
    assert refusals(addons=["prometheus", "grafana", "kiali", "jaeger"]) == []


def test_a_service_istio_lab_does_not_build_is_left_to_the_live_check():
    catalogue = {**CATALOGUE, "7": {"requires": {"services": ["mine/own"]}, "virtual_services": [
        {"name": "v", "namespace": "mine", "spec": {"hosts": ["x"], "http": [{"route": [
            {"destination": {"host": "other.mine.svc.cluster.local"}}]}]}}]}}
    assert refusals(catalogue, chapters=["1", "7"]) == []


def test_a_chapter_enabled_but_not_in_this_run_still_provides_its_services():
    # routes.yml -e lab_routes_chapters=[4]: chapter 1 is enabled, so on the cluster.
    found = refusals(chapters=["4"], enabled=["1", "2", "3", "4"], chapters_variable="lab_routes_chapters")
    assert found == []


def test_several_refusals_come_in_stage_order_in_one_message_each():
    found = refusals(ingress_ip="127.242.0.30", addons=["prometheus", "grafana", "kiali", "zipkin", "jaeger"],
                     chapters=["3", "4"])
    assert [r["stage"] for r in found] == ["metallb", "addons", "apps"]


def test_integer_chapter_ids_as_given_with_minus_e():
    assert refusals(chapters=[1, 2, 3, 4]) == []


def test_an_unknown_stage_is_a_programming_error():
    with pytest.raises(AnsibleFilterError, match="unknown stage"):
        refusals(stages=["cluster"])
