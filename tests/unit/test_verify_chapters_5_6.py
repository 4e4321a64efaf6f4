"""Issue 16's verification logic, pure: the traffic split judged against the
lesson's weights, the ingress gateway's routes told from the egress
gateway's, the in-mesh probe plan of chapter 6 (the exact commands), its
judgement from k8s_exec / k8s_log results, the route table's egress routes,
and the Envoy stand-in's weighted answers."""

import copy
import http.client
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

# conftest.py puts collections/ on sys.path (the checkout as the collection)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.probe import probe_all
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.routes import route_table

from plugins.filter import lab_verify as F
from plugins.modules import lab_http_probe
from tests.helpers import documented_options
from tests.verify_envoy import Answer, EnvoyLikeServer

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = yaml.safe_load((REPO / "inventory/group_vars/all/chapters.yml").read_text())["lab_chapters"]
HOST = "external.example"
EGRESS_SVC = "istio-egressgateway.istio-system.svc.cluster.local"


def rendered(catalogue=CATALOGUE):
    """The catalogue with chapter 6's host variable filled in, as Ansible would."""
    return yaml.safe_load(yaml.safe_dump(catalogue).replace("{{ lab_egress_host }}", HOST))


SPLIT = {"header": "x-istio-lab-subset", "weights": {"v1": 90, "v2": 10}}


def sample(**values):
    return {"samples": sum(values.values()), "values": values}


def test_a_split_within_the_tolerance_passes_and_says_which_subset_answered():
    outcome = F.lab_verify_split_outcome(sample(v1=176, v2=24), SPLIT, 10)
    assert outcome["ok"] and outcome["explanation"] == ""
    assert outcome["observed"] == {"v1": 88.0, "v2": 12.0}
    assert outcome["text"] == "v1 176/200 (88%, expected 90%), v2 24/200 (12%, expected 10%)"


@pytest.mark.parametrize("values, message", [
    ({"v1": 50, "v2": 50}, "subset v1 answered 50 of 100 (50%), expected 90% \u00b1 10"),
    ({"v1": 100}, "subset v2 never answered in 100 requests (weight 10%)"),
    ({"v1": 75, "v2": 25}, "subset v2 answered 25 of 100 (25%), expected 10% \u00b1 10"),
    ({"": 100}, "no answer carried the header 'x-istio-lab-subset'"),
    ({"v1": 88, "v2": 8, "v3": 4}, "answers from subsets the weights do not name: v3 4"),
])
def test_a_split_off_the_weights_fails_with_the_counts(values, message):
    outcome = F.lab_verify_split_outcome({"samples": 100, "values": {k: v for k, v in values.items() if k}},
                                         SPLIT, 10)
    assert not outcome["ok"]
    assert message in outcome["explanation"], outcome["explanation"]


def test_the_last_step_sends_everything_to_v2():
    last = {"header": "x-istio-lab-subset", "weights": {"v1": 0, "v2": 100}}
    assert F.lab_verify_split_outcome(sample(v2=100), last, 10)["ok"]
    assert not F.lab_verify_split_outcome(sample(v1=20, v2=80), last, 10)["ok"]
    assert "subset v1 has weight 0 but answered 1 of 100" in \
        F.lab_verify_split_outcome(sample(v1=1, v2=99), last, 10)["explanation"]


def test_splits_join_the_report_and_fail_a_probe_that_answered_200():
    report = [{"chapter": "5", "host": "tomcat.kubernets.cn", "url": "http://127.0.0.3/", "expected_status": 200,
               "status": 200, "server": "istio-envoy", "ok": True, "explanation": ""},
              {"chapter": "1", "host": "", "url": "http://127.0.0.3/", "expected_status": 200, "status": 200,
               "server": "istio-envoy", "ok": True, "explanation": ""}]
    results = [{"item": {"host": "tomcat.kubernets.cn", "path": "/", "split": SPLIT}, **sample(v1=50, v2=50)}]
    joined = F.lab_verify_add_splits(report, results, 10)
    assert not joined[0]["ok"] and joined[0]["explanation"].startswith("split off: subset v1 answered 50 of 100")
    assert joined[1] == report[1]
    lines = F.lab_verify_table(joined)
    assert any(line.startswith("SPLIT tomcat.kubernets.cn: v1 50/100 (50%, expected 90%)") for line in lines)


def test_probes_carry_the_catalogues_split():
    catalogue = copy.deepcopy(CATALOGUE)
    catalogue["5"]["probes"][0]["split"]["weights"] = {"v1": 90, "v2": 10}
    probes = F.lab_verify_probes(catalogue, ["5"], [], "")
    assert probes == [{"chapter": "5", "host": "tomcat.{{ lab_domain }}", "path": "/", "expected_status": 200,
                       "split": {"header": "x-istio-lab-subset", "weights": {"v1": 90, "v2": 10}}}]


def test_only_the_ingress_gateways_routes_are_probed():
    routes = [{"gateway": "microservice/ingressgateway80", "selector": {"istio": "ingressgateway"}, "host": "*"},
              {"gateway": "egress/istio-egressgateway", "selector": {"istio": "egressgateway"}, "host": HOST},
              {"gateway": "x/legacy", "host": "old.example"}]  # a route table without selectors: kept
    kept = F.lab_verify_ingress_routes(routes, {"app": "istio-ingressgateway", "istio": "ingressgateway"})
    assert [r["gateway"] for r in kept] == ["microservice/ingressgateway80", "x/legacy"]


def table():
    """The route table of chapter 6 as istio_route_info computes it."""
    chapter = rendered()["6"]

    def obj(kind, item):
        return {"kind": kind, "metadata": {"name": item["name"], "namespace": item["namespace"]},
                "spec": item["spec"]}

    egress_service = {"metadata": {"name": "istio-egressgateway", "namespace": "istio-system"},
                      "spec": {"selector": {"app": "istio-egressgateway", "istio": "egressgateway"},
                               "ports": [{"port": 80}, {"port": 443}]}}
    return route_table([obj("Gateway", g) for g in chapter["gateways"]],
                       [obj("VirtualService", v) for v in chapter["virtual_services"]],
                       [egress_service],
                       [obj("DestinationRule", d) for d in chapter["destination_rules"]],
                       [obj("ServiceEntry", e) for e in chapter["service_entries"]])


def test_route_table_of_chapter_6():
    found = table()
    assert found["problems"] == []
    [mesh] = found["mesh_routes"]
    assert [(d["service"], d["subset"]) for d in mesh["destinations"]] == [("istio-system/istio-egressgateway",
                                                                            "external")]
    [route] = found["routes"]
    assert route["selector"] == {"istio": "egressgateway"}
    assert [d["fqdn"] for d in route["destinations"]] == [HOST]  # only the egress gateway's match
    [egress] = found["egress_routes"]
    assert egress["service_entries"] == ["egress/external-http"]
    assert egress["mesh_hops"][0]["virtual_service"] == "egress/external-through-egress-gateway"


def test_mesh_plan_gives_the_exact_commands_and_checks_the_path():
    found = table()
    [plan] = F.lab_verify_mesh_plan(rendered(), ["6"], found["egress_routes"], found["mesh_routes"], 10)
    assert plan["exec_argv"] == ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                 f"http://{HOST}/"]
    assert plan["exec_command"] == f"curl -sS -o /dev/null -w '%{{http_code}}' --max-time 10 http://{HOST}/"
    assert plan["kubectl"][0] == (f"kubectl exec -n egress deploy/curl -c curl -- curl -sS -o /dev/null -w "
                                  f"'%{{http_code}}' --max-time 10 http://{HOST}/")
    assert plan["log_pattern"] == f"outbound|80||{HOST}"
    assert plan["route_problems"] == []
    # no egress route at all (the Gateway missing): said before anything runs
    [broken] = F.lab_verify_mesh_plan(rendered(), ["6"], [], found["mesh_routes"])
    assert "routes external.example out of the mesh" in broken["route_problems"][0]
    with pytest.raises(AnsibleFilterError):
        F.lab_verify_mesh_plan(rendered(), ["9"])


def test_mesh_report_judges_the_request_and_the_gateway_log():
    found = table()
    plan = F.lab_verify_mesh_plan(rendered(), ["6"], found["egress_routes"], found["mesh_routes"])
    item = {"item": plan[0]}
    log = ('[2026-11-27T10:00:00.000Z] "GET / HTTP/1.1" 301 - via_upstream - "-" 0 0 5 4 "10.0.0.5" "curl/8.11.1" '
           f'"id" "{HOST}" "151.101.1.1:80" outbound|80||{HOST} 10.0.0.9:0 10.0.0.9:8080 10.0.0.5:0 - -')
    passed = F.lab_verify_mesh_report(plan, [{**item, "stdout": "301"}], [{**item, "log_lines": [log]}])
    assert passed[0]["ok"] and passed[0]["status"] == 301 and passed[0]["mesh"]
    direct = F.lab_verify_mesh_report(plan, [{**item, "stdout": "200"}], [{**item, "log_lines": []}])
    assert not direct[0]["ok"] and "did not pass through it" in direct[0]["explanation"]
    refused = F.lab_verify_mesh_report(plan, [{**item, "stdout": "502"}], [{**item, "log_lines": [log]}])
    assert not refused[0]["ok"] and "answered 502" in refused[0]["explanation"]
    failed = F.lab_verify_mesh_report(plan, [{**item, "failed": True, "msg": "Failed to execute on pod curl-1"}],
                                      [{**item, "log_lines": []}])
    assert failed[0]["explanation"] == "the client pod's request failed: Failed to execute on pod curl-1"
    skipped = F.lab_verify_mesh_report(plan, run=False)
    assert skipped[0]["ok"] and skipped[0]["skipped"] and "on a real cluster run kubectl exec" in \
        skipped[0]["explanation"]
    assert F.lab_verify_table(skipped)[1].startswith("SKIP")
    assert F.lab_verify_hosts_line(skipped, "127.0.0.3") == ""


def get_subset(server, host):
    conn = http.client.HTTPConnection(server.address, server.port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        return response.getheader("x-istio-lab-subset"), response.read().decode()
    finally:
        conn.close()


def test_envoy_stand_in_answers_per_subset_by_weight():
    routes = {"a.example": Answer(split={"v1": 90, "v2": 10}), "b.example": Answer(split={"v1": 0, "v2": 100})}
    with EnvoyLikeServer("127.0.0.1", 0, routes) as envoy:
        answers = [get_subset(envoy, "a.example") for _ in range(100)]
        assert sorted({a for a, _ in answers}) == ["v1", "v2"]
        assert [a for a, _ in answers].count("v2") == 10
        assert answers[0][1] in ("tomcat v1\n", "tomcat v2\n")
        assert {get_subset(envoy, "b.example")[0] for _ in range(10)} == {"v2"}


def test_lab_http_probe_documents_exactly_its_arguments():
    documented = documented_options("lab_http_probe")
    assert set(documented) == set(lab_http_probe.ARGUMENT_SPEC)
    for name, arg in lab_http_probe.ARGUMENT_SPEC.items():
        for field in ("type", "default", "elements"):
            assert documented[name].get(field) == arg.get(field), (name, field)
        assert bool(documented[name].get("required")) == bool(arg.get("required")), name


OPTIONS = {"server": "istio-envoy", "accept_redirects": True, "retries": 0, "delay": 0, "samples": 10,
           "timeout": 5}


def test_lab_http_probe_answers_each_probe_and_counts_the_split_header():
    probes = [{"chapter": "5", "host": "a.example", "path": "/", "expected_status": 200,
               "split": {"header": "X-Istio-Lab-Subset", "weights": {"v1": 50, "v2": 50}}},
              {"chapter": "", "host": "b.example", "path": "/", "expected_status": 404}]
    with EnvoyLikeServer("127.0.0.1", 0, {"a.example": Answer(split={"v1": 50, "v2": 50})}) as envoy:
        base = f"http://{envoy.address}:{envoy.port}"
        found, unrouted = probe_all(base, probes, OPTIONS)
    assert found["item"] == probes[0] and unrouted["item"] == probes[1]
    assert (found["status"], found["server"], found["attempts"], found["url"]) == (200, "istio-envoy", 1, f"{base}/")
    assert {k: found[k] for k in ("samples", "values", "statuses", "servers", "errors")} == {
        "samples": 10, "values": {"v1": 5, "v2": 5}, "statuses": {"200": 10}, "servers": {"istio-envoy": 10},
        "errors": []}
    assert (unrouted["status"], unrouted["server"]) == (404, "istio-envoy") and "values" not in unrouted
    with pytest.raises(ValueError, match="only http"):
        probe_all("https://127.0.0.1", probes, OPTIONS)


def test_lab_http_probe_retries_until_the_expected_answer_then_takes_the_last():
    sleeps = []
    with EnvoyLikeServer("127.0.0.1", 0, {"a.example": [404, 404, 200]}) as envoy:
        base = f"http://{envoy.address}:{envoy.port}"
        routed = probe_all(base, [{"host": "a.example", "expected_status": 200}], {**OPTIONS, "retries": 3},
                           sleeps.append)[0]
        never = probe_all(base, [{"host": "c.example", "expected_status": 200}], {**OPTIONS, "retries": 2},
                          sleeps.append)[0]
    assert (routed["status"], routed["attempts"]) == (200, 3)
    assert (never["status"], never["attempts"]) == (404, 3)
    assert len(sleeps) == 4
    with EnvoyLikeServer("127.0.0.1", 0) as closed:
        port = closed.port
    refused = probe_all(f"http://127.0.0.1:{port}", [{"host": "", "expected_status": 200}], OPTIONS)[0]
    assert refused["status"] is None and refused["msg"].startswith("Request failed:")
