"""Namespace deletion on the double, as the real kube-apiserver does it
(../shared/apiserver-recordings/stored-forms/namespace-deletion.json): DELETE
answers 200 with the namespace Terminating; while it terminates, creating
anything in it answers 403 (cause NamespaceTerminating) and creating it again
409; after `namespace_deletion_delay` seconds it is gone with its contents.

These tests exercise the double itself (they never use ISTIO_LAB_TEST_KUBECONFIG)."""

from __future__ import annotations

import json
import time

import pytest

from tests.api.test_double import call
from tests.kube_double import KubeDouble

pytestmark = pytest.mark.api

# What differs from run to run (the recordings were made on another day, on another server).
_VOLATILE = ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "managedFields")


def _comparable(body):
    if isinstance(body, dict) and isinstance(body.get("metadata"), dict):
        meta = body["metadata"]
        kept = {k: v for k, v in meta.items() if k not in _VOLATILE}
        kept.update({f"has {k}": True for k in ("uid", "resourceVersion", "creationTimestamp",
                                                  "deletionTimestamp") if k in meta})
        return dict(body, metadata=kept)
    return body


@pytest.fixture(scope="module")
def recording(shared_dir):
    return json.loads((shared_dir / "apiserver-recordings" / "stored-forms" / "namespace-deletion.json").read_text())


def test_namespace_deletion_answers_as_recorded(recording):
    delay = 1.0
    with KubeDouble(namespace_deletion_delay=delay) as double:
        deleted_at = None
        for step in recording:
            request, expected = step.get("request"), step.get("response")
            if request is None:  # "the namespace controller removed it after about 5.5 s": ours takes `delay`
                time.sleep(delay - (time.monotonic() - deleted_at) + 0.05)
                continue
            status, body, _ = call(double, request["method"], request["path"], request["body"])
            assert (status, _comparable(body)) == (expected["status"], _comparable(expected["body"])), step["note"]
            if request["method"] == "DELETE":
                deleted_at = time.monotonic()
        # The contents went with it.
        assert call(double, "GET", "/api/v1/namespaces/microservice/configmaps/c")[0] == 404


def test_terminating_namespace_refuses_new_content_of_every_kind_and_way():
    with KubeDouble(namespace_deletion_delay=30) as double:
        call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": "lab"}})
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept"}, "data": {"a": "b"}}
        assert call(double, "POST", "/api/v1/namespaces/lab/configmaps", cm)[0] == 201
        first = call(double, "DELETE", "/api/v1/namespaces/lab")[1]
        # Deleting it again answers it as it is.
        status, again, _ = call(double, "DELETE", "/api/v1/namespaces/lab")
        assert status == 200 and again["metadata"]["deletionTimestamp"] == first["metadata"]["deletionTimestamp"]
        # A group resource by server-side apply: 403 with the group in the message and details.
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
                                                                     "spec": {"containers": [{"name": "w",
                                                                                              "image": "nginx"}]}}}}
        status, body, _ = call(double, "PATCH", "/apis/apps/v1/namespaces/lab/deployments/web?fieldManager=t",
                               deployment, content_type="application/apply-patch+yaml")
        assert status == 403 and body["message"] == (
            'deployments.apps "web" is forbidden: unable to create new content in namespace lab because it is '
            "being terminated")
        assert body["details"] == {"name": "web", "group": "apps", "kind": "deployments", "causes": [
            {"reason": "NamespaceTerminating", "message": "namespace lab is being terminated",
             "field": "metadata.namespace"}]}
        # A dry run is refused the same way (admission runs).
        assert call(double, "POST", "/api/v1/namespaces/lab/configmaps?dryRun=All",
                    dict(cm, metadata={"name": "new"}))[0] == 403
        # What is already there can still be read, changed and deleted until the controller removes it.
        assert call(double, "GET", "/api/v1/namespaces/lab/configmaps/kept")[0] == 200
        patched = call(double, "PATCH", "/api/v1/namespaces/lab/configmaps/kept", {"data": {"a": "c"}},
                       content_type="application/merge-patch+json")
        assert patched[0] == 200 and patched[1]["data"] == {"a": "c"}
        # An update of the namespace keeps it Terminating.
        status, body, _ = call(double, "PATCH", "/api/v1/namespaces/lab", {"metadata": {"labels": {"x": "y"}}},
                               content_type="application/merge-patch+json")
        assert status == 200 and body["status"] == {"phase": "Terminating"}
        assert body["metadata"]["deletionTimestamp"] == first["metadata"]["deletionTimestamp"]
        # Listed while it terminates, as kubectl get ns shows it.
        listed = call(double, "GET", "/api/v1/namespaces?labelSelector=x%3Dy")[1]["items"]
        assert [n["status"]["phase"] for n in listed] == ["Terminating"]
        assert call(double, "DELETE", "/api/v1/namespaces/lab/configmaps/kept")[0] == 200


def test_the_namespace_goes_after_the_delay_without_any_request():
    """The double's namespace controller runs on its own: a watch (or a waiting client) sees it go."""
    with KubeDouble(namespace_deletion_delay=0.3) as double:
        call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": "lab"}})
        call(double, "DELETE", "/api/v1/namespaces/lab")
        time.sleep(0.5)
        assert double.store.find("", "namespaces", None, "lab") is None
        assert call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                           "metadata": {"name": "lab"}})[0] == 201


def test_a_test_can_hold_a_namespace_terminating_and_release_it():
    """The delay is read when the controller looks: longer holds a deleted namespace, shorter releases it."""
    with KubeDouble(namespace_deletion_delay=0.2) as double:
        call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": "lab"}})
        call(double, "DELETE", "/api/v1/namespaces/lab")
        double.store.namespace_deletion_delay = 3600
        time.sleep(0.4)
        assert call(double, "GET", "/api/v1/namespaces/lab")[1]["status"]["phase"] == "Terminating"
        double.store.namespace_deletion_delay = 0.5
        time.sleep(0.2)
        assert call(double, "GET", "/api/v1/namespaces/lab")[0] == 404


def test_a_watch_sees_the_namespace_terminate_then_go():
    import urllib.request

    from tests.kube_double import DEFAULT_TOKEN

    with KubeDouble(namespace_deletion_delay=0.5) as double:
        status, created, _ = call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                                         "metadata": {"name": "lab"}})
        since = created["metadata"]["resourceVersion"]
        request = urllib.request.Request(
            f"{double.url}/api/v1/namespaces?watch=true&timeoutSeconds=2&resourceVersion={since}"
            "&fieldSelector=metadata.name%3Dlab", headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            time.sleep(0.2)
            call(double, "DELETE", "/api/v1/namespaces/lab")
            events = [json.loads(line) for line in response.read().decode().splitlines() if line.strip()]
    assert [(e["type"], e["object"]["status"]["phase"]) for e in events] == [
        ("MODIFIED", "Terminating"), ("DELETED", "Terminating")]


def test_every_namespace_gets_what_kube_controller_manager_makes_and_loses_it_with_the_namespace():
    """Issue 27: a real cluster has ServiceAccount `default` and ConfigMap `kube-root-ca.crt` in every
    namespace (serviceaccount and root-ca-cert-publisher controllers), without labels; the double too,
    for the namespaces it starts with and every new one; without controllers, none."""
    with KubeDouble(namespace_deletion_delay=0) as double:
        for namespace in ("default", "kube-system"):
            assert call(double, "GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/default")[0] == 200
        call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": "lab"}})
        status, account, _ = call(double, "GET", "/api/v1/namespaces/lab/serviceaccounts/default")
        assert status == 200 and "labels" not in account["metadata"]
        status, root_ca, _ = call(double, "GET", "/api/v1/namespaces/lab/configmaps/kube-root-ca.crt")
        assert status == 200 and "labels" not in root_ca["metadata"] and "ca.crt" in root_ca["data"]
        assert root_ca["metadata"]["annotations"]["kubernetes.io/description"].startswith("Contains a CA bundle")
        call(double, "DELETE", "/api/v1/namespaces/lab")
        assert call(double, "GET", "/api/v1/namespaces/lab/configmaps/kube-root-ca.crt")[0] == 404
    with KubeDouble(controllers=False) as double:
        call(double, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": "lab"}})
        assert call(double, "GET", "/api/v1/namespaces/lab/serviceaccounts/default")[0] == 404
