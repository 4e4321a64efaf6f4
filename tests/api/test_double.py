"""The kube-apiserver double answers like the real server (the recordings of
../shared/apiserver-recordings), validates custom resources like it, and
simulates the controllers the lab depends on. Also: the request log, fault
injection, the counting proxy, the CLI, and the clients (kubernetes python
client, kubernetes.core, kubectl) working against it.

These tests exercise the double itself, so they use it directly (they skip
nothing on a real cluster: they never touch ISTIO_LAB_TEST_KUBECONFIG)."""

from __future__ import annotations

import base64
import copy
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import KubeTarget
from tests.helpers import REPO, run_module, run_playbook
from tests.kube_double import DEFAULT_TOKEN, KubeDouble, load_crd_file
from tests.kube_double.proxy import CountingProxy
from tests.kube_double.store import WriteContext

pytestmark = pytest.mark.api

ISTIO = "networking.istio.io/v1"
PYTHON_REQUESTS = "python-requests/2.32.3"  # the recordings were made with python-requests


def call(double, method, path, body=None, content_type="application/json", token=DEFAULT_TOKEN,
         accept="application/json", user_agent=PYTHON_REQUESTS):
    """(status, parsed body or text, headers) of one request to the double."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    headers = {"Accept": accept, "User-Agent": user_agent}
    if body is not None:
        headers["Content-Type"] = content_type
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(double.url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, response_headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, raw, response_headers = error.code, error.read(), error.headers
    text = raw.decode()
    try:
        return status, json.loads(text), response_headers
    except ValueError:
        return status, text, response_headers


@pytest.fixture(scope="module")
def istio_crds(shared_dir) -> Path:
    return shared_dir / "crds" / "istio-1.30.3-crds.yaml"


@pytest.fixture(scope="module")
def metallb_crds(shared_dir) -> Path:
    return shared_dir / "crds" / "metallb-0.16.1-crds.yaml"


@pytest.fixture
def double(istio_crds):
    with KubeDouble(crds=[istio_crds]) as running:
        yield running


def vs_body(name="tomcat-virtualservice", namespace="rec", **spec_overrides):
    spec = {"hosts": ["*"], "gateways": ["ingressgateway80"], "http": [
        {"route": [{"destination": {"host": f"tomcat.{namespace}.svc.cluster.local", "port": {"number": 80}}}]}]}
    spec.update(spec_overrides)
    return {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


# --------------------------------------------------------------------------- the recordings

def _managed(body) -> list:
    return [(m["manager"], m["operation"], m.get("apiVersion"), m["fieldsV1"])
            for m in (body.get("metadata") or {}).get("managedFields") or []]


def _compare(name, expected, status, body, content_type, problems):
    """Record every way an answer differs from the recording."""
    def problem(what):
        problems.append(f"{name}: {what}")

    if status != expected["status"]:
        problem(f"status {status} != {expected['status']}")
    if content_type != expected["content_type"]:
        problem(f"content type {content_type!r} != {expected['content_type']!r}")
    want = expected["body"]
    if not isinstance(want, dict):
        if body != want:
            problem(f"body {body!r} != {want!r}")
        return
    if want.get("kind") == "Status":
        for key in ("status", "reason", "message", "code"):
            if body.get(key) != want.get(key):
                problem(f"{key} {body.get(key)!r} != {want.get(key)!r}")
        details = {k: v for k, v in (want.get("details") or {}).items() if k != "uid"}
        got_details = {k: v for k, v in (body.get("details") or {}).items() if k != "uid"}
        if details != got_details:
            problem(f"details {got_details!r} != {details!r}")
        return
    if "spec" in want and body.get("spec") != want["spec"]:
        problem(f"spec {body.get('spec')!r} != {want['spec']!r}")
    meta, got = want.get("metadata") or {}, body.get("metadata") or {}
    for key in ("name", "namespace", "generation", "labels"):
        if meta.get(key) != got.get(key):
            problem(f"metadata.{key} {got.get(key)!r} != {meta.get(key)!r}")
    if ("resourceVersion" in meta) != ("resourceVersion" in got):
        problem("resourceVersion presence differs")
    if meta.get("name") and want.get("kind") not in ("CustomResourceDefinition",) and \
            _managed(body) != _managed(want):
        problem(f"managedFields {_managed(body)} != {_managed(want)}")


def test_answers_like_every_recording(shared_dir, istio_crds):
    """Replay all 36 recorded exchanges in order on one double; compare status
    codes, content types, Status reason/message/details, objects (spec,
    generation, labels, managedFields) and resourceVersion movement."""
    recordings = sorted((shared_dir / "apiserver-recordings").glob("[0-9][0-9]-*.json"))
    assert len(recordings) == 36
    problems: list[str] = []
    rv = {}
    with KubeDouble(crds=[istio_crds]) as double:
        for path in recordings:
            recording = json.loads(path.read_text())
            request, expected = recording["request"], recording["response"]
            body = request["body"]
            step = path.name[:2]
            if step == "19":
                # "the object as read": our resourceVersion, not the recorded one.
                body = copy.deepcopy(body)
                body["metadata"]["resourceVersion"] = rv["15"]
            status, answer, headers = call(double, request["method"], request["path"], body,
                                           request["headers"].get("Content-Type", "application/json"),
                                           accept=request["headers"]["Accept"])
            content_type = headers.get("Content-Type")
            if step in ("03", "05", "06"):
                key = {"03": "groups", "05": "resources", "06": "resources"}[step]
                if status != 200 or answer.get(key) != _without_hashes(expected["body"][key], step != "03"):
                    problems.append(f"{path.name}: {key} differ")
                continue
            if step == "02":
                answer["serverAddressByClientCIDRs"] = expected["body"]["serverAddressByClientCIDRs"]
            if step == "04":
                if content_type != expected["content_type"] or _discovery_set(answer) != _discovery_set(
                        expected["body"]):
                    problems.append(f"{path.name}: aggregated discovery differs: "
                                    f"{_discovery_set(answer) ^ _discovery_set(expected['body'])}")
                continue
            if step == "07":
                if answer["spec"] != expected["body"]["spec"] or answer["status"]["acceptedNames"] != \
                        expected["body"]["status"]["acceptedNames"]:
                    problems.append(f"{path.name}: CRD differs")
                continue
            if step in ("01", "02"):
                if answer != expected["body"]:
                    problems.append(f"{path.name}: {answer} != {expected['body']}")
                continue
            _compare(path.name, expected, status, answer, content_type, problems)
            if isinstance(answer, dict) and answer.get("metadata", {}).get("resourceVersion"):
                rv[step] = answer["metadata"]["resourceVersion"]
        # resourceVersion movement: a no-op PUT and a repeated apply do not write.
        assert rv["19"] == rv["15"], "PUT of the object as read moved resourceVersion"
        assert rv["27"] == rv["26"], "identical server-side apply moved resourceVersion"
        assert rv["28"] == rv["26"], "dry-run apply moved resourceVersion"
        assert int(rv["21"]) > int(rv["15"]) and int(rv["22"]) > int(rv["21"])
    assert problems == []


def _without_hashes(expected, by_name: bool):
    """Recorded resource lists carry storageVersionHash (opaque) in map order;
    compare the rest, sorted by name as the double serves them."""
    cleaned = [{k: v for k, v in r.items() if k != "storageVersionHash"} for r in expected]
    return sorted(cleaned, key=lambda r: r["name"]) if by_name else cleaned


def _discovery_set(document) -> set:
    return {(g["metadata"].get("name", ""), v["version"], r["resource"], r["responseKind"]["kind"], r["scope"],
             tuple(sorted(r["verbs"])), tuple(r.get("shortNames", [])), tuple(r.get("categories", [])),
             tuple(s["subresource"] for s in r.get("subresources", [])))
            for g in document["items"] for v in g["versions"] for r in v["resources"]}


# --------------------------------------------------------------------------- auth and discovery

def test_wrong_or_missing_token_is_unauthorized(double):
    for token in (None, "wrong"):
        status, body, _ = call(double, "GET", "/api/v1/namespaces", token=token)
        assert status == 401
        assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    assert call(double, "GET", "/api/v1/namespaces")[0] == 200


def test_discovery_follows_crds_installed_and_removed(kube_no_crds, istio_crds):
    double = kube_no_crds.double
    status, groups, _ = call(double, "GET", "/apis")
    assert "networking.istio.io" not in {g["name"] for g in groups["groups"]}
    status, text, headers = call(double, "GET", "/apis/networking.istio.io/v1/namespaces/default/gateways")
    assert (status, text, headers["Content-Type"]) == (404, "404 page not found\n", "text/plain; charset=utf-8")

    crd = next(c for c in load_crd_file(istio_crds) if c["metadata"]["name"] == "gateways.networking.istio.io")
    status, created, _ = call(double, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert status == 201
    assert {c["type"]: c["status"] for c in created["status"]["conditions"]}["Established"] == "True"
    status, groups, _ = call(double, "GET", "/apis")
    istio = next(g for g in groups["groups"] if g["name"] == "networking.istio.io")
    assert [v["version"] for v in istio["versions"]] == ["v1", "v1beta1", "v1alpha3"]
    assert istio["preferredVersion"]["version"] == "v1"
    status, aggregated, headers = call(double, "GET", "/apis", accept="application/json;g=apidiscovery.k8s.io;"
                                       "v=v2;as=APIGroupDiscoveryList,application/json")
    assert headers["Content-Type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    assert ("networking.istio.io", "v1", "gateways", "Gateway", "Namespaced") in {t[:5] for t in
                                                                                   _discovery_set(aggregated)}
    gateway = {"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": "gw"},
               "spec": {"selector": {"istio": "ingressgateway"}}}
    assert call(double, "POST", "/apis/networking.istio.io/v1/namespaces/default/gateways", gateway)[0] == 201
    # The same object is served in every version of the CRD.
    status, old_version, _ = call(double, "GET", "/apis/networking.istio.io/v1alpha3/namespaces/default/gateways/gw")
    assert (status, old_version["apiVersion"]) == (200, "networking.istio.io/v1alpha3")

    status, deleted, _ = call(double, "DELETE",
                              "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gateways.networking.istio.io")
    assert status == 200
    status, text, _ = call(double, "GET", "/apis/networking.istio.io/v1/namespaces/default/gateways/gw")
    assert (status, text) == (404, "404 page not found\n")
    assert "networking.istio.io" not in {g["name"] for g in call(double, "GET", "/apis")[1]["groups"]}


def test_openapi_v3_declares_field_validation(double):
    status, root, _ = call(double, "GET", "/openapi/v3")
    assert status == 200 and "apis/networking.istio.io/v1" in root["paths"] and "api/v1" in root["paths"]
    url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
    status, document, _ = call(double, "GET", url)
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}


# --------------------------------------------------------------------------- validation of custom resources

def _create_vs(double, spec_overrides, query=""):
    call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rec"}})
    return call(double, "POST", f"/apis/networking.istio.io/v1/namespaces/rec/virtualservices{query}",
                vs_body("checked", **spec_overrides))


def test_schema_violations_give_one_cause_per_field(double):
    status, body, _ = _create_vs(double, {"hosts": "tomcat", "exportTo": 5, "gateways": [3]})
    assert status == 422 and body["reason"] == "Invalid"
    causes = {c["field"]: c for c in body["details"]["causes"]}
    assert causes["spec.hosts"]["reason"] == "FieldValueTypeInvalid"
    assert causes["spec.exportTo"]["message"] == \
        'Invalid value: "integer": spec.exportTo in body must be of type array: "integer"'
    assert causes["spec.gateways[0]"]["reason"] == "FieldValueTypeInvalid"
    # Blocking errors stop CEL evaluation, and the apiserver says so.
    assert causes["<nil>"]["message"].startswith("Invalid value: null: some validation rules were not checked")
    assert body["message"].startswith('VirtualService.networking.istio.io "checked" is invalid: [')


def test_enum_required_range_and_cel_rules(double):
    call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rec"}})

    def gateway(servers):
        return {"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": "gw"},
                "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers}}

    url = "/apis/networking.istio.io/v1/namespaces/rec/gateways"
    status, body, _ = call(double, "POST", url, gateway([{"port": {"number": 80, "name": "http", "protocol": "HTTP"}}]))
    assert status == 422
    assert body["details"]["causes"][0] == {"reason": "FieldValueRequired", "message": "Required value",
                                            "field": "spec.servers[0].hosts"}
    status, body, _ = call(double, "POST", url, gateway([{"hosts": ["*"], "port": {
        "number": 80, "name": "http", "protocol": "HTTP"}, "tls": {"mode": "NOPE"}}]))
    assert status == 422
    cause = body["details"]["causes"][0]
    assert cause["reason"] == "FieldValueNotSupported" and cause["field"] == "spec.servers[0].tls.mode"
    assert cause["message"].startswith('Unsupported value: "NOPE": supported values: "PASSTHROUGH", "SIMPLE"')
    # CEL rules of the Istio CRDs: mutually exclusive TLS credentials on a Gateway server...
    status, body, _ = call(double, "POST", url, gateway([{"hosts": ["*"], "port": {
        "number": 443, "name": "https", "protocol": "HTTPS"}, "tls": {
        "mode": "SIMPLE", "credentialName": "a", "credentialNames": ["b"]}}]))
    assert status == 422
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.servers[0].tls",
                                          "message": 'Invalid value: "object": only one of credentialName or '
                                                     "credentialNames can be set"}]
    # ... port ranges (schema maximum is 4294967295, the rule says 65535) and duplicate ports.
    entry = {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": {"name": "se"}, "spec": {
        "hosts": ["example.com"], "ports": [{"number": 70000, "name": "http", "protocol": "HTTP"},
                                            {"number": 70000, "name": "http2", "protocol": "HTTP"}]}}
    status, body, _ = call(double, "POST", "/apis/networking.istio.io/v1/namespaces/rec/serviceentries", entry)
    assert status == 422
    assert body["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "field": "spec.ports",
         "message": 'Invalid value: "array": port number cannot be duplicated'},
        {"reason": "FieldValueInvalid", "field": "spec.ports[0].number",
         "message": 'Invalid value: "integer": port must be between 1-65535'},
        {"reason": "FieldValueInvalid", "field": "spec.ports[1].number",
         "message": 'Invalid value: "integer": port must be between 1-65535'}]
    # CEL duration rule on a DestinationRule.
    rule = {"apiVersion": ISTIO, "kind": "DestinationRule", "metadata": {"name": "dr"}, "spec": {
        "host": "tomcat", "trafficPolicy": {"connectionPool": {"tcp": {"connectTimeout": "0s"}}}}}
    status, body, _ = call(double, "POST", "/apis/networking.istio.io/v1/namespaces/rec/destinationrules", rule)
    assert status == 422
    assert body["details"]["causes"][0]["message"] == \
        'Invalid value: "string": must be a valid duration greater than 1ms'
    rule["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["connectTimeout"] = "1.5s"
    assert call(double, "POST", "/apis/networking.istio.io/v1/namespaces/rec/destinationrules", rule)[0] == 201


def test_unknown_fields_pruned_strict_or_warned(double):
    status, body, _ = _create_vs(double, {"hostz": ["x"]}, "?fieldValidation=Warn")
    assert status == 201 and "hostz" not in body["spec"]
    status, body, headers = call(double, "POST", "/apis/networking.istio.io/v1/namespaces/rec/virtualservices"
                                 "?fieldValidation=Warn", vs_body("warned", hostz=["x"]))
    assert status == 201 and headers["Warning"] == '299 - "unknown field \\"spec.hostz\\""'
    status, body, _ = call(double, "POST", "/apis/networking.istio.io/v1/namespaces/rec/virtualservices"
                           "?fieldValidation=Strict", vs_body("strict", hostz=["x"], extra=1))
    assert status == 400
    assert body["message"] == ('VirtualService in version "v1" cannot be handled as a VirtualService: strict decoding '
                               'error: unknown field "spec.extra", unknown field "spec.hostz"')


def test_preserve_unknown_fields_are_kept(double):
    call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rec"}})
    envoy_filter = {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter", "metadata": {"name": "ef"},
                    "spec": {"configPatches": [{"applyTo": "HTTP_FILTER", "patch": {
                        "operation": "MERGE", "value": {"anything": {"nested": [1, 2]}}}}]}}
    status, body, _ = call(double, "POST", "/apis/networking.istio.io/v1alpha3/namespaces/rec/envoyfilters",
                           envoy_filter)
    assert status == 201
    assert body["spec"]["configPatches"][0]["patch"]["value"] == {"anything": {"nested": [1, 2]}}


# --------------------------------------------------------------------------- built-in semantics

def test_namespaces_default_missing_and_cascading_delete(istio_crds):
    """With namespace_deletion_delay=0 a deleted namespace goes at once (the default keeps it
    Terminating for a while: tests/api/test_double_namespaces.py)."""
    with KubeDouble(crds=[istio_crds], namespace_deletion_delay=0) as double:
        _namespaces_default_missing_and_cascading_delete(double)


def _namespaces_default_missing_and_cascading_delete(double):
    status, listed, _ = call(double, "GET", "/api/v1/namespaces")
    assert {n["metadata"]["name"] for n in listed["items"]} == {"default", "kube-system", "kube-public",
                                                                "kube-node-lease"}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}}
    status, body, _ = call(double, "POST", "/api/v1/namespaces/nowhere/configmaps", config_map)
    assert (status, body["reason"], body["message"]) == (404, "NotFound", 'namespaces "nowhere" not found')
    assert body["details"] == {"name": "nowhere", "kind": "namespaces"}
    call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab"}})
    assert call(double, "POST", "/api/v1/namespaces/lab/configmaps", config_map)[0] == 201
    status, body, _ = call(double, "DELETE", "/api/v1/namespaces/lab")
    assert status == 200 and body["status"]["phase"] == "Terminating"
    assert call(double, "GET", "/api/v1/namespaces/lab/configmaps/cm")[0] == 404
    assert call(double, "GET", "/api/v1/namespaces/lab")[0] == 404


def test_list_selectors_and_all_namespaces(double):
    for namespace in ("a", "b"):
        call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": namespace}})
        for name, labels in (("one", {"tier": "web", "chapter": "1"}), ("two", {"tier": "db", "chapter": "3"}),
                             ("three", {"tier": "web"})):
            call(double, "POST", f"/api/v1/namespaces/{namespace}/configmaps",
                 {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}})

    def names(query, namespace="a"):
        prefix = f"/api/v1/namespaces/{namespace}" if namespace else "/api/v1"
        status, body, _ = call(double, "GET", f"{prefix}/configmaps?{query}")
        assert status == 200 and int(body["metadata"]["resourceVersion"]) > 0
        return sorted(f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in body["items"])

    assert names("labelSelector=tier%3Dweb") == ["a/one", "a/three"]
    # kube-root-ca.crt: kube-controller-manager's, in every namespace, without labels
    assert names("labelSelector=tier%21%3Dweb") == ["a/kube-root-ca.crt", "a/two"]
    assert names("labelSelector=chapter%20in%20(1,3),tier") == ["a/one", "a/two"]
    assert names("labelSelector=chapter%20notin%20(1)") == ["a/kube-root-ca.crt", "a/three", "a/two"]
    assert names("labelSelector=%21chapter") == ["a/kube-root-ca.crt", "a/three"]
    assert names("fieldSelector=metadata.name%3Dtwo", namespace=None) == ["a/two", "b/two"]
    assert names("fieldSelector=metadata.namespace%3Db,metadata.name%21%3Dtwo", namespace=None) == [
        "b/kube-root-ca.crt", "b/one", "b/three"]
    status, deleted, _ = call(double, "DELETE", "/api/v1/namespaces/a/configmaps?labelSelector=tier%3Dweb")
    assert status == 200 and len(deleted["items"]) == 2
    assert names("") == ["a/kube-root-ca.crt", "a/two"]
    assert names("", namespace="b") == ["b/kube-root-ca.crt", "b/one", "b/three", "b/two"]


def test_builtin_patches_dry_run_and_defaults(double):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "containers": [{"name": "web", "image": "web:1"}, {"name": "side", "image": "side:1"}]}}}}
    url = "/apis/apps/v1/namespaces/default/deployments"
    status, dry, _ = call(double, "POST", url + "?dryRun=All", deployment)
    assert status == 201 and "resourceVersion" not in dry["metadata"] and dry["spec"]["replicas"] == 1
    assert call(double, "GET", url + "/web")[0] == 404
    status, created, _ = call(double, "POST", url, deployment)
    assert status == 201 and created["metadata"]["generation"] == 1
    # Strategic merge patch merges containers by name.
    status, patched, _ = call(double, "PATCH", url + "/web", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "web:2"}]}}}}, content_type="application/strategic-merge-patch+json")
    assert status == 200
    assert [(c["name"], c["image"]) for c in patched["spec"]["template"]["spec"]["containers"]] == [
        ("web", "web:2"), ("side", "side:1")]
    assert patched["metadata"]["generation"] == 2
    # A dry-run patch answers the result and stores nothing.
    status, dry, _ = call(double, "PATCH", url + "/web?dryRun=All", [
        {"op": "replace", "path": "/spec/replicas", "value": 3}], content_type="application/json-patch+json")
    assert status == 200 and dry["spec"]["replicas"] == 3
    stored = call(double, "GET", url + "/web")[1]
    assert stored["spec"]["replicas"] == 1
    assert stored["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    # Dry-run delete keeps the object.
    assert call(double, "DELETE", url + "/web?dryRun=All")[0] == 200
    assert call(double, "GET", url + "/web")[0] == 200
    # Secrets: stringData becomes data.
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "pw"}}
    status, body, _ = call(double, "POST", "/api/v1/namespaces/default/secrets", secret)
    assert body["data"] == {"password": base64.b64encode(b"pw").decode()} and "stringData" not in body


def test_builtin_validation_of_common_mistakes(double):
    url = "/apis/apps/v1/namespaces/default/deployments"
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "other"}},
                                                                   "spec": {"containers": [{"name": "web"}]}}}}
    status, body, _ = call(double, "POST", url, deployment)
    assert status == 422
    assert body["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "field": "spec.template.metadata.labels",
         "message": 'Invalid value: map[string]string{"app":"other"}: `selector` does not match template `labels`'},
        {"reason": "FieldValueRequired", "message": "Required value",
         "field": "spec.template.spec.containers[0].image"}]
    assert body["message"].startswith('Deployment.apps "web" is invalid: [spec.template.metadata.labels: ')
    status, body, _ = call(double, "POST", "/api/v1/namespaces/default/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "labels": {"chapter": "one two"}},
        "spec": {"ports": [{"port": 80}]}})
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.labels"
    assert body["message"].startswith('Service "svc" is invalid: metadata.labels: Invalid value: "one two"')
    status, body, _ = call(double, "POST", "/api/v1/namespaces/default/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"port": 80}})
    assert (status, body["reason"]) == (400, "BadRequest")


def test_server_side_apply_owns_and_prunes_fields(double):
    url = "/apis/networking.istio.io/v1/namespaces/default/virtualservices/vs"
    applied = vs_body("vs", "default", exportTo=["."])
    status, created, _ = call(double, "PATCH", url + "?fieldManager=istio-lab", yaml.safe_dump(applied),
                              content_type="application/apply-patch+yaml")
    assert status == 201 and created["spec"]["exportTo"] == ["."]
    assert _managed(created)[0][:2] == ("istio-lab", "Apply")
    del applied["spec"]["exportTo"]
    status, updated, _ = call(double, "PATCH", url + "?fieldManager=istio-lab", yaml.safe_dump(applied),
                              content_type="application/apply-patch+yaml")
    assert status == 200 and "exportTo" not in updated["spec"]
    status, again, _ = call(double, "PATCH", url + "?fieldManager=istio-lab", yaml.safe_dump(applied),
                            content_type="application/apply-patch+yaml")
    assert again["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]
    # Another applier changing an owned field conflicts, naming the owner.
    other = vs_body("vs", "default", hosts=["other"])
    status, body, _ = call(double, "PATCH", url + "?fieldManager=someone", yaml.safe_dump(other),
                           content_type="application/apply-patch+yaml")
    assert status == 409
    assert body["message"] == 'Apply failed with 1 conflict: conflict with "istio-lab": .spec.hosts'
    # force takes the field over; the server reads it as Go's ParseBool does (the Python client sends True).
    for force in ("True", "true", "1"):
        status, body, _ = call(double, "PATCH", url + f"?fieldManager=someone&force={force}", yaml.safe_dump(other),
                               content_type="application/apply-patch+yaml")
        assert status == 200 and body["spec"]["hosts"] == other["spec"]["hosts"], force
        other["spec"]["hosts"] = [f"other-{force.lower()}"]
    # Fields the server defaulted do not make a list differ: applying what another
    # client created conflicts only when a value really changes.
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    call(double, "POST", "/api/v1/namespaces/default/services", service)
    url = "/api/v1/namespaces/default/services/svc?fieldManager=kubectl"
    status, body, _ = call(double, "PATCH", url, yaml.safe_dump(service), content_type="application/apply-patch+yaml")
    assert status == 200 and body["spec"]["ports"][0]["protocol"] == "TCP"
    service["spec"]["ports"][0]["targetPort"] = 9090
    status, body, _ = call(double, "PATCH", url, yaml.safe_dump(service), content_type="application/apply-patch+yaml")
    assert status == 409
    assert body["message"] == ('Apply failed with 1 conflict: conflict with "python-requests" using v1: '
                               ".spec.ports")


# --------------------------------------------------------------------------- simulated controllers

def test_workloads_report_ready_with_pods_and_endpoints(double):
    call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": "microservice"}})
    template = {"metadata": {"labels": {"app": "tomcat"}}, "spec": {"containers": [
        {"name": "tomcat", "image": "tomcat", "ports": [{"containerPort": 8080, "name": "http"}]}]}}
    for kind, plural in (("Deployment", "deployments"), ("StatefulSet", "statefulsets"), ("DaemonSet", "daemonsets")):
        body = {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": f"t-{plural}"}, "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": "tomcat"}}, "template": template}}
        if kind == "DaemonSet":
            del body["spec"]["replicas"]
        status, created, _ = call(double, "POST", f"/apis/apps/v1/namespaces/microservice/{plural}", body)
        assert status == 201
        stored = call(double, "GET", f"/apis/apps/v1/namespaces/microservice/{plural}/t-{plural}")[1]
        state = stored["status"]
        assert state["observedGeneration"] == stored["metadata"]["generation"]
        if kind == "DaemonSet":
            assert state["numberReady"] == state["desiredNumberScheduled"] == 1
        else:
            assert state["readyReplicas"] == state["availableReplicas"] == state["replicas"] == 2
        if kind == "Deployment":
            assert {c["type"]: c["status"] for c in state["conditions"]} == {"Available": "True",
                                                                            "Progressing": "True"}
        if kind == "StatefulSet":
            assert state["currentRevision"] == state["updateRevision"]
    pods = call(double, "GET", "/api/v1/namespaces/microservice/pods")[1]["items"]
    assert len(pods) == 5 and all(p["status"]["phase"] == "Running" for p in pods)
    assert all(p["status"]["podIP"].startswith("127.") for p in pods)
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "tomcat"}, "spec": {
        "selector": {"app": "tomcat"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    status, created, _ = call(double, "POST", "/api/v1/namespaces/microservice/services", service)
    assert created["spec"]["clusterIP"].startswith("127.") and created["spec"]["ports"][0]["protocol"] == "TCP"
    endpoints = call(double, "GET", "/api/v1/namespaces/microservice/endpoints/tomcat")[1]
    assert len(endpoints["subsets"][0]["addresses"]) == 5
    assert endpoints["subsets"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    slices = call(double, "GET", "/apis/discovery.k8s.io/v1/namespaces/microservice/endpointslices"
                  "?labelSelector=kubernetes.io%2Fservice-name%3Dtomcat")[1]["items"]
    assert len(slices) == 1 and len(slices[0]["endpoints"]) == 5
    # A Service selecting nothing has an Endpoints object without addresses.
    service["metadata"]["name"] = "nobody"
    service["spec"]["selector"] = {"app": "nobody"}
    call(double, "POST", "/api/v1/namespaces/microservice/services", service)
    assert "subsets" not in call(double, "GET", "/api/v1/namespaces/microservice/endpoints/nobody")[1]
    # Deleting the workloads removes their pods and empties the endpoints.
    for plural in ("deployments", "statefulsets", "daemonsets"):
        call(double, "DELETE", f"/apis/apps/v1/namespaces/microservice/{plural}/t-{plural}")
    assert call(double, "GET", "/api/v1/namespaces/microservice/pods")[1]["items"] == []
    assert "subsets" not in call(double, "GET", "/api/v1/namespaces/microservice/endpoints/tomcat")[1]


def test_controllers_off_leave_status_empty(istio_crds):
    with KubeDouble(crds=[istio_crds], controllers=False) as double:
        template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w", "image": "w"}]}}
        body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template}}
        call(double, "POST", "/apis/apps/v1/namespaces/default/deployments", body)
        assert "status" not in call(double, "GET", "/apis/apps/v1/namespaces/default/deployments/web")[1]
        assert call(double, "GET", "/api/v1/namespaces/default/pods")[1]["items"] == []


def _metallb_objects(shared_dir) -> list[dict]:
    native = shared_dir / "upstream" / "metallb-0.16.1" / "metallb-native.yaml"
    return [d for d in yaml.safe_load_all(native.read_text()) if d]


def _install(double, objects) -> None:
    store = double.store
    for obj in objects:
        rtype = store.type_for_kind(obj["apiVersion"], obj["kind"])
        path = f"/{'apis/' + rtype.group if rtype.group else 'api'}/{rtype.version}"
        if rtype.namespaced:
            path += f"/namespaces/{obj['metadata'].get('namespace', 'default')}"
        status, body, _ = call(double, "POST", f"{path}/{rtype.plural}", obj)
        assert status == 201, body


POOL = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "lab", "namespace": "metallb-system"},
        "spec": {"addresses": ["127.0.10.240-127.0.10.250"]}}
POOLS_URL = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools"


def test_metallb_webhook_refuses_until_it_has_endpoints(shared_dir):
    with KubeDouble(controllers=False) as double:
        _install(double, _metallb_objects(shared_dir))
        status, body, _ = call(double, "POST", POOLS_URL, POOL)
        assert (status, body["reason"]) == (500, "InternalError")
        assert body["message"].startswith('Internal error occurred: failed calling webhook '
                                          '"ipaddresspoolvalidationwebhook.metallb.io": failed to call webhook: Post '
                                          '"https://metallb-webhook-service.metallb-system.svc:443/validate-metallb-io-'
                                          'v1beta1-ipaddresspool?timeout=10s": dial tcp ')
        assert body["message"].endswith(": connect: connection refused")
        assert body["details"]["causes"][0]["message"] == body["message"][len("Internal error occurred: "):]
        assert call(double, "GET", POOLS_URL + "/lab")[0] == 404
    # With controllers the webhook answers at once, after the warm-up failures asked for.
    with KubeDouble(webhook_warmup_failures=2) as double:
        _install(double, _metallb_objects(shared_dir))
        statuses = [call(double, "POST", POOLS_URL, POOL)[0] for _ in range(3)]
        assert statuses == [500, 500, 201]


def test_load_balancer_ips_come_from_metallb_pools(shared_dir):
    with KubeDouble() as double:
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "istio-ingressgateway"},
                   "spec": {"type": "LoadBalancer", "selector": {"istio": "ingressgateway"},
                            "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}}
        call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": "istio-system"}})
        call(double, "POST", "/api/v1/namespaces/istio-system/services", service)
        objects = _metallb_objects(shared_dir)
        _install(double, objects)
        assert "ingress" not in call(double, "GET", "/api/v1/namespaces/istio-system/services/istio-ingressgateway"
                                     )[1].get("status", {}).get("loadBalancer", {})
        assert call(double, "POST", POOLS_URL, POOL)[0] == 201
        svc = call(double, "GET", "/api/v1/namespaces/istio-system/services/istio-ingressgateway")[1]
        assert svc["status"]["loadBalancer"]["ingress"][0]["ip"] == "127.0.10.240"
        assert svc["spec"]["ports"][0]["nodePort"] >= 30000
        # Pinning with the MetalLB annotation moves it.
        status, pinned, _ = call(double, "PATCH", "/api/v1/namespaces/istio-system/services/istio-ingressgateway", {
            "metadata": {"annotations": {"metallb.io/loadBalancerIPs": "127.0.10.245"}}},
            content_type="application/merge-patch+json")
        svc = call(double, "GET", "/api/v1/namespaces/istio-system/services/istio-ingressgateway")[1]
        assert svc["status"]["loadBalancer"]["ingress"][0]["ip"] == "127.0.10.245"
    with KubeDouble() as double:
        # No MetalLB controller: no address, whatever the pools.
        _install(double, [o for o in _metallb_objects(shared_dir)
                          if o["kind"] not in ("Deployment", "ValidatingWebhookConfiguration")])
        call(double, "POST", POOLS_URL, POOL)
        call(double, "POST", "/api/v1/namespaces/default/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
        assert not call(double, "GET", "/api/v1/namespaces/default/services/lb")[1]["status"]["loadBalancer"]


# --------------------------------------------------------------------------- log, faults, watch

def test_request_log_and_fault_injection(double):
    mark = double.mark()
    double.inject("GET", r"/namespaces/kube-system$", 503, times=2)
    statuses = [call(double, "GET", "/api/v1/namespaces/kube-system")[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    double.inject("POST", r"/configmaps$", 409)
    status, body, _ = call(double, "POST", "/api/v1/namespaces/default/configmaps",
                           {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert (status, body["reason"]) == (409, "Conflict")
    records = double.requests(mark)
    assert [(r["verb"], r["status"], r["resource"], r["name"]) for r in records] == [
        ("get", 503, "namespaces", "kube-system"), ("get", 503, "namespaces", "kube-system"),
        ("get", 200, "namespaces", "kube-system"), ("create", 409, "configmaps", None)]
    call(double, "DELETE", "/api/v1/namespaces/default/configmaps/x?dryRun=All")
    last = double.requests()[-1]
    assert (last["verb"], last["namespace"], last["dry_run"], last["group"]) == ("delete", "default", True, "")
    # The same log over HTTP, for out-of-process users; those calls are not logged.
    with urllib.request.urlopen(double.url + "/_double/requests") as response:
        logged = json.load(response)
        assert logged["count"] == len(logged["requests"]) == len(double.requests())
    with urllib.request.urlopen(double.url + f"/_double/requests?since={mark}") as response:
        assert json.load(response)["requests"] == records + double.requests()[-1:]
    urllib.request.urlopen(urllib.request.Request(double.url + "/_double/requests", method="DELETE")).close()
    assert double.requests() == []


def test_watch_streams_changes(double):
    import threading

    events = []

    def watch():
        request = urllib.request.Request(double.url + "/api/v1/namespaces/default/configmaps?watch=true"
                                         "&timeoutSeconds=1", headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
        with urllib.request.urlopen(request) as response:
            for line in response:
                events.append(json.loads(line))

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.3)
    call(double, "POST", "/api/v1/namespaces/default/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                                   "metadata": {"name": "w"}})
    time.sleep(0.2)
    call(double, "DELETE", "/api/v1/namespaces/default/configmaps/w")
    thread.join(5)
    # A watch without resourceVersion starts with what exists (kube-root-ca.crt, in every namespace).
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "kube-root-ca.crt"), ("ADDED", "w"), ("DELETED", "w")]


# --------------------------------------------------------------------------- clients

def test_fixture_and_dynamic_client(kube, shared_dir):
    """The kube fixture's helpers: the python DynamicClient against the double."""
    kube.require_double("the simulated Deployment controller makes prometheus available at once")
    assert kube.env["K8S_AUTH_KUBECONFIG"] == kube.kubeconfig
    kube.ensure_namespace("istio-system")
    mark = kube.mark()
    applied = kube.apply_file(shared_dir / "upstream" / "istio-1.30.3" / "addons" / "prometheus.yaml")
    assert {o["kind"] for o in applied} >= {"Deployment", "Service", "ServiceAccount", "ConfigMap"}
    # Fixture calls are tagged and left out of the counts unless asked for.
    assert kube.writes(mark) == [] and kube.requests(mark, include_fixture=True)
    deployment = kube.get("apps/v1", "Deployment", "prometheus", "istio-system")
    assert deployment["status"]["availableReplicas"] == 1
    assert kube.get(ISTIO, "Gateway", "missing", "istio-system") is None
    assert [s["metadata"]["name"] for s in kube.list("v1", "Service", "istio-system")] == ["prometheus"]
    kube.install_metallb_crds()
    assert kube.list("metallb.io/v1beta1", "IPAddressPool", "default") == []


def test_kubernetes_core_playbook_against_the_double(kube, shared_dir, tmp_path):
    """kubernetes.core.k8s (src, state present/absent, wait) and k8s_info work
    against the double, and applying again changes nothing. One playbook run
    (each costs seconds here); check mode is the server-side dryRun tested above."""
    kube.ensure_namespace("istio-system")
    apply_zipkin = {"src": str(shared_dir / "upstream" / "istio-1.30.3" / "addons" / "zipkin.yaml"),
                    "namespace": "istio-system", "wait": True, "wait_timeout": 30}
    playbook = tmp_path / "k8s.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Exercise kubernetes.core against the double", "hosts": "localhost", "connection": "local",
        "gather_facts": False, "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [
            {"name": "Apply the upstream manifest and wait", "kubernetes.core.k8s": apply_zipkin},
            {"name": "Apply it again", "kubernetes.core.k8s": apply_zipkin, "register": "again"},
            {"name": "Remove a gateway that is gone", "kubernetes.core.k8s": {
                "state": "absent", "api_version": ISTIO, "kind": "Gateway", "name": "old",
                "namespace": "istio-system", "wait": True}},
            {"name": "Read the zipkin Service", "kubernetes.core.k8s_info": {
                "kind": "Service", "name": "zipkin", "namespace": "istio-system"}, "register": "zipkin"},
            {"name": "Check the second apply and the Service", "ansible.builtin.assert": {"that": [
                "again is not changed", "zipkin.resources | length == 1",
                "zipkin.resources[0].spec.ports[0].port == 9411"]}},
        ]}], sort_keys=False))
    mark = kube.mark()
    checked = run_module("kubernetes.core.k8s", {"definition": {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "checked"}}}, kube=kube, check=True)
    assert checked["changed"] is True and not checked.get("failed"), checked
    assert kube.writes(mark) == [] and kube.get("v1", "Namespace", "checked") is None
    result = run_playbook(playbook, kube=kube, inventory="localhost,")
    assert result.rc == 0 and result.changed == 1 and result.failed == 0, result
    assert kube.get("apps/v1", "Deployment", "zipkin", "istio-system")["status"]["readyReplicas"] == 1
    # The second apply sent only no-op patches: nothing was created after the first pass.
    creates = [w for w in kube.writes() if w["verb"] == "create"]
    assert sorted(w["resource"] for w in creates) == ["deployments", "services", "services"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_get_apply_and_server_side_apply(shared_dir, istio_crds, tmp_path):
    """kubectl works against the double with TLS (client-go sends the token only over TLS)."""
    with KubeDouble(crds=[istio_crds], tls=True) as double:
        env = {"KUBECONFIG": double.write_kubeconfig(tmp_path / "kubeconfig"), "PATH": "/usr/bin:/bin",
               "HOME": str(tmp_path)}

        def kubectl(*args):
            return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=60)

        namespace = tmp_path / "ns.yaml"
        namespace.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-system\n")
        assert kubectl("apply", "-f", str(namespace)).returncode == 0
        addons = shared_dir / "upstream" / "istio-1.30.3" / "addons"
        result = kubectl("apply", "-f", str(addons / "kiali.yaml"))
        assert result.returncode == 0 and "deployment.apps/kiali created" in result.stdout, result.stderr
        result = kubectl("apply", "--server-side", "-f", str(addons / "grafana.yaml"))
        assert result.returncode == 0 and "deployment.apps/grafana serverside-applied" in result.stdout, result.stderr
        gateway = tmp_path / "gw.yaml"
        gateway.write_text(yaml.safe_dump({"apiVersion": ISTIO, "kind": "Gateway", "metadata": {
            "name": "gw", "namespace": "istio-system"}, "spec": {"selector": {"istio": "ingressgateway"}}}))
        assert kubectl("apply", "--server-side", "-f", str(gateway)).returncode == 0
        mark = double.mark()
        result = kubectl("apply", "--server-side", "-f", str(gateway))
        assert result.returncode == 0
        patches = [r for r in double.requests(mark) if r["verb"] == "patch"]
        assert len(patches) == 1 and patches[0]["field_manager"] == "kubectl"
        result = kubectl("get", "deploy,svc", "-n", "istio-system", "-o", "name")
        assert set(result.stdout.split()) >= {"deployment.apps/kiali", "deployment.apps/grafana", "service/kiali"}
        assert "gw" in kubectl("get", "gateways.networking.istio.io", "-A").stdout


# --------------------------------------------------------------------------- proxy, CLI, speed

def test_counting_proxy_forwards_with_the_real_credentials(istio_crds, tmp_path):
    """A double with its own token stands in for a real cluster behind the proxy."""
    with KubeDouble(crds=[istio_crds], token="cluster-secret") as cluster:
        real_kubeconfig = cluster.write_kubeconfig(tmp_path / "real.yaml", context="real")
        proxy = CountingProxy(real_kubeconfig, "real").start()
        try:
            kubeconfig = proxy.write_kubeconfig(tmp_path / "proxy.yaml")
            target = KubeTarget(kubeconfig, "proxy", proxy, None, tmp_path)
            assert not target.is_double
            target.ensure_namespace("lab")
            mark = target.mark()
            status, body, _ = call(type("P", (), {"url": proxy.url}), "POST", "/apis/networking.istio.io/v1/"
                                   "namespaces/lab/gateways", {"apiVersion": ISTIO, "kind": "Gateway",
                                                               "metadata": {"name": "gw"}, "spec": {}})
            assert status == 201
            assert [(w["verb"], w["resource"], w["status"]) for w in target.writes(mark)] == [
                ("create", "gateways", 201)]
            assert target.get(ISTIO, "Gateway", "gw", "lab")["metadata"]["name"] == "gw"
            assert {r["status"] for r in cluster.requests()} <= {200, 201, 404}
            # Another token is the client's own: forwarded as it is (never swapped for the real
            # credentials), so the cluster refuses it. Without any token the proxy refuses.
            mark = cluster.mark()
            assert call(type("P", (), {"url": proxy.url}), "GET", "/api/v1/namespaces", token="bad")[0] == 401
            assert [r["status"] for r in cluster.requests(mark)] == [401]
            assert call(type("P", (), {"url": proxy.url}), "GET", "/api/v1/namespaces", token=None)[0] == 401
            assert cluster.requests(mark + 1) == []
            # (tests/api/test_real_cluster_mode.py: a token the cluster knows passes as its own user.)
        finally:
            proxy.stop()


def test_counting_proxy_with_tls_serves_kubectl_and_counts(istio_crds, tmp_path):
    """`CountingProxy(tls=True)` (the benchmark's front to a real cluster, here a
    TLS double): its kubeconfig carries the CA, a client verifying it gets
    through (kubectl when installed: it sends the token only over TLS), and every
    request is counted at the proxy."""
    with KubeDouble(crds=[istio_crds], token="cluster-secret", tls=True) as cluster:
        real_kubeconfig = cluster.write_kubeconfig(tmp_path / "real.yaml", context="real")
        proxy = CountingProxy(real_kubeconfig, "real", tls=True).start()
        try:
            assert proxy.url.startswith("https://127.0.0.1:")
            kubeconfig = proxy.write_kubeconfig(tmp_path / "proxy.yaml")
            written = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]
            assert written["server"] == proxy.url and written["certificate-authority-data"]
            manifest = tmp_path / "ns.yaml"
            manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: through-tls\n")
            mark = proxy.mark()
            if shutil.which("kubectl"):
                env = {"KUBECONFIG": kubeconfig, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
                result = subprocess.run(["kubectl", "apply", "-f", str(manifest)], env=env, capture_output=True,
                                        text=True, timeout=60)
                assert result.returncode == 0 and "namespace/through-tls created" in result.stdout, result.stderr
                result = subprocess.run(["kubectl", "get", "ns", "through-tls", "-o", "name"], env=env,
                                        capture_output=True, text=True, timeout=60)
                assert result.returncode == 0 and result.stdout.strip() == "namespace/through-tls", result.stderr
            else:
                from kubernetes import client, config

                api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
                api.create_namespace({"metadata": {"name": "through-tls"}})
                assert api.read_namespace("through-tls").metadata.name == "through-tls"
            counted = proxy.requests(mark)
            assert {r["status"] for r in counted} <= {200, 201, 404} and 401 not in {r["status"] for r in counted}
            assert [(r["verb"], r["resource"], r["status"]) for r in counted if r["verb"] == "create"] == [
                ("create", "namespaces", 201)]
            assert any(r["verb"] == "get" and r.get("resource") == "namespaces" for r in counted)
            # The cluster got the write, with its own token.
            assert ("create", "namespaces", 201) in [(r["verb"], r.get("resource"), r["status"])
                                                      for r in cluster.requests()]
            # Plain http to the TLS proxy gets nowhere and is not counted.
            before = proxy.mark()
            with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
                urllib.request.urlopen(proxy.url.replace("https://", "http://") + "/version", timeout=5)
            assert proxy.mark() == before
        finally:
            proxy.stop()


def test_real_cluster_mode_counts_and_cleans_up(istio_crds, tmp_path):
    """The `kube` fixture's real-cluster path, with a double as the cluster: the
    namespaces a test creates are deleted afterwards, the others are kept."""
    from tests import conftest

    with KubeDouble(crds=[istio_crds], token="cluster-secret") as cluster:
        cluster.store.create(cluster.store.type_for("", "v1", "namespaces"), None,
                             {"metadata": {"name": "platform"}}, WriteContext())
        real_kubeconfig = cluster.write_kubeconfig(tmp_path / "real.yaml", context="real")
        fixture = conftest._real_cluster(tmp_path, real_kubeconfig)
        target = next(fixture)
        assert not target.is_double and target.env["K8S_AUTH_CONTEXT"] == "proxy"
        with pytest.raises(pytest.skip.Exception):
            target.require_double("fault injection")
        target.ensure_namespace("scratch")
        target.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "scratch"}})
        fixture.close()
        names = {key[1] for key in cluster.store.objects[("", "namespaces")]}
        assert "scratch" not in names and {"platform", "default"} <= names
        assert cluster.store.find("", "configmaps", "scratch", "c") is None


def test_deprecated_crd_version_warns(metallb_crds):
    with KubeDouble(crds=[metallb_crds]) as double:
        status, _, headers = call(double, "GET", "/apis/metallb.io/v1beta1/namespaces/default/bgppeers")
        assert status == 200 and headers["Warning"] == '299 - "v1beta1 is deprecated, please use v1beta2"'
        assert call(double, "GET", "/apis/metallb.io/v1beta2/namespaces/default/bgppeers")[2]["Warning"] is None


def test_cli_serves_until_sigterm(tmp_path):
    kubeconfig = tmp_path / "double.yaml"
    process = subprocess.Popen([sys.executable, "-m", "tests.kube_double", "--kubeconfig", str(kubeconfig),
                                "--metallb-crds", "--context", "lab1"], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["current-context"] == "lab1" and config["clusters"][0]["cluster"]["server"] == url
        assert kubeconfig.stat().st_mode & 0o777 == 0o600
        status, groups, _ = call(type("D", (), {"url": url}), "GET", "/apis")
        assert "metallb.io" in {g["name"] for g in groups["groups"]}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_starts_fast_with_istio_crds(istio_crds):
    KubeDouble(crds=[istio_crds])  # first parse, cached for the process
    started = time.perf_counter()
    with KubeDouble(crds=[istio_crds]) as double:
        assert call(double, "GET", "/apis/networking.istio.io/v1")[0] == 200
    assert time.perf_counter() - started < 0.5


def test_the_benchmarks_server_cost_model_holds_each_write_in_a_slot():
    """bench/run --write-cost-ms: every write holds one of the modelled server's slots for the cost; reads are
    not slowed. Off (0) by default, as every test runs the double."""
    assert KubeDouble().write_cost == 0
    cost = 0.2
    with KubeDouble(write_cost=cost, server_slots=2) as double:
        def create(name):
            call(double, "POST", "/api/v1/namespaces/default/configmaps",
                 {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})

        started = time.monotonic()
        writers = [threading.Thread(target=create, args=(f"c{i}",)) for i in range(4)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        took = time.monotonic() - started
        assert 2 * cost <= took < 4 * cost  # four writes, two at a time
        started = time.monotonic()
        assert call(double, "GET", "/api/v1/namespaces/default/configmaps/c0")[0] == 200
        assert time.monotonic() - started < cost
