# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that decide which manifests a re-run must write at all.

A role stamps every manifest it applies with a hash of that manifest
(``lab_with_applied_hash``, annotation ``istio-lab.io/applied-hash``), lists
the live objects once per kind and namespace (``lab_live_queries`` says which
lists), and applies only what ``lab_apply_needed`` returns: manifests whose
live object is missing, carries another hash (the manifest changed, fields
removed from it included), or no longer holds every desired value (someone
edited a field istio-lab sets: desired ⊆ live fails). A re-run where nothing
differs therefore reads and writes nothing.
"""

from __future__ import annotations

import hashlib
import json

APPLIED_HASH = "istio-lab.io/applied-hash"


def _with_annotations(manifest, annotations):
    """A copy of the manifest whose metadata.annotations is `annotations`
    (dropped when empty). Shallow: only the top level and metadata are new
    dicts, the rest is shared, never changed (a deep copy of Ansible's lazy
    templated containers costs seconds on the addons' manifests)."""
    metadata = dict(manifest.get("metadata") or {})
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    return {**manifest, "metadata": metadata}


def _without_hash(manifest, annotation):
    """The manifest without istio-lab's hash annotation (and without an
    annotations map left empty or null, so that stamping changes no hash)."""
    metadata = manifest.get("metadata") or {}
    annotations = metadata.get("annotations")
    if "annotations" not in metadata or (annotations and annotation not in annotations):
        return manifest
    return _with_annotations(manifest, {k: v for k, v in (annotations or {}).items() if k != annotation})


def lab_applied_hash(manifest, annotation=APPLIED_HASH):
    """sha256 of a manifest as istio-lab applies it (its own hash annotation left out)."""
    text = json.dumps(_without_hash(manifest, annotation), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def lab_with_applied_hash(manifests, annotation=APPLIED_HASH):
    """The manifests, each annotated with its own ``lab_applied_hash``."""
    stamped = []
    for manifest in manifests:
        annotations = (manifest.get("metadata") or {}).get("annotations") or {}
        stamped.append(_with_annotations(manifest, {**annotations, annotation: lab_applied_hash(manifest, annotation)}))
    return stamped


def _group(api_version):
    return api_version.rpartition("/")[0] if "/" in (api_version or "") else ""


def _key(obj):
    metadata = obj.get("metadata") or {}
    return (_group(obj.get("apiVersion")), obj.get("kind"), metadata.get("namespace") or "", metadata.get("name"))


def lab_live_queries(manifests):
    """One list per apiVersion, kind and namespace the manifests hold, in
    first-seen order: ``{api_version, kind, namespace}`` (namespace empty for
    cluster-wide objects), the arguments of one ``k8s_info`` call each."""
    queries = []
    for manifest in manifests:
        query = {"api_version": manifest.get("apiVersion"), "kind": manifest.get("kind"),
                 "namespace": (manifest.get("metadata") or {}).get("namespace") or ""}
        if query not in queries:
            queries.append(query)
    return queries


def _empty(value):
    return value is None or value == {} or value == [] or value == ""


def lab_contains(live, desired):
    """True when every value of ``desired`` is in ``live``: dicts key by key
    (a desired empty or null value also matches a missing one: the API server
    drops them), lists of scalars exactly, lists of objects as an ordered
    subsequence (others may add entries; an edited or removed desired entry
    fails), scalars equal (an int matches its string form: 8080 and "8080")."""
    if desired is None:
        return True
    if isinstance(desired, dict):
        if live is None:
            return not desired
        if not isinstance(live, dict):
            return False
        for key, value in desired.items():
            if key not in live:
                if not _empty(value):
                    return False
            elif not lab_contains(live[key], value):
                return False
        return True
    if isinstance(desired, list):
        if live is None:
            return not desired
        if not isinstance(live, list):
            return False
        if not any(isinstance(item, (dict, list)) for item in desired):
            return len(desired) == len(live) and all(lab_contains(a, b) for a, b in zip(live, desired, strict=True))
        remaining = iter(live)
        return all(any(lab_contains(candidate, item) for candidate in remaining) for item in desired)
    if isinstance(live, (dict, list)):
        return False
    if desired == live and type(desired) is type(live):
        return True
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live
    if isinstance(desired, (int, float)) and isinstance(live, (int, float)):
        return desired == live
    return str(desired) == str(live)


def lab_apply_reason(manifest, live, annotation=APPLIED_HASH):
    """Why ``manifest`` must be applied over ``live`` (``missing``, ``changed``,
    ``drifted``), or an empty string when the live object already is it.
    An empty ``annotation``: no hash, the subset comparison only (for a fixed
    shape like a Secret, whose hash would expose its content)."""
    if live is None:
        return "missing"
    if not annotation:
        return "" if lab_contains(live, manifest) else "drifted"
    wanted = lab_applied_hash(manifest, annotation)
    recorded = ((live.get("metadata") or {}).get("annotations") or {}).get(annotation)
    if recorded != wanted:
        return "changed"
    if not lab_contains(live, _without_hash(manifest, annotation)):
        return "drifted"
    return ""


def _live_objects(live):
    """Objects from a list of objects, of k8s_info results, or of a looped
    k8s_info's registered ``results``."""
    if isinstance(live, dict):
        live = live.get("results", live.get("resources", [live]))
    objects = []
    for entry in live or []:
        if isinstance(entry, dict) and "resources" in entry and "kind" not in entry:
            objects.extend(entry.get("resources") or [])
        elif isinstance(entry, dict) and "kind" in entry:
            objects.append(entry)
    return objects


def lab_apply_needed(manifests, live, annotation=APPLIED_HASH):
    """The manifests (stamped by ``lab_with_applied_hash``) that must be
    applied, given the live objects (a list of objects, k8s_info results or a
    looped k8s_info's register). Order is kept."""
    index = {_key(obj): obj for obj in _live_objects(live)}
    return [manifest for manifest in manifests if lab_apply_reason(manifest, index.get(_key(manifest)), annotation)]


class FilterModule:
    def filters(self):
        return {
            "lab_applied_hash": lab_applied_hash,
            "lab_with_applied_hash": lab_with_applied_hash,
            "lab_live_queries": lab_live_queries,
            "lab_apply_needed": lab_apply_needed,
        }
