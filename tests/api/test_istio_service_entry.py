"""istio_service_entry (issue 16): the fourth Istio module, with the contract
of the other three (declarative, no write on a no-op, schema and Istio
validation before any write, check and diff mode), and ServiceEntries in
istio_routes and istio_route_info. Against a Kubernetes API (the double, or a
real cluster with ISTIO_LAB_TEST_KUBECONFIG); checked through the API and the
fixture's request log only.

Istio's own ServiceEntry rules (hosts, ports, resolution, endpoints, a
wildcard host with DNS resolution) live in validate.py's object_problems; the
refusal tests below state the behaviour the issue asks for."""

import copy

import pytest

from tests.helpers import documented_options, run_module

pytestmark = pytest.mark.api

V1 = "networking.istio.io/v1"
MANAGED = {"app.kubernetes.io/managed-by": "istio-lab"}
HOST = "external.example"  # never dialled: only the API sees it
EGRESS_SVC = "istio-egressgateway.istio-system.svc.cluster.local"
ENTRY = {"hosts": [HOST],
         "ports": [{"number": 80, "name": "http-port", "protocol": "HTTP"},
                   {"number": 443, "name": "https", "protocol": "HTTPS"}],
         "resolution": "DNS"}


def entry(**changes):
    spec = copy.deepcopy(ENTRY)
    spec.update(changes)
    return spec


def egress_routes(host=HOST):
    """Istio's Egress Gateways task, as chapter 6 writes it."""
    return {
        "namespace": "egress",
        "service_entries": [{"name": "external-http", "spec": entry(hosts=[host])}],
        "gateways": [{"name": "istio-egressgateway", "spec": {
            "selector": {"istio": "egressgateway"},
            "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [host]}]}}],
        "destination_rules": [{"name": "egressgateway-for-external", "spec": {
            "host": EGRESS_SVC, "subsets": [{"name": "external"}]}}],
        "virtual_services": [{"name": "external-through-egress-gateway", "spec": {
            "hosts": [host], "gateways": ["istio-egressgateway", "mesh"],
            "http": [
                {"match": [{"gateways": ["mesh"], "port": 80}],
                 "route": [{"destination": {"host": EGRESS_SVC, "subset": "external", "port": {"number": 80}},
                            "weight": 100}]},
                {"match": [{"gateways": ["istio-egressgateway"], "port": 80}],
                 "route": [{"destination": {"host": host, "port": {"number": 80}}, "weight": 100}]}]}}],
    }


@pytest.fixture
def lab(kube):
    kube.ensure_namespace("egress")
    return kube


def written(kube, mark):
    return [(w["method"], w["path"].split("?")[0].rstrip("/").split("/")[-2:]) for w in kube.writes(mark)]


def test_documents_exactly_its_arguments():
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import resource_argument_spec

    documented = documented_options("istio_service_entry")
    spec = resource_argument_spec()
    assert set(documented) == set(spec)
    for name, arg in spec.items():
        for field in ("type", "choices", "default", "elements"):
            assert documented[name].get(field) == arg.get(field), (name, field)


def test_create_no_op_update_check_diff_and_delete(lab):
    kube = lab
    args = {"name": "external-http", "namespace": "egress", "spec": entry()}
    mark = kube.mark()
    created = run_module("istio_service_entry", args, kube=kube)
    assert created["changed"] and created["operation"] == "created", created.get("msg")
    stored = kube.get(V1, "ServiceEntry", "external-http", "egress")
    assert stored["spec"] == ENTRY and stored["metadata"]["labels"] == MANAGED
    assert [m for m, _ in written(kube, mark)] == ["POST"]

    mark = kube.mark()
    again = run_module("istio_service_entry", args, kube=kube)
    assert not again["changed"] and again["operation"] == "unchanged"
    assert again["api_requests"] == {"list": 1}
    assert kube.writes(mark) == []

    # a port removed from the input is removed from the cluster: declarative
    smaller = {**args, "spec": entry(ports=ENTRY["ports"][:1])}
    mark = kube.mark()
    would = run_module("istio_service_entry", smaller, kube=kube, check=True, diff=True)
    assert would["changed"] and would["operation"] == "updated"
    assert kube.writes(mark) == []
    assert len(would["diff"]["before"]["spec"]["ports"]) == 2 and len(would["diff"]["after"]["spec"]["ports"]) == 1
    updated = run_module("istio_service_entry", smaller, kube=kube)
    assert updated["changed"] and updated["operation"] == "updated"
    assert kube.get(V1, "ServiceEntry", "external-http", "egress")["spec"]["ports"] == ENTRY["ports"][:1]

    gone = run_module("istio_service_entry", {"name": "external-http", "namespace": "egress", "state": "absent"},
                      kube=kube)
    assert gone["changed"] and gone["operation"] == "deleted"
    assert kube.get(V1, "ServiceEntry", "external-http", "egress") is None
    absent = run_module("istio_service_entry", {"name": "external-http", "namespace": "egress", "state": "absent"},
                        kube=kube)
    assert not absent["changed"] and absent["operation"] == "absent"


# (spec, field paths of which one must be named): each invalid case Istio refuses
INVALID = {
    "wildcard host with DNS resolution": (entry(hosts=["*.example.com"]), ("spec.resolution", "spec.hosts[0]")),
    "empty host": (entry(hosts=[""]), ("spec.hosts[0]",)),
    "malformed host": (entry(hosts=["not a host!"]), ("spec.hosts[0]",)),
    "port number 0": (entry(ports=[{"number": 0, "name": "http", "protocol": "HTTP"}]), ("spec.ports[0].number",)),
    "port name used twice": (entry(ports=[{"number": 80, "name": "web", "protocol": "HTTP"},
                                          {"number": 8080, "name": "web", "protocol": "HTTP"}]),
                             ("spec.ports[1].name",)),
    "unknown protocol": (entry(ports=[{"number": 80, "name": "http", "protocol": "HTTPX"}]),
                         ("spec.ports[0].protocol",)),
    "endpoints with resolution NONE": (entry(resolution="NONE", endpoints=[{"address": "192.0.2.1"}]),
                                       ("spec.endpoints", "spec.endpoints[0]", "spec.resolution")),
    "STATIC endpoint that is not an IP": (entry(resolution="STATIC", endpoints=[{"address": "not-an-ip"}]),
                                          ("spec.endpoints[0].address",)),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_refuses_each_invalid_case_with_the_field_path_and_writes_nothing(lab, case):
    kube = lab
    spec, fields = INVALID[case]
    mark = kube.mark()
    result = run_module("istio_service_entry", {"name": "bad", "namespace": "egress", "spec": spec}, kube=kube)
    assert result.get("failed"), f"{case}: accepted"
    assert "nothing was written" in result["msg"], result["msg"]
    named = [p["field"] for p in result["problems"]]
    assert any(field == want or field.startswith(want + ".") or field.startswith(want + "[")
               for field in named for want in fields), (case, named)
    assert all(p["object"] == "ServiceEntry egress/bad" for p in result["problems"])
    assert kube.writes(mark) == []
    assert kube.get(V1, "ServiceEntry", "bad", "egress") is None


def test_routes_refuse_an_invalid_service_entry_among_valid_objects(lab):
    kube = lab
    routes = egress_routes()
    routes["service_entries"][0]["spec"] = entry(hosts=["*.example.com"])
    routes["gateways"][0]["spec"]["servers"][0]["hosts"] = ["*.example.com"]
    mark = kube.mark()
    result = run_module("istio_routes", routes, kube=kube)
    assert result.get("failed") and "nothing was written" in result["msg"]
    assert [p["kind"] for p in result["problems"]] == ["ServiceEntry"] * len(result["problems"])
    assert kube.writes(mark) == []
    for kind in ("ServiceEntry", "Gateway", "VirtualService", "DestinationRule"):
        assert kube.list(V1, kind, "egress") == []


def test_routes_write_service_entries_first_and_remove_them_last(lab):
    kube = lab
    mark = kube.mark()
    created = run_module("istio_routes", egress_routes(), kube=kube)
    assert created["changed"], created.get("msg")
    assert [r["kind"] for r in created["results"]] == ["ServiceEntry", "Gateway", "VirtualService",
                                                        "DestinationRule"]
    assert [method for method, _ in written(kube, mark)] == ["POST"] * 4
    order = [w["path"].split("?")[0].rstrip("/").rsplit("/", 1)[-1] for w in kube.writes(mark)]
    assert order == ["serviceentries", "gateways", "virtualservices", "destinationrules"]

    mark = kube.mark()
    again = run_module("istio_routes", egress_routes(), kube=kube)
    assert not again["changed"] and again["api_requests"] == {"list": 4}
    assert kube.writes(mark) == []

    absent = egress_routes()
    absent["state"] = "absent"
    mark = kube.mark()
    removed = run_module("istio_routes", absent, kube=kube)
    assert removed["changed"]
    order = [w["path"].split("?")[0].rstrip("/").rsplit("/", 2)[-2] for w in kube.writes(mark)]
    assert order == ["destinationrules", "virtualservices", "gateways", "serviceentries"]
    assert kube.list(V1, "ServiceEntry", "egress") == []


def test_route_info_shows_the_mesh_and_the_egress_route(lab):
    kube = lab
    kube.ensure_namespace("istio-system")
    kube.create({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "istio-egressgateway", "namespace": "istio-system",
                              "labels": {"istio": "egressgateway"}},
                 "spec": {"selector": {"app": "istio-egressgateway", "istio": "egressgateway"},
                          "ports": [{"name": "http2", "port": 80, "targetPort": 8080},
                                    {"name": "https", "port": 443, "targetPort": 8443}]}})
    assert run_module("istio_routes", egress_routes(), kube=kube)["changed"]
    info = run_module("istio_route_info", {}, kube=kube)
    assert info["api_requests"]["list"] == 5
    assert info["problems"] == [], info["problems"]
    assert [e["service_entry"] for e in info["service_entries"]] == ["egress/external-http"]
    [mesh] = info["mesh_routes"]
    assert mesh["virtual_service"] == "egress/external-through-egress-gateway" and mesh["hosts"] == [HOST]
    assert [(d["service"], d["subset"]) for d in mesh["destinations"]] == [("istio-system/istio-egressgateway",
                                                                            "external")]
    [egress] = info["egress_routes"]
    assert (egress["gateway"], egress["host"], egress["port"]) == ("egress/istio-egressgateway", HOST, 80)
    assert egress["selector"] == {"istio": "egressgateway"}
    assert egress["service_entries"] == ["egress/external-http"]
    assert egress["gateway_services"] == ["istio-system/istio-egressgateway"]
    assert egress["mesh_hops"] == [{"virtual_service": "egress/external-through-egress-gateway",
                                    "via": ["istio-system/istio-egressgateway"], "subsets": ["external"]}]
    assert [(d["fqdn"], d["port"], d["port_exists"]) for d in egress["destinations"]] == [(HOST, 80, True)]

    # without the ServiceEntry the route table says the gateway has no cluster for the host
    run_module("istio_service_entry", {"name": "external-http", "namespace": "egress", "state": "absent"}, kube=kube)
    info = run_module("istio_route_info", {}, kube=kube)
    assert any("no ServiceEntry declares" in p["message"] for p in info["problems"]), info["problems"]
