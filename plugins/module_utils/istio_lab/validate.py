# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation before any write.

1. The CRD schema the cluster serves (its CEL rules included), with unknown
   fields as errors: the API server drops a misspelt field silently unless
   asked for strict validation, so the structural schema is turned into a
   JSON schema where an object with `properties` (and no
   x-kubernetes-preserve-unknown-fields) admits nothing else.
2. Istio's own rules that the schema does not express, within one object:
   istiod's validation for Gateway, VirtualService, DestinationRule and
   ServiceEntry (validate_routing.py, validate_service_entry.py,
   validate_re2.py for regexes; the catalogue is validate_common.RULES, the
   audit against istiod docs/validation.md).
3. Cross-object rules (gateway references, hosts admitted by the gateways'
   servers), which `validate: warn` may relax to warnings.

Every problem names the object (`Kind namespace/name`) and the field path
(`spec.http[0].route[1].weight`)."""

from __future__ import annotations

import difflib
import importlib.util
import re

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate_common import (  # noqa: F401 (re-exported)  # pylint: disable=unused-import
    DNS_LABEL,
    DNS_SUBDOMAIN,
    POLICY_RULES,
    PROTOCOLS,
    RULES,
    WARNING_RULES,
    Findings,
    Problem,
    field_path,
    host_subset,
    hosts_overlap,
    object_name,
    ref,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate_routing import (  # noqa: F401 (re-exported)  # pylint: disable=unused-import
    MESH_GATEWAY,
    TERMINATING_TLS_MODES,
    destination_rule_problems,
    gateway_problems,
    virtual_service_problems,
    weight_problems,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate_service_entry import (
    service_entry_problems,
)

# Annotations istiod's webhook refuses on any object it validates.
ISTIOD_INTERNAL_ANNOTATIONS = {"internal.istio.io/webhook-always-reject", "internal.istio.io/parents",
                               "internal.istio.io/parent-namespace"}
# Imported only when a write needs the schema: a no-op run skips the cost.
HAS_JSONSCHEMA = importlib.util.find_spec("jsonschema") is not None
# Kept for callers of the old name.
PROTOCOL_FAMILIES = PROTOCOLS


# ---------------------------------------------------------------- schema

_DROPPED_KEYS = {"description", "format", "default", "example", "nullable", "x-kubernetes-validations"}


def to_json_schema(node):
    """A Kubernetes structural schema as a JSON schema with unknown fields as
    errors, int-or-string and nullable honoured. CEL rules
    (x-kubernetes-validations) are checked by cel_problems."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_MIN_DURATION = re.compile(r"^duration\(self\) >= duration\('([^']+)'\)$")
_AT_MOST_ONE = re.compile(r"^\(has\(self\.(\w+)\) \? 1 : 0\) \+ \(has\(self\.(\w+)\) \? 1 : 0\) <= 1$")
_KEY_RULES = {
    'self.all(key, !key.contains("*"))': lambda value: not any("*" in key for key in value),
    "self.all(key, key.size() != 0)": lambda value: all(key != "" for key in value),
    '!self.contains("*")': lambda value: "*" not in value,
}


def go_duration(text):
    """Seconds of a Go duration ("1m30s", "500ms"), or None when invalid."""
    if not isinstance(text, str) or not text:
        return None
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    return total if position == len(text) else None


def cel_rule_holds(rule, value):
    """The CEL rules the Istio CRDs carry (x-kubernetes-validations), for the
    forms they use: True/False, or None for a rule this code does not know
    (the API server still checks it on write)."""
    rule = rule.strip()
    minimum = _MIN_DURATION.match(rule)
    if minimum:
        seconds = go_duration(value)
        return seconds is not None and seconds >= go_duration(minimum.group(1))
    at_most_one = _AT_MOST_ONE.match(rule)
    if at_most_one and isinstance(value, dict):
        return sum(1 for key in at_most_one.groups() if key in value) <= 1
    check = _KEY_RULES.get(rule)
    if check and isinstance(value, (dict, str, list)):
        return check(value)
    return None


def cel_problems(schema, value, path, name):
    """Walk a value along its structural schema and check the CEL rules."""
    found = []
    if not isinstance(schema, dict) or value is None:
        return found
    for validation in schema.get("x-kubernetes-validations") or []:
        if cel_rule_holds(validation.get("rule", ""), value) is False:
            found.append(Problem(name, field_path(path), validation.get("message") or f"fails {validation['rule']}"))
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, sub in value.items():
            sub_schema = properties.get(key, extra if isinstance(extra, dict) else None)
            found += cel_problems(sub_schema, sub, [*path, key], name)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += cel_problems(schema["items"], item, [*path, i], name)
    return found


def load_validator():
    """Import jsonschema (about 0.1-0.3 s), e.g. while CRD reads are on the wire."""
    import jsonschema  # noqa: F401  # pylint: disable=unused-import,import-outside-toplevel


class SchemaValidator:
    """The `spec` schema of one kind, compiled once per run."""

    def __init__(self, openapi_schema):
        spec_schema = (openapi_schema or {}).get("properties", {}).get("spec", {"type": "object"})
        self.structural = spec_schema
        self.schema = to_json_schema(spec_schema)
        import jsonschema

        self.validator = jsonschema.Draft202012Validator(self.schema)

    def problems(self, obj):
        found = []
        name = object_name(obj)
        for error in sorted(self.validator.iter_errors(obj.get("spec") or {}), key=lambda e: list(map(str, e.path))):
            path = list(error.absolute_path)
            if error.validator == "additionalProperties" and error.validator_value is False:
                known = sorted(error.schema.get("properties", {}))
                for field in sorted(set(error.instance) - set(known)):
                    hint = difflib.get_close_matches(field, known, n=1)
                    found.append(
                        Problem(
                            name,
                            field_path([*path, field]),
                            "unknown field (the API server would drop it silently)"
                            + (f"; did you mean {hint[0]!r}?" if hint else f"; known fields: {', '.join(known)}"),
                        )
                    )
            else:
                found.append(Problem(name, field_path(path), error.message))
        if not found:  # like the API server, CEL rules only run on an otherwise valid object
            found = cel_problems(self.structural, obj.get("spec") or {}, [], name)
        return found


def metadata_problems(obj):
    """Names the API server would refuse (422), found before any write."""
    meta = obj.get("metadata", {})
    name, namespace = meta.get("name") or "", meta.get("namespace") or ""
    found = Findings(object_name(obj))
    if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        found.add("name-dns", "metadata.name", f"{name!r} is not a valid name (lowercase letters, digits, '-' "
                  "and '.', starting and ending with a letter or digit)")
    for key in sorted(meta.get("annotations") or {}):
        if key == "istio.io/dry-run":
            found.add("annotation", f"metadata.annotations[{key}]", f"{key} only works on an AuthorizationPolicy: "
                      "remove it")
        elif key in ISTIOD_INTERNAL_ANNOTATIONS:
            found.add("annotation", f"metadata.annotations[{key}]", f"{key} is istiod's own annotation, which "
                      "istiod refuses from users: remove it")
    if not DNS_LABEL.match(namespace) or len(namespace) > 63:
        found.add("namespace-dns", "metadata.namespace", f"{namespace!r} is not a valid namespace (lowercase "
                  "letters, digits and '-')")
    return found


# ---------------------------------------------------------------- hosts


def split_server_host(server_host):
    """`namespace/dnsName` of a Gateway server host; no namespace means `*`."""
    if "/" in server_host:
        namespace, dns = server_host.split("/", 1)
        return namespace, dns
    return "*", server_host


def server_admits(gateway_namespace, server_host, vs_namespace, vs_host):
    """Whether a Gateway server host admits a VirtualService host: the
    namespace part (`*`, `.` = the gateway's own, `~` = none, or a name) must
    take the VirtualService's namespace and the names must overlap. Returns
    the effective host (the narrower of the two) or None."""
    namespace, dns = split_server_host(server_host)
    if namespace == "~":
        return None
    if namespace == "." and vs_namespace != gateway_namespace:
        return None
    if namespace not in ("*", ".") and namespace != vs_namespace:
        return None
    if not hosts_overlap(dns, vs_host):
        return None
    return vs_host.lower() if host_subset(vs_host, dns) else dns.lower()


def gateway_key(reference, vs_namespace):
    """(namespace, name) of a VirtualService's gateway reference, or None for
    `mesh`. `name` alone means the VirtualService's namespace."""
    if reference == MESH_GATEWAY:
        return None
    if "/" in reference:
        namespace, name = reference.split("/", 1)
        return namespace, name
    return vs_namespace, reference


def gateway_references(vs):
    """(field path, reference) of every gateway a VirtualService names:
    spec.gateways (default `mesh`) and the gateways of each http match."""
    spec = vs.get("spec") or {}
    refs = [(f"spec.gateways[{i}]", g) for i, g in enumerate(spec.get("gateways") or [])]
    for kind in ("http", "tls", "tcp"):
        for i, route in enumerate(spec.get(kind) or []):
            for j, match in enumerate(route.get("match") or []):
                refs += [(f"spec.{kind}[{i}].match[{j}].gateways[{k}]", g)
                         for k, g in enumerate(match.get("gateways") or [])]
    return refs


# ---------------------------------------------------------------- Istio rules, one object

OBJECT_RULES = {
    "Gateway": gateway_problems,
    "VirtualService": virtual_service_problems,
    "DestinationRule": destination_rule_problems,
    "ServiceEntry": service_entry_problems,
}


def object_problems(obj):
    """Metadata and Istio's single-object rules of Gateways,
    VirtualServices, DestinationRules and ServiceEntries. Each problem
    carries its rule id (Problem.rule, see RULES): those of WARNING_RULES
    (istiod warns) and POLICY_RULES (istio-lab's convention) are warnings,
    the others errors."""
    return metadata_problems(obj) + OBJECT_RULES[obj["kind"]](obj)


# ---------------------------------------------------------------- cross-object rules


def gateway_index(gateways):
    """(namespace, name) -> Gateway, from any iterable of Gateway objects."""
    return {(g["metadata"].get("namespace", ""), g["metadata"]["name"]): g for g in gateways}


def admitting_servers(vs_namespace, vs_host, gateway):
    """(server index, port, effective host) of each server of `gateway`
    that admits `vs_host`."""
    gw_namespace = gateway["metadata"].get("namespace", "")
    admitted = []
    for i, server in enumerate((gateway.get("spec") or {}).get("servers") or []):
        for server_host in server.get("hosts") or []:
            effective = server_admits(gw_namespace, server_host, vs_namespace, vs_host)
            if effective:
                admitted.append((i, server.get("port") or {}, effective))
                break
    return admitted


def virtual_service_reference_problems(vs, gateways):
    """Gateways a VirtualService names must exist (`mesh` always does), and
    each of its hosts must be admitted by a server of one of them, unless the
    VirtualService also serves the mesh."""
    name = object_name(vs)
    vs_namespace = vs["metadata"].get("namespace", "")
    spec = vs.get("spec") or {}
    found = []
    bound = []
    for path, reference in gateway_references(vs):
        key = gateway_key(reference, vs_namespace)
        if key is None:
            continue
        if key not in gateways:
            found.append(Problem(name, path, f"Gateway {key[0]}/{key[1]} does not exist (apply it first, or "
                                 "name it as <namespace>/<name>)"))
        elif path.startswith("spec.gateways"):
            bound.append(gateways[key])
    serves_mesh = MESH_GATEWAY in (spec.get("gateways") or [MESH_GATEWAY])
    if bound and not serves_mesh:
        for i, host in enumerate(spec.get("hosts") or []):
            if not any(admitting_servers(vs_namespace, host, gw) for gw in bound):
                names = ", ".join(f"{g['metadata'].get('namespace')}/{g['metadata']['name']}" for g in bound)
                found.append(Problem(name, f"spec.hosts[{i}]", f"host {host!r} is not admitted by any server of "
                                     f"Gateway {names} (check the servers' hosts and their namespace/ part)"))
    return found
