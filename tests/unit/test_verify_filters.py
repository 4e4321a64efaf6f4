"""The filters of lab_routes and lab_verify (plugins/filter/lab_verify.py),
run on the real chapter catalogue."""

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

# conftest.py puts collections/ on sys.path (the checkout as the collection)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.routes import (
    missing_service_messages,
    service_destinations,
)

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "kubernets.cn"
IP = "127.0.0.1"
UNROUTED_HOST = f"nothing.{DOMAIN}"

_spec = importlib.util.spec_from_file_location("lab_verify_filters", REPO / "plugins/filter/lab_verify.py")
F = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(F)


@pytest.fixture(scope="module")
def catalogue():
    """lab_chapters with lab_domain rendered as Ansible would."""
    text = (REPO / "inventory/group_vars/all/chapters.yml").read_text()
    return yaml.safe_load(text.replace("{{ lab_domain }}", DOMAIN))["lab_chapters"]


def route(vs, host, gateway, destinations, port=80):
    """A route table entry as istio_route_info returns it."""
    return {
        "gateway": gateway,
        "port": port,
        "protocol": "HTTP",
        "host": host,
        "virtual_service": vs,
        "destinations": destinations,
    }


def dest(service, port, exists=True, port_exists=True):
    namespace, name = service.split("/")
    return {
        "route": "http[0]",
        "host": f"{name}.{namespace}.svc.cluster.local",
        "fqdn": f"{name}.{namespace}.svc.cluster.local",
        "service": service,
        "port": port,
        "subset": None,
        "weight": 100,
        "service_exists": exists,
        "port_exists": port_exists,
    }


@pytest.fixture
def routes():
    """The route table of a lab with chapters 1-3 applied."""
    return [
        route(
            "microservice/tomcat-virtualservice",
            "*",
            "microservice/ingressgateway80",
            [dest("microservice/tomcat", 80)],
        ),
        route(
            "istio-system/prometheus-istio",
            f"prometheus-istio.{DOMAIN}",
            "istio-system/gateway",
            [dest("istio-system/prometheus", 9090)],
        ),
        route(
            "istio-system/grafana-istio",
            f"grafana-istio.{DOMAIN}",
            "istio-system/allgateway",
            [dest("istio-system/grafana", 3000)],
        ),
        route(
            "istio-system/kiali-istio",
            f"kiali-istio.{DOMAIN}",
            "istio-system/allgateway",
            [dest("istio-system/kiali", 20001)],
        ),
        route(
            "istio-system/zipkin-istio",
            f"zipkin-istio.{DOMAIN}",
            "istio-system/allgateway",
            [dest("istio-system/zipkin", 9411)],
        ),
    ]


# --- lab_routes -----------------------------------------------------------


def test_chapter_objects_label_every_object_with_its_chapter(catalogue):
    labels = {"app.kubernetes.io/managed-by": "istio-lab"}
    gateways = F.lab_chapter_objects(catalogue, ["1", "2", "3", "4"], "gateways", labels, "istio-lab.io/chapter")
    assert [(g["namespace"], g["name"], g["labels"]["istio-lab.io/chapter"]) for g in gateways] == [
        ("microservice", "ingressgateway80", "1"),
        ("istio-system", "gateway", "2"),
        ("istio-system", "allgateway", "3"),
    ]
    for gateway in gateways:
        assert gateway["labels"]["app.kubernetes.io/managed-by"] == "istio-lab"
        assert gateway["state"] == "present"
    vs = F.lab_chapter_objects(catalogue, ["3"], "virtual_services", labels, "istio-lab.io/chapter")
    assert [v["spec"]["hosts"] for v in vs] == [[f"{n}-istio.{DOMAIN}"] for n in ("grafana", "kiali", "zipkin")]
    rules = F.lab_chapter_objects(catalogue, [4], "destination_rules", labels, "istio-lab.io/chapter")
    assert [(r["name"], r["labels"]["istio-lab.io/chapter"]) for r in rules] == [("tomcat", "4")]
    assert [s["name"] for s in rules[0]["spec"]["subsets"]] == ["v1", "v2"]


def test_chapter_objects_absent_carry_no_spec(catalogue):
    gone = F.lab_chapter_objects(catalogue, ["1"], "virtual_services", {}, "istio-lab.io/chapter", "absent")
    assert gone == [
        {
            "name": "tomcat-virtualservice",
            "namespace": "microservice",
            "labels": {"istio-lab.io/chapter": "1"},
            "state": "absent",
        }
    ]


def test_unknown_chapters_are_named(catalogue):
    assert F.lab_unknown_chapters(catalogue, ["1", "9", 3, "x"]) == ["9", "x"]
    assert F.lab_unknown_chapters(catalogue, "2") == []
    with pytest.raises(AnsibleFilterError, match="unknown chapter.*9"):
        F.lab_chapter_objects(catalogue, ["9"], "gateways", {}, "l")
    with pytest.raises(AnsibleFilterError, match="kind must be one of"):
        F.lab_chapter_objects(catalogue, ["1"], "services", {}, "l")


def as_objects(definitions):
    """Chapter definitions as the API holds them (what istio_routes checks)."""
    return [{"metadata": {"name": d["name"], "namespace": d["namespace"]}, "spec": d["spec"]} for d in definitions]


def test_route_destinations_resolve_short_and_full_names(catalogue):
    vs = F.lab_chapter_objects(catalogue, ["1", "2", "3"], "virtual_services", {}, "l")
    external = {
        "name": "ext",
        "namespace": "microservice",
        "spec": {"http": [{"route": [{"destination": {"host": "httpbin.org"}}]}]},
    }
    found = service_destinations(as_objects([*vs, external]))
    assert [(d["namespace"], d["service"], d["port"]) for d in found] == [
        ("microservice", "tomcat", 80),
        ("istio-system", "prometheus", 9090),
        ("istio-system", "grafana", 3000),
        ("istio-system", "kiali", 20001),
        ("istio-system", "zipkin", 9411),
    ]
    assert found[2]["virtual_service"] == "istio-system/grafana-istio"


def service(namespace, name, *ports):
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"ports": [{"port": p} for p in ports]}}


def by_key(*services):
    return {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in services}


def test_missing_destinations_name_service_and_port(catalogue):
    destinations = service_destinations(as_objects(F.lab_chapter_objects(catalogue, ["3"], "virtual_services", {},
                                                                         "l")))
    services = [service("istio-system", "grafana", 3000), service("istio-system", "kiali", 9090)]
    assert missing_service_messages(destinations, by_key(*services)) == [
        "VirtualService istio-system/kiali-istio routes to port 20001 of Service istio-system/kiali, "
        "which has no such port (ports: 9090)",
        "VirtualService istio-system/zipkin-istio routes to Service istio-system/zipkin, which does not exist",
    ]
    services.append(service("istio-system", "zipkin", 9411))
    services[1] = service("istio-system", "kiali", 20001, 9090)
    assert missing_service_messages(destinations, by_key(*services)) == []


# --- lab_verify: what to probe -----------------------------------------------


def test_probes_cover_chapters_routes_and_one_unrouted_host(catalogue, routes):
    probes = F.lab_verify_probes(catalogue, ["1", "2", "3", "4"], routes, f"nothing.{DOMAIN}")
    assert [(p["chapter"], p["host"], p["expected_status"]) for p in probes] == [
        ("1", "", 200),
        ("2", f"prometheus-istio.{DOMAIN}", 200),
        ("3", f"grafana-istio.{DOMAIN}", 200),
        ("3", f"kiali-istio.{DOMAIN}", 200),
        ("3", f"zipkin-istio.{DOMAIN}", 200),
        # chapter 1's VirtualService binds '*': every host reaches tomcat
        ("", f"nothing.{DOMAIN}", 200),
    ]


def test_unrouted_host_expects_404_without_a_catch_all(catalogue, routes):
    table = routes[1:]  # chapter 1 (hosts '*') not applied
    probes = F.lab_verify_probes(catalogue, ["2", "3"], table, f"nothing.{DOMAIN}")
    assert probes[-1] == {"chapter": "", "host": f"nothing.{DOMAIN}", "path": "/", "expected_status": 404}


def test_routed_hosts_outside_the_chapters_are_probed(catalogue, routes):
    extra = route("default/web", f"web.{DOMAIN}", "default/gw", [dest("default/web", 80)])
    other_port = route("default/tls", f"tls.{DOMAIN}", "default/gw", [dest("default/web", 443)], port=443)
    probes = F.lab_verify_probes(catalogue, ["2"], [*routes[1:2], extra, other_port], "")
    assert [(p["chapter"], p["host"]) for p in probes] == [("2", f"prometheus-istio.{DOMAIN}"), ("", f"web.{DOMAIN}")]


# --- lab_verify: judging and explaining ---------------------------------------


def result(probe, status, server="istio-envoy", msg="OK"):
    """One item of the uri task's registered loop."""
    return {"item": probe, "status": status, "server": server, "msg": msg}


def context(catalogue, routes, **extra):
    return {"ip": IP, "port": 18080, "catalogue": catalogue, "routes": routes, "problems": [], **extra}


def probe(chapter, host, expected=200, path="/"):
    return {"chapter": chapter, "host": host, "path": path, "expected_status": expected}


def test_report_all_ok(catalogue, routes):
    probes = F.lab_verify_probes(catalogue, ["1", "2", "3"], routes, f"nothing.{DOMAIN}")
    report = F.lab_verify_report([result(p, 200) for p in probes], context(catalogue, routes))
    assert all(e["ok"] and e["explanation"] == "" for e in report)
    assert report[0]["url"] == "http://127.0.0.1:18080/"
    assert set(report[0]) == {"chapter", "host", "url", "expected_status", "status", "server", "ok", "explanation"}
    assert F.lab_verify_hosts_line(report, IP, f"nothing.{DOMAIN}") == (
        f"127.0.0.1 prometheus-istio.{DOMAIN} grafana-istio.{DOMAIN} kiali-istio.{DOMAIN} zipkin-istio.{DOMAIN}"
    )
    json.dumps(report)  # the report is written as JSON


def test_hosts_line_leaves_out_the_unrouted_host(catalogue, routes):
    report = F.lab_verify_report(
        [result(probe("2", f"prometheus-istio.{DOMAIN}"), 200), result(probe("", f"nothing.{DOMAIN}", 404), 404)],
        context(catalogue, routes[1:]),
    )
    assert [e["ok"] for e in report] == [True, True]
    assert F.lab_verify_hosts_line(report, IP) == f"127.0.0.1 prometheus-istio.{DOMAIN}"
    assert F.lab_verify_hosts_line([], IP) == ""


def test_no_answer_is_explained(catalogue, routes):
    msg = "Status code was -1 and not [100, 101]: Request failed: <urlopen error [Errno 111] Connection refused>"
    [entry] = F.lab_verify_report([result(probe("1", ""), -1, server="", msg=msg)], context(catalogue, routes))
    assert not entry["ok"] and entry["status"] is None
    assert entry["explanation"].startswith("nothing answered at 127.0.0.1:18080 (<urlopen error [Errno 111]")
    assert "MetalLB" in entry["explanation"]


def test_a_server_other_than_envoy_is_explained(catalogue, routes):
    [entry] = F.lab_verify_report([result(probe("1", ""), 200, server="nginx/1.25")], context(catalogue, routes))
    assert not entry["ok"]
    assert "server 'nginx/1.25', not Envoy" in entry["explanation"]


def test_missing_virtual_service_is_explained(catalogue, routes):
    table = [r for r in routes[1:] if "grafana" not in r["host"]]  # chapter 1's '*' would catch grafana
    existing = {"gateways": ["istio-system/allgateway"], "virtual_services": ["istio-system/kiali-istio"]}
    [entry] = F.lab_verify_report(
        [result(probe("3", f"grafana-istio.{DOMAIN}"), 404)], context(catalogue, table, existing=existing)
    )
    assert entry["explanation"] == (
        "VirtualService istio-system/grafana-istio does not exist (apply the chapter: playbooks/routes.yml)"
    )


def test_missing_gateway_is_explained(catalogue, routes):
    table = [r for r in routes[1:] if "allgateway" not in r["gateway"]]
    existing = {"gateways": [], "virtual_services": ["istio-system/grafana-istio"]}
    [entry] = F.lab_verify_report(
        [result(probe("3", f"grafana-istio.{DOMAIN}"), 404)], context(catalogue, table, existing=existing)
    )
    assert entry["explanation"] == (
        "VirtualService istio-system/grafana-istio is bound to Gateway istio-system/allgateway, which does not exist"
    )


def test_host_not_admitted_by_the_gateway_is_explained(catalogue, routes):
    table = [r for r in routes[1:] if "prometheus" not in r["host"]]
    existing = {"gateways": ["istio-system/gateway"], "virtual_services": ["istio-system/prometheus-istio"]}
    [entry] = F.lab_verify_report(
        [result(probe("2", f"prometheus-istio.{DOMAIN}"), 404)], context(catalogue, table, existing=existing)
    )
    assert entry["explanation"].startswith(
        f"Gateway istio-system/gateway does not admit host prometheus-istio.{DOMAIN} on port 80"
    )


def test_route_problems_explain_a_missing_route(catalogue, routes):
    table = [r for r in routes[1:] if "zipkin" not in r["host"]]
    problems = [
        {
            "kind": "VirtualService",
            "object": "VirtualService istio-system/zipkin-istio",
            "field": "spec.gateways[0]",
            "message": (
                "Gateway istio-system/allgateway does not exist (apply it first, or name it as <namespace>/<name>)"
            ),
        }
    ]
    [entry] = F.lab_verify_report(
        [result(probe("3", f"zipkin-istio.{DOMAIN}"), 404)], context(catalogue, table, problems=problems)
    )
    assert entry["explanation"] == (
        "VirtualService istio-system/zipkin-istio: Gateway istio-system/allgateway does not exist "
        "(apply it first, or name it as <namespace>/<name>)"
    )


def test_a_wildcard_answering_for_the_chapters_host_is_a_failure(catalogue, routes):
    """Chapter 1's '*' VirtualService catches every host: with chapter 3's
    zipkin-istio missing, its host answers 200 from tomcat, which is wrong."""
    table = [r for r in routes if "zipkin" not in r["host"]]
    existing = {"gateways": ["istio-system/allgateway"], "virtual_services": []}
    [entry] = F.lab_verify_report(
        [result(probe("3", f"zipkin-istio.{DOMAIN}"), 200)], context(catalogue, table, existing=existing)
    )
    assert not entry["ok"]
    assert entry["explanation"] == (
        "Envoy answered 200 through VirtualService microservice/tomcat-virtualservice (a wildcard host), "
        "not the chapter's own: VirtualService istio-system/zipkin-istio does not exist "
        "(apply the chapter: playbooks/routes.yml)"
    )
    # an exact host wins over the wildcard: with zipkin-istio applied, all is well
    [entry] = F.lab_verify_report([result(probe("3", f"zipkin-istio.{DOMAIN}"), 200)], context(catalogue, routes))
    assert entry["ok"]


def test_no_virtual_service_at_all_is_explained(catalogue):
    [entry] = F.lab_verify_report([result(probe("", f"web.{DOMAIN}"), 404)], context(catalogue, []))
    assert entry["explanation"].startswith(f"no VirtualService binds web.{DOMAIN}")


def test_unexpected_route_for_the_unrouted_host(catalogue, routes):
    [entry] = F.lab_verify_report([result(probe("", f"nothing.{DOMAIN}", 404), 200)], context(catalogue, routes))
    assert entry["explanation"] == (
        "expected no route, but VirtualService microservice/tomcat-virtualservice binds this host"
    )


def test_upstream_failures_name_the_broken_link(catalogue, routes):
    table = [
        route(
            "istio-system/grafana-istio",
            f"grafana-istio.{DOMAIN}",
            "istio-system/allgateway",
            [dest("istio-system/grafana", 3000, exists=False)],
        ),
        route(
            "istio-system/kiali-istio",
            f"kiali-istio.{DOMAIN}",
            "istio-system/allgateway",
            [dest("istio-system/kiali", 20001, port_exists=False)],
        ),
        route(
            "istio-system/zipkin-istio",
            f"zipkin-istio.{DOMAIN}",
            "istio-system/allgateway",
            [dest("istio-system/zipkin", 9411)],
        ),
        route(
            "istio-system/prometheus-istio",
            f"prometheus-istio.{DOMAIN}",
            "istio-system/gateway",
            [dest("istio-system/prometheus", 9090)],
        ),
    ]
    probes = [probe("3", f"{n}-istio.{DOMAIN}") for n in ("grafana", "kiali", "zipkin")]
    probes.append(probe("2", f"prometheus-istio.{DOMAIN}"))
    results = [result(p, 503) for p in probes]
    first = F.lab_verify_report(results, context(catalogue, table))
    assert F.lab_verify_failed_destinations(first, table, IP) == [
        {"namespace": "istio-system", "service": "zipkin"},
        {"namespace": "istio-system", "service": "prometheus"},
    ]
    endpoints = {"istio-system/zipkin": 0, "istio-system/prometheus": 2}
    report = F.lab_verify_report(results, context(catalogue, table, endpoints=endpoints))
    assert [e["explanation"] for e in report] == [
        "VirtualService istio-system/grafana-istio routes to Service istio-system/grafana, which does not exist",
        "Service istio-system/kiali has no port 20001 (VirtualService istio-system/kiali-istio)",
        "Service istio-system/zipkin has no ready endpoints: its pods are missing or not ready, "
        "or its selector matches no pod",
        "Service istio-system/prometheus has 2 ready endpoint(s) yet Envoy answered 503: "
        "the application or its sidecar failed (read the pod's logs)",
    ]


def test_ready_endpoints_count_ready_addresses_of_every_slice():
    lookups = [
        {
            "item": {"namespace": "istio-system", "service": "zipkin"},
            "resources": [
                {"endpoints": [{"conditions": {"ready": False}}, {"conditions": {"ready": True}}]},
                {"endpoints": [{"conditions": {}}]},
            ],
        },
        {"item": {"namespace": "istio-system", "service": "kiali"}, "resources": []},
        {"item": {"namespace": "x", "service": "y"}, "skipped": True},
    ]
    assert F.lab_verify_ready_endpoints(lookups) == {"istio-system/zipkin": 2, "istio-system/kiali": 0}


def test_existing_objects_from_k8s_info():
    lookups = [
        {"item": "Gateway", "resources": [{"metadata": {"namespace": "istio-system", "name": "gateway"}}]},
        {"item": "VirtualService", "resources": []},
    ]
    assert F.lab_verify_existing_objects(lookups) == {
        "gateways": ["istio-system/gateway"],
        "virtual_services": [],
    }
    assert F.lab_verify_existing_objects([{"item": "Gateway", "skipped": True}]) is None


def test_redirects_count_as_routed_unless_refused(catalogue, routes):
    kiali = probe("3", f"kiali-istio.{DOMAIN}")
    [entry] = F.lab_verify_report([result(kiali, 302)], context(catalogue, routes))
    assert entry["ok"]
    [entry] = F.lab_verify_report([result(kiali, 302)], context(catalogue, routes, accept_redirects=False))
    assert not entry["ok"] and entry["explanation"] == "expected 200, got 302 from Envoy (the application's own answer)"


def test_answered_is_the_probes_retry_condition():
    kiali = probe("3", f"kiali-istio.{DOMAIN}")
    assert F.lab_verify_answered({"status": 200, "server": "istio-envoy"}, kiali)
    assert F.lab_verify_answered({"status": 302, "server": "istio-envoy"}, kiali)
    assert not F.lab_verify_answered({"status": 302, "server": "istio-envoy"}, kiali, False)
    assert not F.lab_verify_answered({"status": 404, "server": "istio-envoy"}, kiali)  # not pushed yet: retry
    assert not F.lab_verify_answered({"status": 200, "server": "nginx"}, kiali)
    assert not F.lab_verify_answered({"status": -1, "msg": "Connection refused"}, kiali)
    assert F.lab_verify_answered({"status": 404, "server": "istio-envoy"}, probe("", UNROUTED_HOST, 404))


def test_table_shows_every_probe_and_why_it_failed(catalogue, routes):
    report = F.lab_verify_report(
        [result(probe("1", ""), 200), result(probe("3", f"zipkin-istio.{DOMAIN}"), 503)],
        context(catalogue, routes, endpoints={"istio-system/zipkin": 0}),
    )
    lines = F.lab_verify_table(report)
    assert lines[0].split() == ["chapter", "host", "url", "expected", "status", "server"]
    assert lines[1].split() == ["OK", "1", "(ingress", "IP)", "http://127.0.0.1:18080/", "200", "200", "istio-envoy"]
    assert lines[2].split()[:3] == ["FAIL", "3", f"zipkin-istio.{DOMAIN}"]
    assert lines[3].startswith(f"FAIL zipkin-istio.{DOMAIN}: Service istio-system/zipkin has no ready endpoints")
