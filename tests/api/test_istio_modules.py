"""istio_gateway, istio_virtual_service, istio_destination_rule and
istio_route_info against a Kubernetes API (the double, or a real cluster with
ISTIO_LAB_TEST_KUBECONFIG). Everything is checked through the API and the
fixture's request counters, never through the double's internals."""

import copy
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_module, run_playbook

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.api

COURSE = yaml.safe_load((REPO / "tests/fixtures/course_objects.yml").read_text())
V1 = "networking.istio.io/v1"
MANAGED = {"app.kubernetes.io/managed-by": "istio-lab"}


def course(group, name):
    return copy.deepcopy(next(i for i in COURSE[group] if i["name"] == name))


@pytest.fixture
def lab(kube):
    """The course's namespaces, and the Gateways the VirtualServices need."""
    for namespace in ("microservice", "istio-system"):
        kube.ensure_namespace(namespace)
    # as istio_gateway stores them (the fixture's client is quicker than a module run)
    for gateway in COURSE["gateways"]:
        kube.create({"apiVersion": V1, "kind": "Gateway", "spec": gateway["spec"],
                     "metadata": {"name": gateway["name"], "namespace": gateway["namespace"], "labels": MANAGED}})
    return kube


# ------------------------------------------------------------------ lifecycle


def test_create_noop_update_remove_field_delete(lab):
    kube = lab
    tomcat = course("virtual_services", "tomcat-virtualservice")
    created = run_module("istio_virtual_service", tomcat, kube=kube)
    assert created["changed"] and created["operation"] == "created", created.get("msg")
    stored = kube.get(V1, "VirtualService", "tomcat-virtualservice", "microservice")
    assert stored["spec"] == tomcat["spec"]
    assert stored["metadata"]["labels"] == MANAGED
    assert created["result"]["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]

    mark = kube.mark()
    again = run_module("istio_virtual_service", tomcat, kube=kube)
    assert not again["changed"] and again["operation"] == "unchanged"
    assert kube.writes(mark) == []
    # one LIST of VirtualServices, one of Gateways (to check the reference): no per-object GET
    assert again["api_requests"] == {"list": 2}
    assert all(r["verb"] == "list" for r in kube.requests(mark))

    timed = copy.deepcopy(tomcat)
    timed["spec"]["http"][0]["timeout"] = "5s"
    mark = kube.mark()
    updated = run_module("istio_virtual_service", timed, kube=kube)
    assert updated["changed"] and updated["operation"] == "updated"
    assert [w["method"] for w in kube.writes(mark)] == ["PUT"]
    assert kube.get(V1, "VirtualService", "tomcat-virtualservice", "microservice")["spec"]["http"][0]["timeout"] == "5s"

    removed = run_module("istio_virtual_service", tomcat, kube=kube)  # the field left the input
    assert removed["changed"] and removed["operation"] == "updated"
    assert "timeout" not in kube.get(V1, "VirtualService", "tomcat-virtualservice", "microservice")["spec"]["http"][0]

    gone = {"name": "tomcat-virtualservice", "namespace": "microservice", "state": "absent"}
    deleted = run_module("istio_virtual_service", gone, kube=kube)
    assert deleted["changed"] and deleted["operation"] == "deleted"
    assert kube.get(V1, "VirtualService", "tomcat-virtualservice", "microservice") is None
    mark = kube.mark()
    absent = run_module("istio_virtual_service", gone, kube=kube)
    assert not absent["changed"] and absent["operation"] == "absent"
    assert kube.writes(mark) == []


def test_check_mode_writes_nothing_and_diff_shows_before_and_after(lab):
    kube = lab
    tomcat = course("virtual_services", "tomcat-virtualservice")
    mark = kube.mark()
    would = run_module("istio_virtual_service", tomcat, kube=kube, check=True, diff=True)
    assert would["changed"] and would["operation"] == "created"
    assert kube.writes(mark) == []
    assert kube.get(V1, "VirtualService", "tomcat-virtualservice", "microservice") is None
    assert would["diff"]["before"] == {}
    assert would["diff"]["after"]["spec"] == tomcat["spec"]

    run_module("istio_virtual_service", tomcat, kube=kube)
    weighted = copy.deepcopy(tomcat)
    weighted["spec"]["http"][0]["route"][0]["weight"] = 100
    mark = kube.mark()
    diff = run_module("istio_virtual_service", weighted, kube=kube, check=True, diff=True)
    assert diff["changed"] and kube.writes(mark) == []
    assert "weight" not in diff["diff"]["before"]["spec"]["http"][0]["route"][0]
    assert diff["diff"]["after"]["spec"]["http"][0]["route"][0]["weight"] == 100
    assert "weight" not in kube.get(V1, "VirtualService", "tomcat-virtualservice", "microservice")["spec"]["http"][0][
        "route"][0]


def test_course_playbook_check_then_twice(kube):
    for namespace in ("microservice", "istio-system"):
        kube.ensure_namespace(namespace)
    # check mode on an empty lab: the VirtualServices' Gateways are only
    # pretended, so their references warn instead of failing; nothing is written
    mark = kube.mark()
    checked = run_playbook("tests/playbooks/course_objects.yml", kube=kube, check=True)
    assert checked.rc == 0, checked
    assert checked.recap["localhost"]["changed"] == 3
    assert kube.writes(mark) == []
    assert "Gateway microservice/ingressgateway80 does not exist" in checked.stdout + checked.stderr

    first = run_playbook("tests/playbooks/course_objects.yml", kube=kube)
    assert first.rc == 0, first
    assert first.recap["localhost"]["changed"] == 3
    for group in ("gateways", "virtual_services", "destination_rules"):
        for item in COURSE[group]:
            kind = {"gateways": "Gateway", "virtual_services": "VirtualService"}.get(group, "DestinationRule")
            stored = kube.get(V1, kind, item["name"], item["namespace"])
            assert stored["spec"] == item["spec"] and stored["metadata"]["labels"] == MANAGED

    mark = kube.mark()
    second = run_playbook("tests/playbooks/course_objects.yml", kube=kube)
    assert second.rc == 0, second
    assert second.recap["localhost"]["changed"] == 0
    assert kube.writes(mark) == []
    # one LIST per task and kind (+ the Gateways for the VirtualServices), whatever the number of objects
    assert sorted(r["verb"] for r in kube.requests(mark)) == ["list"] * 4


def test_definitions_report_each_object(lab):
    kube = lab
    result = run_module("istio_gateway", {"definitions": COURSE["gateways"]}, kube=kube, diff=True)
    assert not result["changed"]
    assert [(r["name"], r["namespace"], r["action"]) for r in result["results"]] == [
        ("ingressgateway80", "microservice", "unchanged"), ("gateway", "istio-system", "unchanged"),
        ("allgateway", "istio-system", "unchanged")]
    assert result["diff"] == []


# ------------------------------------------------------------------ validation


def bad_inputs():
    """Per module, definitions that each break one rule, and the (object,
    field) each must be reported as. One run per module: the whole list is
    validated before the first write, so every problem is reported at once."""
    def vs(name, mutate, base="tomcat-virtualservice"):
        item = course("virtual_services", base)
        item["name"] = name
        mutate(item["spec"])
        return item

    def gw(name, server):
        item = course("gateways", "allgateway")
        item["name"] = name
        item["spec"]["servers"].append(server)
        return item

    https = {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*"], "tls": {"mode": "SIMPLE"}}
    unknown_protocol = {"port": {"number": 8080, "name": "web", "protocol": "HTTPX"}, "hosts": ["*"]}
    two_subsets = course("destination_rules", "tomcat")
    two_subsets["spec"]["subsets"].append({"name": "v1"})
    bad_duration = course("destination_rules", "tomcat")
    bad_duration["name"] = "bad-duration"
    bad_duration["spec"]["trafficPolicy"] = {"connectionPool": {"tcp": {"connectTimeout": "0s"}}}
    return {
        "istio_virtual_service": [
            (vs("unknown-field", lambda s: s.update(hostz=["x"])), "spec.hostz"),
            (vs("wrong-type", lambda s: s.update(hosts="tomcat")), "spec.hosts"),
            (vs("weights", lambda s: s["http"][0]["route"].append({"destination": {"host": "tomcat"}, "weight": -10})),
             "spec.http[0].route[1].weight"),
            (vs("missing-gateway", lambda s: s.update(gateways=["ingressgateway8080"])), "spec.gateways[0]"),
            (vs("host-not-admitted", lambda s: s.update(hosts=["grafana.example.org"]), base="prometheus-istio"),
             "spec.hosts[0]"),
            (vs("Bad_Name", lambda s: None), "metadata.name"),
        ],
        "istio_gateway": [
            (gw("port-protocol", unknown_protocol), "spec.servers[1].port.protocol"),
            (gw("tls-credential", https), "spec.servers[1].tls.credentialName"),
        ],
        "istio_destination_rule": [
            (two_subsets, "spec.subsets[2].name"),
            (bad_duration, "spec.trafficPolicy.connectionPool.tcp.connectTimeout"),
        ],
    }


BAD = bad_inputs()
KIND_OF = {"istio_virtual_service": "VirtualService", "istio_gateway": "Gateway",
           "istio_destination_rule": "DestinationRule"}


@pytest.mark.parametrize("module", sorted(BAD))
def test_invalid_input_fails_naming_object_and_field_and_writes_nothing(lab, module):
    kube = lab
    cases = BAD[module]
    expected = {(f"{KIND_OF[module]} {item['namespace']}/{item['name']}", field) for item, field in cases}
    mark = kube.mark()
    result = run_module(module, {"definitions": [item for item, _ in cases]}, kube=kube)
    assert result.get("failed"), result
    assert {(p["object"], p["field"]) for p in result["problems"]} == expected
    for obj, field in expected:
        assert f"{obj}: {field}:" in result["msg"]
    assert kube.writes(mark) == []


def test_a_list_is_validated_whole_before_the_first_write(lab):
    kube = lab
    good = course("virtual_services", "grafana-istio")
    bad = course("virtual_services", "kiali-istio")
    bad["spec"]["http"][0]["route"][0]["destination"]["prot"] = {"number": 20001}
    mark = kube.mark()
    result = run_module("istio_virtual_service", {"definitions": [good, bad]}, kube=kube)
    assert result.get("failed") and "spec.http[0].route[0].destination.prot" in result["msg"]
    assert kube.writes(mark) == []
    assert kube.get(V1, "VirtualService", "grafana-istio", "istio-system") is None


def test_validate_warn_relaxes_cross_object_rules_never_the_schema(lab):
    kube = lab
    early = course("virtual_services", "tomcat-virtualservice")
    early["spec"]["gateways"] = ["later-gateway"]
    result = run_module("istio_virtual_service", {**early, "validate": "warn"}, kube=kube)
    assert result["changed"] and result["operation"] == "created", result.get("msg")
    assert any("Gateway microservice/later-gateway does not exist" in w for w in result["warnings"])
    typo = course("virtual_services", "grafana-istio")
    typo["spec"]["gatways"] = ["allgateway"]
    failed = run_module("istio_virtual_service", {**typo, "validate": "warn"}, kube=kube)
    assert failed.get("failed") and "spec.gatways" in failed["msg"]


# ------------------------------------------------------------------ ownership


def test_objects_istio_lab_did_not_create_are_left_alone(lab):
    kube = lab
    foreign = {"apiVersion": V1, "kind": "DestinationRule",
               "metadata": {"name": "tomcat", "namespace": "microservice", "labels": {"team": "ops"}},
               "spec": {"host": "tomcat"}}
    kube.create(foreign)
    mark = kube.mark()
    ours = course("destination_rules", "tomcat")
    refused = run_module("istio_destination_rule", ours, kube=kube)
    assert refused.get("failed") and "DestinationRule microservice/tomcat" in refused["msg"]
    assert "adopt" in refused["msg"]
    deleting = run_module("istio_destination_rule", {"name": "tomcat", "namespace": "microservice",
                                                     "state": "absent"}, kube=kube)
    assert deleting.get("failed")
    assert kube.writes(mark) == []
    adopted = run_module("istio_destination_rule", {**ours, "adopt": True}, kube=kube)
    assert adopted["changed"] and adopted["operation"] == "updated"
    stored = kube.get(V1, "DestinationRule", "tomcat", "microservice")
    assert stored["metadata"]["labels"] == {"team": "ops", **MANAGED}  # their label stays
    assert stored["spec"] == ours["spec"]
    assert not run_module("istio_destination_rule", ours, kube=kube)["changed"]


# ------------------------------------------------------------------ failures


def test_crd_missing(kube_no_crds):
    kube = kube_no_crds
    kube.ensure_namespace("microservice")
    result = run_module("istio_gateway", course("gateways", "ingressgateway80"), kube=kube)
    assert result.get("failed")
    assert "Gateway (networking.istio.io/v1) is not served" in result["msg"]
    assert "install Istio first: playbooks/istio.yml" in result["msg"]
    absent = run_module("istio_gateway", {"name": "ingressgateway80", "namespace": "microservice",
                                          "state": "absent"}, kube=kube)
    assert not absent.get("failed") and not absent["changed"] and absent["operation"] == "absent"


def test_api_unreachable(kube, tmp_path):
    kubeconfig = tmp_path / "closed.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "closed",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],  # nothing listens on port 9
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "closed", "context": {"cluster": "c", "user": "u"}}]}))
    args = {**course("gateways", "ingressgateway80"), "kubeconfig": str(kubeconfig), "context": "closed"}
    result = run_module("istio_gateway", args, kube=kube)
    assert result.get("failed")
    assert "cannot reach the Kubernetes API at http://127.0.0.1:9 (context closed)" in result["msg"]


def test_refused_credentials_name_the_context(kube):
    # a token no API server accepts, with the fixture's kubeconfig and context
    result = run_module("istio_gateway", {**course("gateways", "ingressgateway80"), "api_key": "not-a-valid-token"},
                        kube=kube)
    assert result.get("failed")
    assert f"refused the credentials of context {kube.context}" in result["msg"]
    assert "not-a-valid-token" not in str(result)  # api_key is no_log


def test_conflict_on_update_is_retried(lab):
    kube = lab
    if kube.double is None:
        pytest.skip("needs the API double to inject a 409")
    tomcat = course("virtual_services", "tomcat-virtualservice")
    run_module("istio_virtual_service", tomcat, kube=kube)
    tomcat["spec"]["http"][0]["timeout"] = "3s"
    kube.double.inject("PUT", r"/virtualservices/tomcat-virtualservice", 409, times=1)
    mark = kube.mark()
    result = run_module("istio_virtual_service", tomcat, kube=kube)
    assert result["changed"] and result["operation"] == "updated", result.get("msg")
    object_requests = [r["method"] for r in kube.requests(mark) if r["path"].endswith("/tomcat-virtualservice")]
    assert object_requests == ["PUT", "GET", "PUT"]  # conflict, re-read, retry
    assert kube.get(V1, "VirtualService", "tomcat-virtualservice", "microservice")["spec"]["http"][0]["timeout"] == "3s"


def test_transient_errors_are_retried(lab):
    kube = lab
    if kube.double is None:
        pytest.skip("needs the API double to inject a 503")
    kube.double.inject("GET", r"/namespaces/microservice/virtualservices$", 503, times=2)
    result = run_module("istio_virtual_service", course("virtual_services", "tomcat-virtualservice"), kube=kube)
    assert result["changed"] and result["operation"] == "created", result.get("msg")
    assert result["api_requests"]["list"] == 4  # 2 failed + 1 VirtualServices + 1 Gateways


# ------------------------------------------------------------------ route table


def test_route_info_reports_the_course_routes_and_missing_services(lab):
    kube = lab
    run_module("istio_virtual_service", {"definitions": COURSE["virtual_services"]}, kube=kube)
    for service in COURSE["services"]:
        if service["name"] == "zipkin":
            continue  # left out on purpose: reported as a problem
        kube.create({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": service["name"], "namespace": service["namespace"]},
                     "spec": {"selector": {"app": service["name"]},
                              "ports": [{"name": f"p{p}", "port": p, "targetPort": p} for p in service["ports"]]}})
    # (an empty argument dict reaches `ansible -a` as raw params: name one option)
    info = run_module("istio_route_info", {"api_version": V1}, kube=kube)
    assert not info["changed"]
    assert info["hosts"]["istio-system/allgateway"] == ["grafana-istio.kubernets.cn", "kiali-istio.kubernets.cn",
                                                       "zipkin-istio.kubernets.cn"]
    assert info["hosts"]["microservice/ingressgateway80"] == ["*"]
    assert [(p["object"], p["field"]) for p in info["problems"]] == [
        ("VirtualService istio-system/zipkin-istio", "spec.http[0].route[0].destination.host")]
    assert info["api_requests"] == {"list": 5}  # Gateways, VirtualServices, DestinationRules, ServiceEntries, Services


def test_route_info_leaves_out_what_export_to_hides_from_the_gateway(lab):
    kube = lab
    hidden = course("virtual_services", "tomcat-virtualservice")
    hidden["spec"]["exportTo"] = ["."]  # microservice only; the ingress gateway's Envoy runs in istio-system
    mesh = {"name": "tomcat-mesh", "namespace": "microservice",
            "spec": {"hosts": ["tomcat"], "http": [{"route": [{"destination": {"host": "tomcat"}}]}]}}
    run_module("istio_virtual_service", {"definitions": [hidden, mesh]}, kube=kube)
    kube.create({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
                 "spec": {"selector": {"app": "istio-ingressgateway", "istio": "ingressgateway"},
                          "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}})
    info = run_module("istio_route_info", {"api_version": V1}, kube=kube)
    assert ("VirtualService microservice/tomcat-virtualservice", "spec.exportTo") in [
        (p["object"], p["field"]) for p in info["problems"]]
    assert "microservice/ingressgateway80" not in info["hosts"]
    assert [m["virtual_service"] for m in info["mesh_routes"]] == ["microservice/tomcat-mesh"]
    assert info["mesh_routes"][0]["hosts"] == ["tomcat.microservice.svc.cluster.local"]


def test_without_crd_read_access_the_server_validates_by_dry_run(lab):
    kube = lab
    if kube.double is None:
        pytest.skip("needs the API double to refuse the CRD read")
    kube.double.inject("GET", r"customresourcedefinitions/virtualservices", 403, times=2)
    typo = course("virtual_services", "tomcat-virtualservice")
    typo["spec"]["hostz"] = ["x"]
    mark = kube.mark()
    refused = run_module("istio_virtual_service", typo, kube=kube)
    assert refused.get("failed") and "VirtualService microservice/tomcat-virtualservice" in refused["msg"]
    assert "spec.hostz" in refused["msg"]  # the server's strict decoding error
    assert kube.writes(mark) == []
    created = run_module("istio_virtual_service", course("virtual_services", "tomcat-virtualservice"), kube=kube)
    assert created["changed"] and created["api_requests"]["create_dry_run"] == 1 and created["api_requests"][
        "create"] == 1


def test_a_refused_write_names_the_object_and_what_to_do(lab):
    kube = lab
    mesh_only = {"name": "internal", "namespace": "nowhere",
                 "spec": {"hosts": ["tomcat"], "http": [{"route": [{"destination": {"host": "tomcat"}}]}]}}
    result = run_module("istio_virtual_service",
                        {"definitions": [course("virtual_services", "grafana-istio"), mesh_only]}, kube=kube)
    assert result.get("failed")
    assert "VirtualService nowhere/internal: the API server refused the create" in result["msg"]
    assert "create namespace nowhere first" in result["msg"]
    assert "1 other object(s) of this task were written" in result["msg"]
    assert kube.get(V1, "VirtualService", "grafana-istio", "istio-system") is not None
