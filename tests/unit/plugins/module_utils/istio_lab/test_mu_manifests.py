"""The no-op decision of lab_manifests' engine (module_utils manifests):
self-contained, for `ansible-test units` and the project's pytest suite alike."""

from __future__ import annotations

import copy

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.manifests import (
    APPLIED_HASH,
    applied_hash,
    apply_reason,
    with_applied_hash,
)

SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "tomcat", "namespace": "microservice",
                 "labels": {"app.kubernetes.io/managed-by": "istio-lab"}},
    "spec": {"type": "ClusterIP", "selector": {"app": "tomcat"},
             "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
}


def stored(manifest):
    """What the API server stores for an applied manifest: defaults and server fields added."""
    live = copy.deepcopy(manifest)
    live["metadata"].update(uid="1", resourceVersion="7", managedFields=[{"manager": "istio-lab"}])
    live["spec"].update(clusterIP="10.0.0.7", sessionAffinity="None")
    for port in live["spec"]["ports"]:
        port["protocol"] = "TCP"
    return live


def test_the_hash_is_stable_and_stamped_as_an_annotation():
    stamped = with_applied_hash(SERVICE)
    assert applied_hash(SERVICE) == applied_hash(copy.deepcopy(SERVICE))
    assert stamped["metadata"]["annotations"][APPLIED_HASH] == applied_hash(SERVICE)
    assert APPLIED_HASH not in SERVICE["metadata"].get("annotations", {})


def test_nothing_is_applied_when_the_stored_object_matches():
    stamped = with_applied_hash(SERVICE)
    assert not apply_reason(stamped, stored(stamped))


def test_a_missing_object_a_changed_manifest_or_an_edited_field_is_applied():
    stamped = with_applied_hash(SERVICE)
    assert apply_reason(stamped, None)
    changed = with_applied_hash({**SERVICE, "spec": {**SERVICE["spec"], "type": "NodePort"}})
    assert apply_reason(changed, stored(stamped))
    edited = stored(stamped)
    edited["spec"]["selector"] = {"app": "other"}
    assert apply_reason(stamped, edited)
