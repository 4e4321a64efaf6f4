# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Istio's single-object rules for Gateways, VirtualServices and
DestinationRules (what istiod's validating webhook refuses), written for
istio-lab from Istio 1.30's rules. Each problem names the field path and
says what would be right; each carries the id of its rule in RULES."""

from __future__ import annotations

import json

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate_common import (
    GRPC_STATUSES,
    HTTP_METHODS,
    HTTP_STATUS_CODES,
    ISTIO_LABEL,
    PROTOCOLS,
    RETRY_POLICIES,
    UNIX_PREFIX,
    Findings,
    domain_problem,
    duration_nanos,
    duration_problems,
    export_to_problems,
    header_name_problem,
    header_value_problem,
    host_subset,
    hosts_overlap,
    is_ip,
    is_ip_or_cidr,
    labels_problems,
    number,
    object_name,
    partial_wildcard,
    port_problem,
    selector_problems,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate_re2 import re2_problem

MESH_GATEWAY = "mesh"
# Server TLS modes that terminate TLS and so need a certificate.
TERMINATING_TLS_MODES = {"SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL"}
PASSTHROUGH_MODES = {"PASSTHROUGH", "AUTO_PASSTHROUGH"}


def _is_label(text):
    return isinstance(text, str) and len(text) <= 63 and bool(ISTIO_LABEL.match(text))


# ---------------------------------------------------------------- Gateway


def _server_host_problems(found, path, host):
    namespace, slash, dns = host.partition("/") if "/" in host else ("", "", host)
    if slash:
        if not namespace or not dns:
            found.add("gw-host-form", path, f"{host!r}: namespace and host name must both be set "
                      "(namespace/host, e.g. */example.com)")
        elif namespace not in ("*", ".") and not _is_label(namespace):
            found.add("gw-host-form", path, f"{host!r}: namespace {namespace!r} is not '*', '.' or a namespace "
                      "name")
    if slash and not dns:
        return
    if dns != "*" and "." not in dns:
        found.add("gw-host-name", path, f"{dns!r} is a short name: a server host must be '*' or qualified "
                  "(foo.example.com, *.example.com)")
    problem = domain_problem(dns)
    if problem and not is_ip(dns):
        found.add("gw-host-name", path, f"{dns!r} is not a host name: {problem}")
    if partial_wildcard(dns):
        found.add("gw-host-name", path, f"{dns!r} has a partial wildcard: use '*' or '*.example.com'")


def _server_tls_warnings(found, path, tls, mode):
    if tls.get("minProtocolVersion") in ("TLSV1_0", "TLSV1_1") and not tls.get("cipherSuites"):
        found.add("gw-tls-old-version-warn", f"{path}.cipherSuites", f"minProtocolVersion "
                  f"{tls['minProtocolVersion']} needs cipherSuites that version supports: Envoy's default ones "
                  "no longer include them")
    if mode in PASSTHROUGH_MODES:
        for key in ("serverCertificate", "privateKey", "caCertificates", "caCrl", "credentialName",
                    "credentialNames", "tlsCertificates"):
            if tls.get(key):
                found.add("gw-tls-passthrough-warn", f"{path}.{key}", f"{mode} mode does not use certificates: "
                          f"{key} is ignored; remove it, or terminate TLS (SIMPLE)")


def _server_tls_problems(found, path, tls):
    mode = str(tls.get("mode") or "PASSTHROUGH").upper()
    _server_tls_warnings(found, path, tls, mode)
    credential = tls.get("credentialName")
    if mode == "ISTIO_MUTUAL":
        for key in ("serverCertificate", "privateKey", "caCertificates", "credentialName", "credentialNames",
                    "tlsCertificates"):
            if tls.get(key):
                found.add("gw-tls-istio-mutual", f"{path}.{key}", "ISTIO_MUTUAL uses the mesh certificates: "
                          f"remove {key}")
        return
    certificates = tls.get("tlsCertificates") or []
    sources = [key for key, given in (
        ("credentialName", credential), ("credentialNames", tls.get("credentialNames")),
        ("serverCertificate", tls.get("serverCertificate") and tls.get("privateKey")),
        ("tlsCertificates", certificates)) if given]
    if len(sources) > 1:
        found.add("gw-tls-one-source", f"{path}.{sources[-1]}", f"{' and '.join(sources)} both give the "
                  "certificate: keep one")
    if mode in TERMINATING_TLS_MODES and (credential or tls.get("credentialNames")):
        return  # the credential holds the certificates (and a CRL, if any)
    if mode in TERMINATING_TLS_MODES:
        if certificates:
            for k, certificate in enumerate(certificates):
                if not isinstance(certificate, dict):
                    continue
                for key in ("serverCertificate", "privateKey"):
                    if not certificate.get(key):
                        found.add("gw-tls-credential", f"{path}.tlsCertificates[{k}].{key}", f"TLS mode {mode} "
                                  f"needs {key} in each tlsCertificates entry")
        elif not (tls.get("serverCertificate") and tls.get("privateKey")):
            found.add("gw-tls-credential", f"{path}.credentialName", f"TLS mode {mode} terminates TLS and needs a "
                      "certificate: set credentialName (a Secret in the gateway's namespace) or serverCertificate "
                      "and privateKey")
        if mode in ("MUTUAL", "OPTIONAL_MUTUAL") and not tls.get("caCertificates"):
            found.add("gw-tls-ca", f"{path}.caCertificates", f"TLS mode {mode} needs the client CA: set "
                      "credentialName or caCertificates")
    if tls.get("caCrl"):
        if credential:
            found.add("gw-tls-crl", f"{path}.caCrl", "caCrl does not go with credentialName: put the CRL into "
                      "the credential's Secret (ca.crl)")
        if mode == "SIMPLE":
            found.add("gw-tls-crl", f"{path}.caCrl", "caCrl needs client certificates: use MUTUAL, or remove "
                      "caCrl")


def _server_problems(found, path, server, by_name, by_number):
    hosts = server.get("hosts") or []
    if not hosts:
        found.add("gw-server-hosts", f"{path}.hosts", "a server needs at least one host ('*' for any)")
    for j, host in enumerate(hosts):
        if isinstance(host, str):
            _server_host_problems(found, f"{path}.hosts[{j}]", host)
    port = server.get("port")
    bind = server.get("bind") or ""
    tls = server.get("tls")
    if not port:
        found.add("gw-port", f"{path}.port", "a server needs a port (number, name, protocol)")
    else:
        before = len(found)
        protocol = str(port.get("protocol", "")).upper()
        family = PROTOCOLS.get(protocol)
        if family is None:
            found.add("gw-protocol", f"{path}.port.protocol", f"unsupported protocol {port.get('protocol')!r}; "
                      "use one of HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TLS, TCP, MONGO, REDIS, MYSQL")
        number_ = port.get("number")
        if number(number_) > 0 or not bind.startswith(UNIX_PREFIX):
            problem = port_problem(number_)
            if problem:
                found.add("gw-port-number", f"{path}.port.number", f"{problem}: use 1..65535 (0 only with a "
                          "unix:// bind)")
        if number(port.get("targetPort")) > 0:
            found.add("gw-target-port", f"{path}.port.targetPort", "targetPort has no effect on a Gateway: remove "
                      "it (the gateway's Service maps ports)")
        port_name = port.get("name") or ""
        if not port_name:
            found.add("gw-port-name", f"{path}.port.name", "a server port needs a name (e.g. http, https-443)")
        port_ok = len(found) == before
        if port_name in by_name:
            found.add("gw-port-name-unique", f"{path}.port.name", f"port name {port_name!r} is already used by "
                      f"{by_name[port_name]}: port names must be unique in a Gateway")
        by_name.setdefault(port_name, path)
        if port_name:
            named = str(port_name).split("-", 1)[0].upper()
            named_family = PROTOCOLS.get(named)
            if family and named_family and named_family != family:
                found.add("gw-port-name-protocol", f"{path}.port.name", f"port name {port_name!r} says {named} but "
                          f"the protocol is {protocol}")
        if family and number_ is not None:
            other = by_number.setdefault(number_, (family, protocol, path))
            if other[0] != family:
                found.add("gw-port-one-protocol", f"{path}.port.protocol", f"port {number_} is {other[1]} in "
                          f"{other[2]} and {protocol} here: servers on one port must agree")
        if family != "http" and isinstance(tls, dict) and tls.get("httpsRedirect"):
            found.add("gw-https-redirect-warn", f"{path}.tls.httpsRedirect", f"httpsRedirect only acts on HTTP "
                      f"servers, not {protocol}: remove it")
        if port_ok:
            if family == "tls" and not tls:
                found.add("gw-tls-required", f"{path}.tls", f"a {protocol} server needs tls settings (mode and "
                          "credentialName)")
            elif family != "tls" and tls:
                if family == "http":
                    mode = str(tls.get("mode") or "PASSTHROUGH").upper()
                    tls_files = ("caCertificates", "privateKey", "serverCertificate")
                    if mode not in PASSTHROUGH_MODES or any(tls.get(k) for k in tls_files):
                        found.add("gw-tls-plaintext", f"{path}.tls", f"a plain-text {protocol} server takes tls only "
                                  "for httpsRedirect: use protocol HTTPS to terminate TLS")
                else:
                    found.add("gw-tls-plaintext", f"{path}.tls", f"a {protocol} server takes no tls settings: use "
                              "protocol TLS or HTTPS")
    if bind.startswith(UNIX_PREFIX):
        socket = bind[len(UNIX_PREFIX):]
        if not socket or not (socket.startswith("@") or (socket.startswith("/") and not socket.endswith("/"))):
            found.add("gw-bind", f"{path}.bind", f"{bind!r}: a unix socket needs an absolute file path "
                      "(unix:///var/run/x.sock) or an abstract name (unix://@x)")
        if port and number(port.get("number")) != 0:
            found.add("gw-bind", f"{path}.port.number", "a server bound to a unix socket needs port number 0")
    elif bind and not is_ip(bind):
        found.add("gw-bind", f"{path}.bind", f"{bind!r} is not an IP address: bind takes an IP (or unix://path)")
    if isinstance(tls, dict):
        _server_tls_problems(found, f"{path}.tls", tls)


def gateway_problems(gateway):
    found = Findings(object_name(gateway))
    name = (gateway.get("metadata") or {}).get("name") or ""
    if "." in name or len(name) > 63:
        found.add("gw-name", "metadata.name", f"{name!r}: a Gateway's name is a DNS label, no dots and at most 63 "
                  "characters (VirtualServices reference it as namespace/name); use '-'")
    servers = (gateway.get("spec") or {}).get("servers") or []
    if not servers:
        found.add("gw-servers", "spec.servers", "a Gateway needs at least one server (port, hosts)")
    by_name, by_number = {}, {}
    for i, server in enumerate(servers):
        if isinstance(server, dict):
            _server_problems(found, f"spec.servers[{i}]", server, by_name, by_number)
    return found


# ---------------------------------------------------------------- VirtualService


def _applies_to_gateway(spec):
    gateways = spec.get("gateways") or []
    return bool(gateways) and MESH_GATEWAY not in gateways


def _gateway_name_problems(found, path, names):
    for k, name in enumerate(names or []):
        if not isinstance(name, str):
            continue
        namespace, slash, gateway = name.partition("/")
        if not slash:
            if "." in name:
                parts = name.split(".")
                found.add("vs-gateway-legacy-warn", f"{path}[{k}]", f"{name!r} is the legacy name.namespace form: "
                          f"write {parts[1]}/{parts[0]}")
            problem = domain_problem(name, wildcard=False)
            if problem:
                found.add("vs-gateway-name", f"{path}[{k}]", f"{name!r} is not a gateway reference ({problem}): "
                          "use name, namespace/name or mesh")
            return  # istiod checks no further names after one without a namespace
        if not namespace or not gateway:
            found.add("vs-gateway-name", f"{path}[{k}]", f"{name!r}: namespace and name must both be set "
                      "(namespace/name)")
        if not _is_label(namespace):
            found.add("vs-gateway-name", f"{path}[{k}]", f"{name!r}: namespace {namespace!r} is not a namespace name")
        if not _is_label(gateway):
            found.add("vs-gateway-name", f"{path}[{k}]", f"{name!r}: gateway name {gateway!r} is not a DNS label")


def _string_match_problems(found, path, match, prefix_may_be_empty=False):
    if not isinstance(match, dict):
        return
    if "prefix" in match and match.get("prefix") == "" and not prefix_may_be_empty:
        found.add("vs-string-match", f"{path}.prefix", "an empty prefix matches everything: remove the match or "
                  "give a prefix")
    if "regex" in match:
        regex = match.get("regex") or ""
        if not regex:
            found.add("vs-string-match", f"{path}.regex", "an empty regex: give an RE2 expression")
        elif len(regex) > 1024:
            found.add("vs-string-match", f"{path}.regex", f"the regex has {len(regex)} characters: Istio takes at "
                      "most 1024")
        else:
            _regex_problems(found, f"{path}.regex", regex)


def _regex_problems(found, path, regex):
    problem = re2_problem(regex)
    if problem:
        found.add("vs-regex", path, f"{regex!r} does not compile: {problem}")


def _header_operations(found, path, headers):
    """Header manipulation of a route or a destination."""
    for side in ("request", "response"):
        ops = (headers or {}).get(side) or {}
        for op in ("add", "set", "remove"):
            entries = ops.get(op) or ({} if op != "remove" else [])
            items = entries.items() if isinstance(entries, dict) else [(n, None) for n in entries]
            for name, value in items:
                where = f"{path}.{side}.{op}[{name}]" if op != "remove" else f"{path}.{side}.remove"
                name = str(name)
                lower = name.lower()
                if not name:
                    found.add("vs-header-operation", where, "an empty header name: name the header")
                elif side == "request" and op in ("add", "set"):
                    if (name.startswith(":") or lower == "host") and lower not in (":authority", "host"):
                        found.add("vs-header-operation", where, f"{name!r} is a pseudo-header Envoy owns: only "
                                  ":authority/Host may be set")
                elif lower == "host" or name.startswith(":"):
                    found.add("vs-header-operation", where, f"{name!r} cannot be {op}{'ed' if op != 'set' else ''} "
                              "here: Host and pseudo-headers are Envoy's (rewrite the authority instead)")
                if name and not name.startswith(":") and header_name_problem(name):
                    # istiod and Envoy take it, but no HTTP/1.1 peer can parse such a header (issue 30).
                    found.add("vs-header-name-token", where, header_name_problem(name))
                problem = header_value_problem(value)
                if problem:
                    found.add("vs-header-value", where, problem)


def _authority_problems(found, path, route):
    current = (route.get("rewrite") or {}).get("authority") or ""
    request = ((route.get("headers") or {}).get("request") or {})
    for op in ("set", "add"):
        for name, value in (request.get(op) or {}).items():
            if str(name).lower() not in (":authority", "host"):
                continue
            if current:
                found.add("vs-authority-once", f"{path}.headers.request.{op}[{name}]", f"the authority is already "
                          f"rewritten to {current!r}: set it in one place only")
            current = value


def _destination_problems(found, path, destination):
    if not isinstance(destination, dict):
        return
    host = destination.get("host")
    if host == "*":
        found.add("vs-destination-host", f"{path}.host", "'*' is no destination: name a service "
                  "(reviews, reviews.ns.svc.cluster.local)")
    else:
        problem = domain_problem(host)
        if problem:
            found.add("vs-destination-host", f"{path}.host", f"{host!r} is not a host name: {problem}")
    subset = destination.get("subset")
    if subset is not None and subset != "" and not _is_label(subset):
        found.add("vs-subset-name", f"{path}.subset", f"subset {subset!r} is not a DNS label (letters, digits, "
                  "'-'; e.g. v1)")
    port = destination.get("port")
    if isinstance(port, dict):
        problem = port_problem(port.get("number"))
        if problem:
            found.add("vs-port", f"{path}.port.number", f"{problem}: use the service's port")


def _route_destinations(found, path, destinations, http=False):
    total, typed = 0, True
    for j, entry in enumerate(destinations or []):
        where = f"{path}[{j}]"
        if not isinstance(entry, dict):
            continue
        if not entry.get("destination"):
            found.add("vs-destination-required", f"{where}.destination", "each route entry needs a destination "
                      "(host, port, subset)")
        if http:
            _header_operations(found, f"{where}.headers", entry.get("headers"))
        _destination_problems(found, f"{where}.destination", entry.get("destination"))
        if entry.get("weight") is not None and number(entry.get("weight"), None) is None:
            typed = False  # a wrong type (a template, when no schema could be read): the server names it
        weight = number(entry.get("weight"))
        if weight < 0:
            found.add("vs-weight-negative", f"{where}.weight", f"weight {weight} is negative: weights are 0..100")
        total += weight
    if len(destinations or []) > 1 and total == 0 and typed:
        found.add("vs-weight-zero", f"{path}[{len(destinations) - 1}].weight", "the weights sum to 0: no destination "
                  "would get traffic; give weights summing to 100")


def weight_problems(name, spec):
    """istio-lab's policy (istiod normalizes weights instead): the
    destination weights of each route sum to 100, one destination may leave
    its weight out."""
    found = Findings(name)
    for kind in ("http", "tcp", "tls"):
        for i, route in enumerate(spec.get(kind) or []):
            destinations = (route or {}).get("route") or []
            weights = [number(d.get("weight"), None) for d in destinations if isinstance(d, dict)]
            if not destinations or (len(destinations) == 1 and weights and weights[0] in (None, 0, 100)):
                continue
            total = sum(w or 0 for w in weights)
            if total != 100 and total > 0 and all((w or 0) >= 0 for w in weights):
                shown = " + ".join(str(w or 0) for w in weights)
                last = f"spec.{kind}[{i}].route[{len(destinations) - 1}].weight"
                found.add("vs-weight-sum", last, f"the weights of spec.{kind}[{i}].route sum to {total} ({shown}); "
                          "they must sum to 100")
    return found


def _percentage_problem(value):
    value = number(value)
    if value < 0 or value > 100 or 0 < value < 0.0001:
        return f"{value} is not 0 or within 0.0001..100"
    return None


def _match_problems(found, path, route, applies_to_gateway):
    for j, match in enumerate(route.get("match") or []):
        if not isinstance(match, dict):
            continue
        where = f"{path}.match[{j}]"
        for key in ("headers", "withoutHeaders"):
            for name, value in (match.get(key) or {}).items():
                problem = header_name_problem(str(name), jwt=True)
                if problem:
                    found.add("vs-header-name", f"{where}.{key}[{name}]", f"{problem}")
                elif str(name).startswith("@request.auth.claims") and not applies_to_gateway:
                    found.add("vs-jwt-claim-mesh", f"{where}.{key}[{name}]", "JWT claim routing only works on "
                              "gateways: bind the VirtualService to a Gateway (not mesh)")
                if key == "withoutHeaders" and isinstance(value, dict) and value.get("regex") == "*":
                    continue
                _string_match_problems(found, f"{where}.{key}[{name}]", value)
        _string_match_problems(found, f"{where}.uri", match.get("uri"), prefix_may_be_empty=True)
        for key in ("scheme", "method", "authority"):
            _string_match_problems(found, f"{where}.{key}", match.get(key))
        for name, value in (match.get("queryParams") or {}).items():
            _string_match_problems(found, f"{where}.queryParams[{name}]", value)
        if number(match.get("port")) != 0:
            problem = port_problem(match.get("port"))
            if problem:
                found.add("vs-port", f"{where}.port", f"{problem}")
        labels_problems(found, match.get("sourceLabels"), f"{where}.sourceLabels")
        _gateway_name_problems(found, f"{where}.gateways", match.get("gateways"))
        namespace = match.get("sourceNamespace")
        if namespace and not _is_label(namespace):
            found.add("vs-source-namespace", f"{where}.sourceNamespace", f"{namespace!r} is not a namespace name")


def _http_action_problems(found, path, route, delegate_vs):
    has_route = bool(route.get("route"))
    redirect, direct = route.get("redirect"), route.get("directResponse")
    if route.get("delegate") is not None and not delegate_vs:
        if redirect is not None:
            found.add("vs-delegate-nested", f"{path}.redirect", "a route that delegates takes no redirect: the "
                      "delegate VirtualService routes")
        if route.get("route") is not None:
            found.add("vs-delegate-nested", f"{path}.route", "a route that delegates takes no route: the delegate "
                      "VirtualService routes")
        return
    if delegate_vs and route.get("delegate") is not None:
        found.add("vs-delegate-nested", f"{path}.delegate", "a delegate VirtualService cannot delegate again")
    conflicts = []
    if redirect is not None:
        conflicts = [("route", has_route), ("fault", route.get("fault") is not None),
                     ("rewrite", route.get("rewrite") is not None), ("directResponse", direct is not None)]
        for key, present in conflicts:
            if present:
                found.add("vs-http-conflict", f"{path}.{key}", f"a route with a redirect takes no {key}: keep one "
                          "of them")
    elif direct is not None:
        for key, present in [("route", has_route), ("fault", route.get("fault") is not None),
                             ("rewrite", route.get("rewrite") is not None)]:
            if present:
                found.add("vs-http-conflict", f"{path}.{key}", f"a route with a directResponse takes no {key}: keep "
                          "one of them")
    elif not has_route:
        found.add("vs-http-action", f"{path}.route", "an HTTP route needs a route (destinations), a redirect or a "
                  "directResponse")
    if route.get("mirror") is not None and route.get("mirrors"):
        found.add("vs-mirror-both", f"{path}.mirrors", "mirror and mirrors are exclusive: move mirror into mirrors")


def _cors_problems(found, path, cors):
    for k, origin in enumerate(cors.get("allowOrigins") or []):
        origin = origin or {}
        value = origin.get("exact") or origin.get("prefix") or origin.get("regex")
        if not value:
            found.add("vs-cors-origin", f"{path}.allowOrigins[{k}]", "give a non-empty exact, prefix or regex "
                      "origin")
        else:
            _string_match_problems(found, f"{path}.allowOrigins[{k}]", origin)
    for k, method in enumerate(cors.get("allowMethods") or []):
        if method not in HTTP_METHODS:
            found.add("vs-cors-method", f"{path}.allowMethods[{k}]", f"{method!r} is not an HTTP method: use one of "
                      f"{', '.join(sorted(HTTP_METHODS))} (upper case)")
    for key in ("allowHeaders", "exposeHeaders"):
        for k, name in enumerate(cors.get(key) or []):
            if name != "*":
                problem = header_name_problem(str(name))
                if problem:
                    found.add("vs-cors-header", f"{path}.{key}[{k}]", f"{problem}, or '*'")
    max_age = cors.get("maxAge")
    if max_age is not None:
        duration_problems(found, max_age, f"{path}.maxAge")
        nanos = duration_nanos(max_age)
        if nanos is not None and nanos >= 10**6 and nanos % 10**9:
            found.add("vs-cors-max-age", f"{path}.maxAge", f"{max_age!r}: CORS maxAge counts whole seconds")


def _fault_problems(found, path, fault):
    abort, delay = fault.get("abort"), fault.get("delay")
    if abort is None and delay is None:
        found.add("vs-fault", path, "a fault needs an abort or a delay (or both)")
    if isinstance(abort, dict):
        if abort.get("percentage") is not None:
            problem = _percentage_problem((abort.get("percentage") or {}).get("value"))
            if problem:
                found.add("vs-fault-percentage", f"{path}.abort.percentage.value", problem)
        if "http2Error" in abort:
            found.add("vs-fault", f"{path}.abort.http2Error", "Istio does not support http2Error aborts yet: use "
                      "httpStatus or grpcStatus")
        elif "grpcStatus" in abort:
            if abort.get("grpcStatus") not in GRPC_STATUSES:
                found.add("vs-fault-status", f"{path}.abort.grpcStatus", f"{abort.get('grpcStatus')!r} is not a gRPC "
                          "status: use a name like UNAVAILABLE or NOT_FOUND")
        elif "httpStatus" in abort:
            status = number(abort.get("httpStatus"))
            if not 200 <= status <= 600:
                found.add("vs-fault-status", f"{path}.abort.httpStatus", f"HTTP status {status} is outside 200..600")
        else:
            found.add("vs-abort-type-warn", f"{path}.abort", "an abort without httpStatus or grpcStatus aborts "
                      "nothing: set one")
    if isinstance(delay, dict):
        if delay.get("percentage") is not None:
            problem = _percentage_problem((delay.get("percentage") or {}).get("value"))
            if problem:
                found.add("vs-fault-percentage", f"{path}.delay.percentage.value", problem)
        if "fixedDelay" in delay:
            duration_problems(found, delay.get("fixedDelay"), f"{path}.delay.fixedDelay")
        if "exponentialDelay" in delay:
            found.add("vs-fault", f"{path}.delay.exponentialDelay", "Istio does not support exponentialDelay yet: "
                      "use fixedDelay")


def _redirect_problems(found, path, redirect):
    if not any(redirect.get(k) for k in ("uri", "authority", "scheme")) and not (
            "port" in redirect or "derivePort" in redirect):
        found.add("vs-redirect", path, "a redirect must change something: set uri, authority, scheme or port")
    code = number(redirect.get("redirectCode"))
    if code and not 300 <= code <= 399:
        found.add("vs-redirect", f"{path}.redirectCode", f"{code} is not a redirect code: use 3xx (301, 302, 308)")
    scheme = redirect.get("scheme")
    if scheme and scheme not in ("http", "https"):
        found.add("vs-redirect", f"{path}.scheme", f"{scheme!r}: the scheme must be http or https")
    if number(redirect.get("port")) > 0:
        problem = port_problem(redirect.get("port"))
        if problem:
            found.add("vs-port", f"{path}.port", problem)


def _retry_problems(found, path, retries):
    attempts = number(retries.get("attempts"))
    if attempts < 0:
        found.add("vs-retry-attempts", f"{path}.attempts", f"{attempts} attempts: use 0 (no retries) or more")
    if attempts == 0:
        for key in ("perTryTimeout", "retryOn", "retryRemoteLocalities"):
            if retries.get(key) not in (None, ""):
                found.add("vs-retry-disabled", f"{path}.{key}", f"{key} is set but attempts is 0 (retries off): set "
                          "attempts, or remove the retry settings")
    if retries.get("perTryTimeout") is not None:
        duration_problems(found, retries.get("perTryTimeout"), f"{path}.perTryTimeout")
    if retries.get("backoff") is not None:
        duration_problems(found, retries.get("backoff"), f"{path}.backoff")
    retry_on = retries.get("retryOn")
    if isinstance(retry_on, str) and retry_on:
        for policy in retry_on.split(","):
            if policy in RETRY_POLICIES or (policy.isdigit() and int(policy) in HTTP_STATUS_CODES):
                continue
            found.add("vs-retry-on", f"{path}.retryOn", f"{policy!r} is not a retry policy: use Envoy's "
                      "(5xx, gateway-error, reset, connect-failure, retriable-4xx, ...) or status codes")


def _rewrite_problems(found, path, rewrite):
    regex = rewrite.get("uriRegexRewrite")
    if rewrite.get("uri") and regex is not None:
        found.add("vs-rewrite", f"{path}.uriRegexRewrite", "uri and uriRegexRewrite are exclusive: keep one")
    if not rewrite.get("uri") and regex is None and not rewrite.get("authority"):
        found.add("vs-rewrite", path, "a rewrite must change something: set uri, uriRegexRewrite or authority")
    if isinstance(regex, dict):
        if not regex.get("match") or not regex.get("rewrite"):
            found.add("vs-rewrite", f"{path}.uriRegexRewrite", "uriRegexRewrite needs both match and rewrite")
        elif len(regex["match"]) > 1024:
            found.add("vs-string-match", f"{path}.uriRegexRewrite.match", "the regex has more than 1024 characters")
        else:
            _regex_problems(found, f"{path}.uriRegexRewrite.match", regex["match"])


def _http_route_problems(found, path, route, delegate_vs, applies_to_gateway):
    _http_action_problems(found, path, route, delegate_vs)
    _match_problems(found, path, route, applies_to_gateway)
    _header_operations(found, f"{path}.headers", route.get("headers"))
    if isinstance(route.get("corsPolicy"), dict):
        _cors_problems(found, f"{path}.corsPolicy", route["corsPolicy"])
    if isinstance(route.get("fault"), dict):
        _fault_problems(found, f"{path}.fault", route["fault"])
    if route.get("mirrorPercent") is not None:
        if number(route.get("mirrorPercent")) > 100:
            found.add("vs-mirror-percentage", f"{path}.mirrorPercent", f"{route['mirrorPercent']} is above 100")
        found.add("vs-mirror-percent-warn", f"{path}.mirrorPercent", "mirrorPercent is deprecated: use "
                  "mirrorPercentage: {value: ...}")
    if isinstance(route.get("mirrorPercentage"), dict):
        value = number(route["mirrorPercentage"].get("value"))
        if not 0 <= value <= 100:
            found.add("vs-mirror-percentage", f"{path}.mirrorPercentage.value", f"{value} is outside 0..100: mirror "
                      "0 to 100 percent of the requests")
    _destination_problems(found, f"{path}.mirror", route.get("mirror"))
    for k, mirror in enumerate(route.get("mirrors") or []):
        if not isinstance(mirror, dict):
            continue
        if not mirror.get("destination"):
            found.add("vs-mirror-destination", f"{path}.mirrors[{k}].destination", "a mirror needs a destination")
            continue
        _destination_problems(found, f"{path}.mirrors[{k}].destination", mirror.get("destination"))
        if isinstance(mirror.get("percentage"), dict):
            value = number(mirror["percentage"].get("value"))
            if not 0 <= value <= 100:
                found.add("vs-mirror-percentage", f"{path}.mirrors[{k}].percentage.value", f"{value} is outside "
                          "0..100")
    if isinstance(route.get("redirect"), dict):
        _redirect_problems(found, f"{path}.redirect", route["redirect"])
    direct = route.get("directResponse")
    if isinstance(direct, dict):
        status = number(direct.get("status"))
        if not 200 <= status <= 600:
            found.add("vs-direct-response", f"{path}.directResponse.status", f"status {status} is outside 200..600")
        body = direct.get("body") or {}
        size = len(str(body.get("string") or body.get("bytes") or "").encode())
        if size > 1024 * 1024:
            found.add("vs-direct-response", f"{path}.directResponse.body", f"the body has {size} bytes: at most 1 MB")
        elif size > 100 * 1024:
            found.add("vs-direct-response-size-warn", f"{path}.directResponse.body", f"the body has {size} bytes: "
                      "over 100 kB it weighs on the control plane; serve it from a service instead")
    if isinstance(route.get("retries"), dict):
        _retry_problems(found, f"{path}.retries", route["retries"])
    if isinstance(route.get("rewrite"), dict):
        _rewrite_problems(found, f"{path}.rewrite", route["rewrite"])
    _authority_problems(found, path, route)
    _route_destinations(found, f"{path}.route", route.get("route"), http=True)
    if route.get("timeout") is not None:
        duration_problems(found, route.get("timeout"), f"{path}.timeout")


def _sni_host_problems(found, path, sni, spec, bound_to_gateway):
    problem = domain_problem(sni)
    if bound_to_gateway and isinstance(sni, str) and sni.split(".", 1)[0] == "outbound_":
        problem = None
    if problem:
        if is_ip(sni):
            found.add("vs-sni-ip-warn", path, f"{sni!r} is an IP address: SNI carries host names, most clients "
                      "send none for an IP")
        else:
            found.add("vs-sni-host", path, f"{sni!r} is not a host name: {problem}")
        return
    if not any(isinstance(h, str) and host_subset(sni, h) for h in spec.get("hosts") or []):
        found.add("vs-sni-host", path, f"SNI host {sni!r} is not covered by the VirtualService's hosts "
                  f"[{', '.join(map(str, spec.get('hosts') or []))}]: add it to hosts or narrow it")


def _l4_match_problems(found, where, match):
    for k, subnet in enumerate(match.get("destinationSubnets") or []):
        if not is_ip_or_cidr(subnet):
            found.add("vs-subnet", f"{where}.destinationSubnets[{k}]", f"{subnet!r} is not an IP address or CIDR "
                      "block (10.0.0.0/8)")
    if number(match.get("port")) != 0:
        problem = port_problem(match.get("port"))
        if problem:
            found.add("vs-port", f"{where}.port", problem)
    labels_problems(found, match.get("sourceLabels"), f"{where}.sourceLabels")
    _gateway_name_problems(found, f"{where}.gateways", match.get("gateways"))


def _tls_route_problems(found, path, route, spec):
    matches = route.get("match") or []
    if not matches:
        found.add("vs-tls-match", f"{path}.match", "a tls route needs a match with sniHosts")
    # istiod binds SNI hosts to gateway rules unless the VirtualService names the mesh
    bound_to_gateway = MESH_GATEWAY not in (spec.get("gateways") or [])
    for j, match in enumerate(matches):
        if not isinstance(match, dict):
            continue
        where = f"{path}.match[{j}]"
        sni_hosts = match.get("sniHosts") or []
        if not sni_hosts:
            found.add("vs-tls-match", f"{where}.sniHosts", "a tls match needs at least one SNI host")
        for k, sni in enumerate(sni_hosts):
            _sni_host_problems(found, f"{where}.sniHosts[{k}]", sni, spec, bound_to_gateway)
        _l4_match_problems(found, where, match)
    if not route.get("route"):
        found.add("vs-tls-tcp-route", f"{path}.route", "a tls route needs a route (destinations)")
    _route_destinations(found, f"{path}.route", route.get("route"))


def _tcp_route_problems(found, path, route):
    for j, match in enumerate(route.get("match") or []):
        if isinstance(match, dict):
            _l4_match_problems(found, f"{path}.match[{j}]", match)
    if not route.get("route"):
        found.add("vs-tls-tcp-route", f"{path}.route", "a tcp route needs a route (destinations)")
    _route_destinations(found, f"{path}.route", route.get("route"))


def _vs_host_problems(found, spec):
    hosts = spec.get("hosts") or []
    applies_to_gateway = _applies_to_gateway(spec)
    sni = any((m or {}).get("sniHosts") for r in spec.get("tls") or [] for m in (r or {}).get("match") or [])
    valid = True
    for i, host in enumerate(hosts):
        problem = domain_problem(host)
        if problem and applies_to_gateway and sni and isinstance(host, str) and host.split(".", 1)[0] == "outbound_":
            problem = None
        if problem:
            if not is_ip(host):
                found.add("vs-host", f"spec.hosts[{i}]", f"{host!r} is not a host name: {problem}")
                valid = False
        elif not applies_to_gateway and host == "*":
            found.add("vs-host-mesh-wildcard", f"spec.hosts[{i}]", "host '*' is not allowed for a VirtualService "
                      "bound to the mesh (sidecars): name the services, or bind it to a Gateway only")
            valid = False
    if valid:
        for i, a in enumerate(hosts):
            for j in range(i + 1, len(hosts)):
                if hosts_overlap(str(a), str(hosts[j])):
                    found.add("vs-host-duplicate", f"spec.hosts[{j}]", f"{hosts[j]!r} duplicates spec.hosts[{i}] "
                              f"({a!r}): list each host once")


def _unreachable_routes(found, spec):
    """istiod's warnings about routes that never see a request: after a
    route without matches (a catch-all), or whose matches all repeat
    earlier ones. (istiod also compares URI prefixes; that is left out.)"""
    for kind in ("http", "tls", "tcp"):
        seen, catch_all = {}, None
        for i, route in enumerate(spec.get(kind) or []):
            if not isinstance(route, dict):
                continue
            matches = route.get("match") or []
            if catch_all is not None:
                found.add("vs-unreachable-warn", f"spec.{kind}[{i}]", f"never reached: spec.{kind}[{catch_all}] has "
                          "no match and takes every request; move it last")
                continue
            if not matches:
                catch_all = i
                continue
            repeated = 0
            for j, match in enumerate(matches):
                key = json.dumps(match, sort_keys=True, default=str)
                if key in seen:
                    repeated += 1
                    found.add("vs-duplicate-match-warn", f"spec.{kind}[{i}].match[{j}]", f"the same match as "
                              f"spec.{kind}[{seen[key]}], which takes these requests first")
                else:
                    seen[key] = i
            if repeated == len(matches):
                found.add("vs-unreachable-warn", f"spec.{kind}[{i}]", "never reached: earlier routes take all of its "
                          "matches")


def virtual_service_problems(vs):
    found = Findings(object_name(vs))
    spec = vs.get("spec") or {}
    delegate = not spec.get("hosts")
    if delegate:
        for key in ("gateways", "tls", "tcp"):
            if spec.get(key):
                found.add("vs-delegate", f"spec.{key}", f"a VirtualService without hosts is a delegate and takes no "
                          f"{key}: add hosts, or remove {key}")
    if spec.get("gateways"):
        _gateway_name_problems(found, "spec.gateways", spec.get("gateways"))
    _vs_host_problems(found, spec)
    if not (spec.get("http") or spec.get("tcp") or spec.get("tls")):
        found.add("vs-routes", "spec.http", "a VirtualService needs http, tcp or tls routes")
    applies_to_gateway = _applies_to_gateway(spec)
    for i, route in enumerate(spec.get("http") or []):
        if isinstance(route, dict):
            _http_route_problems(found, f"spec.http[{i}]", route, delegate, applies_to_gateway)
    for i, route in enumerate(spec.get("tls") or []):
        if isinstance(route, dict):
            _tls_route_problems(found, f"spec.tls[{i}]", route, spec)
    for i, route in enumerate(spec.get("tcp") or []):
        if isinstance(route, dict):
            _tcp_route_problems(found, f"spec.tcp[{i}]", route)
    export_to_problems(found, (vs.get("metadata") or {}).get("namespace", ""), spec.get("exportTo"))
    _unreachable_routes(found, spec)
    found += weight_problems(found.name, spec)
    return found


# ---------------------------------------------------------------- DestinationRule


def _client_tls_problems(found, path, tls):
    mode = str(tls.get("mode", "")).upper()
    insecure = tls.get("insecureSkipVerify") is True
    if insecure and mode == "SIMPLE":
        for key in ("caCertificates", "credentialName", "subjectAltNames"):
            if tls.get(key):
                found.add("dr-tls-insecure", f"{path}.{key}", f"insecureSkipVerify skips verification: remove {key}, "
                          "or insecureSkipVerify")
    if insecure and mode == "MUTUAL":
        for key in ("caCertificates", "subjectAltNames"):
            if tls.get(key):
                found.add("dr-tls-insecure", f"{path}.{key}", f"insecureSkipVerify skips verification: remove {key}, "
                          "or insecureSkipVerify")
    if mode in ("SIMPLE", "MUTUAL") and tls.get("credentialName"):
        for key in ("clientCertificate", "caCertificates", "privateKey", "caCrl"):
            if tls.get(key):
                found.add("dr-tls-credential", f"{path}.{key}", f"credentialName already supplies the certificates: "
                          f"remove {key}")
        return
    if mode == "MUTUAL" and not (tls.get("clientCertificate") and tls.get("privateKey")):
        found.add("dr-tls-mutual", f"{path}.credentialName", "TLS mode MUTUAL needs a client certificate: set "
                  "credentialName or clientCertificate and privateKey")


def _outlier_problems(found, path, outlier):
    for key in ("baseEjectionTime", "interval"):
        if outlier.get(key) is not None:
            duration_problems(found, outlier.get(key), f"{path}.{key}")
    if number(outlier.get("consecutiveErrors")):
        found.add("dr-consecutive-errors-warn", f"{path}.consecutiveErrors", "consecutiveErrors is deprecated: use "
                  "consecutive5xxErrors or consecutiveGatewayErrors")
    if not outlier.get("splitExternalLocalOriginErrors") and number(outlier.get("consecutiveLocalOriginFailures")) > 0:
        found.add("dr-outlier", f"{path}.consecutiveLocalOriginFailures", "counts local-origin failures only with "
                  "splitExternalLocalOriginErrors: true; set it, or remove this field")
    for key in ("maxEjectionPercent", "minHealthPercent"):
        value = number(outlier.get(key))
        if not 0 <= value <= 100:
            found.add("dr-outlier", f"{path}.{key}", f"{value} is outside 0..100")


def _pool_problems(found, path, pool):
    if not pool:
        found.add("dr-connection-pool", path, "an empty connectionPool: set http or tcp, or remove it")
        return
    http_ = pool.get("http") or {}
    for key in ("http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection", "maxRetries",
                "maxConcurrentStreams"):
        if number(http_.get(key)) < 0:
            found.add("dr-connection-pool", f"{path}.http.{key}", f"{http_.get(key)} is negative: use 0 or more")
    if http_.get("idleTimeout") is not None:
        duration_problems(found, http_.get("idleTimeout"), f"{path}.http.idleTimeout")
    if http_.get("h2UpgradePolicy") == "UPGRADE" and http_.get("useClientProtocol"):
        found.add("dr-connection-pool", f"{path}.http.useClientProtocol", "useClientProtocol contradicts "
                  "h2UpgradePolicy UPGRADE: keep one")
    tcp = pool.get("tcp") or {}
    if number(tcp.get("maxConnections")) < 0:
        found.add("dr-connection-pool", f"{path}.tcp.maxConnections", f"{tcp.get('maxConnections')} is negative")
    for key in ("connectTimeout", "maxConnectionDuration", "idleTimeout"):
        if tcp.get(key) is not None:
            duration_problems(found, tcp.get(key), f"{path}.tcp.{key}")
    for key in ("time", "interval"):
        if (tcp.get("tcpKeepalive") or {}).get(key) is not None:
            duration_problems(found, tcp["tcpKeepalive"][key], f"{path}.tcp.tcpKeepalive.{key}")


def _is_prime(n):
    if n < 2:
        return n != 0 and n < 4
    if n < 4:
        return True
    if n % 2 == 0:
        return False
    factor = 3
    while factor * factor <= n:
        if n % factor == 0:
            return False
        factor += 2
    return True


def _locality_list_problem(localities):
    """Istio's check of a list of localities (region[/zone[/subzone]], one
    trailing `*` at most): well-formed, none overlapping an earlier one."""
    regions = {}
    for locality in localities:
        stars = locality.count("*")
        if stars and (stars > 1 or not locality.endswith("*")):
            return f"{locality!r}: one '*' at most, at the end"
        if "*" in regions:
            return f"{locality!r} overlaps an earlier locality"
        parts = locality.split("/", 2)
        if any(part == "" for part in parts):
            return f"{locality!r}: region/zone/subzone may not be empty"
        overlap = f"{locality!r} overlaps an earlier locality"
        if len(parts) == 1:
            if parts[0] in regions:
                return overlap
            regions[parts[0]] = {"*": {"*": True}}
        elif len(parts) == 2:
            zones = regions.setdefault(parts[0], {})
            if "*" in zones or parts[1] in zones:
                return overlap
            zones[parts[1]] = {"*": True}
        else:
            zones = regions.setdefault(parts[0], {})
            if "*" in zones:
                return overlap
            subzones = zones.setdefault(parts[1], {})
            if subzones.get("*") or subzones.get(parts[2]):
                return overlap
            subzones[parts[2]] = True
    return None


def _locality_problems(found, path, lb, outlier):
    distribute, failover = lb.get("distribute") or [], lb.get("failover") or []
    if (failover or lb.get("failoverPriority")) and outlier is None:
        found.add("dr-failover-outlier-warn", f"{path}.failover" if failover else f"{path}.failoverPriority",
                  "failover only happens once outlierDetection ejects endpoints: add outlierDetection")
    if distribute and failover:
        found.add("dr-locality", path, "distribute and failover are exclusive: keep one")
        return
    topology = {"topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone"}
    if failover and any(p in topology for p in lb.get("failoverPriority") or []):
        found.add("dr-locality", f"{path}.failoverPriority", "failover and region/zone/subzone labels in "
                  "failoverPriority are exclusive")
        return
    for k, entry in enumerate(distribute):
        weights = (entry or {}).get("to") or {}
        if any(not 1 <= number(w) <= 100 for w in weights.values()):
            found.add("dr-locality", f"{path}.distribute[{k}].to", "locality weights are 1..100")
            return
        if sum(number(w) for w in weights.values()) != 100:
            found.add("dr-locality", f"{path}.distribute[{k}].to", "the locality weights must sum to 100")
            return
        problem = _locality_list_problem(list(weights))
        if problem:
            found.add("dr-locality", f"{path}.distribute[{k}].to", problem)
    problem = _locality_list_problem([str((e or {}).get("from", "")) for e in distribute])
    if problem:
        found.add("dr-locality", f"{path}.distribute", problem)
    for k, entry in enumerate(failover):
        source, target = str((entry or {}).get("from", "")), str((entry or {}).get("to", ""))
        if source == target:
            found.add("dr-locality", f"{path}.failover[{k}]", "failover from and to must be different regions")
        if "/" in source or "/" in target:
            found.add("dr-locality", f"{path}.failover[{k}]", "failover names regions only (no zone/)")
        if "*" in source or "*" in target:
            found.add("dr-locality", f"{path}.failover[{k}]", "failover regions take no '*'")


def _load_balancer_problems(found, path, lb, outlier=None):
    hashing = lb.get("consistentHash")
    if isinstance(hashing, dict):
        cookie = hashing.get("httpCookie")
        if isinstance(cookie, dict) and not cookie.get("name"):
            found.add("dr-load-balancer", f"{path}.consistentHash.httpCookie.name", "the cookie needs a name")
        seen = set()
        for k, attribute in enumerate((cookie or {}).get("attributes") or [] if isinstance(cookie, dict) else []):
            name = (attribute or {}).get("name") if isinstance(attribute, dict) else None
            where = f"{path}.consistentHash.httpCookie.attributes[{k}].name"
            if not name:
                found.add("dr-load-balancer", where, "a cookie attribute needs a name (e.g. SameSite)")
            elif name in seen:
                found.add("dr-load-balancer", where, f"cookie attribute {name!r} is given twice: list it once")
            seen.add(name)
        if number(hashing.get("minimumRingSize")):
            found.add("dr-ring-size-warn", f"{path}.consistentHash.minimumRingSize", "minimumRingSize is "
                      "deprecated: use ringHash: {minimumRingSize: ...}")
        if number(hashing.get("minimumRingSize")) and (hashing.get("ringHash") is not None
                                                       or hashing.get("maglev") is not None):
            found.add("dr-load-balancer", f"{path}.consistentHash.minimumRingSize", "minimumRingSize is the old form "
                      "of ringHash.minimumRingSize: keep ringHash/maglev only")
        maglev = hashing.get("maglev")
        if isinstance(maglev, dict):
            size = number(maglev.get("tableSize"))
            if size == 0:
                found.add("dr-load-balancer", f"{path}.consistentHash.maglev.tableSize", "maglev needs a tableSize "
                          "(a prime, e.g. 65537)")
            elif size >= 5000011 or not _is_prime(int(size)):
                found.add("dr-load-balancer", f"{path}.consistentHash.maglev.tableSize", f"{size}: the maglev table "
                          "size must be a prime below 5000011 (e.g. 65537)")
    if isinstance(lb.get("localityLbSetting"), dict):
        _locality_problems(found, f"{path}.localityLbSetting", lb["localityLbSetting"], outlier)
    if lb.get("warmupDurationSecs") is not None:
        duration_problems(found, lb.get("warmupDurationSecs"), f"{path}.warmupDurationSecs")
    warmup = lb.get("warmup")
    if isinstance(warmup, dict):
        if warmup.get("duration") is None:
            found.add("dr-load-balancer", f"{path}.warmup.duration", "a warmup needs a duration (e.g. 60s)")
        else:
            duration_problems(found, warmup.get("duration"), f"{path}.warmup.duration")
        if number(warmup.get("minimumPercent")) > 100:
            found.add("dr-load-balancer", f"{path}.warmup.minimumPercent", f"{warmup['minimumPercent']} is above 100")
        if warmup.get("aggression") is not None and number(warmup.get("aggression"), 1) < 1:
            found.add("dr-load-balancer", f"{path}.warmup.aggression", f"aggression {warmup['aggression']} is below "
                      "1 (1 is linear)")


def _policy_parts(found, path, policy):
    if isinstance(policy.get("outlierDetection"), dict):
        _outlier_problems(found, f"{path}.outlierDetection", policy["outlierDetection"])
    if policy.get("connectionPool") is not None:
        _pool_problems(found, f"{path}.connectionPool", policy.get("connectionPool"))
    if isinstance(policy.get("loadBalancer"), dict):
        _load_balancer_problems(found, f"{path}.loadBalancer", policy["loadBalancer"], policy.get("outlierDetection"))
    if isinstance(policy.get("tls"), dict):
        _client_tls_problems(found, f"{path}.tls", policy["tls"])


def _traffic_policy_problems(found, path, policy):
    if policy is None:
        return
    if not policy:
        found.add("dr-traffic-policy-empty", path, "an empty trafficPolicy: set a field (loadBalancer, "
                  "connectionPool, outlierDetection, tls, ...) or remove it")
        return
    if policy.get("tunnel") is not None and policy.get("proxyProtocol") is not None:
        found.add("dr-tunnel", f"{path}.tunnel", "tunnel and proxyProtocol are exclusive: keep one")
        return
    _policy_parts(found, path, policy)
    tunnel = policy.get("tunnel")
    if isinstance(tunnel, dict):
        if tunnel.get("protocol") not in (None, "", "CONNECT", "POST"):
            found.add("dr-tunnel", f"{path}.tunnel.protocol", f"{tunnel.get('protocol')!r}: use CONNECT or POST")
        target = tunnel.get("targetHost")
        if domain_problem(target, wildcard=False) and not is_ip(target):
            found.add("dr-tunnel", f"{path}.tunnel.targetHost", f"{target!r} is not a host name or IP address")
        problem = port_problem(tunnel.get("targetPort"))
        if problem:
            found.add("dr-tunnel", f"{path}.tunnel.targetPort", problem)
    for j, setting in enumerate(policy.get("portLevelSettings") or []):
        where = f"{path}.portLevelSettings[{j}]"
        if not isinstance(setting, dict):
            continue
        if setting.get("port") is None:
            found.add("dr-port-level", f"{where}.port", "a port-level setting needs a port (number)")
        if not any(setting.get(k) is not None for k in ("outlierDetection", "connectionPool", "loadBalancer", "tls")):
            found.add("dr-traffic-policy-empty", where, "a port-level setting needs loadBalancer, connectionPool, "
                      "outlierDetection or tls")
        else:
            _policy_parts(found, where, setting)


def destination_rule_problems(dr):
    found = Findings(object_name(dr))
    spec = dr.get("spec") or {}
    host = spec.get("host")
    problem = domain_problem(host)
    if problem:
        found.add("dr-host", "spec.host", f"{host!r} is not a host name: {problem}")
    _traffic_policy_problems(found, "spec.trafficPolicy", spec.get("trafficPolicy"))
    seen = {}
    for i, subset in enumerate(spec.get("subsets") or []):
        if not isinstance(subset, dict):
            continue
        name = subset.get("name")
        if name in seen:
            found.add("dr-subset-name", f"spec.subsets[{i}].name", f"subset {name!r} is already defined by "
                      f"spec.subsets[{seen[name]}]")
        seen.setdefault(name, i)
        if not name:
            found.add("dr-subset-name", f"spec.subsets[{i}].name", "a subset needs a name (e.g. v1)")
        elif not _is_label(name):
            found.add("dr-subset-name", f"spec.subsets[{i}].name", f"subset {name!r} is not a DNS label (letters, "
                      "digits, '-'; e.g. v1)")
        labels_problems(found, subset.get("labels"), f"spec.subsets[{i}].labels")
        _traffic_policy_problems(found, f"spec.subsets[{i}].trafficPolicy", subset.get("trafficPolicy"))
    namespace = (dr.get("metadata") or {}).get("namespace", "")
    exported = export_to_problems(found, namespace, spec.get("exportTo"))
    selector = spec.get("workloadSelector")
    if selector is not None and exported and (namespace not in exported or len(exported) > 1):
        found.add("dr-selector-export", "spec.exportTo", "a DestinationRule with a workloadSelector applies in its "
                  f"own namespace only: use exportTo ['.'] (namespace {namespace}) or leave exportTo out")
    if isinstance(selector, dict):
        selector_problems(found, selector.get("matchLabels"), "spec.workloadSelector.matchLabels")
    return found
