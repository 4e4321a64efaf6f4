"""The run's plan (issue 27, item 1): what a later stage would refuse is refused
before the run's first write, with a message naming both sides.

The issue's case on a built lab: chapters 1-4 with istio_addons_enabled
lacking zipkin. Before, the addons stage deleted Zipkin's Deployment and
Services and patched the platform record, and only then the routes stage
refused chapter 3; now site.yml, addons.yml and upgrade.yml refuse it with 0
writes. Most other conditions of the plan (tests/unit/test_lab_plan.py holds
one case each) are given to site.yml at once, chapter 5 with a step
lab_traffic_shift_steps lacks (its routes cannot even be rendered): all are
named, 0 writes. A class of two labs, one with a pool covering a reserved
address: that lab fails before writing, the other builds.
"""

from __future__ import annotations

import os

import pytest

from tests.api.test_site import envoy_stand_in, site_vars
from tests.helpers import Classroom, run_playbook

pytestmark = pytest.mark.api

ZIPKIN_LEFT_OUT = {"istio_addons_enabled": ["prometheus", "grafana", "kiali"]}
ZIPKIN_MESSAGE = ("chapter 3 routes to zipkin (Service istio-system/zipkin), which istio_addons_enabled leaves out: "
                  "add zipkin to istio_addons_enabled or take chapter 3 out of lab_enabled_chapters")


def said(result) -> str:
    return " ".join(result.stdout.split())


def refused(result):
    assert result.rc != 0 and result.failed == 1, result
    assert "Refused before any write, nothing was written" in said(result), result


def test_a_built_lab_refuses_what_a_later_stage_would_refuse_with_0_writes(kube, shared_dir, tmp_path):
    kube.require_double("builds MetalLB with a loopback pool and Istio through the istioctl test double")
    with envoy_stand_in() as envoy:
        values = site_vars(shared_dir, tmp_path, envoy)
        built = run_playbook("site.yml", kube=kube, extra_vars=values)
        assert built.rc == 0 and built.failed == 0, built

        # The case, in site.yml and in the stage that used to delete Zipkin.
        mark = kube.mark()
        for playbook in ("site.yml", "playbooks/addons.yml", "playbooks/upgrade.yml"):
            result = run_playbook(playbook, kube=kube, extra_vars={**values, **ZIPKIN_LEFT_OUT})
            refused(result)
            assert ZIPKIN_MESSAGE in said(result), result
        assert kube.writes(mark) == []
        for name in ("zipkin", "tracing"):
            assert kube.get("v1", "Service", name, "istio-system") is not None
        assert kube.get("apps/v1", "Deployment", "zipkin", "istio-system") is not None

        # Every other condition at once: each is named, nothing is written.
        apps = {"tomcat": {"namespace": "microservice"}, "curl": {"namespace": "egress"}}
        result = run_playbook("site.yml", kube=kube, extra_vars={
            **values, "lab_enabled_chapters": ["2", "3", "4", "5", "6", "9"], "lab_traffic_shift_step": 4,
            "istio_egress_gateway_enabled": False, "lab_ingress_ip": "127.242.0.30", "lab_apps_catalogue": apps,
            "lab_routes_validate": "warning",
            "istio_addons_enabled": ["prometheus", "grafana", "kiali", "zipkin", "jaeger", "skywalking"]})
        refused(result)
        for words in (
            "lab_ingress_ip '127.242.0.30' is outside metallb_address_range '127.242.0.10-127.242.0.20'",
            "istio_addons_enabled names skywalking, which istio-lab does not install",
            "istio_addons_enabled lists both zipkin and jaeger",
            "lab_enabled_chapters names chapter(s) 9, which lab_chapters does not define",
            "chapter 4 deploys app(s) tomcat-v2, which lab_apps_catalogue does not define",
            "chapter 4 builds on chapter 1 (Service microservice/tomcat), which lab_enabled_chapters leaves out",
            "chapter 6 routes to Service istio-system/istio-egressgateway, which istio_egress_gateway_enabled=false "
            "leaves out",
            "chapter 5 shifts traffic by lab_traffic_shift_step=4, which lab_traffic_shift_steps does not have",
            "the routes stage's role lab_routes refuses the value set: lab_routes_validate='warning' is not one of "
            "strict, warn",
        ):
            assert words in said(result), words
        assert kube.writes(mark) == []


def test_a_class_with_one_bad_lab_builds_the_other(tmp_path):
    if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
        pytest.skip("one API per student: API doubles only")
    room = Classroom(tmp_path, ["s1", "s2"]).start()
    try:
        room.generate_inventory()
        # s2's pool covers an address reserved for something else: its MetalLB stage would refuse it.
        reserved = room.hostvars["s2"]["lab_ingress_ip"]
        host_vars = room.inventory / "host_vars"
        host_vars.mkdir(exist_ok=True)
        (host_vars / "s2.yml").write_text(f"metallb_reserved_addresses: ['{reserved}']\n")
        room.envoy_port = 9  # no verification in this run
        marks = {s: room.targets[s].mark() for s in room.students}
        result = run_playbook("playbooks/classroom.yml", inventory=str(room.inventory / "hosts.yml"), env=room.env,
                              extra_vars=room.extra_vars(classroom_stages=["metallb"]))
        assert result.recap["s2"]["failed"] == 1 and result.recap["s1"]["failed"] == 0, result
        assert f"includes node or reserved address(es) {reserved}" in said(result), result
        assert room.targets["s2"].writes(marks["s2"]) == []
        assert room.targets["s1"].writes(marks["s1"]) != []
        assert room.targets["s1"].get("metallb.io/v1beta1", "IPAddressPool", "istio-lab-pool", "metallb-system")
    finally:
        room.stop()
