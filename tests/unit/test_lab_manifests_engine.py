"""The apply engine of lab_manifests (plugins/module_utils/istio_lab/manifests.py):
the drift comparison against what a real API server stores
(../shared/apiserver-recordings/stored-forms), and the engine's requests,
order, retries and check mode against a scripted in-memory client."""

import base64
import copy
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import ApplyFailed  # noqa: E402
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import ApiStatusError, KubeError  # noqa: E402
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.manifests import (  # noqa: E402
    APPLIED_HASH,
    MANIFESTS_ARGS,
    ManifestApplier,
    apply_reason,
    contains,
    diff_view,
    manifests_argument_spec,
    rolled_out,
    vacuous,
    with_applied_hash,
    with_labels,
)

from tests.helpers import documented_options  # noqa: E402

MANAGED = {"app.kubernetes.io/managed-by": "istio-lab"}


# ------------------------------------------------------------------ what the server stores


def stored_forms(shared_dir):
    entries = []
    for path in sorted((shared_dir / "apiserver-recordings" / "stored-forms").glob("*.json")):
        for i, entry in enumerate(json.loads(path.read_text())):
            if "submitted" in entry and "stored" in entry:
                entries.append(pytest.param(entry, id=f"{path.stem}[{i}]"))
    return entries


@pytest.fixture(scope="module")
def forms(shared_dir):
    found = [p.values[0] for p in stored_forms(shared_dir)]
    assert len(found) > 30, "stored-forms should hold every upstream object"
    return found


def test_every_stored_form_holds_its_submitted_form(forms):
    """The real server drops null, empty and zero fields (prometheus' Deployment:
    strategy.rollingUpdate null, initialDelaySeconds 0, subPath ""): none of
    that is drift."""
    for entry in forms:
        assert contains(entry["stored"], entry["submitted"]), entry["submitted"]["metadata"]["name"]


def test_a_stored_form_with_the_hash_needs_no_write(forms):
    for entry in forms:
        desired = with_applied_hash(with_labels(entry["submitted"], MANAGED))
        live = copy.deepcopy(entry["stored"])
        live["metadata"].setdefault("labels", {}).update(MANAGED)
        if APPLIED_HASH in (desired["metadata"].get("annotations") or {}):
            live["metadata"].setdefault("annotations", {})[APPLIED_HASH] = \
                desired["metadata"]["annotations"][APPLIED_HASH]
        assert apply_reason(desired, live) == "", desired["metadata"]["name"]


def test_prometheus_is_the_case_the_issue_found(forms):
    prometheus = next(e for e in forms if e["submitted"]["kind"] == "Deployment"
                      and e["submitted"]["metadata"]["name"] == "prometheus")
    assert prometheus["submitted"]["spec"]["strategy"]["rollingUpdate"] is None
    assert "rollingUpdate" not in prometheus["stored"]["spec"]["strategy"]
    edited = copy.deepcopy(prometheus["stored"])
    edited["spec"]["template"]["spec"]["containers"][1]["image"] = "prom/prometheus:v0"
    assert not contains(edited, prometheus["submitted"])


def test_vacuous_values():
    for value in (None, "", 0, 0.0, False, [], {}, {"a": None, "b": {"c": 0}}):
        assert vacuous(value), value
    for value in ("x", 1, True, [0], {"a": 1}, [{}]):
        assert not vacuous(value), value


def test_contains_rules():
    assert contains({}, {"a": 0, "b": False, "c": "", "d": None, "e": [], "f": {}})
    assert contains({}, {"strategy": {"rollingUpdate": None}})
    assert contains({"a": None}, {"a": 0})
    assert not contains({}, {"a": 1})
    assert not contains({"a": 1}, {"a": 0}), "a zero the live object contradicts is drift"
    assert not contains({"a": True}, {"a": False})
    assert not contains({}, {"a": {"b": 1}})
    assert contains({"port": "8080"}, {"port": 8080})
    assert not contains({"x": 1}, {"x": True})


# ------------------------------------------------------------------ the engine against a scripted client


def _api_error(status, message, reason="", body=None):
    return ApiStatusError(f"{status} {reason}: {message}", status, reason,
                          body if body is not None else {"kind": "Status", "message": message, "reason": reason})


DISCOVERY = {
    "/api/v1": [("Namespace", "namespaces", False), ("Service", "services", True), ("Secret", "secrets", True),
                ("ConfigMap", "configmaps", True), ("Endpoints", "endpoints", True)],
    "/apis/apps/v1": [("Deployment", "deployments", True), ("DaemonSet", "daemonsets", True)],
    "/apis/apiextensions.k8s.io/v1": [("CustomResourceDefinition", "customresourcedefinitions", False)],
}
POOL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "ipaddresspools.metallb.io"},
    "spec": {"group": "metallb.io", "scope": "Namespaced",
             "names": {"kind": "IPAddressPool", "plural": "ipaddresspools"},
             "versions": [{"name": "v1beta1", "served": True, "storage": True}]},
}


def _listed(list_path, obj_path):
    """Whether a LIST of list_path (one namespace, or all) holds the object at obj_path."""
    parent = obj_path.rsplit("/", 1)[0]
    if parent == list_path:
        return True
    base, _, plural = list_path.rpartition("/")
    return "/namespaces/" not in list_path and parent.startswith(base + "/namespaces/") and \
        parent.endswith("/" + plural) and parent.count("/") == base.count("/") + 3


class FakeClient:
    """Discovery, LIST (label selector), GET and server-side apply over a dict,
    recording every request; `refuse` maps a path to errors to raise first."""

    def __init__(self):
        self.discovery = {path: list(kinds) for path, kinds in DISCOVERY.items()}
        self.objects = {}  # path -> object
        self.calls = []
        self.counts = {}
        self.refuse = {}
        self.not_established_reads = 0

    def describe(self):
        return "fake"

    def request(self, verb, method, path, query=None, body=None, content_type=None):
        self.calls.append({"verb": verb, "method": method, "path": path, "query": dict(query or []), "body": body,
                           "content_type": content_type})
        self.counts[verb] = self.counts.get(verb, 0) + 1
        if self.refuse.get(path):
            raise self.refuse[path].pop(0)
        if verb == "discovery":
            if path not in self.discovery:
                raise ApiStatusError("404", 404, "", "404 page not found")
            return {"resources": [{"kind": k, "name": p, "namespaced": n} for k, p, n in self.discovery[path]]}
        if method == "GET" and verb == "list":
            pairs = dict(query or []).get("labelSelector", "").split(",")
            selector = dict(pair.split("=", 1) for pair in pairs if pair)
            items = [copy.deepcopy(o) for p, o in self.objects.items() if _listed(path, p)]
            items = [o for o in items if selector.items() <= (o["metadata"].get("labels") or {}).items()]
            return {"apiVersion": "v1", "items": items}
        if method == "GET":
            obj = self.objects.get(path)
            if obj is None:
                raise _api_error(404, "not found", "NotFound")
            if obj["kind"] == "CustomResourceDefinition" and self.not_established_reads:
                self.not_established_reads -= 1
                return {**obj, "status": {}}
            return copy.deepcopy(obj)
        if method == "PATCH":
            assert content_type == "application/apply-patch+yaml"
            obj = json.loads(body.decode("utf-8"))
            namespace = obj["metadata"].get("namespace")
            if obj["kind"] != "Namespace" and namespace and f"/api/v1/namespaces/{namespace}" not in self.objects:
                raise _api_error(404, f'namespaces "{namespace}" not found', "NotFound",
                                 {"kind": "Status", "reason": "NotFound", "message": f'namespaces "{namespace}" not '
                                  "found", "details": {"name": namespace, "kind": "namespaces"}})
            if dict(query).get("dryRun") == "All":
                return obj
            obj["metadata"]["resourceVersion"] = "1"
            if obj["kind"] == "Deployment":
                obj["metadata"]["generation"] = 1
                obj["status"] = {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1}
            if obj["kind"] == "CustomResourceDefinition":
                self.discovery.setdefault("/apis/metallb.io/v1beta1", []).append(
                    ("IPAddressPool", "ipaddresspools", True))
                obj["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
                self.objects[path] = obj
                return {**obj, "status": {}}  # not yet Established in the answer
            self.objects[path] = obj
            return copy.deepcopy(obj)
        raise AssertionError(f"unexpected {method} {path}")

    def writes(self):
        return [c for c in self.calls if c["method"] == "PATCH" and c["query"].get("dryRun") != "All"]


def params(**overrides):
    values = {key: copy.deepcopy(spec.get("default")) for key, spec in MANIFESTS_ARGS.items()}
    values.update(wait_timeout=5, retry_delay=0.01)
    values.update(overrides)
    return values


NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "microservice"}}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "tomcat", "namespace": "microservice"},
              "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "t", "image": "tomcat"}]}}}}
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dash", "namespace": "microservice"},
             "data": {"d.json": "\U0001F510mTLS"}}
POOL = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "pool", "namespace": "microservice"}, "spec": {"addresses": ["127.240.0.10/32"]}}


def run(client, check_mode=False, want_diff=False, **overrides):
    slept = []
    applier = ManifestApplier(client, params(**overrides), check_mode, want_diff, sleep=slept.append)
    return applier.run(), slept


def test_first_run_order_and_a_rerun_that_only_lists():
    client = FakeClient()
    client.not_established_reads = 1
    result, _ = run(client, manifests=[DEPLOYMENT, CONFIGMAP, POOL_CRD, NAMESPACE], after_wait=[POOL], wait=True)
    assert result["changed"]
    order = [(c["path"].rsplit("/", 1)[-1]) for c in client.writes()]
    assert order == ["ipaddresspools.metallb.io", "microservice", "dash", "tomcat", "pool"]
    assert [r["action"] for r in result["results"]] == ["created"] * 5
    assert {r["reason"] for r in result["results"]} == {"missing"}
    assert result["waited"] == [{"kind": "Deployment", "namespace": "microservice", "name": "tomcat", "ready": True}]
    # the CRD was polled until Established (the answer and the first GET said not yet)
    assert [c["path"] for c in client.calls if c["verb"] == "get"] == \
        ["/apis/apiextensions.k8s.io/v1/customresourcedefinitions/ipaddresspools.metallb.io"] * 2

    client.calls, client.counts = [], {}
    again, _ = run(client, manifests=[DEPLOYMENT, CONFIGMAP, POOL_CRD, NAMESPACE], after_wait=[POOL], wait=True)
    assert not again["changed"]
    assert {r["action"] for r in again["results"]} == {"unchanged"}
    # discovery once per group-version, one LIST per kind and scope, no GET (rollout read from the LIST)
    assert client.counts == {"discovery": 4, "list": 5}
    assert all(c["query"] == {"labelSelector": "app.kubernetes.io/managed-by=istio-lab"}
               for c in client.calls if c["verb"] == "list")


def test_server_side_apply_request_and_utf8_body():
    client = FakeClient()
    run(client, manifests=[NAMESPACE, CONFIGMAP])
    write = client.writes()[-1]
    assert write["path"] == "/api/v1/namespaces/microservice/configmaps/dash"
    assert write["query"] == {"fieldManager": "istio-lab", "force": "true"}
    assert isinstance(write["body"], bytes)
    assert "\U0001F510".encode() in write["body"] and b"\\u" not in write["body"]
    sent = json.loads(write["body"])
    assert sent["metadata"]["labels"] == MANAGED
    assert sent["metadata"]["annotations"][APPLIED_HASH].startswith("sha256:")


def test_a_drifted_object_is_the_only_write():
    client = FakeClient()
    run(client, manifests=[NAMESPACE, DEPLOYMENT, CONFIGMAP])
    client.objects["/apis/apps/v1/namespaces/microservice/deployments/tomcat"]["spec"]["replicas"] = 3
    client.calls = []
    result, _ = run(client, manifests=[NAMESPACE, DEPLOYMENT, CONFIGMAP])
    assert [c["path"].rsplit("/", 1)[-1] for c in client.writes()] == ["tomcat"]
    assert [(r["name"], r["action"], r["reason"]) for r in result["results"]] == [
        ("microservice", "unchanged", ""), ("tomcat", "updated", "drifted"), ("dash", "unchanged", "")]


def test_webhook_refusals_are_retried_and_other_refusals_name_the_object():
    client = FakeClient()
    run(client, manifests=[POOL_CRD, NAMESPACE])
    pool_path = "/apis/metallb.io/v1beta1/namespaces/microservice/ipaddresspools/pool"
    refusal = 'Internal error occurred: failed calling webhook "ipaddresspoolvalidationwebhook.metallb.io": ' \
              "connect: connection refused"
    client.refuse[pool_path] = [_api_error(500, refusal, "InternalError")] * 2
    result, slept = run(client, manifests=[POOL])
    assert result["webhook_retries"] == 2 and len(slept) == 2
    assert pool_path in client.objects

    client.refuse["/api/v1/namespaces/microservice/configmaps/dash"] = [
        _api_error(422, 'ConfigMap "dash" is invalid: data: Invalid value', "Invalid")]
    with pytest.raises(ApplyFailed) as failed:
        run(client, manifests=[CONFIGMAP, {**CONFIGMAP, "metadata": {**CONFIGMAP["metadata"], "name": "other"}}])
    assert "ConfigMap microservice/dash (manifests[0]): the API server refused the apply" in str(failed.value)
    assert "/api/v1/namespaces/microservice/configmaps/other" in client.objects, "the other writes go on"


def test_a_webhook_that_never_answers_times_out():
    client = FakeClient()
    run(client, manifests=[POOL_CRD, NAMESPACE])
    pool_path = "/apis/metallb.io/v1beta1/namespaces/microservice/ipaddresspools/pool"
    client.refuse[pool_path] = [_api_error(500, "failed calling webhook x", "InternalError")] * 1000
    now = [0.0]
    applier = ManifestApplier(client, params(manifests=[POOL], wait_timeout=3, retry_delay=1),
                              sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    with pytest.raises(ApplyFailed, match="an admission webhook kept refusing it for 3 s"):
        applier.run()


def test_check_mode_writes_nothing_and_reports_what_it_would_create():
    client = FakeClient()
    result, _ = run(client, check_mode=True, want_diff=True, manifests=[POOL_CRD, NAMESPACE, DEPLOYMENT],
                    after_wait=[POOL], wait=True)
    assert client.writes() == []
    assert client.objects == {}
    assert [(r["kind"], r["action"]) for r in result["results"]] == [
        ("CustomResourceDefinition", "created"), ("Namespace", "created"), ("Deployment", "created"),
        ("IPAddressPool", "created")]
    assert result["waited"] == []
    assert len(result["diff"]) == 4
    # the pool's kind is not served yet: its discovery says so, and nothing more is asked
    assert [c["verb"] for c in client.calls if "metallb.io/v1beta1" in c["path"]] == ["discovery"]


def test_a_secret_is_applied_without_hash_and_never_shown():
    client = FakeClient()
    result, _ = run(client, want_diff=True, manifests=[NAMESPACE],
                    secrets=[{"name": "grafana-admin", "namespace": "microservice", "type": "Opaque", "labels": None,
                              "data": None, "string_data": {"password": "s3cret-pass"}}])
    sent = json.loads(client.writes()[-1]["body"])
    assert sent["data"] == {"password": base64.b64encode(b"s3cret-pass").decode()}
    assert APPLIED_HASH not in (sent["metadata"].get("annotations") or {})
    shown = json.dumps(result)
    assert "s3cret-pass" not in shown and base64.b64encode(b"s3cret-pass").decode() not in shown
    assert diff_view(sent)["data"] == {"password": "VALUE_HIDDEN"}
    client.calls = []
    again, _ = run(client, manifests=[NAMESPACE],
                   secrets=[{"name": "grafana-admin", "namespace": "microservice", "string_data": {"password":
                                                                                                  "s3cret-pass"}}])
    assert not again["changed"] and client.writes() == []


def test_wait_for_endpoints_and_a_load_balancer_address():
    client = FakeClient()
    client.objects["/api/v1/namespaces/istio-system/services/istio-ingressgateway"] = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "istio-ingressgateway"},
        "status": {"loadBalancer": {"ingress": [{"ip": "127.240.0.10"}]}}}
    client.objects["/api/v1/namespaces/metallb-system/endpoints/hook"] = {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "hook"}, "subsets": [{"notReadyAddresses": [
            {"ip": "127.244.0.9"}]}]}
    result, _ = run(client, wait_for=[{"kind": "Service", "namespace": "istio-system",
                                       "name": "istio-ingressgateway"}])
    assert result["waited"][0]["addresses"] == ["127.240.0.10"]
    with pytest.raises(KubeError, match="waiting for Endpoints metallb-system/hook to have ready addresses"):
        run(client, wait_timeout=0, wait_for=[{"kind": "Endpoints", "namespace": "metallb-system", "name": "hook"}])


def test_bad_input_is_refused_before_any_request():
    client = FakeClient()
    with pytest.raises(ApplyFailed) as failed:
        run(client, manifests=[NAMESPACE, {"kind": "ConfigMap"}, NAMESPACE])
    assert "manifests[1]: an object needs apiVersion, kind and metadata.name" in str(failed.value)
    assert "Namespace microservice appears twice" in str(failed.value)
    assert client.calls == []


def test_an_unknown_kind_fails_naming_it():
    client = FakeClient()
    with pytest.raises(KubeError, match=r"IPAddressPool \(metallb.io/v1beta1\) is not served"):
        run(client, manifests=[POOL])


def test_rollout_rules():
    deployment = {"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
                  "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2}}
    assert rolled_out(deployment)
    assert not rolled_out({**deployment, "status": {**deployment["status"], "observedGeneration": 1}})
    assert not rolled_out({**deployment, "status": {**deployment["status"], "availableReplicas": 1}})
    daemonset = {"kind": "DaemonSet", "metadata": {}, "status": {"desiredNumberScheduled": 1,
                                                                 "updatedNumberScheduled": 1, "numberAvailable": 0}}
    assert not rolled_out(daemonset)


def test_the_module_documents_exactly_its_arguments():
    options = documented_options("lab_manifests")
    spec = manifests_argument_spec()

    def compare(doc_options, arg_options, where):
        assert set(doc_options) == set(arg_options), where
        for name, doc in doc_options.items():
            arg = arg_options[name]
            for field in ("type", "choices", "default", "aliases", "elements"):
                assert doc.get(field) == arg.get(field), f"{where}.{name}.{field}"
            assert bool(doc.get("required")) == bool(arg.get("required")), f"{where}.{name}.required"
            if "suboptions" in doc or "options" in arg:
                compare(doc["suboptions"], arg["options"], f"{where}.{name}")

    compare(options, spec, "lab_manifests")
    assert spec["secrets"]["options"]["string_data"]["no_log"] and spec["secrets"]["options"]["data"]["no_log"]


def test_read_returns_objects_before_any_write_and_hides_secrets():
    client = FakeClient()
    client.objects["/api/v1/namespaces/istio-system/configmaps/record"] = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "record"}, "data": {"version": "1.30.3"}}
    client.objects["/api/v1/namespaces/istio-system/secrets/admin"] = {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "admin"}, "data": {"password": "cHc="}}
    result, _ = run(client, namespace="istio-system", read=[
        {"kind": "ConfigMap", "name": "record"}, {"kind": "Deployment", "name": "istiod"},
        {"kind": "Secret", "name": "admin"}])
    assert result["read"][0]["data"] == {"version": "1.30.3"}
    assert result["read"][1] is None
    assert result["read"][2]["data"] == {"password": "VALUE_HIDDEN"}
    assert not result["changed"] and client.writes() == []


def test_a_namespace_being_deleted_is_waited_for_then_created():
    client = FakeClient()
    path = "/api/v1/namespaces/microservice"
    client.objects[path] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "microservice",
                                                                                  "labels": MANAGED},
                            "status": {"phase": "Terminating"}}
    gets = []

    def gone_after_two_looks(seconds):
        gets.append(seconds)
        if len(gets) == 2:
            del client.objects[path]

    applier = ManifestApplier(client, params(manifests=[NAMESPACE, CONFIGMAP]), sleep=gone_after_two_looks)
    result = applier.run()
    assert [(r["kind"], r["action"], r["reason"]) for r in result["results"]] == [
        ("Namespace", "created", "missing"), ("ConfigMap", "created", "missing")]
    assert len(gets) == 2
    assert [c["path"] for c in client.writes()] == [path, path + "/configmaps/dash"]
