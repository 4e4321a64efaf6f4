# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Canonical form of an object and the comparison of desired with live.

The desired spec is taken exactly as given: a field left out of the input is
absent from the object (declarative), so comparing the canonical specs is the
whole test. Labels and annotations are ours to add and update; keys others
set on the live object are left alone."""

from __future__ import annotations

import copy

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.resource import MANAGED_BY_LABEL, MANAGED_BY_VALUE


def canonical(value):
    """JSON-equal values compare equal: 80.0 is 80, null fields are absent
    (the API server prunes them), tuples are lists. Key order never matters
    for dicts."""
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _strings(mapping):
    """Label and annotation values are strings to the API server."""
    return {str(k): str(v) for k, v in (mapping or {}).items() if v is not None}


def desired_object(kind, api_version, name, namespace, spec, labels=None, annotations=None):
    """The object as istio-lab wants it, with the managed-by label."""
    metadata = {
        "name": name,
        "namespace": namespace,
        "labels": {**_strings(labels), MANAGED_BY_LABEL: MANAGED_BY_VALUE},
    }
    if annotations:
        metadata["annotations"] = _strings(annotations)
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": canonical(spec or {})}


def is_managed(live):
    return live.get("metadata", {}).get("labels", {}).get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE


def _owned_differs(live_map, desired_map):
    live_map = live_map or {}
    return any(live_map.get(key) != value for key, value in (desired_map or {}).items())


def differs(live, desired):
    """True when writing `desired` would change `live`."""
    live_meta, desired_meta = live.get("metadata", {}), desired["metadata"]
    return (
        canonical(live.get("spec") or {}) != desired["spec"]
        or _owned_differs(live_meta.get("labels"), desired_meta.get("labels"))
        or _owned_differs(live_meta.get("annotations"), desired_meta.get("annotations"))
    )


def merged_object(live, desired):
    """The body of a replace: the live object (resourceVersion, others' labels
    and annotations) with our spec, labels and annotations."""
    merged = copy.deepcopy(live)
    merged.pop("status", None)
    merged["apiVersion"] = desired["apiVersion"]
    merged["kind"] = desired["kind"]
    meta = merged.setdefault("metadata", {})
    meta.pop("managedFields", None)
    for field in ("labels", "annotations"):
        if desired["metadata"].get(field):
            meta[field] = {**(meta.get(field) or {}), **desired["metadata"][field]}
    merged["spec"] = copy.deepcopy(desired["spec"])
    return merged


def view(obj):
    """What results and diffs show of an object: no managedFields, no status."""
    if not obj:
        return {}
    shown = copy.deepcopy(obj)
    shown.pop("status", None)
    shown.get("metadata", {}).pop("managedFields", None)
    return shown


def diff_view(obj):
    """The part of an object a diff compares: identity, labels, annotations, spec."""
    if not obj:
        return {}
    meta = obj.get("metadata", {})
    shown_meta = {key: meta[key] for key in ("name", "namespace", "labels", "annotations") if meta.get(key)}
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": shown_meta,
        "spec": canonical(obj.get("spec") or {}),
    }
