"""The `kube` fixture's real-cluster mode (ISTIO_LAB_TEST_KUBECONFIG), proven
without a real cluster: a double poses as the remote cluster (its own admin
token, namespaces that stay Terminating as on kube-apiserver) behind the
counting proxy, and the fixture's code (`real_cluster_target`) runs against it.

- After a test, the fixture deletes the namespaces the test created and waits
  until they are gone (issue 14: without the wait the next test's creates got
  403 NamespaceTerminating), and removes the cluster-scoped objects the test
  created unless it leaves them.
- The proxy forwards a client's own Authorization header (a student's
  ServiceAccount token) instead of the kubeconfig's credentials.
- Two pytest workers share one cluster: the fixture gives each test the cluster
  to itself in turn (issue 23: the two workers of `scripts/test` collided on
  the course's names, 409 AlreadyExists for Gateway ingressgateway80).

These tests build their own double (they never use ISTIO_LAB_TEST_KUBECONFIG)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time

import pytest
import yaml

from tests.api.test_double import call
from tests.conftest import real_cluster_target
from tests.helpers import REPO
from tests.kube_double import KubeDouble
from tests.kube_double.proxy import CountingProxy
from tests.kube_double.store import WriteContext

pytestmark = pytest.mark.api

ADMIN_TOKEN = "remote-admin-token"  # the "remote cluster's" credentials, known only to the proxy's kubeconfig
DELAY = 1.0


@pytest.fixture
def remote(tmp_path):
    """A double standing in for a remote cluster, and a kubeconfig for it."""
    with KubeDouble(token=ADMIN_TOKEN, namespace_deletion_delay=DELAY, tokens={"plain-user-token": "jane"},
                    tls=True) as double:
        yield double, double.write_kubeconfig(tmp_path / "remote.kubeconfig", context="remote")


def _namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _cluster_role(name):
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}


def test_fixture_waits_until_the_namespaces_it_deletes_are_gone(remote, tmp_path):
    double, kubeconfig = remote
    fixture = real_cluster_target(tmp_path / "first", kubeconfig)
    (tmp_path / "first").mkdir()
    kube = next(fixture)
    assert not kube.is_double
    kube.ensure_namespace("istio-system")
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "istio-system"},
                 "data": {"a": "b"}})
    start = time.monotonic()
    with pytest.raises(StopIteration):
        next(fixture)  # the fixture's teardown
    took = time.monotonic() - start
    assert took >= DELAY * 0.9, f"the teardown returned after {took:.2f}s, before the namespace was gone"
    assert double.store.find("", "namespaces", None, "istio-system") is None
    # The next test can create the namespace and its content at once.
    (tmp_path / "second").mkdir()
    fixture = real_cluster_target(tmp_path / "second", kubeconfig)
    kube = next(fixture)
    kube.ensure_namespace("istio-system")
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "istio-system"},
                 "data": {"a": "b"}})
    fixture.close()


def test_fixture_removes_the_cluster_objects_a_test_created_unless_it_leaves_them(remote, tmp_path, shared_dir):
    double, kubeconfig = remote
    double.install_crds(shared_dir / "crds" / "istio-1.30.3-crds.yaml")  # there before: stays
    double.store.create(double.store.type_for("rbac.authorization.k8s.io", "v1", "clusterroles"), None,
                        _cluster_role("there-before"), WriteContext(user_agent="kubectl"))
    for leaves in (False, True):
        work = tmp_path / str(leaves)
        work.mkdir()
        fixture = real_cluster_target(work, kubeconfig, leaves_cluster_objects=leaves)
        kube = next(fixture)
        kube.create(_cluster_role(f"made-by-test-{leaves}"))
        kube.install_metallb_crds()
        fixture.close()
        roles = {r["metadata"]["name"] for r in double.store.items("rbac.authorization.k8s.io", "clusterroles")}
        crds = {c["metadata"]["name"] for c in double.store.items("apiextensions.k8s.io",
                                                                  "customresourcedefinitions")}
        assert ("ipaddresspools.metallb.io" in crds) is leaves
        assert "virtualservices.networking.istio.io" in crds
        assert (f"made-by-test-{leaves}" in roles) is leaves
        assert "there-before" in roles


def test_proxy_forwards_a_clients_own_token_and_only_then_not_its_credentials(remote, tmp_path):
    double, kubeconfig = remote
    proxy = CountingProxy(kubeconfig).start()
    try:
        # The fixture's token: the proxy sends the kubeconfig's credentials (the remote admin).
        mark = double.mark()
        status, _, _ = call(proxy, "GET", "/api/v1/namespaces", token=proxy.token)
        assert status == 200 and [r["user"] for r in double.requests(mark)] == ["kubernetes-admin"]
        # Another token: forwarded as it is, the proxy's credentials are not used.
        mark = double.mark()
        assert call(proxy, "GET", "/api/v1/namespaces", token="plain-user-token")[0] == 200
        assert [r["user"] for r in double.requests(mark)] == ["jane"]
        assert proxy.requests()[-1]["own_credentials"] is True
        # A token the cluster does not know: the cluster's 401, not the proxy's credentials.
        mark = double.mark()
        assert call(proxy, "GET", "/api/v1/namespaces", token="nobody")[0] == 401
        assert [r["status"] for r in double.requests(mark)] == [401]
        # No credentials at all: the proxy refuses, nothing reaches the cluster.
        mark = double.mark()
        assert call(proxy, "GET", "/api/v1/namespaces", token=None)[0] == 401
        assert double.requests(mark) == []
    finally:
        proxy.stop()


def test_a_students_service_account_token_passes_through_the_fixtures_proxy(remote, tmp_path):
    """What test_shared_cluster_tenants does on a real cluster: a student's kubeconfig (their
    ServiceAccount token, the fixture's proxy as server) talks to the cluster as the student."""
    double, kubeconfig = remote
    fixture = real_cluster_target(tmp_path, kubeconfig)
    kube = next(fixture)
    try:
        kube.ensure_namespace("lab-alice")
        token = "token-of-alice"
        kube.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                     "metadata": {"name": "student-token", "namespace": "lab-alice",
                                  "annotations": {"kubernetes.io/service-account.name": "student"}},
                     "data": {"token": base64.b64encode(token.encode()).decode()}})
        admin = yaml.safe_load(open(kube.kubeconfig, encoding="utf-8"))
        admin["users"][0]["user"]["token"] = token
        student_config = tmp_path / "alice.kubeconfig"
        student_config.write_text(yaml.safe_dump(admin))
        from kubernetes import config
        from kubernetes.client import CoreV1Api

        mark = double.mark()
        CoreV1Api(config.new_client_from_config(config_file=str(student_config))).list_namespaced_config_map(
            "lab-alice")
        assert [r["user"] for r in double.requests(mark)] == ["system:serviceaccount:lab-alice:student"]
        assert [r["status"] for r in kube.requests(include_fixture=True)][-1] == 200
    finally:
        fixture.close()
    assert double.store.find("", "namespaces", None, "lab-alice") is None


# Tests that create the same course objects (the `lab` fixture creates Gateway microservice/
# ingressgateway80 with the fixture's client) or run modules against the cluster, and one that
# must skip on a real cluster.
SHARED_NAME_TESTS = [
    "tests/api/test_istio_modules.py::test_definitions_report_each_object",
    "tests/api/test_istio_modules.py::test_a_list_is_validated_whole_before_the_first_write",
    "tests/api/test_istio_modules.py::test_validate_warn_relaxes_cross_object_rules_never_the_schema",
    "tests/api/test_istio_modules.py::test_api_unreachable",
    "tests/api/test_double.py::test_fixture_and_dynamic_client",
]


def test_two_workers_take_turns_on_one_cluster(remote, tmp_path, shared_dir):
    """`scripts/test`'s two workers against one remote cluster (a TLS double, as the real-cluster
    fixture sees it: ISTIO_LAB_TEST_KUBECONFIG): the tests that create the same names pass, and
    the one that needs the in-process double skips instead of failing."""
    double, kubeconfig = remote
    double.install_crds(shared_dir / "crds" / "istio-1.30.3-crds.yaml")  # as docs/testing.md has you do
    env = {**os.environ, "ISTIO_LAB_TEST_KUBECONFIG": str(kubeconfig), "ISTIO_LAB_TEST_LOCK_DIR": str(tmp_path),
           "ISTIO_LAB_TEST_NAMESPACE_TIMEOUT": "60"}
    env.pop("ISTIO_LAB_TEST_CONTEXT", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "load", "-p", "no:cacheprovider",
                             "-q", "-rs", "--basetemp", str(tmp_path / "basetemp"), *SHARED_NAME_TESTS],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "4 passed, 1 skipped" in summary, result.stdout[-4000:]
    assert "needs the in-process API double" in result.stdout
    # Each test's namespaces were gone before the next began: nothing is left behind.
    assert {key[1] for key in double.store.objects[("", "namespaces")]} == {
        "default", "kube-system", "kube-public", "kube-node-lease"}
