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


class _Client:
    """Answers the one LIST of the parents; records each request."""

    def __init__(self, items):
        self.items, self.calls = items, []

    def request(self, verb, method, path, query=(), *args, **kwargs):
        self.calls.append((verb, method, path, list(query)))
        return {"items": self.items}


def _parent(set_name, identity=None, tooling=applyset.TOOLING):
    manifest = applyset.parent_manifest(set_name, {("networking.istio.io", "Gateway")}, {"istio-system"}, {})
    if identity:
        manifest["metadata"]["labels"][applyset.ID_LABEL] = identity
    manifest["metadata"]["annotations"][applyset.TOOLING_ANNOTATION] = tooling
    return manifest


def test_the_sets_a_call_does_not_name_are_read_with_one_list_and_foreign_ones_left_out():
    items = [_parent("chapter-1"), _parent("chapter-3"), _parent("apps"),
             _parent("chapter-x", identity="applyset-o-v1"), _parent("chapter-y", tooling="kubectl/v1.31")]
    client = _Client(items)
    parents = applyset.Parents(client, {})
    assert parents.read(["chapter-1", "chapter-2"], "chapter-") == []
    assert client.calls == [("list", "GET", "/api/v1/namespaces/istio-lab/configmaps",
                             [("labelSelector", applyset.ID_LABEL)])]
    # chapter-3 was dropped; apps is another base; chapter-x and chapter-y are not istio-lab's sets: never touched
    assert parents.others == ["chapter-3"]
    assert sorted(parents.live) == ["chapter-1", "chapter-2", "chapter-3"]
    assert parents.live["chapter-2"] is None
    # without a prefix: a LIST by ID of the named sets only, as before
    client = _Client(items[:1])
    parents = applyset.Parents(client, {})
    assert parents.read(["chapter-1", "chapter-2"]) == [] and parents.others == []
    assert client.calls[0][3][0][1].startswith(f"{applyset.ID_LABEL} in (")
