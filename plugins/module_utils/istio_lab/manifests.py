# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apply engine for manifests of any kind (module lab_manifests): one
process, one connection, for a whole stage of the lab (MetalLB's native
manifest, the Istio addons, the chapters' namespaces and apps).

- Discovery: one GET of /api/v1 or /apis/<group>/<version> per group-version
  the manifests use (plural, namespaced or not).
- The live objects: one LIST per kind and namespace scope, narrowed to
  istio-lab's objects by the managed-by labels (resource.list_objects).
- The decision, per object: ``missing`` (not listed), ``changed`` (its
  ``istio-lab.io/applied-hash`` annotation is not the sha256 of the manifest
  as applied now: the manifest changed, removed fields included) or
  ``drifted`` (some value istio-lab sets is not in the live object any more).
  The comparison treats a null, empty or zero value of the manifest as equal
  to a field the live object lacks: the API server does not store such
  values where the Go type omits them. Secrets carry no hash (a hash of a
  short password is easy to reverse): the comparison alone decides.
- Writes: server-side apply (PATCH application/apply-patch+yaml,
  fieldManager=istio-lab, force=true) of what differs only, the body UTF-8
  JSON (``\\u`` surrogate escapes of emoji are refused by the server's YAML
  decoder). Refusals of an admission webhook that is not up yet ("failed
  calling webhook") are retried until the timeout; any other refusal fails
  naming the object.
- Order: CustomResourceDefinitions, waited for until Established; Namespaces;
  the rest; then the waits (rollouts, Endpoints with addresses, a
  LoadBalancer's address); then the objects of ``after_wait``.
- ``stop_if_changed``: when any object would be written or any object of
  wait_for is missing, nothing is written or waited for (``stopped``); else
  the waits only. One call checks that an install made by another tool
  (istioctl) is the recorded one and waits for it.
- Check mode writes nothing: dryRun=All applies, and objects of a namespace
  or a kind that does not exist yet are reported as would-be created.
- ``applyset``: the call's objects are one owned set (applyset.py, KEP-3659):
  members labelled, the parent ConfigMap read once (GET) and written only
  when what it records changes. With ``prune``, once every apply and wait of
  the call succeeded, the members the call no longer applies are deleted:
  found in the LISTs the call makes anyway (their scope widened to the
  namespaces the parent records), plus one LIST per kind the parent records
  that the call no longer applies. ``state: absent`` deletes every member
  and the parent.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab import applyset, foreign
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import ApplyFailed, run_guarded
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import CONNECTION_ARGS
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import POOL_SIZE, ApiStatusError, KubeError
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.resource import (
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    list_objects,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.sources import (
    SourceError,
    env_from_secret,
    mirror_images,
    yaml_documents,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate import Problem

APPLIED_HASH = "istio-lab.io/applied-hash"
FIELD_MANAGER = "istio-lab"
APPLY_PATCH = "application/apply-patch+yaml"
DEFAULT_LABELS = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}
CRD_KIND = "CustomResourceDefinition"
CRD_API_VERSION = "apiextensions.k8s.io/v1"
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")
# The apiVersion of a wait_for entry that names none.
DEFAULT_API_VERSIONS = {"Deployment": "apps/v1", "DaemonSet": "apps/v1", "StatefulSet": "apps/v1",
                        "ReplicaSet": "apps/v1", CRD_KIND: CRD_API_VERSION}
# Written after the other objects of their step: what runs pods, and what
# admission webhooks call (a webhook configuration before its Service and
# Deployment would refuse writes of the same step).
LATE_KINDS = frozenset({"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "CronJob", "Pod",
                        "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"})
WEBHOOK_REFUSALS = ("failed calling webhook", "failed to call webhook")
HIDDEN = "VALUE_HIDDEN"
PAST_TENSE = {"create": "created", "update": "updated", "unchanged": "unchanged"}


# ---------------------------------------------------------------- pure logic


def _group(api_version):
    return api_version.rpartition("/")[0] if "/" in (api_version or "") else ""


def is_secret(manifest):
    return manifest.get("kind") == "Secret" and _group(manifest.get("apiVersion")) == ""


def _with_annotations(manifest, annotations):
    """A copy of the manifest whose metadata.annotations is `annotations`
    (dropped when empty). Shallow: only the top level and metadata are new."""
    metadata = dict(manifest.get("metadata") or {})
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    return {**manifest, "metadata": metadata}


def without_hash(manifest):
    """The manifest without istio-lab's hash annotation (and without an
    annotations map left empty or null, so that stamping changes no hash)."""
    metadata = manifest.get("metadata") or {}
    annotations = metadata.get("annotations")
    if "annotations" not in metadata or (annotations and APPLIED_HASH not in annotations):
        return manifest
    return _with_annotations(manifest, {k: v for k, v in (annotations or {}).items() if k != APPLIED_HASH})


def applied_hash(manifest):
    """sha256 of a manifest as istio-lab applies it (its own hash annotation left out)."""
    text = json.dumps(without_hash(manifest), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def with_applied_hash(manifest):
    """The manifest annotated with its own applied_hash; a Secret as it is."""
    if is_secret(manifest):
        return manifest
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    return _with_annotations(manifest, {**annotations, APPLIED_HASH: applied_hash(manifest)})


def with_labels(manifest, labels):
    """A shallow copy of the manifest with `labels` merged into its labels."""
    if not labels:
        return manifest
    metadata = dict(manifest.get("metadata") or {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    return {**manifest, "metadata": metadata}


def vacuous(value):
    """A value the API server does not store where the Go type omits it:
    null, "", 0, false, {} and [] (and a map holding only such values)."""
    if value is None or value is False or value == "" or value == []:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value == 0
    if isinstance(value, dict):
        return all(vacuous(v) for v in value.values())
    return False


def contains(live, desired):
    """True when every value of ``desired`` is in ``live``: maps key by key
    (a null, empty or zero desired value also matches a missing field),
    lists of scalars exactly, lists of objects as an ordered subsequence
    (others may add entries; an edited or removed desired entry fails),
    scalars equal (an int matches its string form: 8080 and "8080")."""
    if desired is None:
        return True
    if isinstance(desired, dict):
        if live is None:
            return vacuous(desired)
        if not isinstance(live, dict):
            return False
        for key, value in desired.items():
            if key not in live or live[key] is None:
                if not vacuous(value):
                    return False
            elif not contains(live[key], value):
                return False
        return True
    if isinstance(desired, list):
        if live is None:
            return not desired
        if not isinstance(live, list):
            return False
        if not any(isinstance(item, (dict, list)) for item in desired):
            return len(desired) == len(live) and all(contains(a, b) for a, b in zip(live, desired, strict=True))
        remaining = iter(live)
        return all(any(contains(candidate, item) for candidate in remaining) for item in desired)
    if live is None:
        return vacuous(desired)
    if isinstance(live, (dict, list)):
        return False
    if desired == live and type(desired) is type(live):
        return True
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live
    if isinstance(desired, (int, float)) and isinstance(live, (int, float)):
        return desired == live
    return str(desired) == str(live)


def apply_reason(manifest, live):
    """Why ``manifest`` (stamped by with_applied_hash, or a Secret) must be
    applied over ``live``: ``missing``, ``changed`` or ``drifted``; an empty
    string when the live object already is it."""
    if live is None:
        return "missing"
    if is_secret(manifest):
        return "" if contains(live, manifest) else "drifted"
    recorded = ((live.get("metadata") or {}).get("annotations") or {}).get(APPLIED_HASH)
    if recorded != applied_hash(manifest):
        return "changed"
    return "" if contains(live, without_hash(manifest)) else "drifted"


def secret_manifest(entry, namespace, labels):
    """A Secret from a `secrets` entry (data base64, string_data encoded here)."""
    data = dict(entry.get("data") or {})
    for key, value in (entry.get("string_data") or {}).items():
        data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")
    metadata = {"name": entry["name"], "namespace": entry.get("namespace") or namespace}
    metadata["labels"] = {**(entry.get("labels") or {}), **(labels or {})}
    return {"apiVersion": "v1", "kind": "Secret", "type": entry.get("type") or "Opaque", "metadata": metadata,
            "data": data}


def hide_secret(obj):
    """An object as results and diffs may show it: a Secret's values hidden."""
    if not obj or not is_secret(obj):
        return obj
    shown = dict(obj)
    for field in ("data", "stringData"):
        if isinstance(shown.get(field), dict):
            shown[field] = {key: HIDDEN for key in shown[field]}
    return shown


def diff_view(obj):
    """What a diff shows of an object: no status, no server-managed metadata."""
    if not obj:
        return {}
    shown = {k: v for k, v in hide_secret(obj).items() if k != "status"}
    meta = {k: v for k, v in (shown.get("metadata") or {}).items()
            if k not in ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation")}
    shown["metadata"] = meta
    return shown


# ---------------------------------------------------------------- readiness


def _conditions(obj):
    return {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}


def rolled_out(obj):
    """A Deployment, DaemonSet or StatefulSet whose current spec runs everywhere."""
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    if generation is not None and status.get("observedGeneration", 0) < generation:
        return False
    kind = obj.get("kind")
    if kind == "DaemonSet":
        desired = status.get("desiredNumberScheduled", 0)
        return status.get("updatedNumberScheduled", 0) >= desired and status.get("numberAvailable", 0) >= desired
    replicas = spec.get("replicas", 1)
    if kind == "StatefulSet":
        return status.get("updatedReplicas", 0) >= replicas and status.get("readyReplicas", 0) >= replicas
    if _conditions(obj).get("Available") == "False":
        return False
    return status.get("updatedReplicas", 0) >= replicas and status.get("availableReplicas", 0) >= replicas


def established(obj):
    return _conditions(obj).get("Established") == "True"


def addresses(obj):
    """Endpoints: the ready addresses; a Service: its load balancer's addresses."""
    if obj.get("kind") == "Endpoints":
        return [a.get("ip") for s in obj.get("subsets") or [] for a in s.get("addresses") or []]
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]


def ready(obj, kind):
    """Whether a waited-for object is ready, by kind."""
    if obj is None:
        return False
    if kind in WORKLOAD_KINDS:
        return rolled_out(obj)
    if kind == CRD_KIND:
        return established(obj)
    if kind in ("Endpoints", "Service"):
        return bool(addresses(obj))
    return True


def _waiting_for(kind):
    return {"Deployment": "to be rolled out", "DaemonSet": "to be rolled out", "StatefulSet": "to be rolled out",
            CRD_KIND: "to be Established", "Endpoints": "to have ready addresses",
            "Service": "to get a load balancer address"}.get(kind, "to exist")


# ---------------------------------------------------------------- discovery


class Resource:
    """One kind at one API version as the server serves it."""

    def __init__(self, api_version, kind, plural, namespaced, pending=False):
        self.api_version = api_version
        self.kind = kind
        self.plural = plural
        self.namespaced = namespaced
        self.pending = pending  # defined by a CRD of this call not yet served (check mode)
        self.base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"

    def path(self, namespace, name=None):
        path = f"{self.base}/namespaces/{namespace}/{self.plural}" if self.namespaced else \
            f"{self.base}/{self.plural}"
        return f"{path}/{name}" if name else path


class Discovery:
    """The resource lists of the group-versions used, each read once."""

    def __init__(self, client, crds=()):
        self.client = client
        self.crds = list(crds)
        self.lists = {}

    def forget(self, api_version):
        self.lists.pop(api_version, None)

    def _resources(self, api_version):
        if api_version not in self.lists:
            path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
            try:
                answer = self.client.request("discovery", "GET", path)
            except ApiStatusError as exc:
                if exc.status != 404:
                    raise
                answer = {}
            self.lists[api_version] = {r["kind"]: r for r in answer.get("resources") or []
                                       if "/" not in r.get("name", "")}
        return self.lists[api_version]

    def _from_crds(self, api_version, kind):
        group, _sep, version = api_version.rpartition("/")
        for crd in self.crds:
            spec = crd.get("spec") or {}
            names = spec.get("names") or {}
            if spec.get("group") == group and names.get("kind") == kind and \
                    any(v.get("name") == version for v in spec.get("versions") or []):
                return Resource(api_version, kind, names.get("plural"), spec.get("scope") != "Cluster", pending=True)
        return None

    def group_kind(self, group, kind):
        """The resource of a kind given by group only (a set's recorded
        kinds): the group's preferred version when it serves the kind, else
        the first other version that does; None when not served."""
        api_versions = ["v1"]
        if group:
            try:
                answer = self.client.request("discovery", "GET", f"/apis/{group}")
            except ApiStatusError as exc:
                if exc.status != 404:
                    raise
                return None
            preferred = (answer.get("preferredVersion") or {}).get("groupVersion")
            api_versions = [preferred] if preferred else []
            api_versions += [v.get("groupVersion") for v in answer.get("versions") or []
                             if v.get("groupVersion") and v.get("groupVersion") != preferred]
        for api_version in api_versions:
            found = self._resources(api_version).get(kind)
            if found:
                return Resource(api_version, kind, found["name"], found.get("namespaced", False))
        return None

    def resource(self, api_version, kind, allow_pending=False):
        found = self._resources(api_version).get(kind)
        if found is not None:
            return Resource(api_version, kind, found["name"], found.get("namespaced", False))
        pending = self._from_crds(api_version, kind) if allow_pending else None
        if pending is not None:
            return pending
        raise KubeError(f"{kind} ({api_version}) is not served by the cluster at {self.client.describe()}: "
                        "install its CustomResourceDefinition first, or check apiVersion and kind")


# ---------------------------------------------------------------- the engine


class Item:
    """One object of the call and what becomes of it."""

    def __init__(self, manifest, where):
        self.manifest = manifest
        self.where = where
        self.kind = manifest["kind"]
        self.api_version = manifest["apiVersion"]
        meta = manifest["metadata"]
        self.name = meta["name"]
        self.namespace = meta.get("namespace") or ""
        self.resource = None
        self.live = None
        self.stored = None
        self.action = None
        self.reason = ""

    @property
    def key(self):
        return (_group(self.api_version), self.kind, self.namespace, self.name)

    def ref(self):
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def row(self):
        return {"kind": self.kind, "api_version": self.api_version, "namespace": self.namespace, "name": self.name,
                "action": PAST_TENSE[self.action], "reason": self.reason}


def _problem(item, message):
    return Problem(item.ref() if item else "", "", message)


def _message(exc):
    body = exc.body if isinstance(exc.body, dict) else {}
    return body.get("message") or str(exc)


def is_webhook_refusal(exc):
    """An admission webhook that is not up yet (MetalLB's right after install)."""
    text = _message(exc)
    return isinstance(exc, ApiStatusError) and any(marker in text for marker in WEBHOOK_REFUSALS)


def _namespace_missing(exc):
    """A 404 Status that says the namespace does not exist (a dry run in a namespace still to be created)."""
    if exc.status != 404 or not isinstance(exc.body, dict):
        return False
    return (exc.body.get("details") or {}).get("kind") == "namespaces" or "namespaces" in _message(exc)


class ManifestApplier:
    """Apply one call's manifests; see the module documentation."""

    def __init__(self, client, params, check_mode=False, want_diff=False, sleep=time.sleep, clock=time.monotonic):
        self.client = client
        self.params = params
        self.check_mode = check_mode
        self.want_diff = want_diff
        self.sleep = sleep
        self.clock = clock
        managed = {str(k): str(v) for k, v in (params.get("managed_labels") or {}).items()}
        # The LISTs select on the managed labels only: a member not labelled
        # with its set yet (a lab built before the sets) is found and adopted.
        self.selector = ",".join(f"{k}={v}" for k, v in sorted(managed.items()))
        self.managed = managed
        self.set_name = params.get("applyset") or ""
        self.identity = applyset.set_id(self.set_name) if self.set_name else ""
        self.labels = {**managed, applyset.PART_OF: self.identity} if self.set_name else managed
        self.absent = params.get("state") == "absent"
        prune = params.get("prune")
        self.prune = bool(self.set_name) and (self.absent or (prune if prune is not None else True))
        self.prune_crds = bool(params.get("prune_crds"))
        self.parent = None
        self.parents = applyset.Parents(client, managed, check_mode)
        self.recorded_kinds, self.recorded_namespaces = set(), set()
        self.seen = {}  # (group, kind, namespace, name) -> live object, from every LIST of the call
        self.listed = set()  # (group, kind) listed
        self.pruned = []
        self.kept = []
        self.kept_namespaces = []  # {"namespace", "objects", "quiet"}: members kept for what else they hold
        self.namespace = params.get("namespace") or "default"
        self.timeout = params.get("wait_timeout") or 0
        self.delay = params.get("retry_delay") if params.get("retry_delay") is not None else 5
        self.discovery = None
        self.webhook_retries = 0
        self.written = 0

    # ------------------------------------------------------------ input

    def _items(self, manifests, option, seen, problems):
        return self._located_items(((manifest, f"{option}[{i}]") for i, manifest in enumerate(manifests or [])),
                                   seen, problems)

    def _located_items(self, located, seen, problems):
        items = []
        for manifest, where in located:
            if not isinstance(manifest, dict) or not manifest.get("apiVersion") or not manifest.get("kind") or \
                    not (manifest.get("metadata") or {}).get("name"):
                problems.append(Problem(where, "", f"{where}: an object needs apiVersion, kind and metadata.name"))
                continue
            if manifest["kind"].endswith("List") and "items" in manifest:
                problems.append(Problem(where, "", f"{where}: give the items of a {manifest['kind']}, not the list"))
                continue
            item = Item(with_applied_hash(with_labels(manifest, self.labels)), where)
            if item.key in seen:
                problems.append(_problem(item, f"{where}: {item.ref()} appears twice (also {seen[item.key]})"))
                continue
            seen[item.key] = where
            items.append(item)
        return items

    def _from_files(self):
        """The documents of `src`, adjusted as `image_mirror` and `env_from_secret` say, with where each came from."""
        try:
            located = [(doc, f"src {path} document {i}")
                       for path, i, doc in yaml_documents(self.params.get("src") or [])]
        except SourceError as exc:
            raise ApplyFailed(str(exc)) from None
        documents = mirror_images([doc for doc, _where in located], self.params.get("image_mirror"))
        for entry in self.params.get("env_from_secret") or []:
            documents = env_from_secret(documents, entry["kind"], entry["name"], entry["env"], entry["secret"],
                                        entry["key"])
        return list(zip(documents, (where for _doc, where in located), strict=True))

    def read_input(self):
        problems, seen = [], {}
        main = self._located_items(self._from_files(), seen, problems)
        main += self._items(self.params.get("manifests"), "manifests", seen, problems)
        secrets = [secret_manifest(entry, self.namespace, self.labels) for entry in self.params.get("secrets") or []]
        main += self._items(secrets, "secrets", seen, problems)
        late = self._items(self.params.get("after_wait"), "after_wait", seen, problems)
        if problems:
            raise ApplyFailed(f"{len(problems)} problem(s) found, nothing was written:\n" +
                              "\n".join(f"- {p.message}" for p in problems), problems)
        return main, late

    # ------------------------------------------------------------ reading

    def resolve(self, items):
        for item in items:
            item.resource = self.discovery.resource(item.api_version, item.kind, allow_pending=self.check_mode)
            if item.resource.namespaced:
                if not item.namespace:
                    item.namespace = self.namespace
                    item.manifest = {**item.manifest, "metadata": {**item.manifest["metadata"],
                                                                   "namespace": self.namespace}}
            else:
                item.namespace = ""

    def read_live(self, items):
        """One LIST per kind and namespace scope, a few at a time."""
        scopes = {}
        for item in items:
            if item.resource.pending:
                continue
            key = (item.resource.api_version, item.resource.kind)
            resource, namespaces = scopes.setdefault(key, (item.resource, set()))
            if resource.namespaced:
                namespaces.add(item.namespace)
                if self.prune:
                    # One LIST per kind either way; it also finds members left in other namespaces.
                    namespaces.update(self.recorded_namespaces)

        def one(entry):
            resource, namespaces = entry
            return list_objects(self.client, resource.base, resource.plural,
                                namespaces if resource.namespaced else None, resource.kind, self.selector)

        entries = list(scopes.values())
        if len(entries) > 1:
            with ThreadPoolExecutor(max_workers=min(POOL_SIZE, len(entries))) as pool:
                answers = list(pool.map(one, entries))
        else:
            answers = [one(entry) for entry in entries]
        live = {}
        for (resource, _namespace), found in zip(entries, answers, strict=True):
            self.listed.add((_group(resource.api_version), resource.kind))
            for (namespace, name), obj in found.items():
                live[(resource.api_version, resource.kind, namespace, name)] = obj
                self.seen[(_group(resource.api_version), resource.kind, namespace, name)] = obj
        for item in items:
            item.live = live.get((item.api_version, item.kind, item.namespace, item.name))
            item.reason = apply_reason(item.manifest, item.live)
            item.action = "unchanged" if not item.reason else ("create" if item.live is None else "update")
            item.stored = item.live

    # ------------------------------------------------------------ writing

    def _apply(self, item):
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        if self.check_mode:
            query.append(("dryRun", "All"))
        body = json.dumps(item.manifest, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        verb = "patch_dry_run" if self.check_mode else "patch"
        return self.client.request(verb, "PATCH", item.resource.path(item.namespace, item.name), query, body,
                                   content_type=APPLY_PATCH)

    def _write(self, item):
        if self.check_mode and item.resource.pending:
            item.stored = item.manifest  # its kind is not served yet: it would be created
            return
        deadline = None
        while True:
            try:
                item.stored = self._apply(item)
                return
            except ApiStatusError as exc:
                if self.check_mode and _namespace_missing(exc):
                    item.stored = item.manifest  # its namespace would be created first
                    return
                if not is_webhook_refusal(exc):
                    raise ApplyFailed(f"{item.ref()} ({item.where}): the API server refused the apply: "
                                      f"{_message(exc)}", [_problem(item, _message(exc))]) from None
                deadline = deadline if deadline is not None else self.clock() + self.timeout
                if self.clock() + self.delay > deadline:
                    raise ApplyFailed(f"{item.ref()} ({item.where}): an admission webhook kept refusing it for "
                                      f"{self.timeout} s: {_message(exc)}. Is the webhook's Deployment running?",
                                      [_problem(item, _message(exc))]) from None
                self.webhook_retries += 1
                self.sleep(self.delay)

    def write(self, items):
        """Apply what differs, a few objects at a time; every write is
        attempted, the first failure in input order raised afterwards."""
        writes = [item for item in items if item.action != "unchanged"]
        if not writes:
            return
        if len(writes) == 1:
            futures_failures = []
            try:
                self._write(writes[0])
            except KubeError as exc:
                futures_failures.append(exc)
        else:
            with ThreadPoolExecutor(max_workers=min(POOL_SIZE, len(writes))) as pool:
                futures = [pool.submit(self._write, item) for item in writes]
            futures_failures = [f.exception() for f in futures if f.exception() is not None]
        done = len(writes) - len(futures_failures)
        if not self.check_mode:
            self.written += done
        if futures_failures:
            first = futures_failures[0]
            if isinstance(first, ApplyFailed):
                raise ApplyFailed(f"{first} ({self.written} object(s) of this task were written; run it again "
                                  "once fixed)", first.problems)
            raise first

    # ------------------------------------------------------------ waiting

    def _get(self, resource, namespace, name):
        try:
            return self.client.request("get", "GET", resource.path(namespace, name))
        except ApiStatusError as exc:
            if exc.status == 404:
                return None
            raise

    def wait_until_ready(self, resource, namespace, name, known=None):
        """Poll with GET until ready (`known`: the object as last seen, which
        spares the first GET when it already is); the object."""
        deadline = self.clock() + self.timeout
        obj = known
        while True:
            if obj is None or not ready(obj, resource.kind):
                obj = self._get(resource, namespace, name)
            if ready(obj, resource.kind):
                return obj
            if self.clock() + self.delay > deadline:
                where = f"{namespace}/{name}" if namespace else name
                state = "does not exist" if obj is None else "is not"
                raise KubeError(f"timed out after {self.timeout} s waiting for {resource.kind} {where} "
                                f"{_waiting_for(resource.kind)} ({state}{'' if obj is None else ' yet'}); "
                                "raise wait_timeout, or look at its events")
            self.sleep(self.delay)

    def await_deletions(self, namespaces):
        """A namespace being deleted (a chapter reset a moment ago) refuses
        new content and cannot be created again until the namespace
        controller has emptied it: wait until it is gone, then create it."""
        for item in namespaces:
            if ((item.live or {}).get("status") or {}).get("phase") != "Terminating":
                continue
            item.live = item.stored = None
            item.action, item.reason = "create", "missing"
            if self.check_mode:
                continue
            deadline = self.clock() + self.timeout
            while self._get(item.resource, "", item.name) is not None:
                if self.clock() + self.delay > deadline:
                    raise KubeError(f"namespace {item.name} is still being deleted after {self.timeout} s (its "
                                    "finalizers wait for something): raise wait_timeout, or look at its status")
                self.sleep(self.delay)

    def wait_crds(self, crds):
        for item in crds:
            if self.check_mode:
                continue
            if not established(item.stored or {}):
                item.stored = self.wait_until_ready(item.resource, "", item.name)
            spec = item.manifest.get("spec") or {}
            for version in spec.get("versions") or []:
                self.discovery.forget(f"{spec.get('group')}/{version.get('name')}")

    def _target(self, entry):
        """(resource, namespace, name) of a wait_for or read entry."""
        kind = entry["kind"]
        resource = self.discovery.resource(entry.get("api_version") or DEFAULT_API_VERSIONS.get(kind, "v1"), kind)
        namespace = (entry.get("namespace") or self.namespace) if resource.namespaced else ""
        return resource, namespace, entry["name"]

    def reads(self):
        """The objects of `read` as they are before anything is written (None: missing)."""
        found = []
        for entry in self.params.get("read") or []:
            obj = hide_secret(self._get(*self._target(entry)))
            if obj:
                obj = {**obj, "metadata": {k: v for k, v in (obj.get("metadata") or {}).items()
                                           if k != "managedFields"}}
            found.append(obj)
        return found

    def waits(self, items, seen=None):
        """The rollout waits (`wait`) and `wait_for`; what was waited for.
        `seen`: objects of wait_for already read, by (kind, namespace, name)."""
        targets = []
        if self.params.get("wait"):
            targets += [(i.resource, i.namespace, i.name, i.stored) for i in items if i.kind in WORKLOAD_KINDS]
        known = {**(seen or {}), **{(i.kind, i.namespace, i.name): i.stored for i in items}}
        for entry in self.params.get("wait_for") or []:
            resource, namespace, name = self._target(entry)
            targets.append((resource, namespace, name, known.get((resource.kind, namespace, name))))
        waited = []
        for resource, namespace, name, obj in targets:
            obj = self.wait_until_ready(resource, namespace, name, obj)
            row = {"kind": resource.kind, "namespace": namespace, "name": name, "ready": True}
            if resource.kind in ("Endpoints", "Service"):
                row["addresses"] = addresses(obj)
            waited.append(row)
        return waited

    # ------------------------------------------------------------ the owned set

    def read_parent(self):
        """The set's parent (one GET) and what it records."""
        refused = self.parents.read([self.set_name])
        if refused:
            raise ApplyFailed(f"{refused[0]}: istio-lab will not record its set {self.set_name} there; nothing was "
                              "written")
        self.parent = self.parents.live[self.set_name]
        self.recorded_kinds, self.recorded_namespaces = applyset.recorded(self.parent)

    def write_parent(self, group_kinds, namespaces):
        self.parents.write(self.set_name, group_kinds, namespaces)
        self.parent = self.parents.live[self.set_name]

    def delete_parent(self):
        self.parents.delete(self.set_name)
        self.parent = None

    def _delete(self, path):
        applyset.delete(self.client, path)

    def _list_recorded(self):
        """The kinds the parent records that no LIST of this call covered:
        one LIST each (only when the set lost a kind, or on removal)."""
        for group, kind in sorted(self.recorded_kinds - self.listed):
            resource = self.discovery.group_kind(group, kind)
            if resource is None:
                continue  # no longer served: nothing of it is left
            namespaces = set(self.recorded_namespaces) if resource.namespaced else None
            if namespaces is not None and not namespaces:
                continue
            found = list_objects(self.client, resource.base, resource.plural, namespaces, kind, self.selector)
            self.listed.add((group, kind))
            for (namespace, name), obj in found.items():
                self.seen[(group, kind, namespace, name)] = obj

    def refuse_crds_in_use(self):
        """`refuse_crds_in_use`: one LIST of the CRDs, then the objects of
        those of the given groups (suffixes); fails while any is not istio-lab's."""
        suffixes = tuple(self.params.get("refuse_crds_in_use") or ())
        if not suffixes:
            return
        found = list_objects(self.client, "/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", None,
                             CRD_KIND)
        crds = [obj for obj in found.values()
                if any(((obj.get("spec") or {}).get("group") or "").endswith(s) for s in suffixes)]
        self._crds_in_use([(applyset.CRD_GROUP_KIND[0], CRD_KIND, "", crd["metadata"]["name"]) for crd in crds],
                          {(applyset.CRD_GROUP_KIND[0], CRD_KIND, "", crd["metadata"]["name"]): crd for crd in crds})

    def _crds_in_use(self, keys, objects=None):
        """Refuse to delete a CRD whose kind still has objects istio-lab does
        not manage (a user's): deleting the CRD would delete them too."""
        objects = self.seen if objects is None else objects
        busy = []
        for key in keys:
            if (key[0], key[1]) != applyset.CRD_GROUP_KIND:
                continue
            spec = (objects[key].get("spec") or {})
            names = spec.get("names") or {}
            versions = [v.get("name") for v in spec.get("versions") or [] if v.get("served", True)]
            if not versions:
                continue
            base = f"/apis/{spec.get('group')}/{versions[0]}"
            try:
                found = list_objects(self.client, base, names.get("plural"), None, names.get("kind"))
            except ApiStatusError as exc:
                if exc.status == 404:
                    continue
                raise
            foreign = [f"{ns}/{name}" if ns else name for (ns, name), obj in sorted(found.items())
                       if any(((obj.get("metadata") or {}).get("labels") or {}).get(k) != v
                              for k, v in self.managed.items())]
            if foreign:
                busy.append(f"{key[3]} ({len(foreign)} object(s) istio-lab does not manage, e.g. "
                            f"{', '.join(foreign[:3])})")
        if busy:
            raise ApplyFailed("refusing to delete CustomResourceDefinitions still in use: " + "; ".join(busy) +
                              ". Nothing was deleted; remove those objects first, or do not ask for the CRDs "
                              "(prune_crds, remove_crds)")

    def prune_members(self, desired_keys):
        """Delete the members the call no longer applies, in order
        (webhooks, the rest, CRDs, namespaces); in check mode, list them.
        A namespace that holds objects istio-lab did not create is kept
        (foreign.py), stays a member, and is listed with them."""
        self._list_recorded()
        delete, self.kept = applyset.prune_plan(self.seen, desired_keys, self.identity, self.prune_crds)
        if self.prune_crds:
            self._crds_in_use(delete)
        namespaces = [key for key in delete if (key[0], key[1]) == applyset.NAMESPACE_GROUP_KIND]
        if namespaces:
            gone, kept = foreign.plan_namespaces(self.client, [self.seen[key] for key in namespaces], self.managed,
                                                 bool(self.params.get("remove_foreign")))
            self.kept_namespaces = kept
            delete = [key for key in delete if key not in namespaces or key[3] in gone]
        by_rank = {}
        for key in delete:
            by_rank.setdefault(applyset.delete_rank(key[0], key[1]), []).append(key)
        for rank in sorted(by_rank):
            keys = by_rank[rank]
            if not self.check_mode:
                paths = [self._member_path(key) for key in keys]
                with ThreadPoolExecutor(max_workers=min(POOL_SIZE, len(paths))) as pool:
                    list(pool.map(self._delete, paths))
            self.pruned += keys
        foreign.mark_all_kept(self.client, self.kept_namespaces, self.check_mode)

    def _member_path(self, key):
        group, kind, namespace, name = key
        obj = self.seen[key]
        resource = self.discovery.resource(obj.get("apiVersion") or (f"{group}/v1" if group else "v1"), kind)
        return resource.path(namespace, name)

    def pruned_rows(self):
        rows = [{"kind": key[1], "api_version": self.seen[key].get("apiVersion", ""), "namespace": key[2],
                 "name": key[3], "action": action, "ref": applyset.ref(key)}
                for keys, action in ((self.pruned, "deleted"), (self.kept, "kept")) for key in keys]
        for entry in self.kept_namespaces:
            if entry["quiet"]:
                continue  # said on the run that kept it; nothing changed since
            rows.append({"kind": "Namespace", "api_version": "v1", "namespace": "", "name": entry["namespace"],
                         "action": "kept: holds objects istio-lab did not create: " + foreign.summary(entry["objects"]),
                         "ref": f"Namespace {entry['namespace']}", "foreign": entry["objects"]})
        return rows

    def set_result(self):
        return self.parents.result(self.set_name)

    # ------------------------------------------------------------ the call

    def stage(self, items):
        """Namespaces, then the rest (CRDs are their own stage): first what
        pods use (ConfigMaps, Secrets, ServiceAccounts, RBAC, Services...),
        then the workloads and admission webhook configurations."""
        namespaces = [i for i in items if i.kind == "Namespace" and not _group(i.api_version)]
        rest = [i for i in items if i not in namespaces]
        if namespaces:
            self.resolve(namespaces)
            self.read_live(namespaces)
            self.await_deletions(namespaces)
            self.write(namespaces)
        if rest:
            self.resolve(rest)
            self.read_live(rest)
            late = [i for i in rest if i.kind in LATE_KINDS]
            self.write([i for i in rest if i.kind not in LATE_KINDS])
            self.write(late)

    def unchanged(self, items):
        """`stop_if_changed`: the objects of wait_for as read, by (kind,
        namespace, name), when no object of `items` would be written and
        every object of wait_for exists; None otherwise. Reads only."""
        self.resolve(items)
        self.read_live(items)
        if any(item.action != "unchanged" for item in items):
            return None
        seen = {}
        for entry in self.params.get("wait_for") or []:
            resource, namespace, name = self._target(entry)
            obj = self._get(resource, namespace, name)
            if obj is None:
                return None
            seen[(resource.kind, namespace, name)] = obj
        return seen

    def _set_unchanged(self, everything):
        """`stop_if_changed` with a set: whether the parent already records the call's kinds."""
        kinds = applyset.group_kinds_of(i.key for i in everything)
        namespaces = {i.namespace for i in everything if i.namespace}
        return self.parent is not None and kinds <= self.recorded_kinds and namespaces <= self.recorded_namespaces

    def record_before(self, everything):
        """KEP-3659: before anything new is applied, the parent records the
        union of what it recorded and the call's kinds and namespaces, so
        that a call failing half-way leaves no member unrecorded. Nothing is
        written when it records them already (a re-run)."""
        kinds = applyset.group_kinds_of(i.key for i in everything)
        explicit = {i.namespace for i in everything if i.namespace}
        if self.parent is not None and kinds <= self.recorded_kinds and explicit <= self.recorded_namespaces:
            return
        # Not resolved yet (a kind of a CRD of this call is not served yet):
        # the well-known cluster-scoped kinds aside, an object without a
        # namespace is taken to go to `namespace`; record_after corrects it.
        defaulted = {self.namespace} if any(not i.namespace and i.kind not in applyset.CLUSTER_KINDS
                                            for i in everything) else set()
        self.write_parent(kinds | self.recorded_kinds, explicit | defaulted | self.recorded_namespaces)

    def record_after(self, everything):
        """The parent as the set now is: what the call applied, the CRDs kept,
        and without pruning also what it recorded before."""
        kept = self.kept + [("", "Namespace", "", k["namespace"]) for k in self.kept_namespaces]
        kinds = applyset.group_kinds_of(i.key for i in everything) | applyset.group_kinds_of(kept)
        namespaces = {i.namespace for i in everything if i.namespace} | {k[2] for k in kept if k[2]}
        if not self.prune:
            kinds, namespaces = kinds | self.recorded_kinds, namespaces | self.recorded_namespaces
        if self.absent and not kinds:
            self.delete_parent()
        else:
            self.write_parent(kinds, namespaces)

    def run(self):
        main, late = self.read_input()
        everything = main + late
        if self.absent and (not self.set_name or everything):
            raise ApplyFailed("state=absent deletes a whole set: give applyset and no objects; nothing was written")
        crds = [i for i in everything if i.kind == CRD_KIND and _group(i.api_version) == "apiextensions.k8s.io"]
        self.discovery = Discovery(self.client, [i.manifest for i in crds])
        read = self.reads()
        self.refuse_crds_in_use()
        if self.set_name:
            self.read_parent()
        if self.params.get("stop_if_changed"):
            seen = self.unchanged(everything)
            if self.set_name and not self._set_unchanged(everything):
                seen = None
            result = {"changed": False, "stopped": seen is None, "results": [i.row() for i in everything],
                      "waited": [] if seen is None else self.waits(main, seen), "webhook_retries": 0, "read": read,
                      "pruned": []}
            if self.set_name:
                result["applyset"] = self.set_result()
            return {**result, "diff": []} if self.want_diff else result
        if self.set_name and not self.absent:
            self.record_before(everything)
        if crds:
            self.resolve(crds)
            self.read_live(crds)
            self.write(crds)
            self.wait_crds(crds)
        self.stage([i for i in main if i not in crds])
        changed = any(i.action != "unchanged" for i in everything if i.action)
        # In check mode, what would only now be written cannot be waited for.
        waited = [] if self.check_mode and changed else self.waits(main)
        self.stage([i for i in late if i not in crds])
        # Pruning only once every apply and wait of the call succeeded (a
        # failure above raised): a half-applied stage deletes nothing.
        if self.prune:
            self.prune_members({i.key for i in everything})
        if self.set_name:
            self.record_after(everything)
        changed = any(i.action != "unchanged" for i in everything) or bool(self.pruned) or \
            bool(self.parents.actions) or any(not k["quiet"] for k in self.kept_namespaces)
        result = {"changed": changed, "stopped": False, "results": [i.row() for i in everything], "waited": waited,
                  "webhook_retries": self.webhook_retries, "read": read, "pruned": self.pruned_rows()}
        if self.set_name:
            result["applyset"] = self.set_result()
        if self.want_diff:
            result["diff"] = [{"before": diff_view(i.live), "after": diff_view(i.stored),
                               "before_header": i.ref(), "after_header": i.ref()}
                              for i in everything if i.action != "unchanged"]
            result["diff"] += [{"before": diff_view(self.seen[key]), "after": {},
                                "before_header": applyset.ref(key) + " (pruned)", "after_header": "(deleted)"}
                               for key in self.pruned]
        return result


MANIFESTS_ARGS = {
    "src": {"type": "list", "elements": "path", "default": []},
    "image_mirror": {"type": "str", "default": ""},
    # names a Secret and its key, never a value
    "env_from_secret": {"type": "list", "elements": "dict", "default": [], "no_log": False, "options": {
        "kind": {"type": "str", "required": True},
        "name": {"type": "str", "required": True},
        "env": {"type": "str", "required": True},
        "secret": {"type": "str", "required": True, "no_log": False},
        "key": {"type": "str", "required": True, "no_log": False},
    }},
    "manifests": {"type": "list", "elements": "dict", "default": []},
    # not secret itself (names, namespaces, labels): the values are, and are no_log
    "secrets": {"type": "list", "elements": "dict", "default": [], "no_log": False, "options": {
        "name": {"type": "str", "required": True},
        "namespace": {"type": "str"},
        "type": {"type": "str", "default": "Opaque"},
        "labels": {"type": "dict"},
        "data": {"type": "dict", "no_log": True},
        "string_data": {"type": "dict", "no_log": True},
    }},
    "after_wait": {"type": "list", "elements": "dict", "default": []},
    "namespace": {"type": "str", "default": "default"},
    "managed_labels": {"type": "dict", "default": dict(DEFAULT_LABELS)},
    "wait": {"type": "bool", "default": False},
    "wait_for": {"type": "list", "elements": "dict", "default": [], "options": {
        "kind": {"type": "str", "required": True},
        "name": {"type": "str", "required": True},
        "namespace": {"type": "str"},
        "api_version": {"type": "str"},
    }},
    "read": {"type": "list", "elements": "dict", "default": [], "options": {
        "kind": {"type": "str", "required": True},
        "name": {"type": "str", "required": True},
        "namespace": {"type": "str"},
        "api_version": {"type": "str"},
    }},
    "stop_if_changed": {"type": "bool", "default": False},
    "applyset": {"type": "str"},
    "prune": {"type": "bool"},
    "prune_crds": {"type": "bool", "default": False},
    "remove_foreign": {"type": "bool", "default": False},
    "refuse_crds_in_use": {"type": "list", "elements": "str", "default": []},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "wait_timeout": {"type": "int", "default": 300},
    "retry_delay": {"type": "float", "default": 5.0},
    "budget": {"type": "int", "default": 0},
}


def manifests_argument_spec():
    return {**copy.deepcopy(CONNECTION_ARGS), **copy.deepcopy(MANIFESTS_ARGS)}


def apply_manifests(client, params, check_mode=False, want_diff=False):
    """The module's result (without api_requests)."""
    return {**ManifestApplier(client, params, check_mode, want_diff).run(), "warnings": []}


def run_manifests_module(module):
    """main() of lab_manifests."""
    run_guarded(module, lambda client: apply_manifests(client, module.params, module.check_mode, module._diff))
