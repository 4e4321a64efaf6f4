"""Filters of the lab_routes and lab_verify roles.

lab_routes turns the chapter catalogue (`lab_chapters`) into the
`definitions` lists of istio-lab's modules and checks that every route's
destination Service exists before anything is written. lab_verify decides
what each probe should answer, explains a failed probe from the route table
(`istio_route_info`) and the cluster, and renders the instructor's summary
(table, /etc/hosts line).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

ENVOY_SERVER = "istio-envoy"
ROUTE_KINDS = ("gateways", "virtual_services", "destination_rules")


def _chapter_ids(ids):
    """Chapter ids as strings: `-e lab_routes_chapters=[1,3]` gives integers."""
    if isinstance(ids, (str, int)):
        ids = [ids]
    return [str(i) for i in ids]


def lab_unknown_chapters(catalogue, ids):
    """The ids of `ids` that the catalogue does not know, in order."""
    known = {str(k) for k in catalogue}
    return [i for i in _chapter_ids(ids) if i not in known]


def lab_chapter_objects(catalogue, ids, kind, managed_labels, chapter_label, state="present"):
    """Definitions of one kind for the given chapters, ready for the modules'
    `definitions` option: each object keeps its own labels and gains the
    managed labels and `<chapter_label>: <chapter id>`."""
    if kind not in ROUTE_KINDS:
        raise AnsibleFilterError(f"lab_chapter_objects: kind must be one of {', '.join(ROUTE_KINDS)}, not {kind!r}")
    unknown = lab_unknown_chapters(catalogue, ids)
    if unknown:
        raise AnsibleFilterError(f"unknown chapter(s) {', '.join(unknown)}; known: {', '.join(map(str, catalogue))}")
    definitions = []
    for chapter in _chapter_ids(ids):
        for obj in catalogue[chapter].get(kind) or []:
            labels = {**dict(managed_labels), **dict(obj.get("labels") or {}), chapter_label: chapter}
            definition = {"name": obj["name"], "namespace": obj["namespace"], "labels": labels, "state": state}
            if state == "present":
                definition["spec"] = obj["spec"]
                if obj.get("annotations"):
                    definition["annotations"] = dict(obj["annotations"])
            definitions.append(definition)
    return definitions


def _service_of(host, namespace, cluster_domain):
    """(namespace, name) of the Kubernetes Service a destination host names,
    or None for a host outside the cluster (a ServiceEntry, an external name).
    Istio reads a host without dots relative to the route's namespace and
    any other as written: the same rule as istio_route_info's resolve_host
    and service_key (module_utils, which a filter cannot import)."""
    if "." not in host:
        return namespace, host
    suffix = f".svc.{cluster_domain}"
    if host.endswith(suffix):
        parts = host[: -len(suffix)].split(".")
        if len(parts) == 2:
            return parts[1], parts[0]
    return None


def lab_route_destinations(virtual_services, cluster_domain="cluster.local"):
    """Every in-cluster destination of the VirtualServices' HTTP, TLS and TCP
    routes: [{virtual_service, namespace, service, port}] (port may be None)."""
    destinations = []
    for vs in virtual_services:
        namespace = vs["namespace"]
        spec = vs.get("spec") or {}
        for protocol in ("http", "tls", "tcp"):
            for rule in spec.get(protocol) or []:
                for route in rule.get("route") or []:
                    dest = route.get("destination") or {}
                    service = _service_of(dest.get("host", ""), namespace, cluster_domain)
                    if service is None:
                        continue
                    port = (dest.get("port") or {}).get("number")
                    entry = {
                        "virtual_service": f"{namespace}/{vs['name']}",
                        "namespace": service[0],
                        "service": service[1],
                        "port": port,
                    }
                    if entry not in destinations:
                        destinations.append(entry)
    return destinations


def lab_missing_destinations(destinations, services):
    """Messages for destinations whose Service, or Service port, is missing.
    `services`: Service objects as k8s_info returns them."""
    ports = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        ports[key] = {p.get("port") for p in (svc.get("spec") or {}).get("ports") or []}
    messages = []
    for dest in destinations:
        key = f"{dest['namespace']}/{dest['service']}"
        if key not in ports:
            messages.append(f"VirtualService {dest['virtual_service']} routes to Service {key}, which does not exist")
        elif dest["port"] is not None and dest["port"] not in ports[key]:
            known = ", ".join(str(p) for p in sorted(ports[key])) or "none"
            messages.append(
                f"VirtualService {dest['virtual_service']} routes to port {dest['port']} of Service {key}, "
                f"which has no such port (ports: {known})"
            )
    return messages


def _host_matches(pattern, host):
    """Istio host matching: '*' matches anything, '*.x' any name under x."""
    pattern = (pattern or "").lower()
    host = (host or "").lower()
    if "/" in pattern:  # a Gateway's namespace/host form
        pattern = pattern.split("/", 1)[1]
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host


def _routes_for(host, routes, gateway_port):
    """Route table entries on the probed gateway port that bind `host`."""
    return [r for r in routes if _port_matches(r, gateway_port) and _host_matches(r.get("host"), host)]


def _specificity(pattern):
    """How specific a route host is: Envoy picks the most specific virtual
    host (exact name, then the longest wildcard suffix, then '*')."""
    pattern = (pattern or "").split("/", 1)[-1]
    if pattern == "*":
        return 0
    if pattern.startswith("*."):
        return len(pattern)
    return 1_000_000


def _serving_routes(host, routes, gateway_port):
    """The routes Envoy uses for `host`: those of the most specific host."""
    matching = _routes_for(host, routes, gateway_port)
    if not matching:
        return []
    best = max(_specificity(r.get("host")) for r in matching)
    return [r for r in matching if _specificity(r.get("host")) == best]


def _port_matches(route, gateway_port):
    return gateway_port is None or str(route.get("port")) == str(gateway_port)


def lab_verify_probes(catalogue, ids, routes, unrouted_host, gateway_port=80):
    """What to probe and what each probe must answer.

    - every probe of the selected chapters, with the catalogue's status;
    - every host the route table binds on the gateway port (wildcards
      excepted), expecting 200;
    - `unrouted_host`, a name no chapter uses: 404, unless a VirtualService
      for '*' (or a matching wildcard) catches it, then 200.
    """
    unknown = lab_unknown_chapters(catalogue, ids)
    if unknown:
        raise AnsibleFilterError(f"unknown chapter(s) {', '.join(unknown)}; known: {', '.join(map(str, catalogue))}")
    probes = []
    seen = set()
    for chapter in _chapter_ids(ids):
        for probe in catalogue[chapter].get("probes") or []:
            host = probe.get("host") or ""
            path = probe.get("path") or "/"
            if (host, path) in seen:
                continue
            seen.add((host, path))
            probes.append(
                {"chapter": chapter, "host": host, "path": path, "expected_status": int(probe.get("status", 200))}
            )
    for route in routes:
        host = route.get("host") or ""
        if not _port_matches(route, gateway_port) or "*" in host or (host, "/") in seen:
            continue
        seen.add((host, "/"))
        probes.append({"chapter": _chapter_of(catalogue, route), "host": host, "path": "/", "expected_status": 200})
    if unrouted_host and (unrouted_host, "/") not in seen:
        caught = _routes_for(unrouted_host, routes, gateway_port)
        probes.append({"chapter": "", "host": unrouted_host, "path": "/", "expected_status": 200 if caught else 404})
    return probes


def _chapter_of(catalogue, route):
    """The chapter whose catalogue declares the route's VirtualService."""
    for chapter, data in catalogue.items():
        for vs in data.get("virtual_services") or []:
            if f"{vs['namespace']}/{vs['name']}" == _vs_key(route):
                return str(chapter)
    return ""


def _vs_key(route):
    return route.get("virtual_service") or ""


def lab_verify_failed_destinations(report, routes, ip, gateway_port=80):
    """Services behind the failed probes whose endpoints are worth reading:
    [{namespace, service}] of destinations that exist with their port."""
    wanted = []
    for entry in report:
        if entry.get("ok"):
            continue
        for route in _serving_routes(entry.get("host") or str(ip), routes, gateway_port):
            for dest in route.get("destinations") or []:
                if dest.get("service_exists") is False or dest.get("port_exists") is False:
                    continue
                key = _dest_service(dest)
                if key and key not in wanted:
                    wanted.append(key)
    return wanted


def _dest_service(dest):
    """{namespace, service} of a route table destination ('service' is
    'ns/name', or null for a host outside the cluster)."""
    service = dest.get("service")
    if not service:  # a host outside the cluster
        return None
    namespace, name = service.split("/", 1)
    return {"namespace": namespace, "service": name}


def lab_verify_ready_endpoints(lookups):
    """{"ns/name": ready endpoint count} from k8s_info results (EndpointSlices)
    registered in a loop over [{namespace, service}]."""
    counts = {}
    for lookup in lookups or []:
        item = lookup.get("item") or {}
        key = f"{item.get('namespace')}/{item.get('service')}"
        if lookup.get("skipped") or lookup.get("failed"):
            continue
        ready = 0
        for obj in lookup.get("resources") or []:
            # an endpoint whose readiness is unknown counts as ready (EndpointSlice API)
            ready += sum(
                1 for ep in obj.get("endpoints") or [] if (ep.get("conditions") or {}).get("ready") is not False
            )
        counts[key] = counts.get(key, 0) + ready
    return counts


def _problem_object(problem):
    """'ns/name' of the object a route table problem names ('Kind ns/name')."""
    return str(problem.get("object") or "").split(" ", 1)[-1]


def _problems_for(problems, names):
    """Route table problems about any of the objects `names` ('ns/name')."""
    return [p for p in problems or [] if _problem_object(p) in names]


def _declared_chain(catalogue, chapter, host):
    """VirtualServices of the chapter that bind `host` (or '*'), as
    ('ns/name', [gateway 'ns/name', ...])."""
    chain = []
    data = catalogue.get(chapter) or catalogue.get(str(chapter)) or {}
    for vs in data.get("virtual_services") or []:
        hosts = (vs.get("spec") or {}).get("hosts") or []
        if not any(_host_matches(h, host) for h in hosts):
            continue
        gateways = []
        for gw in (vs.get("spec") or {}).get("gateways") or []:
            gateways.append(gw if "/" in gw else f"{vs['namespace']}/{gw}")
        chain.append((f"{vs['namespace']}/{vs['name']}", gateways))
    return chain


def _explain_missing_route(probe, ctx):
    """Why no route binds the probe's host: the chapter's intended chain
    Gateway -> VirtualService, checked link by link."""
    host = probe["probe_host"]
    label = probe["host"] or f"the bare ingress IP {host}"
    chain = _declared_chain(ctx["catalogue"], probe["chapter"], host) if probe["chapter"] else []
    existing = ctx["existing"]
    reasons = []
    for vs, gateways in chain:
        names = {vs, *gateways}
        problems = _problems_for(ctx["problems"], names)
        if problems:
            reasons.extend(f"{p['kind']} {_problem_object(p)}: {p['message']}" for p in problems)
            continue
        if existing is not None and vs not in existing.get("virtual_services", ()):
            reasons.append(f"VirtualService {vs} does not exist (apply the chapter: playbooks/routes.yml)")
            continue
        for gw in gateways:
            if existing is not None and gw not in existing.get("gateways", ()):
                reasons.append(f"VirtualService {vs} is bound to Gateway {gw}, which does not exist")
            else:
                reasons.append(
                    f"Gateway {gw} does not admit host {label} on port {ctx['gateway_port']} "
                    f"(its servers' hosts must match the VirtualService {vs})"
                )
    if reasons:
        return "; ".join(reasons)
    return (
        f"no VirtualService binds {label} on a Gateway of the ingress gateway (port {ctx['gateway_port']}): "
        "Envoy has no route for this host"
    )


def _explain_upstream(probe, status, ctx):
    """Why Envoy routed the host but the Service behind it did not answer."""
    reasons = []
    for route in _serving_routes(probe["probe_host"], ctx["routes"], ctx["gateway_port"]):
        for dest in route.get("destinations") or []:
            svc = _dest_service(dest)
            name = f"{svc['namespace']}/{svc['service']}" if svc else dest.get("host", "?")
            port = dest.get("port")
            if dest.get("service_exists") is False:
                reasons.append(f"VirtualService {_vs_key(route)} routes to Service {name}, which does not exist")
            elif dest.get("port_exists") is False:
                reasons.append(f"Service {name} has no port {port} (VirtualService {_vs_key(route)})")
            elif svc and ctx["endpoints"].get(name) == 0:
                reasons.append(
                    f"Service {name} has no ready endpoints: its pods are missing or not ready, "
                    "or its selector matches no pod"
                )
            elif svc and name in ctx["endpoints"]:
                reasons.append(
                    f"Service {name} has {ctx['endpoints'][name]} ready endpoint(s) yet Envoy answered {status}: "
                    "the application or its sidecar failed (read the pod's logs)"
                )
    if reasons:
        return "; ".join(reasons)
    return f"Envoy answered {status}: the route exists but its destination failed"


def _foreign_answer(probe, ctx):
    """The VirtualServices that answered instead of the chapter's own, when
    the chapter declares one for this host but only another one's wildcard
    host binds it (Envoy then serves the wildcard's app: a false 200)."""
    chain = _declared_chain(ctx["catalogue"], probe["chapter"], probe["probe_host"]) if probe["chapter"] else []
    serving = {_vs_key(r) for r in _serving_routes(probe["probe_host"], ctx["routes"], ctx["gateway_port"])}
    if not chain or not serving or serving & {vs for vs, _ in chain}:
        return []
    return sorted(serving)


def _explain(probe, outcome, ctx):
    status, server = outcome["status"], outcome["server"]
    expected = probe["expected_status"]
    target = f"{ctx['ip']}:{ctx['port']}"
    serving = _serving_routes(probe["probe_host"], ctx["routes"], ctx["gateway_port"])
    if status is None:
        msg = outcome.get("msg") or "no answer"
        return (
            f"nothing answered at {target} ({msg}): the ingress gateway is not running, "
            "MetalLB does not announce its IP, or a firewall drops the traffic"
        )
    if server != ENVOY_SERVER:
        return (
            f"{target} answered {status} with server '{server or 'none'}', not Envoy: "
            "something other than the Istio ingress gateway holds this address"
        )
    foreign = _foreign_answer(probe, ctx)
    if foreign:
        return (
            f"Envoy answered {status} through VirtualService {', '.join(foreign)} (a wildcard host), "
            f"not the chapter's own: {_explain_missing_route(probe, ctx)}"
        )
    if expected == 404:
        if serving:
            bound = ", ".join(sorted({_vs_key(r) for r in serving}))
            return f"expected no route, but VirtualService {bound} binds this host"
        return f"expected 404 from Envoy for a host no VirtualService binds, got {status}"
    if status == 404:
        if serving:
            return (
                "a route binds this host but Envoy answered 404: "
                "the path does not match, or Istio has not pushed the route yet"
            )
        return _explain_missing_route(probe, ctx)
    if status >= 500:
        return _explain_upstream(probe, status, ctx)
    return f"expected {expected}, got {status} from Envoy (the application's own answer)"


def lab_verify_report(results, context):
    """The verification report: one entry per probe.

    `results`: the uri task's results registered in a loop over the probes
    (`item` is the probe). `context`: ip, port (what the probes dialled),
    catalogue (lab_chapters), routes and problems (istio_route_info),
    gateway_port, accept_redirects, and, once read for the failed probes,
    endpoints (lab_verify_ready_endpoints) and existing
    (lab_verify_existing_objects).
    """
    ctx = {
        "ip": context["ip"],
        "port": context["port"],
        "catalogue": context.get("catalogue") or {},
        "routes": list(context.get("routes") or []),
        "problems": list(context.get("problems") or []),
        "endpoints": dict(context.get("endpoints") or {}),
        "existing": context.get("existing"),
        "gateway_port": context.get("gateway_port", 80),
    }
    accept_redirects = context.get("accept_redirects", True)
    report = []
    for result in results:
        probe = dict(result["item"])
        probe["probe_host"] = probe["host"] or str(ctx["ip"])
        status = result.get("status")
        status = int(status) if status not in (None, "") and int(status) >= 100 else None
        server = result.get("server") or ""
        outcome = {"status": status, "server": server, "msg": _request_error(result.get("msg") or "")}
        expected = probe["expected_status"]
        ok = _answered_as_expected(status, server, expected, accept_redirects) and not _foreign_answer(probe, ctx)
        report.append(
            {
                "chapter": probe["chapter"],
                "host": probe["host"],
                "url": _url(ctx["ip"], ctx["port"], probe["path"]),
                "expected_status": expected,
                "status": status,
                "server": server,
                "ok": ok,
                "explanation": "" if ok else _explain(probe, outcome, ctx),
            }
        )
    return report


def _answered_as_expected(status, server, expected, accept_redirects=True):
    """Envoy answered, with the expected status (or, where 200 is expected
    and redirects are accepted, the application's redirect)."""
    redirected = accept_redirects and expected == 200 and status is not None and 300 <= status < 400
    return server == ENVOY_SERVER and (status == expected or redirected)


def lab_verify_answered(result, probe, accept_redirects=True):
    """Whether one uri result answers the probe as expected (the probe
    task's retry condition; the report applies the same rule)."""
    status = result.get("status")
    return _answered_as_expected(
        int(status) if status not in (None, "") else None,
        result.get("server") or "",
        probe["expected_status"],
        accept_redirects,
    )


def _request_error(msg):
    """The reason of a failed request, without the uri module's long preamble
    (which lists every accepted status code)."""
    marker = "Request failed:"
    return msg.split(marker, 1)[1].strip() if marker in msg else msg


def lab_verify_existing_objects(lookups):
    """{gateways: [ns/name], virtual_services: [ns/name]} from k8s_info results
    registered in a loop over [Gateway, VirtualService]; None when not read."""
    keys = {"Gateway": "gateways", "VirtualService": "virtual_services"}
    existing = {}
    for lookup in lookups or []:
        if lookup.get("skipped") or lookup.get("failed") or lookup.get("item") not in keys:
            continue
        existing[keys[lookup["item"]]] = [
            f"{o['metadata'].get('namespace')}/{o['metadata']['name']}" for o in lookup.get("resources") or []
        ]
    return existing or None


def _url(ip, port, path):
    return f"http://{ip}{'' if int(port) == 80 else f':{port}'}{path}"


def lab_verify_hosts_line(report, ip, unrouted_host=""):
    """The /etc/hosts line students add: `<ip> host1 host2 ...` for every
    routed host name (the bare IP and the unrouted probe host left out)."""
    hosts = []
    for entry in report:
        host = entry.get("host") or ""
        if host and host != unrouted_host and entry.get("expected_status") != 404 and host not in hosts:
            hosts.append(host)
    return f"{ip} {' '.join(hosts)}" if hosts else ""


def lab_verify_table(report):
    """The report as aligned text lines for the play's output."""
    header = ("", "chapter", "host", "url", "expected", "status", "server")
    rows = [
        (
            "OK" if e["ok"] else "FAIL",
            e["chapter"] or "-",
            e["host"] or "(ingress IP)",
            e["url"],
            str(e["expected_status"]),
            "-" if e["status"] is None else str(e["status"]),
            e["server"] or "-",
        )
        for e in report
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [header, *rows]]
    for e in report:
        if not e["ok"]:
            lines.append(f"FAIL {e['host'] or e['url']}: {e['explanation']}")
    return lines


class FilterModule:
    def filters(self):
        return {
            "lab_unknown_chapters": lab_unknown_chapters,
            "lab_chapter_objects": lab_chapter_objects,
            "lab_route_destinations": lab_route_destinations,
            "lab_missing_destinations": lab_missing_destinations,
            "lab_verify_probes": lab_verify_probes,
            "lab_verify_failed_destinations": lab_verify_failed_destinations,
            "lab_verify_ready_endpoints": lab_verify_ready_endpoints,
            "lab_verify_answered": lab_verify_answered,
            "lab_verify_report": lab_verify_report,
            "lab_verify_existing_objects": lab_verify_existing_objects,
            "lab_verify_hosts_line": lab_verify_hosts_line,
            "lab_verify_table": lab_verify_table,
        }
