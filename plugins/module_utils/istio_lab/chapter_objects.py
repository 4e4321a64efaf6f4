# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A chapter's objects: find them by label, delete, save and restore them.

Every object a chapter creates carries istio-lab's managed-by label and the
chapter label (``istio-lab.io/chapter: "1"``). This module finds them with one
label-selected list per kind across all namespaces, so the number of API
requests grows with the kinds, not with the objects. A kind the server does
not serve (Istio CRDs not installed) is skipped, never an error.

Saves are a directory of one YAML file per object, stripped of the fields the
server sets, plus ``manifest.yml`` (format, chapter, cluster identity, one
sha256 per file). A restore verifies all of it before the first write.
"""

import copy
import hashlib
import os
import time
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import quote

try:
    import yaml  # a dependency of the kubernetes client

    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError as exc:  # the module says so (missing_required_lib)
    yaml = None
    HAS_YAML = False
    YAML_IMPORT_ERROR = exc

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab import applyset
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import ApiStatusError, KubeError
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.foreign import (
    mark_all_kept,
    namespaced_kinds,
    plan_namespaces,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.normalize import canonical, differs, merged_object
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.resource import NotServed

SAVE_FORMAT = "istio-lab/chapter-save/v1"
MANIFEST = "manifest.yml"
ALL_CHAPTERS = "all"


class Kind(NamedTuple):
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace=None, name=None):
        """The REST path of the collection (all namespaces when namespace is None) or of one object."""
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return f"{base}/{quote(name, safe='')}" if name else base


# Kinds a chapter may create, in creation order: namespaces, then what pods
# need (accounts, config, claims), Services, workloads, and last the Istio
# routes that point at them. Deletion walks the list backwards.
KINDS = (
    Kind("v1", "Namespace", "namespaces", namespaced=False),
    Kind("v1", "ServiceAccount", "serviceaccounts"),
    Kind("v1", "ConfigMap", "configmaps"),
    Kind("v1", "Secret", "secrets"),
    Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    Kind("rbac.authorization.k8s.io/v1", "Role", "roles"),
    Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    Kind("v1", "Service", "services"),
    Kind("apps/v1", "Deployment", "deployments"),
    Kind("apps/v1", "StatefulSet", "statefulsets"),
    Kind("apps/v1", "DaemonSet", "daemonsets"),
    Kind("security.istio.io/v1", "PeerAuthentication", "peerauthentications"),
    Kind("security.istio.io/v1", "RequestAuthentication", "requestauthentications"),
    Kind("security.istio.io/v1", "AuthorizationPolicy", "authorizationpolicies"),
    Kind("networking.istio.io/v1", "ServiceEntry", "serviceentries"),
    Kind("networking.istio.io/v1", "Sidecar", "sidecars"),
    Kind("networking.istio.io/v1", "DestinationRule", "destinationrules"),
    Kind("networking.istio.io/v1", "Gateway", "gateways"),
    Kind("networking.istio.io/v1", "VirtualService", "virtualservices"),
)
KIND_RANK = {(k.api_version, k.kind): rank for rank, k in enumerate(KINDS)}
KIND_BY_TYPE = {(k.api_version, k.kind): k for k in KINDS}
NAMESPACE = KINDS[0]

# Metadata the server sets; a save keeps name, namespace, labels, annotations.
SERVER_METADATA = (
    "uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink",
    "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences", "finalizers", "generateName",
)
SERVER_ANNOTATIONS = ("deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration")
SERVER_LABELS = ("kubernetes.io/metadata.name",)
# Service fields the cluster allocates; re-applying them elsewhere collides.
SERVICE_ALLOCATED = ("clusterIP", "clusterIPs", "healthCheckNodePort")


class ChapterError(KubeError):
    """An error the instructor can act on (message says what and why)."""


class Api:
    """The requests chapters make, through the Istio modules' KubeClient (counted, retried)."""

    def __init__(self, client):
        self.client = client

    def call(self, verb, method, path, query=None, body=None):
        try:
            return self.client.request(verb, method, path, list((query or {}).items()), body)
        except ApiStatusError as exc:
            if exc.not_served:
                raise NotServed(path) from None
            raise

    def list(self, kind, selector):
        """Every object of kind matching the selector, in all namespaces."""
        items = self.call("list", "GET", kind.path(), {"labelSelector": selector}).get("items") or []
        for item in items:  # lists of built-in kinds leave these out of their items
            item["apiVersion"], item["kind"] = kind.api_version, kind.kind
        return items

    def get(self, kind, namespace, name):
        """The object, or None when it does not exist."""
        try:
            return self.call("get", "GET", kind.path(namespace, name))
        except ApiStatusError as exc:
            if exc.status == 404:
                return None
            raise


def kind_of(obj):
    kind = KIND_BY_TYPE.get((obj.get("apiVersion"), obj.get("kind")))
    if kind is not None:
        return kind
    raise ChapterError(f"istio-lab does not handle {obj.get('apiVersion')} {obj.get('kind')}")


def ref(obj):
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def creation_order(objects):
    return sorted(objects, key=lambda o: (KIND_RANK[(o["apiVersion"], o["kind"])], ref(o)[1], ref(o)[2]))


def strip_server_fields(obj):
    """The object as a client would write it: what the server set removed."""
    clean = {key: obj[key] for key in ("apiVersion", "kind") if key in obj}
    meta = {k: v for k, v in obj["metadata"].items() if k not in SERVER_METADATA}
    for key, server_keys in (("annotations", SERVER_ANNOTATIONS), ("labels", SERVER_LABELS)):
        kept = {k: v for k, v in (meta.get(key) or {}).items() if k not in server_keys}
        meta.pop(key, None)
        if kept:
            meta[key] = kept
    clean["metadata"] = meta
    clean.update({k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")})
    kind = obj["kind"]
    if kind == "Namespace":
        clean.pop("spec", None)  # only the server's finalizers live there
    elif kind == "Service":
        spec = clean.get("spec", {})
        for key in SERVICE_ALLOCATED:
            spec.pop(key, None)
        for port in spec.get("ports", []):
            port.pop("nodePort", None)
    elif kind == "ServiceAccount":
        clean.pop("secrets", None)  # token Secrets of older clusters, generated
    template_meta = clean.get("spec", {}).get("template", {}).get("metadata")
    if template_meta and template_meta.get("creationTimestamp", "") is None:
        template_meta.pop("creationTimestamp")
    return clean


def is_istio(obj):
    return obj["apiVersion"].split("/")[0].endswith(".istio.io")


def is_generated(obj):
    """Objects the cluster makes by itself, never saved: service account tokens."""
    return obj["kind"] == "Secret" and obj.get("type") == "kubernetes.io/service-account-token"


def contains(actual, desired):
    """True when every field of desired is in actual with the same value (server defaults may add more)."""
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(actual, list) and len(actual) == len(desired) and all(map(contains, actual, desired))
    return actual == desired


def dump(obj):
    return yaml.safe_dump(obj, default_flow_style=False, sort_keys=True).encode()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def file_name(obj):
    kind, namespace, name = ref(obj)
    rank = KIND_RANK[(obj["apiVersion"], kind)]
    return f"{rank:02d}-{kind.lower()}-{namespace + '-' if namespace else ''}{name}.yaml"


def write_private(path, data):
    """Write a save file readable by its owner only: saves may hold Secrets."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


class Chapters:
    """The operations of lab_chapter_objects, each returning (changed, rows)."""

    def __init__(self, api, chapter_label, match_labels, check_mode=False):
        self.api = api
        self.chapter_label = chapter_label
        self.match_labels = dict(match_labels)
        self.check_mode = check_mode
        self.unserved_kinds = []  # kinds the server does not serve (CRD missing)

    # ---- finding -------------------------------------------------------------------------------------------
    def selector(self, chapter=ALL_CHAPTERS):
        terms = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        terms.append(self.chapter_label if chapter == ALL_CHAPTERS else f"{self.chapter_label}={chapter}")
        return ",".join(terms)

    def find(self, chapter=ALL_CHAPTERS):
        """Every object of the chapter (or of every chapter), in creation order; unserved kinds skipped."""
        found = []
        for kind in KINDS:
            try:
                found.extend(self.api.list(kind, self.selector(chapter)))
            except NotServed:
                if kind.kind not in self.unserved_kinds:
                    self.unserved_kinds.append(kind.kind)
        return creation_order(found)

    def chapter_of(self, obj):
        return obj["metadata"].get("labels", {}).get(self.chapter_label, "")

    def list(self, chapter):
        rows = [row(obj, "present", self.chapter_of(obj)) for obj in self.find(chapter)]
        return False, rows

    # ---- reset ---------------------------------------------------------------------------------------------
    def delete(self, chapter, wait=True, timeout=300, interval=1.0, remove_foreign=False, student_objects=()):
        """Delete the chapter's objects, routes first and namespaces last; wait until they are gone.

        A namespace the chapter created is kept while it still holds another
        chapter's objects (chapter 4's DestinationRule in chapter 1's namespace),
        or objects istio-lab did not create (a student's: foreign.py), unless
        remove_foreign. `student_objects` (refs a check attributed to the
        chapter's exercise) are deleted first, exactly those.
        """
        everything = self.find(ALL_CHAPTERS)
        is_mine = [chapter == ALL_CHAPTERS or self.chapter_of(o) == chapter for o in everything]
        others = [o for o, mine in zip(everything, is_mine, strict=True) if not mine]
        rows, doomed, empty = [], [], []
        students = self.student_plan(student_objects)
        for obj in reversed([o for o, mine in zip(everything, is_mine, strict=True) if mine]):
            kind, _namespace, name = ref(obj)
            tenants = sorted({self.chapter_of(o) for o in others if ref(o)[1] == name}) if kind == "Namespace" else []
            if tenants:
                rows.append(row(obj, "kept: holds chapter " + ", ".join(tenants) + " objects", self.chapter_of(obj)))
            elif kind == "Namespace":
                empty.append(obj)  # decided below, once the namespaces' contents are read
            else:
                doomed.append(obj)
                rows.append(row(obj, "would delete" if self.check_mode else "deleted", self.chapter_of(obj)))
        leaving = {ref(o) for o in doomed} | {ref(o) for o, _kind in students}
        gone, kept = plan_namespaces(self.api.client, empty, self.match_labels, remove_foreign, leaving)
        for obj in empty:
            if ref(obj)[2] in gone:
                doomed.append(obj)
                rows.append(row(obj, "would delete" if self.check_mode else "deleted", self.chapter_of(obj)))
        rows = [row(o, "would delete (the student's)" if self.check_mode else "deleted (the student's)", chapter)
                for o, _kind in students] + rows
        for entry in kept:
            if entry["quiet"] and not doomed and not students:
                continue  # a re-run: said before, nothing else to do
            rows.append({"chapter": chapter, "kind": "Namespace", "namespace": "", "name": entry["namespace"],
                         "action": "kept: holds objects istio-lab did not create"})
            rows.extend({"chapter": "", "kind": r["kind"], "namespace": r["namespace"], "name": r["name"],
                         "action": "kept: not istio-lab's"} for r in entry["objects"])
        if not self.check_mode:
            for obj, kind in students:
                self.delete_one(obj, kind)
            for obj in doomed:
                self.delete_one(obj)
            mark_all_kept(self.api.client, kept)
        if doomed and wait and not self.check_mode:
            self.wait_gone(doomed, timeout, interval)
        return bool(doomed or students or any(not k["quiet"] for k in kept)), rows

    def student_plan(self, refs):
        """The student's objects to delete, as (object ref dict, Kind), found through discovery; those the
        cluster does not hold are left out (gone already)."""
        if not refs:
            return []
        kinds = {(k.api_version, k.kind): k for k in namespaced_kinds(self.api.client)}
        plan = []
        for entry in refs:
            obj = {"apiVersion": entry.get("apiVersion", ""), "kind": entry.get("kind", ""),
                   "metadata": {"namespace": entry.get("namespace", ""), "name": entry.get("name", "")}}
            served = kinds.get((obj["apiVersion"], obj["kind"]))
            if not obj["metadata"]["namespace"] or not obj["metadata"]["name"]:
                raise ChapterError(f"student object {entry!r}: needs apiVersion, kind, namespace and name")
            if served is None:
                continue  # its kind is not served: nothing of it to delete
            kind = Kind(served.api_version, served.kind, served.plural)
            if self.api.get(kind, obj["metadata"]["namespace"], obj["metadata"]["name"]) is not None:
                plan.append((obj, kind))
        return plan

    def delete_one(self, obj, kind=None):
        _kind, namespace, name = ref(obj)
        try:  # Foreground: a Deployment is gone only once its pods are
            self.api.call("delete", "DELETE", (kind or kind_of(obj)).path(namespace, name),
                          {"propagationPolicy": "Foreground"})
        except ApiStatusError as exc:
            if exc.status != 404:  # already gone is what we want
                raise

    def wait_gone(self, objects, timeout, interval):
        """Poll until the objects are gone: a deleted namespace stays (Terminating) until the namespace
        controller has emptied it, seconds on an idle cluster. Polls soon, then every `interval` at most."""
        deadline = time.monotonic() + timeout
        pending = {(o["apiVersion"], o["kind"]): set() for o in objects}
        for obj in objects:
            pending[(obj["apiVersion"], obj["kind"])].add(ref(obj))
        pause = min(0.2, interval)
        while True:
            for key in list(pending):
                try:
                    still = {ref(o) for o in self.api.list(KIND_BY_TYPE[key], self.selector())} & pending[key]
                except NotServed:
                    still = set()
                if still:
                    pending[key] = still
                else:
                    del pending[key]
            if not pending:
                return
            if time.monotonic() > deadline:
                left = sorted("/".join(filter(None, r)) for refs in pending.values() for r in refs)
                raise ChapterError(f"still there after {timeout}s: {', '.join(left)}")
            time.sleep(pause)
            pause = min(pause * 2, interval)

    def wait_namespaces_gone(self, names, timeout, interval=1.0):
        """Wait until these (terminating) namespaces read 404: nothing can be created in a namespace
        while it terminates (403 NamespaceTerminating), nor the namespace itself (409)."""
        deadline = time.monotonic() + timeout
        pause = min(0.2, interval)
        left = sorted(names)
        while left:
            left = [n for n in left if self.api.get(NAMESPACE, None, n) is not None]
            if not left:
                return
            if time.monotonic() > deadline:
                raise ChapterError(f"namespace(s) {', '.join(left)} still terminating after {timeout}s: "
                                   "wait until they are gone (kubectl get ns), then run the restore again")
            time.sleep(pause)
            pause = min(pause * 2, interval)

    # ---- cluster identity ----------------------------------------------------------------------------------
    def cluster_identity(self, name):
        """Who this cluster is: the inventory's name and the kube-system namespace's uid (None if unreadable)."""
        try:
            kube_system = self.api.get(NAMESPACE, None, "kube-system")
        except (ApiStatusError, NotServed):
            kube_system = None
        uid = (kube_system or {}).get("metadata", {}).get("uid")
        return {"name": name, "uid": uid, "server": self.api.client.server}

    # ---- save ----------------------------------------------------------------------------------------------
    def save(self, chapter, directory, cluster):
        """Write the chapter's objects and the manifest; rewrite nothing when the save is already current."""
        found = self.find(chapter)
        deleting = sorted("/".join(filter(None, ref(o))) for o in found if o["metadata"].get("deletionTimestamp"))
        if deleting:  # a terminating namespace: what a save would record is about to go
            raise ChapterError(f"chapter {chapter} is being deleted ({', '.join(deleting)}): nothing saved; "
                               "bring it up again, then save")
        objects = [strip_server_fields(o) for o in found if not is_generated(o)]
        if not objects:
            raise ChapterError(f"chapter {chapter} has no objects on this cluster: nothing to save")
        files = {file_name(o): dump(o) for o in objects}
        entries = [
            {"file": fname, "apiVersion": o["apiVersion"], "kind": o["kind"],
             "namespace": o["metadata"].get("namespace", ""), "name": o["metadata"]["name"],
             "sha256": sha256(files[fname])}
            for fname, o in zip(files, objects, strict=True)
        ]
        manifest = {"format": SAVE_FORMAT, "chapter": chapter, "cluster": self.cluster_identity(cluster),
                    "objects": entries}
        previous = read_manifest(directory, missing_ok=True)
        current = previous is not None and {k: v for k, v in previous.items() if k != "saved_at"} == manifest
        current = current and all(
            os.path.isfile(os.path.join(directory, e["file"]))
            and sha256(read_bytes(os.path.join(directory, e["file"]))) == e["sha256"] for e in entries)
        rows = [row(o, "unchanged" if current else ("would save" if self.check_mode else "saved"), chapter)
                for o in objects]
        if current or self.check_mode:
            return not current, rows
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for fname, data in files.items():
            write_private(os.path.join(directory, fname), data)
        for stale in (previous or {}).get("objects") or []:
            stale_file = os.path.basename(str(stale.get("file", "")))  # never outside the save folder
            if stale_file and stale_file not in files and os.path.isfile(os.path.join(directory, stale_file)):
                os.remove(os.path.join(directory, stale_file))
        manifest["saved_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        write_private(os.path.join(directory, MANIFEST), dump(manifest))
        return True, rows

    # ---- restore -------------------------------------------------------------------------------------------
    def verify(self, chapter, directory, cluster, force=False):
        """The saved objects, once the save is proven whole and ours; ChapterError before any write otherwise."""
        manifest = read_manifest(directory)
        where = os.path.join(directory, MANIFEST)
        if manifest.get("format") != SAVE_FORMAT:
            raise ChapterError(f"{where}: not an istio-lab chapter save (format {manifest.get('format')!r})")
        if str(manifest.get("chapter")) != chapter:
            raise ChapterError(f"{where}: a save of chapter {manifest.get('chapter')}, not of chapter {chapter}")
        saved_cluster = manifest.get("cluster") or {}
        here = self.cluster_identity(cluster)
        foreign = [f"{key} {saved_cluster.get(key)!r} (this cluster: {here[key]!r})" for key in ("name", "uid")
                   if saved_cluster.get(key) and here[key] and saved_cluster.get(key) != here[key]]
        if foreign and not force:
            raise ChapterError(f"{where}: saved from another cluster: {'; '.join(foreign)}. Restore it here anyway "
                               "with force=true (restore-chapter.yml: -e chapter_restore_force=true)")
        entries = manifest.get("objects")
        if not isinstance(entries, list) or not entries:
            raise ChapterError(f"{where}: lists no objects")
        objects, problems = [], []
        for entry in entries:
            path = os.path.join(directory, os.path.basename(str(entry.get("file", ""))))
            if not os.path.isfile(path):
                problems.append(f"{entry.get('file')}: missing")
                continue
            data = read_bytes(path)
            if sha256(data) != entry.get("sha256"):
                problems.append(f"{entry.get('file')}: checksum mismatch (edited or corrupt)")
                continue
            try:
                obj = yaml.safe_load(data)
                kind_of(obj)
                listed = (entry.get("kind"), entry.get("namespace", ""), entry.get("name"))
                if ref(obj) != listed:
                    problems.append(f"{entry['file']}: holds {'/'.join(ref(obj))}, manifest says {'/'.join(listed)}")
                elif self.chapter_of(obj) != chapter or not contains(obj["metadata"].get("labels"), self.match_labels):
                    problems.append(f"{entry['file']}: not labelled as an istio-lab object of chapter {chapter}")
                else:
                    objects.append(obj)
            except (ChapterError, KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
                problems.append(f"{entry.get('file')}: not a Kubernetes object istio-lab saves ({exc})")
        if problems:
            raise ChapterError(f"refusing the save in {directory}: " + "; ".join(problems))
        return creation_order(objects)

    def restore(self, chapter, directory, cluster, force=False, wait_timeout=300):
        """Apply a verified save: create what is missing, replace what differs, leave identical objects alone.

        A namespace of the save that is still terminating (a reset that did not wait, a `kubectl delete
        ns`) is waited for until it is gone, then created again: restoring into it would be refused."""
        objects = self.verify(chapter, directory, cluster, force)
        involved = {ref(o)[2] for o in objects if o["kind"] == "Namespace"} | {ref(o)[1] for o in objects if ref(o)[1]}
        terminating = []
        for name in sorted(involved):
            live = self.api.get(NAMESPACE, None, name)
            if live is not None and live["metadata"].get("deletionTimestamp"):
                terminating.append(name)
        if terminating and not self.check_mode:
            self.wait_namespaces_gone(terminating, wait_timeout)
        plan, missing_types = [], set()
        for obj in objects:  # every read before the first write: a cluster that cannot take the save is refused
            kind, namespace, name = ref(obj)
            if self.check_mode and (namespace in terminating or (kind == "Namespace" and name in terminating)):
                plan.append((obj, None))  # gone by the time a real run writes
                continue
            try:
                plan.append((obj, self.api.get(kind_of(obj), namespace, name)))
            except NotServed:
                missing_types.add(f"{obj['apiVersion']} {kind}")
        if missing_types:
            raise ChapterError("this cluster does not serve " + ", ".join(sorted(missing_types))
                               + ": build the platform (Istio CRDs) before restoring")
        saved_namespaces = {ref(o)[2] for o in objects if o["kind"] == "Namespace"}
        needed = {ref(o)[1] for o in objects if ref(o)[1]} - saved_namespaces
        absent = sorted(n for n in needed if n in terminating or self.api.get(NAMESPACE, None, n) is None)
        if absent:
            raise ChapterError(f"namespace(s) {', '.join(absent)} missing: build the platform before restoring")
        parents, sets = self.plan_parents(chapter, objects)
        rows = self.record_sets(chapter, parents, sets)
        changed = bool(rows)
        for obj, live in plan:
            if live is not None and not self.differs(live, obj):
                rows.append(row(obj, "unchanged", chapter))
                continue
            changed = True
            action = "created" if live is None else "replaced"
            rows.append(row(obj, ("would be " + action) if self.check_mode else action, chapter))
            if not self.check_mode:
                self.write(obj, live)
        return changed, rows

    def plan_parents(self, chapter, objects):
        """The sets (apps, chapter-<id>) the saved objects are members of, and their parents, read before any
        write; a parent of another tool or ID refuses the restore."""
        names = {applyset.set_id(name): name for name in ("apps", f"chapter-{chapter}")}
        sets = {}
        for obj in objects:
            name = names.get((obj["metadata"].get("labels") or {}).get(applyset.PART_OF))
            if name:
                sets.setdefault(name, []).append(obj)
        parents = applyset.Parents(self.api.client, self.match_labels, self.check_mode)
        refused = parents.read(sorted(sets)) if sets else []
        if refused:
            raise ChapterError(f"{refused[0]}: nothing was written")
        return parents, sets

    def record_sets(self, chapter, parents, sets):
        """A chapter out of lab_enabled_chapters was pruned with its sets' parents (or their record of its
        namespaces): the restored members are recorded again, before they are written (KEP-3659's order),
        so that the next site.yml prunes them as it prunes any chapter not enabled."""
        rows = []
        for name, members in sorted(sets.items()):
            kinds, namespaces = parents.recorded(name)
            keys = [(applyset.group_of(o["apiVersion"]), *ref(o)) for o in members]
            if parents.write(name, kinds | applyset.group_kinds_of(keys), namespaces | {k[2] for k in keys if k[2]}):
                action = parents.actions[name]
                rows.append({"chapter": chapter, "kind": "ConfigMap", "namespace": applyset.PARENT_NAMESPACE,
                             "name": applyset.parent_name(name),
                             "action": f"{'would be ' if self.check_mode else ''}{action} (parent of set {name})"})
        return rows

    @staticmethod
    def differs(live, saved):
        """Istio kinds compare as the Istio modules do (the spec exactly: a route a student added is a
        difference); built-in kinds by containment, since their live objects carry server defaults."""
        if is_istio(saved):
            return differs(live, canonical(saved))
        return not contains(live, saved)

    def write(self, obj, live):
        kind, namespace, name = ref(obj)
        if live is None:
            self.api.call("create", "POST", kind_of(obj).path(namespace), body=obj)
            return
        if is_istio(obj):  # replaced as the Istio modules replace: our spec and labels, others' labels kept
            body = merged_object(live, canonical(obj))
        else:
            body = copy.deepcopy(obj)
            body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            if kind == "Service":
                keep_allocated(body["spec"], live.get("spec", {}))
        self.api.call("update", "PUT", kind_of(obj).path(namespace, name), body=body)


def keep_allocated(spec, live_spec):
    """A Service keeps the cluster IPs and node ports the cluster gave it."""
    for key in SERVICE_ALLOCATED:
        if key in live_spec:
            spec[key] = live_spec[key]
    node_ports = {(p.get("port"), p.get("protocol")): p.get("nodePort") for p in live_spec.get("ports", [])}
    for port in spec.get("ports", []):
        if node_ports.get((port.get("port"), port.get("protocol"))):
            port["nodePort"] = node_ports[(port.get("port"), port.get("protocol"))]


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def read_manifest(directory, missing_ok=False):
    """The save's manifest; None (missing_ok) or ChapterError when there is none or it is unreadable."""
    path = os.path.join(directory, MANIFEST)
    manifest, problem = None, None
    if not os.path.isfile(path):
        problem = f"no save here: {path} does not exist"
    else:
        try:
            manifest = yaml.safe_load(read_bytes(path))
        except yaml.YAMLError as exc:
            problem = f"{path}: not valid YAML ({exc})"
        if problem is None and not isinstance(manifest, dict):
            problem = f"{path}: not an istio-lab chapter save"
    if problem is None:
        return manifest
    if missing_ok:
        return None
    raise ChapterError(problem)


def row(obj, action, chapter):
    kind, namespace, name = ref(obj)
    return {"chapter": chapter, "kind": kind, "namespace": namespace, "name": name, "action": action}


def table(rows):
    """The short table reset and restore print: one line per object."""
    header = {"chapter": "CHAPTER", "kind": "KIND", "namespace": "NAMESPACE", "name": "NAME", "action": "ACTION"}
    if not rows:
        return ["(no objects)"]
    columns = list(header)
    widths = {c: max(len(str(r[c])) for r in [header, *rows]) for c in columns}
    return ["  ".join(str(r[c]).ljust(widths[c]) for c in columns).rstrip() for r in [header, *rows]]
