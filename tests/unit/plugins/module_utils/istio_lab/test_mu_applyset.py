"""The owned sets' pure logic (module_utils applyset, KEP-3659): IDs,
the parent's record, what pruning deletes and in which order. Self-contained,
so that it also runs under `ansible-test units`."""

from __future__ import annotations

import base64
import hashlib
import re

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab import applyset


def test_the_id_is_kubectls_formula_and_a_valid_label_value():
    digest = hashlib.sha256(b"applyset-addons.istio-lab.ConfigMap.").digest()
    expected = "applyset-" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-v1"
    assert applyset.set_id("addons") == expected
    assert re.fullmatch(r"applyset-[A-Za-z0-9_-]{43}-v1", expected)
    assert len(expected) <= 63
    assert applyset.set_id("addons") != applyset.set_id("apps")


def test_group_kinds_round_trip_sorted_with_core_kinds_bare():
    kinds = {("apps", "Deployment"), ("", "Service"), ("rbac.authorization.k8s.io", "ClusterRole"), ("", "ConfigMap")}
    text = applyset.format_group_kinds(kinds)
    assert text == "ClusterRole.rbac.authorization.k8s.io,ConfigMap,Deployment.apps,Service"
    assert {applyset.parse_group_kind(t) for t in text.split(",")} == kinds


def test_parent_records_kinds_namespaces_and_tooling():
    parent = applyset.parent_manifest("apps", {("apps", "Deployment"), ("", "Namespace")}, {"microservice", "egress"},
                                      {"app.kubernetes.io/managed-by": "istio-lab"})
    meta = parent["metadata"]
    assert (meta["namespace"], meta["name"]) == ("istio-lab", "applyset-apps")
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "istio-lab",
                              "applyset.kubernetes.io/id": applyset.set_id("apps")}
    assert meta["annotations"] == {"applyset.kubernetes.io/tooling": applyset.TOOLING,
                                   "applyset.kubernetes.io/contains-group-kinds": "Deployment.apps,Namespace",
                                   "applyset.kubernetes.io/additional-namespaces": "egress,microservice"}
    assert applyset.recorded(parent) == ({("apps", "Deployment"), ("", "Namespace")}, {"egress", "microservice"})
    assert not applyset.parent_differs(parent, parent)
    assert applyset.parent_differs(None, parent)


def test_a_parent_of_another_tool_or_id_is_refused():
    mine = applyset.parent_manifest("apps", set(), set(), {})
    assert applyset.foreign_parent(mine, "apps") == ""
    assert applyset.foreign_parent(None, "apps") == ""
    kubectl = {"metadata": {"annotations": {"applyset.kubernetes.io/tooling": "kubectl/v1.36"}}}
    assert "kubectl/v1.36" in applyset.foreign_parent(kubectl, "apps")
    other = {"metadata": {"labels": {"applyset.kubernetes.io/id": applyset.set_id("addons")}}}
    assert "has ApplySet ID" in applyset.foreign_parent(other, "apps")


def _obj(identity, deleting=False):
    meta = {"labels": {"applyset.kubernetes.io/part-of": identity} if identity else {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T14:00:00Z"
    return {"metadata": meta}


def test_prune_deletes_only_members_left_out_webhooks_first_namespaces_last():
    me = applyset.set_id("metallb")
    live = {
        ("", "Namespace", "", "metallb-system"): _obj(me),
        ("apps", "Deployment", "metallb-system", "controller"): _obj(me),
        ("apps", "Deployment", "metallb-system", "old"): _obj(me),
        ("", "ConfigMap", "metallb-system", "users"): _obj(None),
        ("", "ConfigMap", "metallb-system", "other-set"): _obj(applyset.set_id("apps")),
        ("", "Service", "metallb-system", "going"): _obj(me, deleting=True),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "", "hook"): _obj(me),
        ("apiextensions.k8s.io", "CustomResourceDefinition", "", "bgppeers.metallb.io"): _obj(me),
    }
    desired = {("apps", "Deployment", "metallb-system", "controller")}
    delete, kept = applyset.prune_plan(live, desired, me)
    assert delete == [("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "", "hook"),
                      ("apps", "Deployment", "metallb-system", "old"), ("", "Namespace", "", "metallb-system")]
    assert kept == [("apiextensions.k8s.io", "CustomResourceDefinition", "", "bgppeers.metallb.io")]
    delete, kept = applyset.prune_plan(live, desired, me, prune_crds=True)
    assert delete[-2:] == [("apiextensions.k8s.io", "CustomResourceDefinition", "", "bgppeers.metallb.io"),
                           ("", "Namespace", "", "metallb-system")]
    assert kept == []
