"""istio_routes: Gateways, VirtualServices and DestinationRules in one task,
against a Kubernetes API (the double, or a real cluster with
ISTIO_LAB_TEST_KUBECONFIG). Checked through the API and the fixture's request
log only."""

import copy
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_module

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.api

COURSE = yaml.safe_load((REPO / "tests/fixtures/course_objects.yml").read_text())
V1 = "networking.istio.io/v1"
MANAGED = {"app.kubernetes.io/managed-by": "istio-lab"}
OPTIONS = {"gateways": "Gateway", "virtual_services": "VirtualService", "destination_rules": "DestinationRule"}
PLURAL_KIND = {"gateways": "Gateway", "virtualservices": "VirtualService", "destinationrules": "DestinationRule"}


def course(group, name):
    return copy.deepcopy(next(i for i in COURSE[group] if i["name"] == name))


def all_routes():
    return {option: copy.deepcopy(COURSE[option]) for option in OPTIONS}


def rows(result):
    return [(r["kind"], r["namespace"], r["name"], r["action"]) for r in result["results"]]


def expected_rows(action, routes=None):
    routes = routes or all_routes()
    return [(kind, item["namespace"], item["name"], action) for option, kind in OPTIONS.items()
            for item in routes[option]]


def written(requests):
    """(method, kind, name) of each write, in the order the API saw them."""
    found = []
    for request in requests:
        parts = request["path"].split("?")[0].strip("/").split("/")
        plural = next(p for p in parts if p in PLURAL_KIND)
        after = parts[parts.index(plural) + 1:]
        found.append((request["method"], PLURAL_KIND[plural], after[0] if after else None))
    return found


@pytest.fixture
def lab(kube):
    for namespace in ("microservice", "istio-system"):
        kube.ensure_namespace(namespace)
    return kube


def test_one_task_creates_every_kind_in_dependency_order_then_is_a_no_op(lab):
    kube = lab
    mark = kube.mark()
    # the VirtualServices name Gateways that only this same task creates: valid
    created = run_module("istio_routes", all_routes(), kube=kube)
    assert created["changed"], created.get("msg")
    assert rows(created) == expected_rows("created")
    assert "warnings" not in created or not created["warnings"]
    for option, kind in OPTIONS.items():
        for item in COURSE[option]:
            stored = kube.get(V1, kind, item["name"], item["namespace"])
            assert stored["spec"] == item["spec"] and stored["metadata"]["labels"] == MANAGED
    writes = written(kube.writes(mark))
    assert [m for m, _, _ in writes] == ["POST"] * 9
    kinds = [k for _, k, _ in writes]
    assert kinds == sorted(kinds, key=list(OPTIONS.values()).index)  # Gateways, VirtualServices, DestinationRules

    mark = kube.mark()
    again = run_module("istio_routes", all_routes(), kube=kube)
    assert not again["changed"] and rows(again) == expected_rows("unchanged")
    # one LIST per kind (the Gateway LIST also checks the VirtualServices' references); no GET, no write
    assert again["api_requests"] == {"list": 3}
    requests = kube.requests(mark)
    assert kube.writes(mark) == []
    assert sorted(r["verb"] for r in requests) == ["list"] * 3
    assert sorted(PLURAL_KIND[r["path"].split("?")[0].rstrip("/").rsplit("/", 1)[1]] for r in requests) == sorted(
        OPTIONS.values())


def test_one_namespace_no_op_sends_one_list_per_kind(lab):
    kube = lab
    routes = {"namespace": "microservice",
              "gateways": [course("gateways", "ingressgateway80")],
              "virtual_services": [course("virtual_services", "tomcat-virtualservice")],
              "destination_rules": [course("destination_rules", "tomcat")]}
    assert run_module("istio_routes", routes, kube=kube)["changed"]
    mark = kube.mark()
    again = run_module("istio_routes", routes, kube=kube)
    assert not again["changed"] and again["api_requests"] == {"list": 3}
    assert all("/namespaces/microservice/" in r["path"] for r in kube.requests(mark))
    assert kube.writes(mark) == []


def test_a_changed_run_writes_only_the_changed_objects_and_diffs_them(lab):
    kube = lab
    assert run_module("istio_routes", all_routes(), kube=kube)["changed"]
    routes = all_routes()
    routes["virtual_services"][2]["spec"]["http"][0]["timeout"] = "5s"  # grafana-istio
    routes["destination_rules"][0]["spec"]["subsets"] = routes["destination_rules"][0]["spec"]["subsets"][:1]
    mark = kube.mark()
    result = run_module("istio_routes", routes, kube=kube, diff=True)
    assert result["changed"], result.get("msg")
    assert [r for r in rows(result) if r[3] != "unchanged"] == [
        ("VirtualService", "istio-system", "grafana-istio", "updated"),
        ("DestinationRule", "microservice", "tomcat", "updated")]
    assert written(kube.writes(mark)) == [("PUT", "VirtualService", "grafana-istio"),
                                          ("PUT", "DestinationRule", "tomcat")]
    assert [d["before_header"] for d in result["diff"]] == ["VirtualService istio-system/grafana-istio",
                                                            "DestinationRule microservice/tomcat"]
    assert "timeout" not in result["diff"][0]["before"]["spec"]["http"][0]
    assert result["diff"][0]["after"]["spec"]["http"][0]["timeout"] == "5s"
    stored = kube.get(V1, "VirtualService", "grafana-istio", "istio-system")
    assert stored["spec"]["http"][0]["timeout"] == "5s"


def test_check_mode_writes_nothing_and_diff_lists_every_object(lab):
    kube = lab
    mark = kube.mark()
    would = run_module("istio_routes", all_routes(), kube=kube, check=True, diff=True)
    assert would["changed"] and rows(would) == expected_rows("created")
    assert kube.writes(mark) == []
    assert kube.list(V1, "Gateway") == [] and kube.list(V1, "VirtualService") == []
    assert len(would["diff"]) == 9 and all(d["before"] == {} for d in would["diff"])
    assert would["diff"][0]["after"]["spec"] == COURSE["gateways"][0]["spec"]
    # the task's own Gateways count: no "does not exist" warning for their VirtualServices
    assert not any("does not exist" in w for w in would.get("warnings", []))


def test_one_invalid_object_among_many_writes_nothing_and_names_kind_object_and_field(lab):
    kube = lab
    routes = all_routes()
    routes["virtual_services"][1]["spec"]["http"][0]["route"].append(
        {"destination": {"host": "prometheus"}, "weight": -10})  # prometheus-istio: a negative weight
    routes["destination_rules"][0]["spec"]["subsets"].append({"name": "v1"})  # a duplicate subset
    mark = kube.mark()
    result = run_module("istio_routes", routes, kube=kube)
    assert result.get("failed"), result
    assert {(p["kind"], p["object"], p["field"]) for p in result["problems"]} == {
        ("VirtualService", "VirtualService istio-system/prometheus-istio", "spec.http[0].route[1].weight"),
        ("DestinationRule", "DestinationRule microservice/tomcat", "spec.subsets[2].name"),
    }
    assert "VirtualService istio-system/prometheus-istio: spec.http[0].route[1].weight:" in result["msg"]
    assert "nothing was written" in result["msg"]
    assert kube.writes(mark) == []
    assert kube.list(V1, "Gateway") == [] and kube.list(V1, "VirtualService") == []


def test_a_gateway_the_task_removes_is_no_gateway_for_its_virtual_services(lab):
    kube = lab
    routes = {"namespace": "microservice",
              "gateways": [{**course("gateways", "ingressgateway80"), "state": "absent"}],
              "virtual_services": [course("virtual_services", "tomcat-virtualservice")]}
    mark = kube.mark()
    result = run_module("istio_routes", routes, kube=kube)
    assert result.get("failed"), result
    assert [(p["object"], p["field"]) for p in result["problems"]] == [
        ("VirtualService microservice/tomcat-virtualservice", "spec.gateways[0]")]
    assert kube.writes(mark) == []


def test_mixed_states_write_before_they_delete(lab):
    kube = lab
    old = course("gateways", "ingressgateway80")
    vs = course("virtual_services", "tomcat-virtualservice")
    assert run_module("istio_routes", {"gateways": [old], "virtual_services": [vs]}, kube=kube)["changed"]
    # move the VirtualService to a new Gateway and remove the old one, in one task
    new = {**copy.deepcopy(old), "name": "ingressgateway-new"}
    vs["spec"]["gateways"] = ["ingressgateway-new"]
    mark = kube.mark()
    result = run_module("istio_routes", {"gateways": [{"name": old["name"], "namespace": "microservice",
                                                       "state": "absent"}, new],
                                         "virtual_services": [vs]}, kube=kube)
    assert result["changed"], result.get("msg")
    assert rows(result) == [("Gateway", "microservice", "ingressgateway80", "deleted"),
                            ("Gateway", "microservice", "ingressgateway-new", "created"),
                            ("VirtualService", "microservice", "tomcat-virtualservice", "updated")]
    assert written(kube.writes(mark)) == [("POST", "Gateway", None), ("PUT", "VirtualService", vs["name"]),
                                          ("DELETE", "Gateway", old["name"])]


def test_absent_removes_in_reverse_order(lab):
    kube = lab
    assert run_module("istio_routes", all_routes(), kube=kube)["changed"]
    gone = {option: [{"name": i["name"], "namespace": i["namespace"]} for i in COURSE[option]] for option in OPTIONS}
    mark = kube.mark()
    removed = run_module("istio_routes", {**gone, "state": "absent"}, kube=kube)
    assert removed["changed"] and rows(removed) == expected_rows("deleted", gone), removed.get("msg")
    writes = written(kube.writes(mark))
    assert [m for m, _, _ in writes] == ["DELETE"] * 9
    kinds = [k for _, k, _ in writes]
    assert kinds == sorted(kinds, key=list(reversed(OPTIONS.values())).index)  # DRs, VSs, then Gateways
    assert {k: kube.list(V1, k) for k in OPTIONS.values()} == {k: [] for k in OPTIONS.values()}

    mark = kube.mark()
    again = run_module("istio_routes", {**gone, "state": "absent"}, kube=kube)
    assert not again["changed"] and rows(again) == expected_rows("absent", gone)
    assert kube.writes(mark) == []


def test_objects_read_from_files_are_applied_as_if_given_inline(lab, tmp_path):
    """src: the module opens YAML files (as kubectl apply -f takes them) itself."""
    kube = lab
    manifests = [{"apiVersion": V1, "kind": kind, "metadata": {"name": item["name"], "namespace": item["namespace"]},
                  "spec": item["spec"]} for option, kind in OPTIONS.items() for item in COURSE[option]]
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "a-gateways.yaml").write_text(yaml.safe_dump_all(manifests[:3]))
    (tmp_path / "routes" / "b-rest.yml").write_text(yaml.safe_dump_all(manifests[3:]))
    (tmp_path / "routes" / "notes.txt").write_text("not read")
    created = run_module("istio_routes", {"src": [str(tmp_path / "routes")]}, kube=kube)
    assert created["changed"] and rows(created) == expected_rows("created"), created.get("msg")
    mark = kube.mark()
    # the same objects given inline are what the files made: nothing to do
    again = run_module("istio_routes", all_routes(), kube=kube)
    assert not again["changed"] and kube.writes(mark) == []
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Service",
                                                       "metadata": {"name": "x"}}))
    refused = run_module("istio_routes", {"src": [str(tmp_path / "bad.yaml")]}, kube=kube)
    assert refused.get("failed") and "document 0 of" in refused["msg"] and "is not an Istio object" in refused["msg"]
