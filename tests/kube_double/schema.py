"""CustomResourceDefinition handling: load CRD files (parsed once per process),
prune unknown fields, apply defaults, and validate custom objects against the
served version's openAPIV3Schema the way kube-apiserver does, with its error
wording (recordings 29-33).

Validation covers type (incl. int-or-string, nullable), enum, required,
minimum/maximum, min/maxLength, pattern, min/maxItems, min/maxProperties,
oneOf/anyOf/allOf/not, x-kubernetes-preserve-unknown-fields and
additionalProperties. CEL rules (x-kubernetes-validations): the rule shapes
the Istio and MetalLB CRDs use most are evaluated (see CEL_RULES); any other
rule is skipped (not evaluated), as docs/testing.md says.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlparse

import yaml

from .catalog import CRD_VERBS, ResourceType, version_priority

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CRD_FILE_CACHE: dict[tuple, list[dict]] = {}


def load_crd_file(path: str | os.PathLike) -> list[dict]:
    """The CRDs of a multi-document YAML file, parsed once per process (cached
    by path and mtime). Callers must treat the returned dicts as read-only."""
    path = os.fspath(path)
    key = (os.path.abspath(path), os.stat(path).st_mtime_ns)
    if key not in _CRD_FILE_CACHE:
        with open(path, encoding="utf-8") as handle:
            docs = [d for d in yaml.load_all(handle, Loader=_LOADER) if d]
        _CRD_FILE_CACHE[key] = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    return _CRD_FILE_CACHE[key]


@dataclass
class Cause:
    """One field error, as kube-apiserver reports it in Status.details.causes."""
    reason: str
    message: str
    field: str

    def as_dict(self) -> dict:
        return {"reason": self.reason, "message": self.message, "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def go_repr(value) -> str:
    """A value the way Go's %#v / %q prints it in field errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def invalid(field: str, value, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {go_repr(value)}: {detail}", field)


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(expected: str, value) -> bool:
    actual = json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer" and isinstance(value, float) and value.is_integer():
        return True
    return actual == expected


# --------------------------------------------------------------------------- CEL subset

_GO_DURATION = re.compile(r"^([-+]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_seconds(text) -> float | None:
    """Seconds of a Go duration string ("1m30s", "100ms"), None when malformed."""
    if not isinstance(text, str) or not _GO_DURATION.match(text):
        return None
    total = sum(float(num) * _DURATION_UNITS[unit] for num, unit in _GO_DURATION_PART.findall(text))
    return -total if text.startswith("-") else total


def _has(value, name):
    return isinstance(value, dict) and name in value


def _compile_cel(rule: str):
    """A Python predicate for the CEL rule shapes the lab's CRDs use, or None
    (rule not evaluated). The predicate takes `self` and returns True when valid."""
    rule = " ".join(rule.split())
    match = re.fullmatch(r"duration\(self\) >= duration\('([^']+)'\)", rule)
    if match:
        minimum = go_duration_seconds(match.group(1))
        return lambda v: (go_duration_seconds(v) or -1) >= minimum
    match = re.fullmatch(r"(\d+) < self && self <= (\d+)", rule)
    if match:
        low, high = int(match.group(1)), int(match.group(2))
        return lambda v: isinstance(v, int) and low < v <= high
    match = re.fullmatch(r'!self\.contains\("([^"]*)"\)', rule)
    if match:
        needle = match.group(1)
        return lambda v: needle not in v
    match = re.fullmatch(r'self\.all\(key, !key\.contains\("([^"]*)"\)\)', rule)
    if match:
        needle = match.group(1)
        return lambda v: all(needle not in k for k in v)
    if rule == "self.all(key, key.size() != 0)":
        return lambda v: all(len(k) != 0 for k in v)
    if rule == "self.size() == 0":
        return lambda v: len(v) == 0
    match = re.fullmatch(r'self != "([^"]*)"', rule)
    if match:
        other = match.group(1)
        return lambda v: v != other
    match = re.fullmatch(r"self in \[([^\]]*)\]", rule)
    if match:
        allowed = {s.strip().strip('"') for s in match.group(1).split(",")}
        return lambda v: v in allowed
    parts = re.findall(r"\(has\(self\.(\w+)\) \? 1 : 0\)", rule)
    if parts and re.fullmatch(r"(\(has\(self\.\w+\) \? 1 : 0\)( \+ )?)+ <= 1", rule):
        return lambda v: sum(1 for p in parts if _has(v, p)) <= 1
    match = re.fullmatch(r"has\(self\.(\w+)\) \|\| has\(self\.(\w+)\)", rule)
    if match:
        first, second = match.groups()
        return lambda v: _has(v, first) or _has(v, second)
    match = re.fullmatch(r"self\.all\((\w+), self\.exists_one\((\w+), \1\.(\w+) == \2\.\3\)\)", rule)
    if match:
        attr = match.group(3)
        return lambda v: len({repr(i.get(attr)) for i in v}) == len(v)
    match = re.fullmatch(r"url\(self\)\.getScheme\(\) in \[([^\]]*)\]", rule)
    if match:
        allowed = {s.strip().strip('"') for s in match.group(1).split(",")}
        return lambda v: urlparse(v).scheme in allowed
    if rule == "self.all(key, 0 < int(key) && int(key) <= 65535)":
        return lambda v: all(k.isdigit() and 0 < int(k) <= 65535 for k in v)
    match = re.fullmatch(r'self\.all\(key, size\(key\) < (\d+) && key\.matches\("([^"]*)"\)\)', rule)
    if match:
        limit, pattern = int(match.group(1)), re.compile(match.group(2).replace("\\\\", "\\"))
        return lambda v: all(len(k) < limit and pattern.search(k) for k in v)
    return None


_CEL_CACHE: dict[str, object] = {}


def cel_predicate(rule: str):
    if rule not in _CEL_CACHE:
        _CEL_CACHE[rule] = _compile_cel(rule)
    return _CEL_CACHE[rule]


# --------------------------------------------------------------------------- validation

# Error types that stop CEL evaluation (apiextensions-apiserver hasBlockingErr).
_BLOCKING = {"FieldValueNotSupported", "FieldValueRequired", "FieldValueTooLong", "FieldValueTooMany",
             "FieldValueTypeInvalid"}


def _join(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


class CompiledSchema:
    """The openAPIV3Schema of one CRD version, ready to prune/default/validate."""

    def __init__(self, schema: dict):
        self.schema = schema or {}
        self.has_cel = "x-kubernetes-validations" in all_keys(self.schema)

    # ---- pruning
    def prune(self, obj: dict) -> list[str]:
        """Drop fields the schema does not know (in place); returns their paths."""
        pruned: list[str] = []
        props = self.schema.get("properties", {})
        for key in list(obj):
            if key in ("apiVersion", "kind", "metadata"):
                continue
            if key in props:
                obj[key] = self._prune(props[key], obj[key], key, pruned)
            elif not self.schema.get("x-kubernetes-preserve-unknown-fields"):
                pruned.append(key)
                del obj[key]
        return pruned

    def _prune(self, schema: dict, value, path: str, pruned: list):
        if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
            return value
        if isinstance(value, dict):
            props = schema.get("properties")
            additional = schema.get("additionalProperties")
            for key in list(value):
                child_path = _join(path, key)
                if props is not None and key in props:
                    value[key] = self._prune(props[key], value[key], child_path, pruned)
                elif isinstance(additional, dict):
                    value[key] = self._prune(additional, value[key], child_path, pruned)
                elif additional is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                    continue
                elif props is not None or additional is False or schema.get("type") == "object":
                    pruned.append(child_path)
                    del value[key]
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                value[index] = self._prune(schema["items"], item, _join(path, index), pruned)
        return value

    # ---- defaults
    def apply_defaults(self, obj: dict) -> None:
        _default(self.schema, obj)

    # ---- validation
    def validate(self, obj: dict) -> list[Cause]:
        causes: list[Cause] = []
        props = self.schema.get("properties", {})
        for key in sorted(obj):
            if key in props and key not in ("apiVersion", "kind", "metadata"):
                _validate(props[key], obj[key], key, causes)
        for key in self.schema.get("required", []):
            if key not in obj:
                causes.append(Cause("FieldValueRequired", "Required value", key))
        if any(c.reason in _BLOCKING for c in causes):
            if self.has_cel:
                causes.append(invalid("<nil>", None, "some validation rules were not checked because the object "
                                      "was invalid; correct the existing errors to complete validation"))
            return causes
        for key in sorted(obj):
            if key in props and key not in ("apiVersion", "kind", "metadata"):
                _cel(props[key], obj[key], key, causes)
        return causes


def all_keys(schema) -> set:
    """Every key used anywhere in a schema (to know whether it has CEL rules)."""
    keys: set = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            keys.update(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return keys


def _default(schema: dict, value) -> None:
    if isinstance(value, dict):
        for key, child in (schema.get("properties") or {}).items():
            if key not in value and "default" in child:
                value[key] = deep_copy(child["default"])
            if key in value:
                _default(child, value[key])
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in value:
                _default(additional, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(schema["items"], item)


def deep_copy(value):
    """A copy of JSON-like data (several times faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def _validate(schema: dict, value, path: str, causes: list) -> None:
    """Append kube-apiserver-style causes for `value` at `path` against `schema`."""
    if value is None:
        if schema.get("nullable"):
            return
        if "type" in schema:
            causes.append(Cause("FieldValueTypeInvalid", f"Invalid value: \"null\": {path} in body must be of type "
                                f"{schema['type']}: \"null\"", path))
            return
    expected = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if json_type(value) not in ("integer", "string"):
            causes.append(Cause("FieldValueTypeInvalid", f"Invalid value: \"{json_type(value)}\": {path} in body "
                                f"must be of type integer-or-string: \"{json_type(value)}\"", path))
            return
    elif expected and not _type_ok(expected, value):
        actual = json_type(value)
        causes.append(Cause("FieldValueTypeInvalid",
                            f"Invalid value: \"{actual}\": {path} in body must be of type {expected}: \"{actual}\"",
                            path))
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(go_repr(e) for e in schema["enum"])
        causes.append(Cause("FieldValueNotSupported",
                            f"Unsupported value: {go_repr(value)}: supported values: {supported}", path))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "maximum" in schema and value > schema["maximum"]:
            causes.append(invalid(path, value, f"{path} in body should be less than or equal to "
                                  f"{_num(schema['maximum'])}"))
        if "minimum" in schema and value < schema["minimum"]:
            causes.append(invalid(path, value, f"{path} in body should be greater than or equal to "
                                  f"{_num(schema['minimum'])}"))
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append(Cause("FieldValueTooLong", f"Too long: may not be more than {schema['maxLength']} bytes",
                                path))
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append(invalid(path, value, f"{path} in body should be at least {schema['minLength']} chars long"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            causes.append(invalid(path, value, f"{path} in body should match '{schema['pattern']}'"))
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            causes.append(Cause("FieldValueTooMany", f"Too many: {len(value)}: must have at most "
                                f"{schema['maxItems']} items", path))
        if "minItems" in schema and len(value) < schema["minItems"]:
            causes.append(invalid(path, len(value), f"{path} in body should have at least {schema['minItems']} items"))
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _validate(items, item, _join(path, index), causes)
    if isinstance(value, dict):
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            causes.append(Cause("FieldValueTooMany", f"Too many: {len(value)}: must have at most "
                                f"{schema['maxProperties']} items", path))
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            causes.append(invalid(path, len(value), f"{path} in body should have at least "
                                  f"{schema['minProperties']} properties"))
        props = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key in sorted(value):
            if key in props:
                _validate(props[key], value[key], _join(path, key), causes)
            elif isinstance(additional, dict):
                _validate(additional, value[key], _join(path, key), causes)
        for key in schema.get("required", []):
            if key not in value:
                causes.append(Cause("FieldValueRequired", "Required value", _join(path, key)))
    _combinators(schema, value, path, causes)


def _combinators(schema: dict, value, path: str, causes: list) -> None:
    if "oneOf" in schema:
        valid = sum(1 for alternative in schema["oneOf"] if _matches(alternative, value, path))
        if valid != 1:
            detail = f'"{path}" must validate one and only one schema (oneOf)'
            if valid > 1:
                detail += f". Found {valid} valid alternatives"
            causes.append(invalid("<nil>", "", detail))
    if "anyOf" in schema and not any(_matches(alt, value, path) for alt in schema["anyOf"]):
        causes.append(invalid("<nil>", "", f'"{path}" must validate at least one schema (anyOf)'))
    for alternative in schema.get("allOf", []):
        _validate(alternative, value, path, causes)
    if "not" in schema and _matches(schema["not"], value, path):
        causes.append(invalid("<nil>", "", f'"{path}" must not validate the schema (not)'))


def _matches(schema: dict, value, path: str) -> bool:
    found: list = []
    _validate(schema, value, path, found)
    return not found


def _num(number) -> str:
    return str(int(number)) if isinstance(number, float) and number.is_integer() else str(number)


def _cel(schema: dict, value, path: str, causes: list) -> None:
    """Evaluate the CEL rules we understand, depth first like the apiserver."""
    if value is None:
        return
    for rule in schema.get("x-kubernetes-validations", []):
        predicate = cel_predicate(rule["rule"])
        if predicate is None:
            continue
        try:
            ok = predicate(value)
        except (TypeError, AttributeError, ValueError):
            ok = False
        if not ok:
            message = rule.get("message") or f"failed rule: {' '.join(rule['rule'].split())}"
            causes.append(invalid(rule.get("fieldPath") and _join(path, rule["fieldPath"].lstrip(".")) or path,
                                  schema.get("type", "object"), message))
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key in sorted(value):
            child = props.get(key) if key in props else (additional if isinstance(additional, dict) else None)
            if child:
                _cel(child, value[key], _join(path, key), causes)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _cel(schema["items"], item, _join(path, index), causes)


# --------------------------------------------------------------------------- CRD -> resource types

_SCHEMA_CACHE: dict[int, CompiledSchema] = {}


def compiled_schema(schema: dict) -> CompiledSchema:
    """One CompiledSchema per schema dict (CRD files are parsed once, so the
    same dict comes back for every double that loads them)."""
    key = id(schema)
    cached = _SCHEMA_CACHE.get(key)
    if cached is None or cached.schema is not schema:
        cached = _SCHEMA_CACHE[key] = CompiledSchema(schema)
    return cached


def crd_resource_types(crd: dict) -> list[ResourceType]:
    """The ResourceTypes a CRD serves (one per served version), best version first."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    types = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {}
        types.append(ResourceType(
            group=spec["group"], version=version["name"], plural=names["plural"], kind=names["kind"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=names.get("singular") or names["kind"].lower(),
            short_names=list(names.get("shortNames") or []), categories=list(names.get("categories") or []),
            subresources=sorted((version.get("subresources") or {}).keys()),
            verbs=list(CRD_VERBS), schema=compiled_schema(schema), crd_name=crd["metadata"]["name"],
            deprecation_warning=(version.get("deprecationWarning") or
                                 f"{spec['group']}/{version['name']} {names['kind']} is deprecated")
            if version.get("deprecated") else "",
        ))
    types.sort(key=lambda t: version_priority(t.version))
    return types
