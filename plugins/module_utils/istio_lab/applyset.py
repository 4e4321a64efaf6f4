# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""istio-lab's owned sets in the ApplySet form of KEP-3659, so that kubectl
(``kubectl get -l applyset.kubernetes.io/part-of=<id>``) and other tools see
the same sets as istio-lab.

- The parent of set ``<set>`` is ConfigMap ``istio-lab/applyset-<set>``,
  labelled ``applyset.kubernetes.io/id: applyset-<base64url(sha256(
  "<name>.<namespace>.ConfigMap."))>-v1`` (kubectl's formula), annotated
  with ``applyset.kubernetes.io/tooling: istio-lab/<version>``,
  ``applyset.kubernetes.io/contains-group-kinds`` (``Kind.group`` or
  ``Kind`` for the core group, sorted, comma-separated) and
  ``applyset.kubernetes.io/additional-namespaces`` (the members' namespaces).
- Every member carries ``applyset.kubernetes.io/part-of: <id>``.
- Pruning (``prune_plan``): the members listed on the cluster that the call
  no longer applies, and only those carrying this set's label.

The pure logic first, then the parents' requests (Parents), which both
engines use (manifests.py for lab_manifests, apply.py for istio_routes).
"""

from __future__ import annotations

import base64
import hashlib
import json

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import ApiStatusError

# The collection's version (galaxy.yml; a unit test holds them equal).
TOOLING_VERSION = "1.0.0"
TOOLING = f"istio-lab/{TOOLING_VERSION}"
PARENT_NAMESPACE = "istio-lab"
PARENT_PREFIX = "applyset-"
PART_OF = "applyset.kubernetes.io/part-of"
ID_LABEL = "applyset.kubernetes.io/id"
TOOLING_ANNOTATION = "applyset.kubernetes.io/tooling"
GROUP_KINDS_ANNOTATION = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES_ANNOTATION = "applyset.kubernetes.io/additional-namespaces"
CRD_GROUP_KIND = ("apiextensions.k8s.io", "CustomResourceDefinition")
NAMESPACE_GROUP_KIND = ("", "Namespace")
# Kinds known to be cluster-scoped before discovery says so.
CLUSTER_KINDS = frozenset({"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                           "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "PriorityClass",
                           "StorageClass", "IngressClass", "APIService", "PersistentVolume"})
WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")


def parent_name(set_name):
    return PARENT_PREFIX + set_name


def applyset_id(name, namespace=PARENT_NAMESPACE, kind="ConfigMap", group=""):
    """kubectl's ApplySet ID of a parent: label values must start and end
    with an alphanumeric, hence the prefix and the version suffix."""
    digest = hashlib.sha256(f"{name}.{namespace}.{kind}.{group}".encode()).digest()
    return "applyset-" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=") + "-v1"


def set_id(set_name):
    return applyset_id(parent_name(set_name))


def group_of(api_version):
    return api_version.rpartition("/")[0] if "/" in (api_version or "") else ""


def format_group_kind(group, kind):
    return f"{kind}.{group}" if group else kind


def parse_group_kind(text):
    kind, _sep, group = text.strip().partition(".")
    return group, kind


def format_group_kinds(group_kinds):
    return ",".join(sorted(format_group_kind(g, k) for g, k in group_kinds))


def parse_list(text):
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def recorded(parent):
    """(group-kinds, namespaces) a parent records; empty for no parent."""
    annotations = ((parent or {}).get("metadata") or {}).get("annotations") or {}
    group_kinds = {parse_group_kind(text) for text in parse_list(annotations.get(GROUP_KINDS_ANNOTATION))}
    namespaces = set(parse_list(annotations.get(NAMESPACES_ANNOTATION)))
    return group_kinds, namespaces


def parent_manifest(set_name, group_kinds, namespaces, labels):
    """The parent ConfigMap recording `group_kinds` ({(group, kind)}) and the
    members' `namespaces` (the parent's own is implied, as KEP-3659 says)."""
    # The parent's own namespace is listed too when members live there: a
    # reader that treats it as implied loses nothing, one that does not
    # still finds them.
    others = sorted(ns for ns in namespaces if ns)
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": parent_name(set_name), "namespace": PARENT_NAMESPACE,
            "labels": {**(labels or {}), ID_LABEL: set_id(set_name)},
            "annotations": {TOOLING_ANNOTATION: TOOLING,
                            GROUP_KINDS_ANNOTATION: format_group_kinds(group_kinds),
                            NAMESPACES_ANNOTATION: ",".join(others)},
        },
    }


def parent_differs(live, desired):
    """Whether the live parent lacks a label or annotation value of `desired`."""
    if live is None:
        return True
    meta, want = live.get("metadata") or {}, desired["metadata"]
    for field in ("labels", "annotations"):
        have = meta.get(field) or {}
        if any(have.get(key, "") != value for key, value in want[field].items()):
            return True
    return False


def foreign_parent(live, set_name):
    """Why a ConfigMap of the parent's name cannot be this set's parent
    (another tool's, or another ID): a message, or empty."""
    if live is None:
        return ""
    meta = live.get("metadata") or {}
    tooling = (meta.get("annotations") or {}).get(TOOLING_ANNOTATION, "")
    if tooling and not tooling.startswith("istio-lab/"):
        return f"ConfigMap {PARENT_NAMESPACE}/{parent_name(set_name)} belongs to {tooling}, not istio-lab"
    found = (meta.get("labels") or {}).get(ID_LABEL)
    if found and found != set_id(set_name):
        return f"ConfigMap {PARENT_NAMESPACE}/{parent_name(set_name)} has ApplySet ID {found}, not {set_id(set_name)}"
    return ""


def is_member(obj, identity):
    return ((obj.get("metadata") or {}).get("labels") or {}).get(PART_OF) == identity


def terminating(obj):
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def delete_rank(group, kind):
    """Deletion order: admission webhooks first (they could refuse the rest),
    then the other members, the CRDs, and the namespaces last."""
    if kind in WEBHOOK_KINDS:
        return 0
    if (group, kind) == CRD_GROUP_KIND:
        return 2
    if (group, kind) == NAMESPACE_GROUP_KIND:
        return 3
    return 1


def prune_plan(live, desired_keys, identity, prune_crds=False):
    """The members to delete and the CRDs kept, from `live`
    ({(group, kind, namespace, name): object}, the objects listed) and
    `desired_keys` (the same keys of what the call applies): members of
    the set (by label) that the call no longer applies, not already being
    deleted, sorted in deletion order. CRDs only with `prune_crds`: a CRD's
    deletion takes every custom object of its kind with it."""
    delete, kept = [], []
    for key in sorted(live, key=lambda k: (delete_rank(k[0], k[1]), k)):
        obj = live[key]
        if key in desired_keys or not is_member(obj, identity) or terminating(obj):
            continue
        if (key[0], key[1]) == CRD_GROUP_KIND and not prune_crds:
            kept.append(key)
            continue
        delete.append(key)
    return delete, kept


def group_kinds_of(keys):
    return {(key[0], key[1]) for key in keys}


def ref(key):
    group, kind, namespace, name = key
    shown = format_group_kind(group, kind)
    return f"{shown} {namespace}/{name}" if namespace else f"{shown} {name}"


# ---------------------------------------------------------------- the parents' requests


FIELD_MANAGER = "istio-lab"
APPLY_PATCH = "application/apply-patch+yaml"


def parent_path(set_name):
    return f"/api/v1/namespaces/{PARENT_NAMESPACE}/configmaps/{parent_name(set_name)}"


class Parents:
    """The parents of one call's sets, read in one request and written only
    when what they record changes (both engines: manifests.py, apply.py).
    `client` is a client.KubeClient."""

    def __init__(self, client, managed_labels, check_mode=False):
        self.client = client
        self.managed = dict(managed_labels or {})
        self.check_mode = check_mode
        self.live = {}  # set name -> parent (None: none yet)
        self.actions = {}  # set name -> created | updated | deleted
        self.others = []  # sets read with others_prefix that the call does not name

    def read(self, set_names, others_prefix=""):
        """One GET for one set, else one LIST of the parents by ID; a
        message per parent of another tool or ID (nothing may be written).
        With `others_prefix` (``chapter-``), one LIST of every parent, and the
        sets named `<others_prefix>...` that `set_names` does not name are read
        too (`others`, e.g. the chapters no longer enabled); a ConfigMap of
        such a name that is another tool's or ID's is left out, not refused."""
        names = sorted(set(set_names))
        self.others = []
        if others_prefix:
            answer = self.client.request("list", "GET", f"/api/v1/namespaces/{PARENT_NAMESPACE}/configmaps",
                                         [("labelSelector", ID_LABEL)])
            by_name = {(obj.get("metadata") or {}).get("name"): obj for obj in answer.get("items") or []}
            self.live = {name: by_name.get(parent_name(name)) for name in names}
            for found, obj in sorted(by_name.items()):
                name = (found or "")[len(PARENT_PREFIX):]
                if (found or "").startswith(PARENT_PREFIX + others_prefix) and name not in self.live \
                        and not foreign_parent(obj, name):
                    self.live[name] = obj
                    self.others.append(name)
            return [message for name in names for message in [foreign_parent(self.live[name], name)] if message]
        if len(names) == 1:
            try:
                found = [self.client.request("get", "GET", parent_path(names[0]))]
            except ApiStatusError as exc:
                if exc.status != 404:
                    raise
                found = []
        elif names:
            answer = self.client.request("list", "GET", f"/api/v1/namespaces/{PARENT_NAMESPACE}/configmaps",
                                         [("labelSelector", f"{ID_LABEL} in ({','.join(set_id(n) for n in names)})")])
            found = answer.get("items") or []
        else:
            found = []
        by_name = {(obj.get("metadata") or {}).get("name"): obj for obj in found}
        self.live = {name: by_name.get(parent_name(name)) for name in names}
        return [message for name in names for message in [foreign_parent(self.live[name], name)] if message]

    def recorded(self, set_name):
        return recorded(self.live.get(set_name))

    def _apply(self, path, manifest):
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        if self.check_mode:
            query.append(("dryRun", "All"))
        body = json.dumps(manifest, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return self.client.request("patch_dry_run" if self.check_mode else "patch", "PATCH", path, query, body,
                                   content_type=APPLY_PATCH)

    def write(self, set_name, group_kinds, namespaces):
        """Apply the parent when it does not record exactly this (namespace
        istio-lab first when missing); True when it was (would be) written."""
        live = self.live.get(set_name)
        desired = parent_manifest(set_name, group_kinds, namespaces, self.managed)
        if not parent_differs(live, desired) and recorded(live) == recorded(desired):
            return False
        action = "created" if live is None else "updated"
        try:
            stored = self._apply(parent_path(set_name), desired)
        except ApiStatusError as exc:
            if exc.status != 404:
                raise
            namespace = {"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": PARENT_NAMESPACE, "labels": self.managed}}
            self._apply(f"/api/v1/namespaces/{PARENT_NAMESPACE}", namespace)
            stored = desired if self.check_mode else self._apply(parent_path(set_name), desired)
        self.live[set_name] = stored
        self.actions[set_name] = action
        return True

    def delete(self, set_name):
        if self.live.get(set_name) is None:
            return False
        if not self.check_mode:
            delete(self.client, parent_path(set_name))
        self.live[set_name] = None
        self.actions[set_name] = "deleted"
        return True

    def result(self, set_name):
        group_kinds, namespaces = recorded(self.live.get(set_name))
        return {"name": set_name, "id": set_id(set_name), "parent": f"{PARENT_NAMESPACE}/{parent_name(set_name)}",
                "action": self.actions.get(set_name, "unchanged"),
                "contains_group_kinds": sorted(format_group_kind(g, k) for g, k in group_kinds),
                "namespaces": sorted(namespaces)}


def delete(client, path):
    """DELETE one object (background propagation); gone already is fine."""
    try:
        client.request("delete", "DELETE", path, [("propagationPolicy", "Background")])
    except ApiStatusError as exc:
        if exc.status != 404:
            raise
