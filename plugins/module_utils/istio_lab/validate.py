# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation before any write.

1. The CRD schema the cluster serves (its CEL rules included), with unknown
   fields as errors: the API server drops a misspelt field silently unless
   asked for strict validation, so the structural schema is turned into a
   JSON schema where an object with `properties` (and no
   x-kubernetes-preserve-unknown-fields) admits nothing else.
2. Istio's own rules that the schema does not express, within one object
   (ports and protocols, TLS credentials, weights, subsets).
3. Cross-object rules (gateway references, hosts admitted by the gateways'
   servers), which `validate: warn` may relax to warnings.

Every problem names the object (`Kind namespace/name`) and the field path
(`spec.http[0].route[1].weight`)."""

from __future__ import annotations

import difflib
import importlib.util
import re

# Imported only when a write needs the schema: a no-op run skips the cost.
HAS_JSONSCHEMA = importlib.util.find_spec("jsonschema") is not None

MESH_GATEWAY = "mesh"
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# Gateway server protocols Istio accepts, by family: servers on one port and
# a port's name must agree on the family.
PROTOCOL_FAMILIES = {
    "HTTP": "http",
    "HTTP2": "http",
    "GRPC": "http",
    "GRPC-WEB": "http",
    "HTTPS": "tls",
    "TLS": "tls",
    "TCP": "tcp",
    "MONGO": "mongo",
    "REDIS": "redis",
    "MYSQL": "mysql",
}
# Server TLS modes that terminate TLS and so need a certificate.
TERMINATING_TLS_MODES = {"SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL"}


class Problem:
    """One finding: the object, the field path, what is wrong."""

    def __init__(self, obj, field, message):
        self.object = obj
        self.field = field
        self.message = message

    def __str__(self):
        return f"{self.object}: {self.field}: {self.message}"

    def __repr__(self):
        return f"Problem({self})"

    def as_dict(self):
        return {"kind": self.object.split(" ", 1)[0], "object": self.object, "field": self.field,
                "message": self.message}


def ref(kind, namespace, name):
    return f"{kind} {namespace}/{name}"


def field_path(parts, root="spec"):
    """deque(['http', 0, 'route', 1, 'weight']) -> spec.http[0].route[1].weight"""
    text = root
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


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


def object_name(obj):
    meta = obj.get("metadata", {})
    return ref(obj.get("kind", "?"), meta.get("namespace", ""), meta.get("name", ""))


def metadata_problems(obj):
    """Names the API server would refuse (422), found before any write."""
    meta = obj.get("metadata", {})
    name, namespace = meta.get("name") or "", meta.get("namespace") or ""
    found = []
    if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        found.append(Problem(object_name(obj), "metadata.name", f"{name!r} is not a valid name (lowercase "
                             "letters, digits, '-' and '.', starting and ending with a letter or digit)"))
    if not DNS_LABEL.match(namespace) or len(namespace) > 63:
        found.append(Problem(object_name(obj), "metadata.namespace", f"{namespace!r} is not a valid namespace"))
    return found


# ---------------------------------------------------------------- hosts


def hosts_overlap(a, b):
    """Istio's host.Name.Matches: equal names, or a wildcard (`*`,
    `*.example.com`) covering the other name or wildcard."""
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    a_wild, b_wild = a.startswith("*"), b.startswith("*")
    if a_wild and b_wild:
        return a[1:].endswith(b[1:]) or b[1:].endswith(a[1:])
    if a_wild:
        return b.endswith(a[1:])
    if b_wild:
        return a.endswith(b[1:])
    return False


def host_subset(a, b):
    """Istio's host.Name.SubsetOf: every name `a` covers, `b` covers too."""
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    if not b.startswith("*"):
        return False
    suffix = b[1:]
    return (a[1:] if a.startswith("*") else a).endswith(suffix)


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


def gateway_problems(gateway):
    name = object_name(gateway)
    found = []
    by_name = {}
    by_number = {}
    for i, server in enumerate((gateway.get("spec") or {}).get("servers") or []):
        path = f"spec.servers[{i}]"
        port = server.get("port") or {}
        protocol = str(port.get("protocol", "")).upper()
        family = PROTOCOL_FAMILIES.get(protocol)
        if family is None:
            found.append(Problem(name, f"{path}.port.protocol", f"unsupported protocol {port.get('protocol')!r}; "
                                 f"use one of {', '.join(PROTOCOL_FAMILIES)}"))
        port_name = port.get("name")
        if port_name:
            if port_name in by_name:
                found.append(Problem(name, f"{path}.port.name", f"port name {port_name!r} is already used by "
                                     f"{by_name[port_name]}: port names must be unique in a Gateway"))
            by_name.setdefault(port_name, path)
            named_family = PROTOCOL_FAMILIES.get(port_name.split("-", 1)[0].upper())
            if family and named_family and named_family != family:
                found.append(Problem(name, f"{path}.port.name", f"port name {port_name!r} says "
                                     f"{port_name.split('-', 1)[0].upper()} but the protocol is {protocol}"))
        number = port.get("number")
        if family and number is not None:
            other = by_number.setdefault(number, (family, protocol, path))
            if other[0] != family:
                found.append(Problem(name, f"{path}.port.protocol", f"port {number} is {other[1]} in {other[2]} "
                                     f"and {protocol} here: servers on one port must agree"))
        found += _server_tls_problems(name, path, protocol, server.get("tls"))
    return found


def _server_tls_problems(name, path, protocol, tls):
    if protocol in ("HTTPS", "TLS") and not tls:
        return [Problem(name, f"{path}.tls", f"a {protocol} server needs tls settings (mode and credentialName)")]
    if not tls:
        return []
    mode = str(tls.get("mode") or "PASSTHROUGH").upper()
    has_credential = bool(tls.get("credentialName") or tls.get("credentialNames") or tls.get("tlsCertificates"))
    has_files = bool(tls.get("serverCertificate") and tls.get("privateKey"))
    if mode in TERMINATING_TLS_MODES and not (has_credential or has_files):
        return [Problem(name, f"{path}.tls.credentialName", f"TLS mode {mode} terminates TLS and needs a certificate:"
                        " set credentialName (a Secret in the gateway's namespace) or serverCertificate and "
                        "privateKey")]
    if mode == "MUTUAL" and not (has_credential or tls.get("caCertificates")):
        return [Problem(name, f"{path}.tls.caCertificates", "TLS mode MUTUAL needs the client CA: set "
                        "credentialName or caCertificates")]
    return []


def weight_problems(name, spec):
    """Destination weights of each route must sum to 100 (one destination
    may leave its weight out)."""
    found = []
    for kind in ("http", "tcp", "tls"):
        for i, route in enumerate(spec.get(kind) or []):
            destinations = route.get("route") or []
            weights = [d.get("weight") for d in destinations]
            if len(destinations) == 1 and weights[0] in (None, 0, 100):
                continue
            if not destinations:
                continue
            total = sum(w or 0 for w in weights)
            if total != 100:
                shown = " + ".join(str(w or 0) for w in weights)
                last = f"spec.{kind}[{i}].route[{len(destinations) - 1}].weight"
                found.append(Problem(name, last, f"the weights of spec.{kind}[{i}].route sum to {total} ({shown}); "
                                     "they must sum to 100"))
    return found


def virtual_service_problems(vs):
    return weight_problems(object_name(vs), vs.get("spec") or {})


def _client_tls_problems(name, path, tls):
    if not tls or str(tls.get("mode", "")).upper() != "MUTUAL":
        return []
    if tls.get("credentialName") or (tls.get("clientCertificate") and tls.get("privateKey")):
        return []
    return [Problem(name, f"{path}.credentialName", "TLS mode MUTUAL needs a client certificate: set credentialName "
                    "or clientCertificate and privateKey")]


def _traffic_policy_problems(name, path, policy):
    if not policy:
        return []
    found = _client_tls_problems(name, f"{path}.tls", policy.get("tls"))
    for j, setting in enumerate(policy.get("portLevelSettings") or []):
        found += _client_tls_problems(name, f"{path}.portLevelSettings[{j}].tls", setting.get("tls"))
    return found


def destination_rule_problems(dr):
    name = object_name(dr)
    spec = dr.get("spec") or {}
    found = _traffic_policy_problems(name, "spec.trafficPolicy", spec.get("trafficPolicy"))
    seen = {}
    for i, subset in enumerate(spec.get("subsets") or []):
        subset_name = subset.get("name")
        if subset_name in seen:
            found.append(Problem(name, f"spec.subsets[{i}].name", f"subset {subset_name!r} is already defined by "
                                 f"spec.subsets[{seen[subset_name]}]"))
        seen.setdefault(subset_name, i)
        found += _traffic_policy_problems(name, f"spec.subsets[{i}].trafficPolicy", subset.get("trafficPolicy"))
    return found


OBJECT_RULES = {
    "Gateway": gateway_problems,
    "VirtualService": virtual_service_problems,
    "DestinationRule": destination_rule_problems,
}


def object_problems(obj):
    """Metadata and Istio's single-object rules; always errors."""
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
