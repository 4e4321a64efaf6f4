"""Patch flavours kube-apiserver accepts: JSON merge patch (RFC 7386), JSON
patch (RFC 6902), strategic merge patch (approximated for built-in kinds) and
the field ownership bookkeeping of server-side apply (managedFields)."""

from __future__ import annotations

from .schema import deep_copy


class PatchError(Exception):
    """A patch that cannot be applied (answered as 422 / 400 by the caller)."""


def merge_patch(target, patch):
    """RFC 7386: maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return deep_copy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    for part in parts:
        if isinstance(doc, list):
            try:
                doc = doc[int(part)]
            except (ValueError, IndexError) as exc:
                raise PatchError(f"unable to find index {part}") from exc
        elif isinstance(doc, dict) and part in doc:
            doc = doc[part]
        else:
            raise PatchError(f"doc is missing path: \"/{'/'.join(parts)}\": missing value")
    return doc


def json_patch(target, operations):
    """RFC 6902 on a copy of target."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations")
    doc = deep_copy(target)
    for op in operations:
        kind = op.get("op")
        parts = _pointer(op.get("path", ""))
        if kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise PatchError(f"testing value {op.get('path')} failed: test failed")
            continue
        if kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = deep_copy(_walk(doc, source))
            if kind == "move":
                doc = _remove(doc, source)
            doc = _add(doc, parts, value)
        elif kind == "add":
            doc = _add(doc, parts, deep_copy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, parts)
        elif kind == "replace":
            _walk(doc, parts)
            doc = _remove(doc, parts)
            doc = _add(doc, parts, deep_copy(op.get("value")))
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc


def _add(doc, parts, value):
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if index > len(parent):
            raise PatchError(f"unable to access invalid index: {index}")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError("doc is missing path")
    return doc


def _remove(doc, parts):
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        try:
            del parent[int(last)]
        except (ValueError, IndexError) as exc:
            raise PatchError(f"unable to remove nonexistent index {last}") from exc
    elif isinstance(parent, dict) and last in parent:
        del parent[last]
    else:
        raise PatchError(f"doc is missing path: \"/{'/'.join(parts)}\": missing value")
    return doc


# Lists of built-in kinds that strategic merge patch merges by a key instead of
# replacing (the ones Deployments, Services and RBAC objects use).
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
    "env": "name", "volumeMounts": "mountPath", "imagePullSecrets": "name", "conditions": "type",
    "tolerations": "key",
}


def strategic_merge_patch(target, patch, field_name=None):
    """Strategic merge patch approximated for built-in kinds: a merge patch
    whose lists of known kinds (containers, volumes, env, ...) merge by their key,
    and ports by (port or containerPort). `$patch: replace/delete` directives are
    honoured on maps; other directives are dropped."""
    if isinstance(patch, dict):
        directive = patch.get("$patch")
        if directive == "replace":
            return {k: deep_copy(v) for k, v in patch.items() if k != "$patch"}
        if directive == "delete":
            return None
        result = dict(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$"):
                continue
            if value is None:
                result.pop(key, None)
            else:
                merged = strategic_merge_patch(result.get(key), value, key)
                if merged is None:
                    result.pop(key, None)
                else:
                    result[key] = merged
        return result
    if isinstance(patch, list) and isinstance(target, list):
        key = _MERGE_KEYS.get(field_name)
        if field_name == "ports":
            key = "containerPort" if any("containerPort" in p for p in patch if isinstance(p, dict)) else "port"
        if key and all(isinstance(p, dict) and key in p for p in patch + target):
            merged = [deep_copy(item) for item in target]
            index = {item[key]: i for i, item in enumerate(merged)}
            for item in patch:
                if item.get("$patch") == "delete":
                    merged = [m for m in merged if m[key] != item[key]]
                    index = {m[key]: i for i, m in enumerate(merged)}
                elif item[key] in index:
                    merged[index[item[key]]] = strategic_merge_patch(merged[index[item[key]]], item)
                else:
                    merged.append(strategic_merge_patch(None, item))
                    index[item[key]] = len(merged) - 1
            return merged
    return deep_copy(patch)


# --------------------------------------------------------------------------- managed fields

# metadata fields that field management does not track.
_UNTRACKED_METADATA = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                       "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
                       "generateName"}


def leaf_paths(obj: dict, include_status: bool = False) -> dict[tuple, object]:
    """Every owned field of an object: path tuple -> value. Maps recurse, lists
    are atomic leaves (a simplification of granular list ownership)."""
    paths: dict[tuple, object] = {}

    def walk(value, path):
        if isinstance(value, dict) and value:
            for key, child in value.items():
                walk(child, path + (key,))
        else:
            paths[path] = value

    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and not include_status):
            continue
        if key == "metadata":
            for meta_key, meta_value in (value or {}).items():
                if meta_key not in _UNTRACKED_METADATA:
                    walk(meta_value, ("metadata", meta_key))
        else:
            walk(value, (key,))
    return paths


def fields_v1(paths, with_dots: bool) -> dict:
    """The FieldsV1 map of a set of paths (`f:` keys; "." marks an owned map)."""
    root: dict = {}
    for path in sorted(paths):
        node = root
        for depth, key in enumerate(path):
            node = node.setdefault(f"f:{key}", {})
            if with_dots and depth < len(path) - 1:
                node.setdefault(".", {})
    if with_dots:
        # metadata itself is never marked; its children (labels, annotations) are.
        root.get("f:metadata", {}).pop(".", None)
    return root


def paths_of(fields: dict, prefix=()) -> set[tuple]:
    """Inverse of fields_v1: the leaf paths a FieldsV1 map names."""
    result = set()
    for key, child in (fields or {}).items():
        if key == "." or not key.startswith("f:"):
            continue
        path = prefix + (key[2:],)
        children = {k: v for k, v in (child or {}).items() if k != "."}
        if children:
            result |= paths_of(children, path)
        else:
            result.add(path)
    return result


def get_path(obj, path, default=KeyError):
    for key in path:
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        else:
            return default
    return obj


def delete_path(obj: dict, path: tuple) -> None:
    """Remove a field and any map left empty above it."""
    parents = [obj]
    for key in path[:-1]:
        child = parents[-1].get(key)
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    for depth in range(len(path) - 2, -1, -1):
        if parents[depth + 1] == {}:
            parents[depth].pop(path[depth], None)


def format_path(path: tuple) -> str:
    return "".join(f".{p}" for p in path)
