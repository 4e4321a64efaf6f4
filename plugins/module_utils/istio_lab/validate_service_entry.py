# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Istio's single-object rules for ServiceEntries (what istiod's validating
webhook refuses), written for istio-lab from Istio 1.30's rules: hosts,
addresses, ports, resolution and endpoints, workloadSelector, exportTo.

Left to istiod: the specifics of resolution DYNAMIC_DNS (accepted here as
it is), and everything that needs other objects (a host another registry
already serves, address conflicts)."""

from __future__ import annotations

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate_common import (
    ISTIO_LABEL,
    PROTOCOLS,
    UNIX_PREFIX,
    Findings,
    domain_problem,
    export_to_problems,
    is_ip,
    is_ip_or_cidr,
    labels_problems,
    number,
    object_name,
    partial_wildcard,
    port_problem,
    selector_problems,
)

DNS_RESOLUTIONS = ("DNS", "DNS_ROUND_ROBIN")


def _port_name_problem(name):
    if not isinstance(name, str) or len(name) > 63 or not ISTIO_LABEL.match(name):
        return f"port name {name!r} is not a DNS label (letters, digits, '-'; e.g. http, tcp-db)"
    return None


def _endpoint_ports(found, path, endpoint, port_names):
    for name, value in (endpoint.get("ports") or {}).items():
        where = f"{path}.ports[{name}]"
        if name not in port_names:
            found.add("se-endpoint-port", where, f"{name!r} is not a port of the ServiceEntry: use one of "
                      f"{', '.join(sorted(map(str, port_names))) or '(none: add spec.ports)'}")
        problem = _port_name_problem(name)
        if problem:
            found.add("se-endpoint-port", where, problem)
        problem = port_problem(value)
        if problem:
            found.add("se-endpoint-port", where, problem)


def _static_endpoint(found, path, endpoint, port_names):
    address = endpoint.get("address") or ""
    if not address and not endpoint.get("network"):
        found.add("se-static-endpoint", f"{path}.address", "an endpoint needs an address (an IP, or unix:///path)")
        return  # istiod stops here too
    if address.startswith(UNIX_PREFIX):
        socket = address[len(UNIX_PREFIX):]
        if not socket or not (socket.startswith("@") or (socket.startswith("/") and not socket.endswith("/"))):
            found.add("se-static-endpoint", f"{path}.address", f"{address!r}: a unix socket needs an absolute file "
                      "path or an abstract name (@name)")
        if endpoint.get("ports"):
            found.add("se-static-endpoint", f"{path}.ports", "a unix socket endpoint takes no ports")
        if len(port_names) != 1:
            found.add("se-static-endpoint", f"{path}.address", "a unix socket endpoint needs exactly one port in "
                      "spec.ports")
    elif address and not is_ip(address):
        found.add("se-static-endpoint", f"{path}.address", f"{address!r} is not an IP address: resolution STATIC "
                  "takes IPs (use resolution DNS for host names)")
    _endpoint_ports(found, path, endpoint, port_names)
    labels_problems(found, endpoint.get("labels"), f"{path}.labels")


def _dns_endpoint(found, path, endpoint, port_names):
    address = endpoint.get("address") or ""
    if not is_ip(address) and domain_problem(address, wildcard=False):
        found.add("se-dns-endpoint", f"{path}.address", f"{address!r} is not an IP address or a fully qualified "
                  "host name")
    labels_problems(found, endpoint.get("labels"), f"{path}.labels")
    _endpoint_ports(found, path, endpoint, port_names)


def service_entry_problems(se):
    found = Findings(object_name(se))
    spec = se.get("spec") or {}
    selector = spec.get("workloadSelector")
    endpoints = spec.get("endpoints") or []
    hosts = spec.get("hosts") or []
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    resolution = str(spec.get("resolution") or "NONE").upper()
    if isinstance(selector, dict):
        selector_problems(found, selector.get("labels"), "spec.workloadSelector.labels")
    if selector is not None and endpoints:
        found.add("se-selector-endpoints", "spec.workloadSelector", "workloadSelector and endpoints are exclusive: "
                  "select pods (workloadSelector) or list endpoints, not both")

    if not hosts:
        found.add("se-hosts", "spec.hosts", "a ServiceEntry needs at least one host (e.g. api.example.com)")
    for i, host in enumerate(hosts):
        if host == "*":
            found.add("se-hosts", f"spec.hosts[{i}]", "host '*' is not allowed: name the hosts (a wildcard like "
                      "*.example.com is fine)")
            continue
        problem = domain_problem(host)
        if problem:
            found.add("se-hosts", f"spec.hosts[{i}]", f"{host!r} is not a host name: {problem}")
        elif resolution != "DYNAMIC_DNS" and partial_wildcard(host):
            found.add("se-partial-wildcard-warn", f"spec.hosts[{i}]", f"partial wildcard {host!r}: use "
                      "'*.example.com' (only resolution DYNAMIC_DNS matches partial wildcards)")

    cidr = False
    for i, address in enumerate(spec.get("addresses") or []):
        cidr = cidr or "/" in str(address)
        if not is_ip_or_cidr(address):
            found.add("se-address", f"spec.addresses[{i}]", f"{address!r} is not an IP address or CIDR block "
                      "(240.240.0.1, 10.0.0.0/24)")
    if cidr and resolution not in ("NONE", "STATIC"):
        found.add("se-address-cidr", "spec.addresses", f"CIDR addresses need resolution NONE or STATIC, not "
                  f"{resolution}: give single IPs, or change the resolution")

    names, numbers = {}, {}
    for i, port in enumerate(ports):
        path = f"spec.ports[{i}]"
        name, port_number = port.get("name"), port.get("number")
        if name in names:
            found.add("se-port-unique", f"{path}.name", f"port name {name!r} is already used by {names[name]}")
        names.setdefault(name, path)
        if port_number in numbers:
            found.add("se-port-unique", f"{path}.number", f"port {port_number} is already defined by "
                      f"{numbers[port_number]}")
        numbers.setdefault(port_number, path)
        if number(port.get("targetPort")) != 0:
            problem = port_problem(port.get("targetPort"))
            if problem:
                found.add("se-port", f"{path}.targetPort", problem)
        problem = _port_name_problem(name)
        if problem:
            found.add("se-port", f"{path}.name", problem)
        protocol = port.get("protocol") or ""
        if protocol and str(protocol).upper() not in PROTOCOLS:
            found.add("se-port", f"{path}.protocol", f"unsupported protocol {protocol!r}: use HTTP, HTTPS, HTTP2, "
                      "GRPC, TLS, TCP, ... or leave it out")
        problem = port_problem(port_number)
        if problem:
            found.add("se-port", f"{path}.number", problem)

    port_names = {p.get("name") for p in ports}
    if resolution == "NONE":
        if selector is not None:
            found.add("se-selector-none-warn", "spec.workloadSelector", "resolution NONE forwards to the address "
                      "the client asked for: the workloadSelector has no effect; use resolution STATIC")
        if endpoints:
            found.add("se-none-endpoints", "spec.endpoints", "resolution NONE forwards to the address the client "
                      "asked for and takes no endpoints: use resolution STATIC or DNS")
    elif resolution == "STATIC":
        for i, endpoint in enumerate(endpoints):
            if isinstance(endpoint, dict):
                _static_endpoint(found, f"spec.endpoints[{i}]", endpoint, port_names)
    elif resolution in DNS_RESOLUTIONS:
        if not endpoints:
            for i, host in enumerate(hosts):
                if host != "*" and isinstance(host, str) and domain_problem(host, wildcard=False):
                    found.add("se-dns-hosts", f"spec.hosts[{i}]", f"resolution {resolution} without endpoints "
                              f"resolves the hosts themselves: {host!r} is no fully qualified name (a wildcard "
                              "cannot be resolved); list endpoints, or use resolution NONE (or DYNAMIC_DNS)")
        if resolution == "DNS_ROUND_ROBIN" and len(endpoints) > 1:
            found.add("se-dns-round-robin", "spec.endpoints", "DNS_ROUND_ROBIN takes at most one endpoint: use "
                      "resolution DNS for several")
        for i, endpoint in enumerate(endpoints):
            if isinstance(endpoint, dict):
                _dns_endpoint(found, f"spec.endpoints[{i}]", endpoint, port_names)

    if resolution != "NONE" and len(hosts) > 1:
        for i, port in enumerate(ports):
            if PROTOCOLS.get(str(port.get("protocol") or "").upper()) not in ("http", "tls"):
                found.add("se-multi-host-tcp", f"spec.ports[{i}].protocol", "several hosts share this port, but only "
                          "HTTP (Host header) and TLS (SNI) tell them apart: use one host per ServiceEntry, or "
                          "resolution NONE")
                break
    if spec.get("addresses") and len(hosts) > 1:
        for i, port in enumerate(ports):
            if PROTOCOLS.get(str(port.get("protocol") or "").upper()) in ("tcp", "tls", "mongo", "redis", "mysql"):
                found.add("se-multi-host-address-warn", f"spec.ports[{i}].protocol", "addresses with a TCP port "
                          "and several hosts: the addresses cannot tell the hosts apart; use one host per "
                          "ServiceEntry")
                break
    export_to_problems(found, (se.get("metadata") or {}).get("namespace", ""), spec.get("exportTo"),
                       service_entry=True)
    return found
