"""The effective route table (routes.route_table) of the course's objects,
and each problem it reports."""

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.routes import resolve_host, route_table  # noqa: E402

COURSE = yaml.safe_load((REPO / "tests/fixtures/course_objects.yml").read_text())
KINDS = {"gateways": "Gateway", "virtual_services": "VirtualService", "destination_rules": "DestinationRule"}


def objects(group):
    return [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": KINDS[group],
            "metadata": {"name": i["name"], "namespace": i["namespace"]},
            "spec": copy.deepcopy(i["spec"]),
        }
        for i in COURSE[group]
    ]


def services(entries=None):
    return [
        {
            "kind": "Service",
            "metadata": {"name": s["name"], "namespace": s["namespace"]},
            "spec": {"ports": [{"port": p} for p in s["ports"]]},
        }
        for s in (entries or COURSE["services"])
    ]


def table(gateways=None, virtual_services=None, svcs=None, rules=None):
    return route_table(
        gateways if gateways is not None else objects("gateways"),
        virtual_services if virtual_services is not None else objects("virtual_services"),
        svcs if svcs is not None else services(),
        rules if rules is not None else objects("destination_rules"),
    )


def messages(result):
    return [(p["object"], p["field"]) for p in result["problems"]]


def test_short_names_resolve_in_the_virtual_service_namespace():
    assert resolve_host("grafana", "istio-system") == "grafana.istio-system.svc.cluster.local"
    assert resolve_host("tomcat.microservice", "x") == "tomcat.microservice"  # Istio does not expand dotted names
    assert resolve_host("*", "x") == "*"


def test_the_course_route_table():
    result = table()
    assert result["problems"] == []
    assert result["hosts"] == {
        "istio-system/allgateway": [
            "grafana-istio.kubernets.cn",
            "kiali-istio.kubernets.cn",
            "zipkin-istio.kubernets.cn",
        ],
        "istio-system/gateway": ["prometheus-istio.kubernets.cn"],
        "microservice/ingressgateway80": ["*"],
    }
    grafana = next(r for r in result["routes"] if r["host"] == "grafana-istio.kubernets.cn")
    assert grafana["gateway"] == "istio-system/allgateway" and grafana["port"] == 80
    assert grafana["protocol"] == "HTTP" and grafana["virtual_service"] == "istio-system/grafana-istio"
    assert grafana["destinations"] == [
        {
            "route": "http[0]",
            "host": "grafana",
            "fqdn": "grafana.istio-system.svc.cluster.local",
            "service": "istio-system/grafana",
            "port": 3000,
            "subset": None,
            "weight": 100,
            "service_exists": True,
            "port_exists": True,
        }
    ]
    assert len(result["routes"]) == 5


def test_a_virtual_service_bound_to_a_missing_gateway():
    gateways = [g for g in objects("gateways") if g["metadata"]["name"] != "allgateway"]
    result = table(gateways=gateways)
    assert ("VirtualService istio-system/grafana-istio", "spec.gateways[0]") in messages(result)
    assert "istio-system/allgateway" not in result["hosts"]


def test_a_host_no_server_admits():
    vss = objects("virtual_services")
    vss[1]["spec"]["hosts"] = ["prometheus.example.org"]  # gateway only admits prometheus-istio.kubernets.cn
    result = table(virtual_services=vss)
    assert messages(result) == [("VirtualService istio-system/prometheus-istio", "spec.hosts[0]")]
    assert "istio-system/gateway" not in result["hosts"]


def test_missing_service_and_port():
    svcs = [s for s in COURSE["services"] if s["name"] != "zipkin"]
    vss = objects("virtual_services")
    vss[3]["spec"]["http"][0]["route"][0]["destination"]["port"]["number"] = 2000  # kiali has 20001, 9090
    result = table(svcs=services(svcs), virtual_services=vss)
    assert messages(result) == [
        ("VirtualService istio-system/kiali-istio", "spec.http[0].route[0].destination.port.number"),
        ("VirtualService istio-system/zipkin-istio", "spec.http[0].route[0].destination.host"),
    ]
    zipkin = next(r for r in result["routes"] if r["virtual_service"] == "istio-system/zipkin-istio")
    assert zipkin["destinations"][0]["service_exists"] is False


def test_two_virtual_services_claiming_one_host():
    vss = objects("virtual_services")
    twin = copy.deepcopy(vss[2])
    twin["metadata"]["name"] = "grafana-twin"
    result = table(virtual_services=[*vss, twin])
    assert messages(result) == [("Gateway istio-system/allgateway", "spec.servers")]
    assert "grafana-istio, istio-system/grafana-twin" in result["problems"][0]["message"]


def test_weights_and_subsets():
    vss = objects("virtual_services")
    vss[0]["spec"]["http"][0]["route"] = [
        {"destination": {"host": "tomcat.microservice.svc.cluster.local", "subset": "v1"}, "weight": 70},
        {"destination": {"host": "tomcat.microservice.svc.cluster.local", "subset": "v3"}, "weight": 20},
    ]
    result = table(virtual_services=vss)
    assert sorted(messages(result)) == [
        ("VirtualService microservice/tomcat-virtualservice", "spec.http[0].route[1].destination.subset"),
        ("VirtualService microservice/tomcat-virtualservice", "spec.http[0].route[1].weight"),
    ]
    tomcat = next(r for r in result["routes"] if r["virtual_service"] == "microservice/tomcat-virtualservice")
    assert [(d["subset"], d["weight"]) for d in tomcat["destinations"]] == [("v1", 70), ("v3", 20)]


INGRESS_SERVICE = {
    "kind": "Service",
    "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
    "spec": {"selector": {"app": "istio-ingressgateway", "istio": "ingressgateway"}, "ports": [{"port": 80}]},
}


def with_export(name, export_to):
    found = objects("virtual_services")
    for vs in found:
        if vs["metadata"]["name"] == name:
            vs["spec"]["exportTo"] = export_to
    return found


def test_a_virtual_service_not_exported_to_the_gateways_namespace_is_not_served():
    # tomcat's VirtualService lives in microservice; the ingress gateway's Envoy runs in istio-system.
    result = table(virtual_services=with_export("tomcat-virtualservice", ["."]), svcs=services() + [INGRESS_SERVICE])
    assert ("VirtualService microservice/tomcat-virtualservice", "spec.exportTo") in messages(result)
    problem = next(p for p in result["problems"] if p["field"] == "spec.exportTo")
    assert "not to istio-system" in problem["message"] and "404" in problem["message"]
    assert "microservice/tomcat-virtualservice" not in {r["virtual_service"] for r in result["routes"]}
    assert "microservice/ingressgateway80" not in result["hosts"]


@pytest.mark.parametrize("export_to", [["*"], ["istio-system"], [".", "istio-system"], []])
def test_a_virtual_service_exported_to_the_gateways_namespace_is_served(export_to):
    result = table(virtual_services=with_export("tomcat-virtualservice", export_to),
                   svcs=services() + [INGRESS_SERVICE])
    assert "spec.exportTo" not in {field for _, field in messages(result)}
    assert "microservice/tomcat-virtualservice" in {r["virtual_service"] for r in result["routes"]}


def test_export_to_its_own_namespace_serves_a_gateway_running_there():
    # Services without a selector matching the Gateway: where its Envoy runs is unknown, nothing is claimed.
    result = table(virtual_services=with_export("tomcat-virtualservice", ["."]))
    assert "spec.exportTo" not in {field for _, field in messages(result)}
    # The grafana VirtualService lives where the gateway's Envoy runs: "." is enough.
    result = table(virtual_services=with_export("grafana-istio", ["."]), svcs=services() + [INGRESS_SERVICE])
    assert "istio-system/grafana-istio" in {r["virtual_service"] for r in result["routes"]}


def test_mesh_routes_are_listed_apart_from_gateway_routes():
    mesh_vs = {
        "kind": "VirtualService",
        "metadata": {"name": "tomcat-canary", "namespace": "microservice"},
        "spec": {"hosts": ["tomcat"], "exportTo": ["."],
                 "http": [{"route": [{"destination": {"host": "tomcat", "port": {"number": 80}}}]}]},
    }
    both = copy.deepcopy(mesh_vs)
    both["metadata"]["name"] = "tomcat-both"
    both["spec"].update(gateways=["mesh", "ingressgateway80"], hosts=["tomcat", "*"], exportTo=["*"])
    result = table(virtual_services=objects("virtual_services") + [mesh_vs, both])
    mesh = {m["virtual_service"]: m for m in result["mesh_routes"]}
    assert set(mesh) == {"microservice/tomcat-canary", "microservice/tomcat-both"}
    assert mesh["microservice/tomcat-canary"]["hosts"] == ["tomcat.microservice.svc.cluster.local"]
    assert mesh["microservice/tomcat-canary"]["exported_to"] == ["microservice"]
    assert mesh["microservice/tomcat-canary"]["destinations"][0]["service"] == "microservice/tomcat"
    assert mesh["microservice/tomcat-both"]["exported_to"] == ["*"]
    gateway_routes = {r["virtual_service"] for r in result["routes"]}
    assert "microservice/tomcat-both" in gateway_routes and "microservice/tomcat-canary" not in gateway_routes
