"""lab_manifests (one task for manifests of any kind) against a Kubernetes
API: the double, or a real cluster with ISTIO_LAB_TEST_KUBECONFIG. Results are
checked through the API and the fixture's request counters only. Objects go
to namespaces the tests create (a real cluster's fixture deletes them after);
the one test that installs cluster-wide CRDs needs the double."""

import base64
import copy

import pytest
import yaml

from tests.conftest import shared_path
from tests.helpers import run_module

pytestmark = pytest.mark.api

NS = "lab-manifests-test"
MANAGED = {"app.kubernetes.io/managed-by": "istio-lab"}
APPLIED_HASH = "istio-lab.io/applied-hash"
PASSWORD = "Student07-grafana-pass"


def objects():
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dashboards", "namespace": NS},
         "data": {"mtls.json": '{"title": "\U0001F510mTLS"}'}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                  "strategy": {"type": "RollingUpdate", "rollingUpdate": None},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                                        "ports": [{"containerPort": 80}],
                                                        "readinessProbe": {"tcpSocket": {"port": 80},
                                                                           "initialDelaySeconds": 0}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
         "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 80}]}},
    ]


SECRET = {"name": "admin", "namespace": NS, "string_data": {"password": PASSWORD}}


def args(**extra):
    return {"manifests": objects(), "secrets": [SECRET], "wait_timeout": 120, "retry_delay": 1, **extra}


def test_create_then_a_rerun_writes_nothing(kube):
    created = run_module("lab_manifests", args(wait=True, wait_for=[{"kind": "Endpoints", "namespace": NS,
                                                                     "name": "web"}]), kube=kube)
    assert created["changed"], created.get("msg")
    assert [(r["kind"], r["action"], r["reason"]) for r in created["results"]] == [
        ("Namespace", "created", "missing"), ("ConfigMap", "created", "missing"),
        ("Deployment", "created", "missing"), ("Service", "created", "missing"), ("Secret", "created", "missing")]
    assert [w["kind"] for w in created["waited"]] == ["Deployment", "Endpoints"]
    assert created["waited"][1]["addresses"]

    dashboards = kube.get("v1", "ConfigMap", "dashboards", NS)
    assert "\U0001F510mTLS" in dashboards["data"]["mtls.json"]
    assert dashboards["metadata"]["labels"] == MANAGED
    assert dashboards["metadata"]["annotations"][APPLIED_HASH].startswith("sha256:")
    secret = kube.get("v1", "Secret", "admin", NS)
    assert base64.b64decode(secret["data"]["password"]).decode() == PASSWORD
    assert APPLIED_HASH not in (secret["metadata"].get("annotations") or {})
    deployment = kube.get("apps/v1", "Deployment", "web", NS)
    assert deployment["metadata"]["managedFields"][0]["manager"] == "istio-lab"

    mark = kube.mark()
    again = run_module("lab_manifests", args(wait=True), kube=kube)
    assert not again["changed"], again.get("msg")
    assert {r["action"] for r in again["results"]} == {"unchanged"}
    assert kube.writes(mark) == []
    # discovery of v1 and apps/v1, one LIST per kind and scope; the rollout read from the LIST
    assert again["api_requests"] == {"discovery": 2, "list": 5}
    for result in (created, again):
        assert PASSWORD not in str(result)
        assert base64.b64encode(PASSWORD.encode()).decode() not in str(result)


def test_drift_and_a_changed_manifest_write_only_their_object(kube):
    run_module("lab_manifests", args(), kube=kube)
    live = kube.get("v1", "Service", "web", NS)
    edited = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
              "spec": {"selector": {"app": "not-web"}}}
    kube.apply(edited)
    assert kube.get("v1", "Service", "web", NS)["spec"]["selector"] == {"app": "not-web"}

    mark = kube.mark()
    repaired = run_module("lab_manifests", args(), kube=kube)
    assert [(r["kind"], r["reason"]) for r in repaired["results"] if r["action"] != "unchanged"] == \
        [("Service", "drifted")]
    assert {(w["resource"], w["name"]) for w in kube.writes(mark)} == {("services", "web")}
    assert kube.get("v1", "Service", "web", NS)["spec"]["selector"] == live["spec"]["selector"]

    changed = args()
    changed["manifests"][2]["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    mark = kube.mark()
    result = run_module("lab_manifests", changed, kube=kube)
    assert [(r["kind"], r["reason"]) for r in result["results"] if r["action"] != "unchanged"] == \
        [("Deployment", "changed")]
    assert {(w["resource"], w["name"]) for w in kube.writes(mark)} == {("deployments", "web")}


def test_check_mode_on_a_fresh_namespace_writes_nothing(kube):
    mark = kube.mark()
    result = run_module("lab_manifests", args(wait=True), kube=kube, check=True, diff=True)
    assert result["changed"], result.get("msg")
    assert {r["action"] for r in result["results"]} == {"created"}
    assert result["waited"] == []
    assert kube.writes(mark) == []
    assert kube.get("v1", "Namespace", NS) is None
    assert PASSWORD not in str(result)


def test_a_refused_object_is_named_and_the_others_are_written(kube):
    bad = args()
    bad["manifests"].append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid",
                                                                                    "namespace": NS}})
    result = run_module("lab_manifests", bad, kube=kube)
    assert result.get("failed"), result
    assert "ConfigMap lab-manifests-test/Not_Valid (manifests[4]): the API server refused the apply" in result["msg"]
    assert kube.get("v1", "Service", "web", NS) is not None


def _upstream_namespaced(name):
    path = shared_path() / "upstream" / "istio-1.30.3" / "addons" / f"{name}.yaml"
    if not path.is_file():
        pytest.skip(f"{path} not found (set ISTIO_LAB_SHARED)")
    found = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            doc = copy.deepcopy(doc)
            doc["metadata"]["namespace"] = NS
            found.append(doc)
    return found


def test_upstream_manifests_whose_stored_form_differs_need_no_write(kube):
    """Prometheus' Deployment holds a null rollingUpdate, a zero
    initialDelaySeconds and an empty subPath, which the API server does not
    store: a re-run must not see drift in that."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    manifests = [namespace, *_upstream_namespaced("prometheus")]
    first = run_module("lab_manifests", {"manifests": manifests}, kube=kube)
    assert first["changed"], first.get("msg")
    mark = kube.mark()
    again = run_module("lab_manifests", {"manifests": manifests}, kube=kube)
    assert not again["changed"], again["results"]
    assert kube.writes(mark) == []


def test_crds_first_then_their_custom_resources(kube_no_crds):
    """A CRD and an object of its kind in one call: the CRD is waited for
    until Established, then the object is applied (double only: CRDs are
    cluster-wide and would outlive the test on a real cluster)."""
    kube = kube_no_crds
    crds = [doc for doc in yaml.safe_load_all((shared_path() / "crds" / "metallb-0.16.1-crds.yaml").read_text())
            if doc]
    pool = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "p", "namespace": NS},
            "spec": {"addresses": ["127.240.0.10-127.240.0.20"]}}
    manifests = [pool, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, *crds]
    check = run_module("lab_manifests", {"manifests": manifests}, kube=kube, check=True)
    assert check["changed"] and {r["action"] for r in check["results"]} == {"created"}, check.get("msg")
    first = run_module("lab_manifests", {"manifests": manifests}, kube=kube)
    assert first["changed"], first.get("msg")
    assert kube.get("metallb.io/v1beta1", "IPAddressPool", "p", NS)["spec"]["addresses"] == [
        "127.240.0.10-127.240.0.20"]
    mark = kube.mark()
    again = run_module("lab_manifests", {"manifests": manifests}, kube=kube)
    assert not again["changed"] and kube.writes(mark) == []


def test_files_read_by_the_module_with_a_mirror_and_a_password_from_a_secret(kube, tmp_path):
    """src: the module opens the YAML itself (a file and a directory of them); image_mirror and env_from_secret
    adjust those objects, not the ones given inline."""
    namespace, config, deployment, service = objects()
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "10-deployment.yaml").write_text(yaml.safe_dump(deployment) + "---\n" + yaml.safe_dump(service))
    (folder / "README.txt").write_text("not a manifest")
    namespace_file = tmp_path / "namespace.yml"
    namespace_file.write_text(yaml.safe_dump(namespace))
    src_args = {"src": [str(namespace_file), str(folder)], "manifests": [config], "secrets": [SECRET],
                "image_mirror": "mirror.lab:5000/proxy",
                "env_from_secret": [{"kind": "Deployment", "name": "web", "env": "PASSWORD", "secret": "admin",
                                     "key": "password"}], "wait_timeout": 120, "retry_delay": 1}
    created = run_module("lab_manifests", src_args, kube=kube)
    assert created["changed"], created.get("msg")
    assert sorted((r["kind"], r["action"]) for r in created["results"]) == [
        ("ConfigMap", "created"), ("Deployment", "created"), ("Namespace", "created"), ("Secret", "created"),
        ("Service", "created")]
    container = kube.get("apps/v1", "Deployment", "web", NS)["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "mirror.lab:5000/proxy/library/nginx:1.27"
    assert container["env"] == [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "admin",
                                                                                    "key": "password"}}}]

    mark = kube.mark()
    again = run_module("lab_manifests", src_args, kube=kube)
    assert not again["changed"] and kube.writes(mark) == [], again.get("msg")

    missing = run_module("lab_manifests", {**src_args, "src": [str(tmp_path / "absent.yaml")]}, kube=kube)
    assert missing.get("failed") and f"src: cannot read {tmp_path / 'absent.yaml'}" in missing["msg"]
    (tmp_path / "partial.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    partial = run_module("lab_manifests", {**src_args, "src": [str(tmp_path / "partial.yaml")]}, kube=kube)
    assert partial.get("failed")
    assert f"src {tmp_path / 'partial.yaml'} document 0: an object needs apiVersion, kind and metadata.name" \
        in partial["msg"]
    assert kube.writes(mark) == []


def test_stop_if_changed_decides_without_writing_and_waits_only_for_an_unchanged_install(kube):
    """The Istio role's one call per re-run: the install record as recorded and every wait_for object there, the
    call waits; a record that differs or a missing Deployment stops it, and nothing is written either way."""
    namespace, _, deployment, _ = objects()
    record = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "install-record", "namespace": NS},
              "data": {"version": "1.30.3"}}
    installed = run_module("lab_manifests", {"manifests": [namespace, record, deployment], "wait": True,
                                             "wait_timeout": 120, "retry_delay": 1}, kube=kube)
    assert installed["changed"] and not installed["stopped"], installed.get("msg")
    wait_for = [{"kind": "Deployment", "namespace": NS, "name": "web"}]
    gate = {"manifests": [record], "wait_for": wait_for, "stop_if_changed": True, "wait_timeout": 120,
            "retry_delay": 1}

    mark = kube.mark()
    unchanged = run_module("lab_manifests", gate, kube=kube)
    assert not unchanged["changed"] and not unchanged["stopped"], unchanged.get("msg")
    assert unchanged["waited"] == [{"kind": "Deployment", "namespace": NS, "name": "web", "ready": True}]

    other_version = {**record, "data": {"version": "1.31.0"}}
    differs = run_module("lab_manifests", {**gate, "manifests": [other_version]}, kube=kube)
    assert differs["stopped"] and not differs["changed"] and differs["waited"] == []
    assert [(r["name"], r["action"], r["reason"]) for r in differs["results"]] == [
        ("install-record", "updated", "changed")]

    missing = run_module("lab_manifests", {**gate, "wait_for": [*wait_for, {"kind": "Deployment", "namespace": NS,
                                                                            "name": "absent"}]}, kube=kube)
    assert missing["stopped"] and missing["waited"] == []
    assert kube.writes(mark) == []
    assert kube.get("v1", "ConfigMap", "install-record", NS)["data"] == {"version": "1.30.3"}
