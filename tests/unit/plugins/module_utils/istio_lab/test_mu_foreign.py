"""What in a namespace is foreign (module_utils foreign, issue 27): the one
decision remove-platform, the sets' prune and chapter reset share. The
objects have the shapes a real v1.36 cluster gives them (Deployment ->
ReplicaSet -> Pod through ownerReferences, Endpoints named as their Service,
EndpointSlices labelled with it). Self-contained (ansible-test units)."""

from __future__ import annotations

import pytest
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab import foreign

MANAGED = {"app.kubernetes.io/managed-by": "istio-lab"}
NS = "microservice"


def obj(api_version, kind, name, uid=None, labels=None, owners=(), **extra):
    meta = {"name": name, "namespace": NS, "uid": uid or f"uid-{kind}-{name}"}
    if labels:
        meta["labels"] = labels
    if owners:
        meta["ownerReferences"] = [{"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"],
                                    "uid": o["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
                                   for o in owners]
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **extra}


def workload(name, labels):
    """A Deployment with the ReplicaSet and Pod its controllers derive, a Service, its Endpoints and slice."""
    deployment = obj("apps/v1", "Deployment", name, labels=labels)
    replica_set = obj("apps/v1", "ReplicaSet", f"{name}-6d4cf56db6", labels={"app": name, "pod-template-hash": "6d4"},
                      owners=[deployment])
    pod = obj("v1", "Pod", f"{name}-6d4cf56db6-x7k2p", labels={"app": name, "pod-template-hash": "6d4"},
              owners=[replica_set])
    service = obj("v1", "Service", name, labels=labels)
    endpoints = obj("v1", "Endpoints", name, labels=labels)  # the endpoints controller copies the labels, no owner
    endpoint_slice = obj("discovery.k8s.io/v1", "EndpointSlice", f"{name}-abcde",
                         labels={**(labels or {}), foreign.SERVICE_NAME_LABEL: name,
                                 "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                         owners=[service])
    return [deployment, replica_set, pod, service, endpoints, endpoint_slice]


def kube_made():
    account = obj("v1", "ServiceAccount", "default")
    return [account, obj("v1", "ConfigMap", "kube-root-ca.crt", data={"ca.crt": "..."})]


def roots(objects, leaving=()):
    return [(r["kind"], r["name"]) for r in foreign.Judge(objects, MANAGED, leaving).roots()]


def test_a_namespace_of_istio_lab_with_what_kubernetes_derives_holds_nothing_foreign():
    token = obj("v1", "Secret", "default-token-abcde", type="kubernetes.io/service-account-token")
    token["metadata"]["annotations"] = {foreign.SA_NAME_ANNOTATION: "default"}
    objects = workload("tomcat", dict(MANAGED)) + kube_made() + [token]
    objects.append(obj("networking.istio.io/v1", "VirtualService", "tomcat", labels={**MANAGED,
                                                                                     "istio-lab.io/chapter": "1"}))
    assert roots(objects) == []


def test_a_users_objects_are_foreign_and_only_their_roots_are_listed():
    objects = workload("tomcat", dict(MANAGED)) + kube_made() + workload("shop", {"app": "shop"})
    objects.append(obj("v1", "ConfigMap", "my-notes"))
    objects.append(obj("networking.istio.io/v1", "VirtualService", "my-own-try",
                       labels={"istio-lab.io/chapter": "1"}))  # a chapter label alone is not istio-lab's
    assert roots(objects) == [("ConfigMap", "my-notes"), ("Deployment", "shop"), ("Service", "shop"),
                              ("VirtualService", "my-own-try")]


def test_what_istioctl_istiod_and_metallb_make_is_not_foreign():
    istio = {"install.operator.istio.io/owning-resource": "unknown", "operator.istio.io/component": "Pilot",
             "istio.io/rev": "default", "app": "istiod"}
    objects = workload("istiod", istio)
    objects += [obj("v1", "ConfigMap", "istio-ca-root-cert", labels={"istio.io/config": "true"}),
                obj("v1", "Secret", "istio-ca-secret"), obj("v1", "Secret", "memberlist"),
                obj("coordination.k8s.io/v1", "Lease", "istio-namespace-controller-election",
                    spec={"holderIdentity": "istiod-5d8f9c7b9-abcde"}),
                obj("metallb.io/v1beta1", "ServiceL2Status", "l2-abcde")]
    assert roots(objects) == []
    # A student's injected Pod carries istio.io/rev too: that alone does not make it Istio's.
    assert roots([obj("v1", "Pod", "bare", labels={"istio.io/rev": "default"})]) == [("Pod", "bare")]


def test_gone_owners_deleting_objects_and_what_this_run_deletes_are_not_foreign():
    deployment = obj("apps/v1", "Deployment", "old")
    orphan = obj("apps/v1", "ReplicaSet", "old-123", owners=[deployment])  # its owner is gone: GC takes it
    going = obj("v1", "ConfigMap", "going")
    going["metadata"]["deletionTimestamp"] = "2026-12-04T16:00:00Z"
    student = obj("networking.istio.io/v1", "VirtualService", "my-own-try")
    assert roots([orphan, going, student], leaving={("VirtualService", NS, "my-own-try")}) == []


def test_a_cycle_of_owners_ends():
    first = obj("v1", "ConfigMap", "a")
    second = obj("v1", "ConfigMap", "b", owners=[first])
    first["metadata"]["ownerReferences"] = [{"uid": second["metadata"]["uid"]}]
    assert roots([first, second]) == []


@pytest.mark.parametrize("annotated, quiet", [
    ("ConfigMap/my-notes, VirtualService/my-own-try", True), ("ConfigMap/my-notes", False), (None, False)])
def test_a_kept_namespace_is_quiet_only_for_the_same_objects(annotated, quiet):
    namespace = {"metadata": {"name": NS, "annotations": {foreign.KEPT_ANNOTATION: annotated} if annotated else {}}}
    refs = [{"kind": "VirtualService", "name": "my-own-try"}, {"kind": "ConfigMap", "name": "my-notes"}]
    assert foreign.kept_quietly(namespace, refs) is quiet


class Lister:
    """A client answering discovery and LISTs from a dict, counting the requests."""

    def __init__(self, objects):
        self.objects = objects
        self.requests = []

    def request(self, verb, method, path, query=None, body=None, content_type=None):
        self.requests.append((verb, path))
        if path == "/api/v1":
            return {"resources": [
                {"name": "configmaps", "kind": "ConfigMap", "namespaced": True, "verbs": ["list", "get"]},
                {"name": "events", "kind": "Event", "namespaced": True, "verbs": ["list"]},
                {"name": "namespaces", "kind": "Namespace", "namespaced": False, "verbs": ["list"]},
                {"name": "pods/log", "kind": "Pod", "namespaced": True, "verbs": ["get"]},
                {"name": "bindings", "kind": "Binding", "namespaced": True, "verbs": ["create"]}]}
        if path == "/apis":
            return {"groups": [{"name": "metrics.k8s.io",
                                "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1"}},
                               {"name": "apps", "preferredVersion": {"groupVersion": "apps/v1"}}]}
        if path == "/apis/apps/v1":
            return {"resources": [{"name": "deployments", "kind": "Deployment", "namespaced": True,
                                   "verbs": ["list"]}]}
        plural = path.rsplit("/", 1)[-1]
        return {"apiVersion": "v1", "items": [o for o in self.objects if o["plural"] == plural
                                              and (f"/namespaces/{o['metadata']['namespace']}/" in path
                                                   or "/namespaces/" not in path)]}


def test_discovery_lists_every_listable_namespaced_kind_once_for_all_namespaces():
    objects = [{"plural": "configmaps", "metadata": {"name": "x", "namespace": "a", "uid": "1"}},
               {"plural": "configmaps", "metadata": {"name": "kube-root-ca.crt", "namespace": "b", "uid": "2"}},
               {"plural": "deployments", "metadata": {"name": "d", "namespace": "other", "uid": "3"}}]
    client = Lister(objects)
    found = foreign.foreign_objects(client, ["a", "b"], MANAGED)
    assert {ns: [r["name"] for r in refs] for ns, refs in found.items()} == {"a": ["x"], "b": []}
    lists = [path for verb, path in client.requests if verb == "list"]
    # Events, metrics, subresources and kinds that cannot be listed are never listed; one LIST per kind
    assert lists == ["/api/v1/configmaps", "/apis/apps/v1/deployments"]
    client = Lister(objects)
    foreign.foreign_objects(client, ["a"], MANAGED)
    assert [path for verb, path in client.requests if verb == "list"] == [
        "/api/v1/namespaces/a/configmaps", "/apis/apps/v1/namespaces/a/deployments"]
