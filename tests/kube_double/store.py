"""The double's storage and API semantics: resource types (built-in + CRDs),
objects, resourceVersion/generation/managedFields bookkeeping, create/get/
list/update/patch/apply/delete with kube-apiserver's answers."""

from __future__ import annotations

import base64
import datetime
import json
import re
import threading
import time
import uuid

import yaml

from . import errors, stored_form
from .catalog import BUILTIN_TYPES, ResourceType
from .patch import (
    PatchError,
    delete_path,
    fields_v1,
    format_path,
    get_path,
    json_patch,
    leaf_paths,
    merge_patch,
    paths_of,
    strategic_merge_patch,
)
from .schema import Cause, crd_resource_types, deep_copy, invalid, json_type

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                  "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
              "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")

# Patch content types (Content-Type header) and what custom resources accept.
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
CR_PATCH_TYPES = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]

# A \u escape of a UTF-16 surrogate (not preceded by another backslash).
_SURROGATE_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")

# Fields the server sets on create that no manager owns (recording 08).
_SERVER_SET_PATHS = {("", "namespaces"): {("spec", "finalizers")}}

# API groups whose objects carry no metadata.generation (core: ConfigMaps, Services, ...).
_NO_GENERATION_GROUPS = {""}


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def manager_from_user_agent(user_agent: str) -> str:
    """kube-apiserver's default field manager: the user agent up to the first '/'."""
    return (user_agent or "unknown").split("/", 1)[0] or "unknown"


class WriteContext:
    """Per-request options of a write."""

    def __init__(self, dry_run=False, field_manager=None, user_agent="", force=False, field_validation="",
                 subresource=""):
        self.dry_run = dry_run
        self.field_manager = field_manager
        self.user_agent = user_agent
        self.force = force
        self.field_validation = field_validation
        self.subresource = subresource
        self.warnings: list[str] = []
        self.apply_paths: set = set()

    @property
    def manager(self) -> str:
        return self.field_manager or manager_from_user_agent(self.user_agent)


class Store:
    """Objects by (group, plural) -> {(namespace, name): object}. Stored objects
    are never mutated in place: every write stores a new dict, so readers may
    serialize them without copying."""

    def __init__(self, namespace_deletion_delay: float = 0.0):
        self.lock = threading.RLock()
        # Seconds a deleted namespace stays Terminating before the namespace
        # controller has emptied and removed it (stored-forms/namespace-deletion.json;
        # 0 = at once). Namespace name -> monotonic time of its deletion.
        self.namespace_deletion_delay = namespace_deletion_delay
        self.terminating: dict[str, float] = {}
        self.resource_version = 100
        self.objects: dict[tuple, dict] = {}
        self.types: dict[tuple, ResourceType] = {}
        self.crd_types: dict[str, list[ResourceType]] = {}
        # Hooks: admission(store, rtype, obj, old, ctx, operation) may raise ApiError;
        # after_write(store, rtype, obj, old) runs after each committed change.
        self.admission_hooks: list = []
        self.after_write_hooks: list = []
        for rtype in BUILTIN_TYPES:
            self.types[(rtype.group, rtype.version, rtype.plural)] = rtype
        for name in DEFAULT_NAMESPACES:
            self.create(self.type_for("", "v1", "namespaces"), None,
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                        WriteContext(user_agent="kube-apiserver"))

    # ------------------------------------------------------------------ types
    def type_for(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.types.get((group, version, plural))

    def type_for_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rtype in self.types.values():
            if rtype.group == group and rtype.version == version and rtype.kind == kind:
                return rtype
        return None

    def served_types(self) -> list[ResourceType]:
        return list(self.types.values())

    def _register_crd(self, crd: dict) -> None:
        self._unregister_crd(crd["metadata"]["name"])
        types = crd_resource_types(crd)
        self.crd_types[crd["metadata"]["name"]] = types
        for rtype in types:
            self.types[(rtype.group, rtype.version, rtype.plural)] = rtype

    def _unregister_crd(self, name: str) -> None:
        for rtype in self.crd_types.pop(name, []):
            self.types.pop((rtype.group, rtype.version, rtype.plural), None)

    def _bucket(self, rtype: ResourceType) -> dict:
        return self.objects.setdefault((rtype.group, rtype.plural), {})

    def next_rv(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    # ------------------------------------------------------------------ reads
    def _as_version(self, rtype: ResourceType, obj: dict) -> dict:
        """Objects are stored once per group/resource; served in the asked version
        (custom resources convert with strategy None: only apiVersion changes)."""
        if obj.get("apiVersion") == rtype.api_version:
            return obj
        served = dict(obj)
        served["apiVersion"] = rtype.api_version
        return served

    def get(self, rtype: ResourceType, namespace, name) -> dict:
        with self.lock:
            self.reap()
            obj = self._bucket(rtype).get((namespace or "", name))
            if obj is None:
                raise errors.not_found(rtype, name)
            return self._as_version(rtype, obj)

    def find(self, group: str, plural: str, namespace, name):
        """An object or None, whatever version (for controllers and hooks)."""
        return self.objects.get((group, plural), {}).get((namespace or "", name))

    def items(self, group: str, plural: str, namespace=None) -> list[dict]:
        bucket = self.objects.get((group, plural), {})
        return [o for (ns, _), o in bucket.items() if namespace is None or ns == namespace]

    def list(self, rtype: ResourceType, namespace=None, label_selector="", field_selector="") -> dict:
        with self.lock:
            self.reap()
            matches_labels = parse_label_selector(label_selector)
            matches_fields = parse_field_selector(field_selector)
            items = []
            for (ns, _name), obj in sorted(self._bucket(rtype).items()):
                if namespace and ns != namespace:
                    continue
                if matches_labels(obj.get("metadata", {}).get("labels") or {}) and matches_fields(obj):
                    items.append(self._as_version(rtype, obj))
            return {"apiVersion": rtype.api_version, "items": items, "kind": f"{rtype.kind}List",
                    "metadata": {"continue": "", "resourceVersion": str(self.resource_version)}}

    # ------------------------------------------------------------------ writes
    def _check_namespace(self, rtype: ResourceType, namespace, name=""):
        """The NamespaceLifecycle admission plugin: no creation in a missing or terminating namespace."""
        if not rtype.namespaced:
            return
        found = self.find("", "namespaces", None, namespace)
        if found is None:
            raise errors.namespace_not_found(namespace)
        if found["metadata"].get("deletionTimestamp"):
            raise errors.namespace_terminating(rtype, name, namespace)

    def _validate_name(self, rtype: ResourceType, obj: dict) -> list[Cause]:
        name = obj["metadata"].get("name")
        if not name:
            return [Cause("FieldValueRequired", "Required value: name or generateName is required",
                          "metadata.name")]
        if rtype.group == "" and rtype.plural == "namespaces":
            pattern, message = _DNS1123_LABEL, _LABEL_MSG
        elif rtype.group == "" and rtype.plural == "services":
            pattern, message = _DNS1035_LABEL, _DNS1035_MSG
        elif rtype.group == "rbac.authorization.k8s.io":
            return []  # RBAC names are path segments, not DNS names
        else:
            pattern, message = _DNS1123_SUBDOMAIN, _SUBDOMAIN_MSG
        if not pattern.match(name) or len(name) > (63 if pattern is not _DNS1123_SUBDOMAIN else 253):
            return [invalid("metadata.name", name, message)]
        return []

    def _admit(self, rtype: ResourceType, obj: dict, old, ctx: WriteContext, operation: str) -> dict:
        """Defaulting, pruning, validation and admission of a candidate object."""
        obj.setdefault("metadata", {})
        meta = obj["metadata"]
        stored_form.omit(meta, stored_form.TABLES["ObjectMeta"])  # null or empty: not stored (annotations: {})
        causes = self._validate_name(rtype, obj)
        if rtype.is_custom:
            schema = rtype.schema
            pruned = sorted(schema.prune(obj))
            if pruned and ctx.field_validation == "Strict":
                unknown = ", ".join(f'unknown field "{p}"' for p in pruned)
                raise errors.bad_request(f'{rtype.kind} in version "{rtype.version}" cannot be handled as a '
                                         f"{rtype.kind}: strict decoding error: {unknown}")
            if pruned and ctx.field_validation == "Warn":
                ctx.warnings.extend(f'unknown field "{p}"' for p in pruned)
            schema.apply_defaults(obj)
            if not causes:
                causes = schema.validate(obj)
        else:
            apply_builtin_defaults(self, rtype, obj, old)
            if not causes:
                causes = validate_builtin(rtype, obj)
        if not causes:
            causes = validate_labels(meta)
        if causes:
            raise errors.invalid(rtype, meta.get("name", ""), causes)
        for hook in self.admission_hooks:
            hook(self, rtype, obj, old, ctx, operation)
        return obj

    def create(self, rtype: ResourceType, namespace, body: dict, ctx: WriteContext) -> dict:
        with self.lock:
            if not isinstance(body, dict):
                raise errors.bad_request("Object 'Kind' is missing in the request body")
            obj = deep_copy(body)
            obj["apiVersion"] = rtype.api_version
            obj["kind"] = rtype.kind
            meta = obj.setdefault("metadata", {}) or {}
            obj["metadata"] = meta
            if rtype.namespaced:
                if meta.get("namespace") and meta["namespace"] != namespace:
                    raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                             "sent on the request")
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            if rtype.virtual:
                return self._review(rtype, obj)
            for key in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation",
                        "selfLink"):
                meta.pop(key, None)
            if rtype.has_status and not (rtype.group == "" and rtype.plural == "namespaces"):
                obj.pop("status", None)
            self.reap()
            self._check_namespace(rtype, namespace, meta.get("name") or "")
            self._admit(rtype, obj, None, ctx, "CREATE")
            key = (namespace or "", meta["name"])
            if key in self._bucket(rtype):
                existing = self._bucket(rtype)[key]
                raise errors.already_exists(rtype, meta["name"],
                                            being_deleted=bool(existing["metadata"].get("deletionTimestamp")))
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            if rtype.is_custom or rtype.group not in _NO_GENERATION_GROUPS:
                meta["generation"] = 1
            if ctx.subresource == "apply":
                meta["managedFields"] = [self._entry(ctx.field_manager, "Apply", rtype, ctx.apply_paths)]
            else:
                # Update operations own what they sent plus the server's defaults, as in kube-apiserver.
                owned = set(leaf_paths(obj)) - _SERVER_SET_PATHS.get((rtype.group, rtype.plural), set())
                meta["managedFields"] = [self._entry(ctx.manager, "Update", rtype, owned)]
            if rtype.group == "apiextensions.k8s.io" and rtype.plural == "customresourcedefinitions":
                self._validate_crd(rtype, obj)
            return self._commit(rtype, obj, None, ctx)

    def _review(self, rtype: ResourceType, obj: dict) -> dict:
        """Access and token reviews: answered, never stored. The double allows everything."""
        if rtype.kind in ("SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview"):
            obj["status"] = {"allowed": True, "reason": "the kube-apiserver double allows every request"}
        elif rtype.kind == "SelfSubjectReview":
            obj["status"] = {"userInfo": {"username": "istio-lab-test", "groups": ["system:masters"]}}
        return obj

    def _validate_crd(self, rtype: ResourceType, crd: dict) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        expected = f"{names.get('plural')}.{spec.get('group')}"
        if crd["metadata"]["name"] != expected:
            raise errors.invalid(rtype, crd["metadata"]["name"], [invalid(
                "metadata.name", crd["metadata"]["name"], "must be spec.names.plural+\".\"+spec.group")])

    def _entry(self, manager, operation, rtype, paths, time=None) -> dict:
        return {"manager": manager, "operation": operation, "apiVersion": rtype.api_version,
                "time": time or now(), "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(paths, with_dots=operation == "Update")}

    def _commit(self, rtype: ResourceType, obj: dict, old, ctx: WriteContext) -> dict:
        """Store (unless dry run) and run the after-write hooks."""
        meta = obj["metadata"]
        if ctx.dry_run:
            if old is None:
                meta.pop("resourceVersion", None)
            return obj
        meta["resourceVersion"] = self.next_rv()
        key = (meta.get("namespace", ""), meta["name"])
        self._bucket(rtype)[key] = obj
        if rtype.group == "apiextensions.k8s.io" and rtype.plural == "customresourcedefinitions":
            obj = self._establish_crd(rtype, obj)
        for hook in self.after_write_hooks:
            hook(self, rtype, obj, old)
        return self._bucket(rtype).get(key, obj)

    def _establish_crd(self, rtype: ResourceType, crd: dict) -> dict:
        """What the apiextensions controllers do: serve the CRD and report it Established."""
        self._register_crd(crd)
        spec = crd.get("spec", {})
        storage = [v["name"] for v in spec.get("versions", []) if v.get("storage")]
        transition = now()
        status = {
            "acceptedNames": spec.get("names", {}),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": transition},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": transition},
            ],
            "storedVersions": storage,
        }
        old_status = crd.get("status") or {}
        if {k: v for k, v in old_status.items() if k != "conditions"} == {
                k: v for k, v in status.items() if k != "conditions"} and old_status.get("conditions"):
            return crd
        return self.set_status(rtype, crd, status)

    def set_status(self, rtype: ResourceType, obj: dict, status) -> dict:
        """A controller's status write: new resourceVersion, same generation."""
        if obj.get("status") == status:
            return obj
        new = dict(obj)
        new["metadata"] = dict(obj["metadata"], resourceVersion=self.next_rv())
        if status is None:
            new.pop("status", None)
        else:
            new["status"] = status
        self._bucket(rtype)[(new["metadata"].get("namespace", ""), new["metadata"]["name"])] = new
        return new

    def put_object(self, rtype: ResourceType, obj: dict) -> dict:
        """A controller creating or replacing an object it owns (Endpoints, slices)."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        old = self._bucket(rtype).get(key)
        meta.setdefault("uid", old["metadata"]["uid"] if old else str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", old["metadata"]["creationTimestamp"] if old else now())
        if old is not None and _strip_volatile(old) == _strip_volatile(obj):
            return old
        meta["resourceVersion"] = self.next_rv()
        self._bucket(rtype)[key] = obj
        return obj

    def remove_object(self, rtype: ResourceType, namespace, name) -> None:
        self._bucket(rtype).pop((namespace or "", name), None)

    def update(self, rtype: ResourceType, namespace, name, body: dict, ctx: WriteContext) -> dict:
        with self.lock:
            self.reap()
            if not isinstance(body, dict):
                raise errors.bad_request("Object 'Kind' is missing in the request body")
            old = self._bucket(rtype).get((namespace or "", name))
            body_meta = body.get("metadata") or {}
            if body_meta.get("name") and body_meta["name"] != name:
                raise errors.bad_request(f"the name of the object ({body_meta['name']}) does not match the name "
                                         f"on the URL ({name})")
            if old is None:
                raise errors.not_found(rtype, name)
            if body_meta.get("resourceVersion") and body_meta["resourceVersion"] != old["metadata"][
                    "resourceVersion"]:
                raise errors.conflict(rtype, name)
            return self._write_update(rtype, old, deep_copy(body), ctx)

    def _write_update(self, rtype: ResourceType, old: dict, new: dict, ctx: WriteContext,
                      managed_fields=None) -> dict:
        """Shared tail of update/patch/apply: keep what the client cannot change,
        admit, skip no-ops, bump generation, track field ownership, store."""
        old_meta = old["metadata"]
        body_meta = new.get("metadata") or {}
        if ctx.subresource == "status":
            status = new.get("status")
            new = deep_copy(_without(old, "status"))
            if status is not None:
                new["status"] = status
            meta = dict(old_meta)
        else:
            meta = dict(body_meta)
            for key in ("name", "namespace", "uid", "creationTimestamp", "generation", "deletionTimestamp"):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            if rtype.has_status:
                new.pop("status", None)
                if "status" in old:
                    new["status"] = old["status"]
        new["metadata"] = meta
        new["apiVersion"] = rtype.api_version
        new["kind"] = rtype.kind
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if managed_fields is None:
            managed_fields = body_meta.get("managedFields") or old_meta.get("managedFields") or []
        meta.pop("managedFields", None)
        self._admit(rtype, new, old, ctx, "UPDATE")
        if (rtype.is_custom or rtype.group not in _NO_GENERATION_GROUPS) and _spec_of(new) != _spec_of(old):
            meta["generation"] = old_meta.get("generation", 1) + 1
        if ctx.subresource != "apply":
            managed_fields = self._track_update(rtype, old, new, ctx, managed_fields)
        if _strip_volatile(new) == _strip_volatile(old) and _field_sets(managed_fields) == _field_sets(
                old_meta.get("managedFields") or []):
            # No change: kube-apiserver skips the storage write (recordings 19, 27).
            return self._as_version(rtype, old)
        meta["managedFields"] = managed_fields
        if rtype.group == "apiextensions.k8s.io" and rtype.plural == "customresourcedefinitions":
            self._validate_crd(rtype, new)
        return self._commit(rtype, new, old, ctx)

    def _track_update(self, rtype, old, new, ctx, managed_fields) -> list:
        """An Update operation owns the fields it changed; others lose them."""
        old_leaves = leaf_paths(old, include_status=ctx.subresource == "status")
        new_leaves = leaf_paths(new, include_status=ctx.subresource == "status")
        changed = {p for p, v in new_leaves.items() if old_leaves.get(p, KeyError) != v}
        removed = set(old_leaves) - set(new_leaves)
        entries = []
        mine = None
        for entry in managed_fields:
            paths = paths_of(entry.get("fieldsV1"))
            if entry.get("manager") == ctx.manager and entry.get("operation") == "Update" and \
                    entry.get("subresource", "") == (ctx.subresource if ctx.subresource == "status" else ""):
                mine = paths
                continue
            kept = paths - changed - removed
            if kept == paths:
                entries.append(entry)
            elif kept:
                entries.append(dict(entry, fieldsV1=fields_v1(kept, entry.get("operation") == "Update")))
        owned = ((mine or set()) | changed) - removed
        if owned:
            entry = self._entry(ctx.manager, "Update", rtype, owned)
            if ctx.subresource == "status":
                entry["subresource"] = "status"
            entries.append(entry)
        return entries

    def patch(self, rtype: ResourceType, namespace, name, patch_type: str, raw: bytes, ctx: WriteContext) -> dict:
        with self.lock:
            self.reap()
            patch_type = (patch_type or "").split(";")[0].strip()
            if patch_type == APPLY_PATCH:
                return self.apply(rtype, namespace, name, raw, ctx)
            if patch_type not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH) or (
                    patch_type == STRATEGIC_PATCH and rtype.is_custom):
                accepted = CR_PATCH_TYPES if rtype.is_custom else [JSON_PATCH, MERGE_PATCH, APPLY_PATCH,
                                                                   STRATEGIC_PATCH]
                raise errors.unsupported_media_type(accepted)
            try:
                body = json.loads(raw or b"null")
            except ValueError as exc:
                raise errors.bad_request(f"error decoding patch: {exc}") from exc
            old = self._bucket(rtype).get((namespace or "", name))
            if old is None:
                raise errors.not_found(rtype, name)
            current = self._as_version(rtype, old)
            try:
                if patch_type == MERGE_PATCH:
                    new = merge_patch(current, body)
                elif patch_type == JSON_PATCH:
                    new = json_patch(current, body)
                else:
                    new = strategic_merge_patch(current, body)
            except PatchError as exc:
                raise errors.ApiError(422, errors.status_body(422, "Invalid", str(exc))) from exc
            if not isinstance(new, dict):
                raise errors.bad_request("patch did not produce an object")
            new_rv = (new.get("metadata") or {}).get("resourceVersion")
            if new_rv and new_rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rtype, name)
            return self._write_update(rtype, old, deep_copy(new), ctx)

    # ------------------------------------------------------------------ server-side apply
    def apply(self, rtype: ResourceType, namespace, name, raw: bytes, ctx: WriteContext) -> dict:
        if not ctx.field_manager:
            raise errors.ApiError(422, errors.status_body(
                422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                "required for apply patch",
                {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                    {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch",
                     "field": "fieldManager"}]}))
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if _SURROGATE_ESCAPE.search(text):
            # The apply body is YAML to the server: its YAML parser refuses \u escapes of UTF-16
            # surrogates, which json.dumps writes for emoji by default (stored-forms/grafana.json).
            raise errors.bad_request("error decoding YAML: error converting YAML to JSON: yaml: found invalid "
                                     "Unicode character escape code")
        try:
            applied = json.loads(text)  # most clients send JSON, a subset of YAML that parses much faster
        except ValueError:
            try:
                applied = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            except yaml.YAMLError as exc:
                raise errors.bad_request(f"error decoding YAML: {exc}") from exc
        if not isinstance(applied, dict) or not applied.get("apiVersion") or not applied.get("kind"):
            raise errors.bad_request("apiVersion and kind must be set in the applied configuration")
        applied_meta = applied.get("metadata") or {}
        if applied_meta.get("name") and applied_meta["name"] != name:
            raise errors.bad_request(f"the name of the object ({applied_meta['name']}) does not match the name "
                                     f"on the URL ({name})")
        applied.setdefault("metadata", {})["name"] = name
        ctx.subresource = "apply" if ctx.subresource != "status" else "status"
        old = self._bucket(rtype).get((namespace or "", name))
        applied_paths = set(leaf_paths(applied, include_status=ctx.subresource == "status"))
        if old is None:
            ctx.apply_paths = applied_paths
            return self.create(rtype, namespace, applied, ctx)
        current = self._as_version(rtype, old)
        with_status = ctx.subresource == "status"
        managed = current["metadata"].get("managedFields") or []
        previously_mine: set = set()
        others = []
        for entry in managed:
            paths = paths_of(entry.get("fieldsV1"))
            if entry.get("manager") == ctx.field_manager and entry.get("operation") == "Apply":
                previously_mine = paths
            else:
                others.append((entry, paths))
        new = deep_copy(current)
        owned_by_others = set().union(*(p for _, p in others)) if others else set()
        for path in previously_mine - applied_paths - owned_by_others:
            delete_path(new, path)
        new = _apply_merge(new, applied)
        # A conflict is a field another manager owns whose value this apply would
        # change (after the server's defaults: a list the client sends without the
        # defaulted fields is the same list).
        current_leaves = leaf_paths(current, include_status=with_status)
        result_leaves = leaf_paths(self._defaulted(rtype, new, old), include_status=with_status)
        conflicts: list[tuple[str, tuple]] = []
        for entry, paths in others:
            for path in sorted(paths & applied_paths):
                if current_leaves.get(path, KeyError) != result_leaves.get(path, KeyError):
                    conflicts.append((_print_manager(entry), path))
        if conflicts and not ctx.force:
            raise errors.ApiError(409, errors.status_body(409, "Conflict", _conflict_message(conflicts), {
                "causes": [{"reason": "FieldManagerConflict", "message": f"conflict with {who}",
                            "field": format_path(path)} for who, path in conflicts]}))
        forced = {path for _, path in conflicts}
        entries = []
        for entry, paths in others:
            kept = paths - forced
            if kept == paths:
                entries.append(entry)
            elif kept:
                entries.append(dict(entry, fieldsV1=fields_v1(kept, entry.get("operation") == "Update")))
        entries.insert(0, self._entry(ctx.field_manager, "Apply", rtype, applied_paths))
        return self._write_update(rtype, old, new, ctx, managed_fields=entries)

    def _defaulted(self, rtype: ResourceType, obj: dict, old: dict) -> dict:
        """A copy of obj as storage would hold it: pruned and defaulted."""
        probe = deep_copy(obj)
        if rtype.is_custom:
            rtype.schema.prune(probe)
            rtype.schema.apply_defaults(probe)
        else:
            apply_builtin_defaults(self, rtype, probe, old)
        return probe

    # ------------------------------------------------------------------ deletes
    def delete(self, rtype: ResourceType, namespace, name, ctx: WriteContext) -> dict:
        with self.lock:
            self.reap()
            key = (namespace or "", name)
            old = self._bucket(rtype).get(key)
            if old is None:
                raise errors.not_found(rtype, name)
            for hook in self.admission_hooks:
                hook(self, rtype, None, old, ctx, "DELETE")
            if rtype.group == "" and rtype.plural == "namespaces":
                return self._delete_namespace(rtype, old, ctx)
            answer = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                      "details": {"name": name, **({"group": rtype.group} if rtype.group else {}),
                                  "kind": rtype.plural, "uid": old["metadata"]["uid"]}}
            if rtype.group == "" and rtype.plural == "pods":
                answer = deep_copy(self._as_version(rtype, old))
                answer["metadata"]["deletionTimestamp"] = now()
            if ctx.dry_run:
                return answer
            del self._bucket(rtype)[key]
            self.resource_version += 1
            if rtype.group == "apiextensions.k8s.io" and rtype.plural == "customresourcedefinitions":
                self._drop_crd(old)
            for hook in self.after_write_hooks:
                hook(self, rtype, None, old)
            return answer

    def _delete_namespace(self, rtype: ResourceType, old: dict, ctx: WriteContext) -> dict:
        """kube-apiserver's namespace deletion (stored-forms/namespace-deletion.json): 200 with the
        namespace in phase Terminating (deletionTimestamp set, finalizer `kubernetes` kept); the
        namespace controller empties and removes it later (`namespace_deletion_delay` seconds).
        Deleting a namespace that is already terminating answers it as it is."""
        name = old["metadata"]["name"]
        if old["metadata"].get("deletionTimestamp"):
            return self._as_version(rtype, old)
        new = dict(old, metadata=dict(old["metadata"], deletionTimestamp=now()), status={"phase": "Terminating"})
        if ctx.dry_run:
            return deep_copy(new)
        if self.namespace_deletion_delay <= 0:
            self._finalize_namespace(name, new)
            return deep_copy(new)
        new["metadata"]["resourceVersion"] = self.next_rv()
        self._bucket(rtype)[("", name)] = new
        self.terminating[name] = time.monotonic()
        self._reap_later(self.namespace_deletion_delay)
        for hook in self.after_write_hooks:
            hook(self, rtype, new, old)
        return deep_copy(new)

    def _reap_later(self, seconds: float) -> None:
        timer = threading.Timer(max(seconds, 0) + 0.01, self._reap_and_rearm)
        timer.daemon = True
        timer.start()

    def _reap_and_rearm(self) -> None:
        """The namespace controller's own clock: no request is needed for a namespace to go."""
        with self.lock:
            self.reap()
            if self.terminating:  # the delay was made longer meanwhile: look again when the first is due
                first = min(self.terminating.values())
                self._reap_later(first + self.namespace_deletion_delay - time.monotonic())

    def reap(self) -> None:
        """The namespace controller: remove the terminating namespaces deleted at least
        `namespace_deletion_delay` seconds ago (read at each call: a test may hold a namespace
        terminating with a long delay, then release it), with their contents."""
        if not self.terminating:
            return
        with self.lock:
            clock = time.monotonic()
            for name, deleted_at in sorted(self.terminating.items()):
                if clock - deleted_at >= self.namespace_deletion_delay:
                    del self.terminating[name]
                    namespace = self.find("", "namespaces", None, name)
                    if namespace is not None:
                        self._finalize_namespace(name, namespace)

    def _finalize_namespace(self, name: str, namespace: dict) -> None:
        rtype = self.type_for("", "v1", "namespaces")
        self._bucket(rtype).pop(("", name), None)
        self.resource_version += 1
        self._empty_namespace(name)
        for hook in self.after_write_hooks:
            hook(self, rtype, None, namespace)

    def _empty_namespace(self, namespace: str) -> None:
        for bucket in self.objects.values():
            for key in [k for k in bucket if k[0] == namespace]:
                del bucket[key]

    def _drop_crd(self, crd: dict) -> None:
        spec = crd.get("spec", {})
        self.objects.pop((spec.get("group"), spec.get("names", {}).get("plural")), None)
        self._unregister_crd(crd["metadata"]["name"])

    def delete_collection(self, rtype: ResourceType, namespace, label_selector, field_selector,
                          ctx: WriteContext) -> dict:
        with self.lock:
            listed = self.list(rtype, namespace, label_selector, field_selector)
            for item in listed["items"]:
                self.delete(rtype, item["metadata"].get("namespace"), item["metadata"]["name"], ctx)
            return listed

    # ------------------------------------------------------------------ CRDs from files
    def install_crds(self, crds: list[dict]) -> None:
        """Install CRDs (read-only dicts from load_crd_file) without copying
        their schemas: the stored object shares `spec` with the parsed file."""
        rtype = self.type_for("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        with self.lock:
            for crd in crds:
                meta = {k: v for k, v in (crd.get("metadata") or {}).items() if v is not None}
                meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
                spec = dict(crd["spec"])
                spec.setdefault("conversion", {"strategy": "None"})
                obj = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                       "metadata": meta, "spec": spec}
                self._commit(rtype, obj, None, WriteContext(user_agent="kubectl"))


def _without(obj: dict, key: str) -> dict:
    return {k: v for k, v in obj.items() if k != key}


def _field_sets(entries: list) -> list:
    return [(e.get("manager"), e.get("operation"), e.get("subresource"), json.dumps(e.get("fieldsV1"), sort_keys=True))
            for e in entries]


def _spec_of(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _strip_volatile(obj: dict) -> dict:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in ("managedFields", "resourceVersion")}
    return dict(_without(_without(obj, "apiVersion"), "metadata"), metadata=meta)


def _apply_merge(target, applied):
    """Merge an applied configuration: maps merge, lists and scalars replace."""
    if not isinstance(applied, dict) or not isinstance(target, dict):
        return deep_copy(applied)
    result = dict(target)
    for key, value in applied.items():
        if key == "metadata" and isinstance(value, dict):
            meta = dict(result.get("metadata") or {})
            for meta_key, meta_value in value.items():
                if meta_key in ("labels", "annotations") and isinstance(meta_value, dict):
                    meta[meta_key] = dict(meta.get(meta_key) or {}, **meta_value)
                elif meta_key not in ("resourceVersion", "uid", "managedFields", "creationTimestamp"):
                    meta[meta_key] = deep_copy(meta_value)
            result["metadata"] = meta
        else:
            result[key] = _apply_merge(result.get(key), value)
    return result


def _print_manager(entry: dict) -> str:
    if entry.get("operation") == "Update":
        return f'"{entry.get("manager")}" using {entry.get("apiVersion")}'
    return f'"{entry.get("manager")}"'


def _conflict_message(conflicts) -> str:
    if len(conflicts) == 1:
        who, path = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {who}: {format_path(path)}"
    by_manager: dict[str, list] = {}
    for who, path in conflicts:
        by_manager.setdefault(who, []).append(path)
    lines = []
    for who in sorted(by_manager):
        lines.append(f"conflicts with {who}:")
        lines.extend(f"- {format_path(p)}" for p in by_manager[who])
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


# ---------------------------------------------------------------------- selectors

_SET_EXPR = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(selector: str):
    """A predicate over a labels dict for a Kubernetes label selector string
    (=, ==, !=, in, notin, exists, !exists)."""
    tests = []
    for term in _split_selector(selector or ""):
        match = _SET_EXPR.match(term)
        if match:
            key, op, values = match.group(1), match.group(2), {v.strip() for v in match.group(3).split(",")}
            if op == "in":
                tests.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                tests.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif term.startswith("!"):
            absent = term[1:].strip()
            tests.append(lambda labels, k=absent: k not in labels)
        else:
            tests.append(lambda labels, k=term: k in labels)
    return lambda labels: all(test(labels) for test in tests)


def parse_field_selector(selector: str):
    """A predicate over an object for a field selector (metadata.name,
    metadata.namespace, or any dotted path compared as a string)."""
    tests = []
    for term in _split_selector(selector or ""):
        negate = "!=" in term
        key, value = (s.strip() for s in term.replace("==", "=").replace("!=", "=").split("=", 1))
        path = tuple(key.split("."))

        def test(obj, p=path, v=value, neg=negate):
            found = get_path(obj, p, None)
            text = "" if found is None else (str(found).lower() if isinstance(found, bool) else str(found))
            return (text != v) if neg else (text == v)
        tests.append(test)
    return lambda obj: all(test(obj) for test in tests)


# ---------------------------------------------------------------------- built-in defaulting

def _ip_from(prefix: tuple[int, int], counter: int) -> str:
    return f"127.{prefix[0]}.{prefix[1] + counter // 250}.{counter % 250 + 1}"


def apply_builtin_defaults(store: Store, rtype: ResourceType, obj: dict, old) -> None:
    """The object as kube-apiserver stores it: decoded into its Go type (null, empty and zero
    fields its type omits are dropped: stored_form.py), defaulted as k8s.io/api's SetDefaults_*
    do (pods and templates, workloads, Services, RBAC subjects, webhooks; what the recordings
    of stored-forms/ show), encoded with Go's omitempty rules. Fabricated IPs are loopback
    addresses (127.96.x.x for ClusterIPs) so that nothing can ever send traffic off this machine."""
    group, plural = rtype.group, rtype.plural
    stored_form.omit_object(group, plural, obj)  # as decoded into the Go type: nulls and empties gone
    spec = obj.get("spec")
    if group == "" and plural == "namespaces":
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj["spec"] = obj.get("spec") or {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Terminating" if obj["metadata"].get("deletionTimestamp") else "Active"}
    elif group == "" and plural == "secrets":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = dict(obj.get("data") or {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
    elif group == "" and plural == "services" and isinstance(spec, dict):
        _default_service(store, spec, (old or {}).get("spec") or {})
        obj.setdefault("status", {"loadBalancer": {}})
    elif group == "" and plural == "pods" and isinstance(spec, dict):
        stored_form.default_pod_spec(spec)
        spec.setdefault("enableServiceLinks", True)
        if spec.get("hostNetwork"):  # SetDefaults_Pod: host ports follow container ports
            for container in spec.get("containers") or []:
                for port in container.get("ports") or []:
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")
    elif group == "apps" and isinstance(spec, dict):
        stored_form.default_workload(plural, spec, obj["metadata"], old)
    elif group == "rbac.authorization.k8s.io":
        stored_form.default_rbac(plural, obj)
    elif group == "admissionregistration.k8s.io":
        stored_form.default_webhooks(plural, obj)
    elif group == "apiextensions.k8s.io" and isinstance(spec, dict):
        spec.setdefault("conversion", {"strategy": "None"})
    stored_form.omit_object(group, plural, obj)


def _default_service(store: Store, spec: dict, old_spec: dict) -> None:
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        if not spec.get("clusterIP"):
            spec["clusterIP"] = old_spec.get("clusterIP") or _ip_from((96, 0), store.resource_version)
        spec["clusterIPs"] = [spec["clusterIP"]] if spec["clusterIP"] != "None" else ["None"]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    old_node_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                      for p in old_spec.get("ports") or [] if p.get("nodePort")}
    used = {p.get("nodePort") for s in store.items("", "services") for p in (s.get("spec") or {}).get("ports") or []}
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
        if spec["type"] in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
            previous = old_node_ports.get((port.get("port"), port["protocol"]))
            if previous:
                port["nodePort"] = previous
            else:
                candidate = 30000 + (hash((port.get("port"), port.get("name"))) % 2700)
                while candidate in used:
                    candidate += 1
                port["nodePort"] = candidate
                used.add(candidate)
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if spec["type"] == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)


# ---------------------------------------------------------------------- built-in validation

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
_LABEL_NAME_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                   "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                   "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")


def validate_labels(meta: dict) -> list[Cause]:
    """metadata.labels keys and values, as every kind validates them."""
    causes = []
    for key, value in (meta.get("labels") or {}).items():
        name = key.rsplit("/", 1)[-1]
        prefix = key[:-len(name) - 1] if "/" in key else ""
        if not _LABEL_NAME.match(name) or len(name) > 63 or (prefix and not _DNS1123_SUBDOMAIN.match(prefix)):
            causes.append(invalid("metadata.labels", key, _LABEL_NAME_MSG))
        if not isinstance(value, str):
            raise errors.bad_request(f"json: cannot unmarshal {json_type(value)} into Go struct field "
                                     "ObjectMeta.metadata.labels of type string")
        if not _LABEL_VALUE.match(value) or len(value) > 63:
            causes.append(invalid("metadata.labels", value, _LABEL_VALUE_MSG + (
                "" if len(value) <= 63 else ", must be no more than 63 characters")))
    return causes


def _go_map(labels: dict) -> str:
    return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"


def validate_builtin(rtype: ResourceType, obj: dict) -> list[Cause]:
    """The checks of kube-apiserver that lab manifests most often trip over:
    workload selectors and containers, Service ports, ConfigMap data types."""
    causes: list[Cause] = []
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    key = (rtype.group, rtype.plural)
    if key in (("apps", "deployments"), ("apps", "statefulsets"), ("apps", "daemonsets"), ("apps", "replicasets")):
        selector = spec.get("selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(Cause("FieldValueRequired", "Required value", "spec.selector"))
        elif not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {_go_map(labels)}: `selector` does not "
                                "match template `labels`", "spec.template.metadata.labels"))
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers")
        causes.extend(_container_causes(containers, "spec.template.spec.containers"))
    elif key == ("", "pods"):
        causes.extend(_container_causes(spec.get("containers"), "spec.containers"))
    elif key == ("", "services"):
        if spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None" and not spec.get("ports"):
            causes.append(Cause("FieldValueRequired", "Required value", "spec.ports"))
        for index, port in enumerate(spec.get("ports") or []):
            number = port.get("port")
            if not isinstance(number, int) or not 0 < number <= 65535:
                causes.append(invalid(f"spec.ports[{index}].port", number,
                                      "must be between 1 and 65535, inclusive"))
            if len(spec.get("ports")) > 1 and not port.get("name"):
                causes.append(Cause("FieldValueRequired", "Required value", f"spec.ports[{index}].name"))
    elif key == ("", "configmaps"):
        for value in (obj.get("data") or {}).values():
            if not isinstance(value, str):
                # A decoding error, before validation: 400, not 422.
                raise errors.bad_request(f'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: '
                                         f"cannot unmarshal {json_type(value)} into Go struct field ConfigMap.data "
                                         "of type string")
    return causes


def _container_causes(containers, path: str) -> list[Cause]:
    if not containers:
        return [Cause("FieldValueRequired", "Required value", path)]
    causes = []
    for index, container in enumerate(containers):
        for field_name in ("name", "image"):
            if not container.get(field_name):
                causes.append(Cause("FieldValueRequired", "Required value", f"{path}[{index}].{field_name}"))
    return causes
