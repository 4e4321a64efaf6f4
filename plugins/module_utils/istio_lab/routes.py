# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The effective route table of a lab, computed from Gateways,
VirtualServices, DestinationRules, ServiceEntries and Services (plain dicts
as the API returns them): for each gateway, port and host, which
VirtualService admits it and which Service (or ServiceEntry host), port and
subset it reaches; the routes sidecars get (the `mesh` gateway); the routes
that leave the mesh through an egress gateway; plus the problems found.
Pure: istio_route_info and the verification role feed it what they read."""

from __future__ import annotations

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.destinations import (  # noqa: F401 (re-exported)  # pylint: disable=unused-import
    CLUSTER_SUFFIX,
    resolve_host,
    service_destinations,
    service_key,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate import (
    MESH_GATEWAY,
    Problem,
    admitting_servers,
    gateway_index,
    gateway_key,
    hosts_overlap,
    object_name,
    virtual_service_reference_problems,
    weight_problems,
)


def _key(obj):
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _sorted(objects):
    return sorted(objects, key=_key)


def _subsets(destination_rules):
    """FQDN host -> set of subset names."""
    subsets = {}
    for dr in destination_rules:
        spec = dr.get("spec") or {}
        host = resolve_host(spec.get("host", ""), dr["metadata"].get("namespace", ""))
        subsets.setdefault(host, set()).update(s.get("name") for s in spec.get("subsets") or [])
    return subsets


def service_entry_for(fqdn, service_entries):
    """The first ServiceEntry (sorted by namespace/name) one of whose hosts
    covers `fqdn`, or None."""
    for entry in service_entries:
        hosts = [resolve_host(h, _key(entry)[0]) for h in (entry.get("spec") or {}).get("hosts") or []]
        if any(hosts_overlap(h, fqdn) for h in hosts):
            return entry
    return None


def _entry_ports(entry):
    return [p.get("number") for p in (entry.get("spec") or {}).get("ports") or []]


def _destination(vs, path, destination, weight, services, subsets, problems, service_entries=()):
    vs_namespace = vs["metadata"].get("namespace", "")
    name = object_name(vs)
    host = destination.get("host", "")
    fqdn = resolve_host(host, vs_namespace)
    key = service_key(fqdn)
    service = services.get(key) if key else None
    port = (destination.get("port") or {}).get("number")
    ports = [p.get("port") for p in ((service or {}).get("spec") or {}).get("ports") or []]
    declared = service_entry_for(fqdn, service_entries) if service is None else None
    entry = {
        "host": host,
        "fqdn": fqdn,
        "service": f"{key[0]}/{key[1]}" if key else None,
        "port": port,
        "subset": destination.get("subset"),
        "weight": weight,
        "service_exists": service is not None,
        "port_exists": bool(service) and (port in ports if port is not None else len(ports) == 1),
    }
    if declared is not None:
        entry["service_entry"] = "/".join(_key(declared))
        # a host of the mesh's registry through a ServiceEntry (an external host)
        entry_ports = _entry_ports(declared)
        entry["port_exists"] = port in entry_ports if port is not None else len(entry_ports) == 1
        if port is not None and port not in entry_ports:
            problems.append(Problem(name, f"{path}.port.number", f"ServiceEntry {entry['service_entry']} declares "
                                    f"no port {port} for {fqdn} (it declares {entry_ports})"))
    elif key and service is None:
        problems.append(Problem(name, f"{path}.host", f"Service {key[0]}/{key[1]} ({fqdn}) does not exist"))
    elif key is None and fqdn.count(".") == 1:
        problems.append(Problem(name, f"{path}.host", f"{host!r} is not expanded by Istio (only names without dots "
                                f"are); write {host}{CLUSTER_SUFFIX}"))
    elif service is not None and port is None and len(ports) != 1:
        problems.append(Problem(name, f"{path}.port", f"Service {entry['service']} has ports {ports}: set "
                                "destination.port.number"))
    elif service is not None and port is not None and port not in ports:
        problems.append(Problem(name, f"{path}.port.number", f"Service {entry['service']} has no port {port} "
                                f"(it has {ports})"))
    subset = destination.get("subset")
    if subset and subset not in subsets.get(fqdn, set()):
        problems.append(Problem(name, f"{path}.subset", f"no DestinationRule defines subset {subset!r} for {fqdn}"))
    return entry


def _destinations(vs, services, subsets, problems, service_entries=()):
    found = []
    spec = vs.get("spec") or {}
    for kind in ("http", "tls", "tcp"):
        for i, route in enumerate(spec.get(kind) or []):
            destinations = route.get("route") or []
            for j, target in enumerate(destinations):
                weight = target.get("weight")
                if weight is None and len(destinations) == 1:
                    weight = 100
                entry = _destination(vs, f"spec.{kind}[{i}].route[{j}].destination", target.get("destination") or {},
                                     weight, services, subsets, problems, service_entries)
                found.append({"route": f"{kind}[{i}]", **entry})
    return found


def exported_namespaces(vs):
    """The namespaces whose proxies see a VirtualService (spec.exportTo), or
    None for all of them: an empty exportTo and `*` export everywhere (Istio's
    default), `.` is the VirtualService's own namespace."""
    export_to = (vs.get("spec") or {}).get("exportTo") or ["*"]
    if "*" in export_to:
        return None
    return {vs["metadata"].get("namespace", "") if entry == "." else entry for entry in export_to}


def workload_namespaces(gateway, services):
    """Namespaces of the Services that front a Gateway's workload (a Service
    whose selector holds every label of the Gateway's selector): where the
    gateway's Envoy runs, whose namespace exportTo is matched against. Empty
    when no such Service was read."""
    selector = (gateway.get("spec") or {}).get("selector") or {}
    if not selector:
        return set()
    return {
        _key(service)[0]
        for service in services
        if selector.items() <= (((service.get("spec") or {}).get("selector")) or {}).items()
    }


def _export_problem(vs, key, workloads, exported):
    shown = ", ".join(sorted(exported)) or "no namespace"
    return Problem(object_name(vs), "spec.exportTo", f"exported to {shown}, not to {', '.join(sorted(workloads))} "
                   f"where the workload of Gateway {key[0]}/{key[1]} runs: that gateway does not see this "
                   "VirtualService and answers 404 for its hosts")


def _binds_mesh(vs):
    gateways = (vs.get("spec") or {}).get("gateways")
    return not gateways or MESH_GATEWAY in gateways


def route_table(gateways, virtual_services, services=(), destination_rules=(), service_entries=()):
    """{"routes": [...], "mesh_routes": [...], "egress_routes": [...],
    "service_entries": [...], "problems": [...], "hosts": {gateway: [hosts]}}."""
    index = gateway_index(gateways)
    workloads = {key: workload_namespaces(gateway, services) for key, gateway in index.items()}
    service_index = {_key(s): s for s in services}
    subsets = _subsets(destination_rules)
    entries = _sorted(service_entries)
    problems = []
    routes = []
    mesh_routes = []
    claims = {}
    for vs in _sorted(virtual_services):
        vs_namespace, vs_name = _key(vs)
        spec = vs.get("spec") or {}
        problems += virtual_service_reference_problems(vs, index)
        problems += weight_problems(object_name(vs), spec)
        destinations = _destinations(vs, service_index, subsets, problems, entries)
        exported = exported_namespaces(vs)
        if _binds_mesh(vs):
            mesh_routes.append({
                "virtual_service": f"{vs_namespace}/{vs_name}",
                "hosts": sorted({resolve_host(h, vs_namespace) for h in spec.get("hosts") or []}),
                "exported_to": sorted(exported) if exported is not None else ["*"],
                "destinations": _mesh_destinations(vs, destinations),
            })
        for reference in spec.get("gateways") or []:
            key = gateway_key(reference, vs_namespace)
            if key is None or key not in index:
                continue
            if exported is not None and workloads[key] and not workloads[key] & exported:
                problems.append(_export_problem(vs, key, workloads[key], exported))
                continue
            for vs_host in spec.get("hosts") or []:
                for _server, port, effective in admitting_servers(vs_namespace, vs_host, index[key]):
                    claim = (key, port.get("number"), effective)
                    claims.setdefault(claim, []).append(f"{vs_namespace}/{vs_name}")
                    routes.append({
                        "gateway": f"{key[0]}/{key[1]}",
                        "selector": dict((index[key].get("spec") or {}).get("selector") or {}),
                        "port": port.get("number"),
                        "protocol": port.get("protocol"),
                        "host": effective,
                        "virtual_service": f"{vs_namespace}/{vs_name}",
                        "destinations": _gateway_destinations(vs, reference, destinations),
                    })

    def claim_order(item):
        return item[0][0], item[0][1] or 0, item[0][2]

    for (key, port, host), owners in sorted(claims.items(), key=claim_order):
        distinct = sorted(set(owners))
        if len(distinct) > 1:
            problems.append(Problem(f"Gateway {key[0]}/{key[1]}", "spec.servers", f"host {host!r} on port {port} is "
                                    f"claimed by several VirtualServices: {', '.join(distinct)} (Istio merges them "
                                    "in creation order; keep one)"))
    hosts = {}
    for route in routes:
        hosts.setdefault(route["gateway"], set()).add(route["host"])
    routes.sort(key=lambda r: (r["gateway"], r["port"] or 0, r["host"], r["virtual_service"]))
    egress = egress_routes(routes, mesh_routes, services, problems)
    return {
        "routes": routes,
        "mesh_routes": mesh_routes,
        "egress_routes": egress,
        "service_entries": [_entry_view(e) for e in entries],
        "problems": [p.as_dict() for p in problems],
        "hosts": {gateway: sorted(names) for gateway, names in sorted(hosts.items())},
    }


def _gateway_destinations(vs, reference, destinations):
    """The destinations of the routes a gateway uses: an http/tls/tcp route
    whose matches name gateways applies only to those (Istio's egress task
    sends the `mesh` match to the egress gateway and the egress gateway's
    match to the external host); a route without such matches applies to
    every gateway of the VirtualService."""
    spec = vs.get("spec") or {}
    vs_namespace = vs["metadata"].get("namespace", "")
    wanted = gateway_key(reference, vs_namespace)
    applies = set()
    for kind in ("http", "tls", "tcp"):
        for i, route in enumerate(spec.get(kind) or []):
            named = [g for match in route.get("match") or [] for g in match.get("gateways") or []]
            if not named or any(gateway_key(g, vs_namespace) == wanted for g in named):
                applies.add(f"{kind}[{i}]")
    return [d for d in destinations if d["route"] in applies]


def _mesh_destinations(vs, destinations):
    """The destinations of the routes sidecars use (see _gateway_destinations)."""
    spec = vs.get("spec") or {}
    applies = set()
    for kind in ("http", "tls", "tcp"):
        for i, route in enumerate(spec.get(kind) or []):
            named = [g for match in route.get("match") or [] for g in match.get("gateways") or []]
            if not named or MESH_GATEWAY in named:
                applies.add(f"{kind}[{i}]")
    return [d for d in destinations if d["route"] in applies]


def _entry_view(entry):
    spec = entry.get("spec") or {}
    namespace, name = _key(entry)
    return {
        "service_entry": f"{namespace}/{name}",
        "hosts": list(spec.get("hosts") or []),
        "ports": [{"number": p.get("number"), "name": p.get("name"), "protocol": p.get("protocol")}
                  for p in spec.get("ports") or []],
        "resolution": spec.get("resolution", "NONE"),
        "location": spec.get("location", "MESH_EXTERNAL"),
        "exported_to": list(spec.get("exportTo") or ["*"]),
    }


def egress_routes(routes, mesh_routes, services, problems):
    """Routes that leave the mesh through a gateway: a gateway route whose
    destinations are outside the cluster (a ServiceEntry host), with the
    `mesh` routes that send that host to the gateway's Service (the sidecar
    hop of Istio's Egress Gateways task). A destination outside the cluster
    that no ServiceEntry declares is a problem: the gateway has no cluster
    for it."""
    found = []
    for route in routes:
        external = [d for d in route["destinations"] if d["service"] is None and "." in d["fqdn"]]
        if not external:
            continue
        fronting = {f"{_key(svc)[0]}/{_key(svc)[1]}" for svc in services
                    if route["selector"] and route["selector"].items()
                    <= (((svc.get("spec") or {}).get("selector")) or {}).items()}
        hops = []
        for mesh in mesh_routes:
            if not any(hosts_overlap(h, route["host"]) for h in mesh["hosts"]):
                continue
            reachable = [d for d in mesh["destinations"] if d["service"] in fronting]
            if reachable:
                hops.append({"virtual_service": mesh["virtual_service"],
                             "via": sorted({d["service"] for d in reachable}),
                             "subsets": sorted({d["subset"] for d in reachable if d["subset"]})})
        for dest in external:
            if dest.get("service_entry") is None:
                problems.append(Problem(f"VirtualService {route['virtual_service']}", "spec.hosts",
                                        f"{dest['fqdn']} leaves the mesh through Gateway {route['gateway']} but no "
                                        "ServiceEntry declares it: the gateway has no cluster for it (apply the "
                                        "ServiceEntry)"))
        found.append({
            "gateway": route["gateway"],
            "selector": route["selector"],
            "port": route["port"],
            "host": route["host"],
            "virtual_service": route["virtual_service"],
            "service_entries": sorted({d["service_entry"] for d in external if d.get("service_entry")}),
            "gateway_services": sorted(fronting),
            "mesh_hops": hops,
            "destinations": external,
        })
    return found


def missing_service_messages(destinations, services):
    """A message for each destination whose Service, or Service port, does not
    exist. `services`: the live Services by (namespace, name)."""
    messages = []
    for dest in destinations:
        key = f"{dest['namespace']}/{dest['service']}"
        service = services.get((dest["namespace"], dest["service"]))
        ports = {p.get("port") for p in ((service or {}).get("spec") or {}).get("ports") or []}
        if service is None:
            messages.append(f"VirtualService {dest['virtual_service']} routes to Service {key}, which does not exist")
        elif dest["port"] is not None and dest["port"] not in ports:
            known = ", ".join(str(p) for p in sorted(ports)) or "none"
            messages.append(f"VirtualService {dest['virtual_service']} routes to port {dest['port']} of Service "
                            f"{key}, which has no such port (ports: {known})")
    return messages
