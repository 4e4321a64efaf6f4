# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What in a namespace is foreign: the one decision of whether istio-lab may
delete a namespace it created (remove-platform, the prune of a set's
namespaces, a chapter reset).

A namespace goes only when nothing foreign is left in it. Every namespaced
kind the cluster serves counts (found by discovery, never a fixed list), with
one LIST per kind for all the namespaces asked about. Not foreign:

- istio-lab's own objects (they carry ``lab_managed_labels``);
- what Kubernetes makes in every namespace: ServiceAccount ``default``,
  ConfigMap ``kube-root-ca.crt``, Events (never listed), and the token
  Secrets of accounts that are not foreign themselves;
- what controllers derive from objects that are not foreign: anything whose
  ``ownerReferences`` lead to them (ReplicaSets, Pods, ControllerRevisions,
  EndpointSlices), Endpoints and EndpointSlices of their Services; an owner
  that is gone leaves its dependents to the garbage collector;
- what istioctl and istiod install or write (the labels
  ``install.operator.istio.io/owning-resource``, ``operator.istio.io/component``,
  ``istio.io/rev``; the CA root ConfigMap istiod puts in every namespace, its
  CA Secret and leader-election records) and what MetalLB's controller writes
  (its memberlist Secret, the L2/BGP status objects);
- anything already being deleted.

A kept namespace is annotated with what kept it (``KEPT_ANNOTATION``): a later
run that finds the same foreign objects says nothing and writes nothing.
"""

from __future__ import annotations

import json
import time

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import ApiStatusError, KubeError
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.resource import list_objects

KEPT_ANNOTATION = "istio-lab.io/kept-for"
# Groups served by aggregated APIs that mirror other objects (PodMetrics copy Pods).
SKIPPED_GROUPS = frozenset({"metrics.k8s.io"})
# Never anyone's work, and by far the largest LISTs.
SKIPPED_KINDS = frozenset({"Event"})
KUBE_MADE = frozenset({("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")})
ISTIO_LABELS = ("install.operator.istio.io/owning-resource", "operator.istio.io/component")
ISTIO_REVISION_LABEL = "istio.io/rev"  # also on a student's injected Pods: not taken from Pods
# Written by istiod at run time (no istioctl label): its CA, the CA root in
# every namespace, leader election.
ISTIO_MADE = frozenset({
    ("ConfigMap", "istio-ca-root-cert"), ("Secret", "istio-ca-secret"), ("ConfigMap", "istio-leader"),
    ("ConfigMap", "istio-namespace-controller-election"), ("ConfigMap", "istio-validation-controller-election"),
    ("ConfigMap", "istio-gateway-deployment-default"), ("ConfigMap", "istio-gateway-status-leader"),
})
# Written by MetalLB's controller and speakers at run time.
METALLB_MADE = frozenset({("Secret", "memberlist")})
METALLB_STATUS_KINDS = frozenset({"ServiceL2Status", "ServiceBGPStatus"})
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"


class NamespacedKind:
    def __init__(self, api_version, kind, plural):
        self.api_version = api_version
        self.kind = kind
        self.plural = plural
        self.base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"


def _resources(client, api_version):
    path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    try:
        answer = client.request("discovery", "GET", path)
    except ApiStatusError as exc:
        if exc.status in (404, 503):  # a group going away, an aggregated API down: nothing of it to find
            return []
        raise
    return [NamespacedKind(api_version, r["kind"], r["name"]) for r in answer.get("resources") or []
            if r.get("namespaced") and "/" not in r.get("name", "") and "list" in (r.get("verbs") or [])
            and r.get("kind") not in SKIPPED_KINDS]


def namespaced_kinds(client):
    """Every namespaced kind the cluster lets one list, at its group's preferred version."""
    kinds = _resources(client, "v1")
    groups = client.request("discovery", "GET", "/apis").get("groups") or []
    for group in groups:
        preferred = (group.get("preferredVersion") or {}).get("groupVersion")
        if preferred and group.get("name") not in SKIPPED_GROUPS:
            kinds.extend(_resources(client, preferred))
    return kinds


def _meta(obj):
    return obj.get("metadata") or {}


def obj_ref(obj):
    meta = _meta(obj)
    return {"apiVersion": obj.get("apiVersion", ""), "kind": obj.get("kind", ""),
            "namespace": meta.get("namespace", ""), "name": meta.get("name", "")}


def summary(refs):
    """The annotation's value and the table's text: Kind/name, sorted."""
    return ", ".join(sorted(f"{r['kind']}/{r['name']}" for r in refs))


class Judge:
    """Which objects of one namespace are foreign (see the module's docstring)."""

    def __init__(self, objects, managed_labels, leaving=()):
        self.objects = objects
        self.managed = dict(managed_labels)
        self.leaving = set(leaving)  # (kind, namespace, name) this run deletes itself
        self.by_uid = {_meta(o).get("uid"): o for o in objects if _meta(o).get("uid")}
        self.by_kind_name = {(o.get("kind"), _meta(o).get("name")): o for o in objects}
        self.memo = {}

    def own(self, obj):
        """Not foreign by itself (labels, names, makers); None when that depends on another object."""
        meta = _meta(obj)
        kind, name, labels = obj.get("kind"), meta.get("name"), meta.get("labels") or {}
        if meta.get("deletionTimestamp") or (kind, meta.get("namespace", ""), name) in self.leaving:
            return True
        if _labelled(obj, self.managed):
            return True
        if (kind, name) in KUBE_MADE | ISTIO_MADE | METALLB_MADE:
            return True
        if any(label in labels for label in ISTIO_LABELS) or (ISTIO_REVISION_LABEL in labels and kind != "Pod"):
            return True
        if kind in METALLB_STATUS_KINDS and obj.get("apiVersion", "").startswith("metallb.io/"):
            return True
        if kind == "Lease" and str((obj.get("spec") or {}).get("holderIdentity") or "").startswith("istiod"):
            return True
        return None

    def parents(self, obj):
        """The objects this one derives from (owners, its Service, its account); [] when they are gone."""
        meta = _meta(obj)
        owners = meta.get("ownerReferences") or []
        if owners:
            return [self.by_uid.get(o.get("uid")) for o in owners]
        kind = obj.get("kind")
        service = None
        if kind == "Endpoints":
            service = meta.get("name")
        elif kind == "EndpointSlice":
            service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if service:
            return [self.by_kind_name.get(("Service", service))]
        if kind == "Secret" and obj.get("type") == "kubernetes.io/service-account-token":
            account = (meta.get("annotations") or {}).get(SA_NAME_ANNOTATION)
            return [self.by_kind_name.get(("ServiceAccount", account))]
        return None  # derives from nothing: it is someone's own object

    def foreign(self, obj, seen=()):
        key = id(obj)
        if key in self.memo:
            return self.memo[key]
        verdict = False
        if not self.own(obj):
            parents = self.parents(obj)
            if parents is None:
                verdict = True
            else:
                # Gone owners: the garbage collector takes the dependents.
                verdict = any(p is not None and id(p) not in seen and self.foreign(p, (*seen, key))
                              for p in parents)
        self.memo[key] = verdict
        return verdict

    def roots(self):
        """The foreign objects that are someone's own work: not those derived from another foreign object."""
        found = []
        for obj in self.objects:
            if not self.foreign(obj):
                continue
            parents = self.parents(obj)
            if parents is None or not any(p is not None and self.foreign(p) for p in parents):
                found.append(obj_ref(obj))
        return sorted(found, key=lambda r: (r["kind"], r["name"]))


def foreign_objects(client, namespaces, managed_labels, leaving=(), kinds=None, owned_paths=None):
    """{namespace: [ref of each foreign object]} for the given namespaces, one LIST per namespaced kind
    (one namespace: in it; several: across all namespaces, or per namespace where that is refused).
    `owned_paths` (a dict) receives {namespace: [path of each of istio-lab's objects]}."""
    names = sorted(set(namespaces))
    if not names:
        return {}
    kinds = namespaced_kinds(client) if kinds is None else kinds
    contents = {name: [] for name in names}
    paths = {}  # id(object) -> its path, for owned_paths
    for kind in kinds:
        try:
            found = list_objects(client, kind.base, kind.plural, set(names), kind.kind)
        except ApiStatusError as exc:
            # 404: gone since discovery (a CRD deleted by this run); 405: not listable; 403: these credentials
            # may not list the kind (a student's on a shared cluster), and may not delete the namespace either.
            if exc.status in (403, 404, 405):
                continue
            raise
        for (namespace, name), obj in found.items():
            obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
            contents[namespace].append(obj)
            paths[id(obj)] = f"{kind.base}/namespaces/{namespace}/{kind.plural}/{name}"
    if owned_paths is not None:  # istio-lab's own objects, for a caller that deletes them from a kept namespace
        for name, objs in contents.items():
            owned_paths[name] = [paths[id(o)] for o in objs if _labelled(o, managed_labels)
                                 and not _meta(o).get("deletionTimestamp")]
    return {name: Judge(objs, managed_labels, leaving).roots() for name, objs in contents.items()}


def _labelled(obj, managed_labels):
    labels = _meta(obj).get("labels") or {}
    return bool(managed_labels) and all(labels.get(k) == v for k, v in managed_labels.items())


def kept_quietly(namespace, refs):
    """True when the namespace is already annotated as kept for exactly these objects (a re-run)."""
    annotations = _meta(namespace).get("annotations") or {}
    return annotations.get(KEPT_ANNOTATION) == summary(refs)


def mark_kept(client, name, refs, check_mode=False):
    """Annotate a kept namespace with what kept it (a merge patch; none in check mode)."""
    if check_mode:
        return
    body = {"metadata": {"annotations": {KEPT_ANNOTATION: summary(refs)}}}
    client.request("patch", "PATCH", f"/api/v1/namespaces/{name}", None, json.dumps(body).encode(),
                   content_type="application/merge-patch+json")


def plan_namespaces(client, namespaces, managed_labels, remove_foreign=False, leaving=(), owned_paths=None):
    """Split namespaces (live Namespace objects) into (names to delete, kept), reading only.

    Kept: {"namespace", "objects": [refs], "quiet": bool}; quiet when it is annotated for exactly these
    objects already (mark_kept annotates the others, after the caller's deletions). With remove_foreign
    every namespace goes."""
    live = [ns for ns in namespaces if ns is not None]
    if remove_foreign or not live:
        return [_meta(ns)["name"] for ns in live], []
    found = foreign_objects(client, [_meta(ns)["name"] for ns in live], managed_labels, leaving,
                            owned_paths=owned_paths)
    doomed, kept = [], []
    for ns in live:
        name = _meta(ns)["name"]
        refs = found.get(name) or []
        if not refs:
            doomed.append(name)
            continue
        kept.append({"namespace": name, "objects": refs, "quiet": kept_quietly(ns, refs)})
    return doomed, kept


def mark_all_kept(client, kept, check_mode=False):
    for entry in kept:
        if not entry["quiet"]:
            mark_kept(client, entry["namespace"], entry["objects"], check_mode)


def remove_namespaces(client, names, managed_labels, remove_foreign=False, check_mode=False, wait_timeout=300,
                      sleep=time.sleep, clock=time.monotonic):
    """Delete the named namespaces that hold nothing foreign (all with remove_foreign), keep and annotate the
    others; wait until the deleted ones are gone. Returns (changed, rows {"name", "action", "foreign"})."""
    live = []
    for name in sorted(set(names)):
        try:
            live.append(client.request("get", "GET", f"/api/v1/namespaces/{name}"))
        except ApiStatusError as exc:
            if exc.status != 404:
                raise
    going = [_meta(ns)["name"] for ns in live if _meta(ns).get("deletionTimestamp")]
    owned = {}
    gone, kept = plan_namespaces(client, [ns for ns in live if _meta(ns)["name"] not in going], managed_labels,
                                 remove_foreign, owned_paths=owned)
    # A kept namespace loses istio-lab's own objects (a record), which would otherwise have gone with it.
    leftovers = [path for k in kept for path in owned.get(k["namespace"], [])]
    rows = [{"name": name, "action": "would delete" if check_mode else "deleted", "foreign": []} for name in gone]
    rows += [{"name": k["namespace"], "action": "kept: holds objects istio-lab did not create: "
              + summary(k["objects"]), "foreign": k["objects"]} for k in kept if not k["quiet"]]
    changed = bool(gone or leftovers) or any(not k["quiet"] for k in kept)
    if check_mode:
        return changed, rows
    for path in leftovers:
        try:
            client.request("delete", "DELETE", path)
        except ApiStatusError as exc:
            if exc.status != 404:
                raise
    for name in gone:
        try:
            client.request("delete", "DELETE", f"/api/v1/namespaces/{name}")
        except ApiStatusError as exc:
            if exc.status != 404:
                raise
    mark_all_kept(client, kept)
    deadline = clock() + wait_timeout
    waiting, pause = gone + going, 0.2
    while waiting:  # a deleted namespace terminates until the namespace controller has emptied it
        still = []
        for name in waiting:
            try:
                client.request("get", "GET", f"/api/v1/namespaces/{name}")
                still.append(name)
            except ApiStatusError as exc:
                if exc.status != 404:
                    raise
        waiting = still
        if waiting and clock() > deadline:
            raise KubeError(f"namespace(s) {', '.join(waiting)} still terminating after {wait_timeout}s")
        if waiting:
            sleep(pause)
            pause = min(pause * 2, 2.0)
    return changed, rows
