"""The double stores built-in objects as kube-apiserver v1.36 does
(../shared/apiserver-recordings/stored-forms/): every object of the recorded
upstream manifests (MetalLB native, the Istio addons) is submitted as
recorded (server-side apply, fieldManager=recorder, force=true) and read back;
the stored form must equal the recorded one, left aside what the recordings
leave out (uid, resourceVersion, creationTimestamp, generation, managedFields,
status) and the ClusterIPs each server allocates. Also the escaped-emoji
refusal of grafana.json.

These tests exercise the double itself (they never use ISTIO_LAB_TEST_KUBECONFIG)."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from tests.api.test_double import call
from tests.kube_double import KubeDouble
from tests.kube_double.catalog import BUILTIN_TYPES
from tests.kube_double.stored_form import omit_object

pytestmark = pytest.mark.api

RECORDED = ("metallb-native.json", "prometheus.json", "grafana.json", "kiali.json", "zipkin.json")
APPLY = "application/apply-patch+yaml"
_LEFT_OUT = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


def path_of(obj):
    group, _, version = obj["apiVersion"].rpartition("/")
    rtype = next(t for t in BUILTIN_TYPES if t.group == group and t.version == version and t.kind == obj["kind"])
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    namespace = obj["metadata"].get("namespace")
    scope = f"/namespaces/{namespace}" if rtype.namespaced and namespace else ""
    return f"{prefix}{scope}/{rtype.plural}/{urllib.parse.quote(obj['metadata']['name'])}"


def comparable(obj):
    obj = json.loads(json.dumps(obj))
    obj["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in _LEFT_OUT}
    obj.pop("status", None)
    spec = obj.get("spec")
    if obj["kind"] == "Service" and spec.get("clusterIP") not in (None, "None"):
        spec["clusterIP"], spec["clusterIPs"] = "<allocated>", ["<allocated>"]
    return obj


def entries(shared_dir):
    folder = shared_dir / "apiserver-recordings" / "stored-forms"
    for name in RECORDED:
        for index, entry in enumerate(json.loads((folder / name).read_text())):
            yield name, index, entry


@pytest.fixture(scope="module")
def double():
    # Read back right after the write, as recorded: no controller has touched the objects yet.
    with KubeDouble(controllers=False) as running:
        for namespace in ("istio-system", "metallb-system"):  # there before the recordings
            call(running, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": namespace}})
        yield running


def test_every_recorded_object_is_stored_as_the_real_server_stores_it(double, shared_dir):
    compared = 0
    for name, index, entry in entries(shared_dir):
        submitted = entry["submitted"]
        where = f"{name}[{index}] {submitted['kind']} {submitted['metadata']['name']}"
        if entry["status"] == 400:
            body = json.dumps(submitted)  # \u escapes, surrogate pairs for emoji: json.dumps' default
        else:
            body = json.dumps(submitted, ensure_ascii=False)
        status, answer, _ = call(double, "PATCH", path_of(submitted) + "?fieldManager=recorder&force=true",
                                 body.encode("utf-8"), content_type=APPLY)
        assert status == entry["status"], (where, answer)
        if status == 400:
            assert answer == entry["answer"], where
            continue
        status, stored, _ = call(double, "GET", path_of(submitted))
        assert status == 200, where
        assert comparable(stored) == comparable(entry["stored"]), where
        assert comparable(answer) == comparable(entry["stored"]), where  # the apply answers the stored form
        compared += 1
    assert compared == sum(1 for *_, entry in entries(shared_dir) if "stored" in entry) == 38


def test_reapplying_the_recorded_manifests_writes_nothing(double, shared_dir):
    """The stored form is a fixed point: the same apply again moves no resourceVersion (recording 27)."""
    for name, index, entry in entries(shared_dir):
        if entry["status"] == 400:
            continue
        submitted = entry["submitted"]
        before = call(double, "GET", path_of(submitted))[1]["metadata"]["resourceVersion"]
        status, answer, _ = call(double, "PATCH", path_of(submitted) + "?fieldManager=recorder&force=true",
                                 json.dumps(submitted, ensure_ascii=False).encode(), content_type=APPLY)
        assert status == 200 and answer["metadata"]["resourceVersion"] == before, f"{name}[{index}]"


@pytest.mark.parametrize(("value", "stored"), [
    # Go omitempty on value fields: zero not stored; pointers: null not stored, zero kept;
    # fields without omitempty: kept whatever their value.
    ({"replicas": 0}, {"replicas": 0}),
    ({"minReadySeconds": 0, "paused": False}, {}),
    ({"revisionHistoryLimit": None}, {"revisionHistoryLimit": 10}),
    ({"strategy": {"type": "Recreate", "rollingUpdate": None}}, {"strategy": {"type": "Recreate"}}),
])
def test_go_omitempty_rules_on_a_deployment(value, stored):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
                  "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {
                      "metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{
                          "name": "c", "image": "nginx:1.27", "workingDir": "", "ports": [{"containerPort": 0,
                                                                                             "hostPort": 0}],
                          "volumeMounts": [{"name": "v", "mountPath": "/v", "subPath": "", "readOnly": False}]}],
                          "volumes": [{"name": "v", "emptyDir": {}}, {"name": "w"}]}}, **value}}
    with KubeDouble(controllers=False) as double:
        status, answer, _ = call(double, "PATCH", path_of(deployment) + "?fieldManager=t",
                                 json.dumps(deployment).encode(), content_type=APPLY)
    assert status == 201, answer
    spec = answer["spec"]
    for key, expected in stored.items():
        assert spec[key] == expected
    for key in value.keys() - stored.keys():
        assert key not in spec
    container = spec["template"]["spec"]["containers"][0]
    assert "workingDir" not in container and container["ports"] == [{"containerPort": 0, "protocol": "TCP"}]
    assert container["volumeMounts"] == [{"name": "v", "mountPath": "/v"}]
    assert container["imagePullPolicy"] == "IfNotPresent" and container["resources"] == {}
    assert spec["template"]["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]


def test_omit_keeps_what_a_service_or_a_custom_resource_needs():
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "annotations": None, "labels": {}},
               "spec": {"ports": [{"port": 80, "nodePort": 0, "name": ""}], "selector": {}}}
    assert omit_object("", "services", service) == {"apiVersion": "v1", "kind": "Service",
                                                    "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
    custom = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x", "annotations": {}},
              "spec": {"count": 0, "name": "", "list": []}}
    assert omit_object("x", "xs", custom) == {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x"},
                                              "spec": {"count": 0, "name": "", "list": []}}


def test_utf8_apply_is_stored_and_escaped_emoji_refused():
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d", "namespace": "default"},
                  "data": {"dashboard.json": "{\"title\": \"Istio \U0001F680 caf\u00e9\"}"}}
    with KubeDouble() as double:
        url = path_of(config_map) + "?fieldManager=t"
        status, body, _ = call(double, "PATCH", url, json.dumps(config_map).encode(), content_type=APPLY)
        assert (status, body["reason"], body["message"]) == (400, "BadRequest", "error decoding YAML: error "
                                                             "converting YAML to JSON: yaml: found invalid Unicode "
                                                             "character escape code")
        # Other escapes are fine, and so is the same object as UTF-8.
        plain = dict(config_map, data={"a": "caf\u00e9"})
        assert call(double, "PATCH", url, json.dumps(plain).encode(), content_type=APPLY)[0] == 201
        status, body, _ = call(double, "PATCH", url, json.dumps(config_map, ensure_ascii=False).encode(),
                               content_type=APPLY)
        assert status == 200 and body["data"] == config_map["data"]
        # A JSON body (create, merge patch) is JSON to the server: escapes are fine there.
        other = dict(config_map, metadata={"name": "e"})
        assert call(double, "POST", "/api/v1/namespaces/default/configmaps", other)[0] == 201
