# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verification of a lab's routes (module lab_verify): what each probe
must answer (from the chapter catalogue and the route table), the judging of
lab_http_probe's answers, weighted routes' shares, the in-mesh plan, and the
explanation of each failure link by link (Gateway, VirtualService, Service,
endpoints); then the instructor's summary (table, /etc/hosts line).

Pure functions, plus `verify(client, options)` which reads what they need
(route_table's reads, the ingress Service, for a failure the EndpointSlices
and the Istio objects) and sends the probes (probe.probe_all): the whole
verification in one module process. The filters of plugins/filter/lab_verify.py
are these functions, for the role's report and the tests."""

from __future__ import annotations

import shlex

# The judging is pure and the filters import it on the controller: the client (urllib3, kubernetes) is imported
# only by verify(), in the module.
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.probe import answered, probe_all

ENVOY_SERVER = "istio-envoy"


class VerifyError(ValueError):
    """The verification cannot start (unknown chapters, no ingress address): the module fails with it."""


def _chapter_ids(ids):
    """Chapter ids as strings: `-e lab_routes_chapters=[1,3]` gives integers."""
    if isinstance(ids, (str, int)):
        ids = [ids]
    return [str(i) for i in ids]


def lab_unknown_chapters(catalogue, ids):
    """The ids of `ids` that the catalogue does not know, in order."""
    known = {str(k) for k in catalogue}
    return [i for i in _chapter_ids(ids) if i not in known]


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
        raise VerifyError(f"unknown chapter(s) {', '.join(unknown)}; known: {', '.join(map(str, catalogue))}")
    probes = []
    seen = set()
    for chapter in _chapter_ids(ids):
        for probe in catalogue[chapter].get("probes") or []:
            host = probe.get("host") or ""
            path = probe.get("path") or "/"
            if (host, path) in seen:
                continue
            seen.add((host, path))
            entry = {"chapter": chapter, "host": host, "path": path, "expected_status": int(probe.get("status", 200))}
            if probe.get("split"):
                entry["split"] = {"header": probe["split"]["header"], "weights": dict(probe["split"]["weights"])}
            probes.append(entry)
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


def lab_verify_ingress_routes(routes, ingress_labels):
    """The routes the ingress gateway serves: those whose Gateway selector
    holds only labels of the ingress gateway's pods (`ingress_labels`). An
    egress Gateway's routes (selector istio: egressgateway) are not reachable
    through the ingress IP, so they are neither probed nor used to explain."""
    labels = dict(ingress_labels or {})
    kept = []
    for route in routes or []:
        selector = route.get("selector")
        if selector is None or (selector and dict(selector).items() <= labels.items()):
            kept.append(route)
    return kept


def _share(count, total):
    return 100.0 * count / total if total else 0.0


def lab_verify_split_outcome(sample, split, tolerance):
    """Judge one sampled probe: `sample` is lab_http_probe's result (counts
    of the header's values), `split` the probe's {header, weights}. Every
    subset's share of the answers must be within `tolerance` percentage
    points of its weight, a subset of weight 0 must never answer and one of
    a positive weight at least once, and every answer must name a subset of
    the weights.
    Returns {ok, samples, expected, observed, tolerance, explanation, text}."""
    weights = {str(k): int(v) for k, v in dict(split.get("weights") or {}).items()}
    counts = {str(k): int(v) for k, v in dict((sample or {}).get("values") or {}).items()}
    total = int((sample or {}).get("samples") or 0)
    answered = sum(counts.values())
    tolerance = float(tolerance)
    observed = {name: round(_share(counts.get(name, 0), answered), 1) for name in weights}
    reasons = []
    if not answered:
        reasons.append(f"no answer carried the header {split.get('header')!r} ({total} request(s)): "
                       "the route sets it per destination; check the VirtualService's headers")
    else:
        unknown = {k: v for k, v in counts.items() if k not in weights}
        if unknown:
            shown = ", ".join(f"{k or '(none)'} {v}" for k, v in sorted(unknown.items()))
            reasons.append(f"answers from subsets the weights do not name: {shown}")
        for name, weight in weights.items():
            count = counts.get(name, 0)
            if weight == 0 and count:
                reasons.append(f"subset {name} has weight 0 but answered {count} of {answered}")
            elif weight > 0 and not count:
                reasons.append(f"subset {name} never answered in {answered} requests (weight {weight}%): its pods "
                               "are missing or not ready, or its labels match no pod")
            elif abs(observed[name] - weight) > tolerance:
                reasons.append(f"subset {name} answered {counts.get(name, 0)} of {answered} ({observed[name]:g}%), "
                               f"expected {weight}% \u00b1 {tolerance:g}")
    text = ", ".join(f"{name} {counts.get(name, 0)}/{answered} ({observed[name]:g}%, expected {weight}%)"
                     for name, weight in weights.items())
    if reasons:
        reasons.append("the VirtualService's weights differ from the lesson's step, a subset has no ready pod, or "
                       "Istio has not pushed the new weights yet")
    return {"ok": not reasons, "samples": total, "answered": answered, "expected": weights, "observed": observed,
            "counts": counts, "tolerance": tolerance, "text": text, "explanation": "; ".join(reasons)}


def lab_verify_add_splits(report, samples, tolerance):
    """The report with each split probe's outcome: `samples` is
    lab_http_probe's results (item = the probe; only probes with a `split`
    count). A probe whose split is off fails, its explanation saying which
    subset answered how often."""
    by_key = {}
    for result in samples or []:
        item = result.get("item") or {}
        if not item.get("split"):
            continue
        by_key[(item.get("host") or "", item.get("path") or "/")] = (result, item.get("split") or {})
    updated = []
    for entry in report:
        entry = dict(entry)
        key = (entry.get("host") or "", _path_of(entry.get("url", "")))
        if key in by_key:
            result, split = by_key[key]
            outcome = lab_verify_split_outcome(result, split, tolerance)
            entry["split"] = outcome
            if not outcome["ok"] and entry["ok"]:
                entry["ok"] = False
                entry["explanation"] = f"split off: {outcome['explanation']}"
        updated.append(entry)
    return updated


def _path_of(url):
    rest = url.split("://", 1)[-1]
    return "/" + rest.split("/", 1)[1] if "/" in rest else "/"


def lab_verify_mesh_plan(catalogue, ids, egress_routes=None, mesh_routes=None, timeout=10):
    """What to run for the chapters' in-mesh probes (`mesh_probes`): the
    client's request and the gateway access log that must show it, as the
    commands an instructor would type and as what kubernetes.core's k8s_exec
    and k8s_log take; plus what the route table says about the path (the
    sidecar hop to the gateway, the gateway's route out, the ServiceEntry).
    Each entry: chapter, host, url, client, via, exec_argv, exec_command
    (k8s_exec's command), kubectl (the commands), log_pattern,
    route_problems."""
    unknown = lab_unknown_chapters(catalogue, ids)
    if unknown:
        raise VerifyError(f"unknown chapter(s) {', '.join(unknown)}; known: {', '.join(map(str, catalogue))}")
    plan = []
    for chapter in _chapter_ids(ids):
        for probe in catalogue[chapter].get("mesh_probes") or []:
            url = probe["url"]
            host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
            client = dict(probe["client"])
            via = dict(probe.get("via") or {})
            argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", str(int(timeout)), url]
            command = " ".join(shlex.quote(a) for a in argv)
            exec_line = (f"kubectl exec -n {client['namespace']} deploy/{client['app']} -c "
                         f"{client.get('container', client['app'])} -- {command}")
            commands = [exec_line]
            if via:
                commands.append(f"kubectl logs -n {via['namespace']} -l {via['selector']} -c "
                                f"{via.get('container', 'istio-proxy')} --tail=100 | grep '{host}'")
            plan.append({
                "chapter": chapter,
                "host": host,
                "url": url,
                "client": client,
                "via": via,
                "exec_argv": argv,
                # k8s_exec's `command` (split the shell's way)
                "exec_command": command,
                "kubectl": commands,
                # Envoy's default access log names the upstream cluster: outbound|80||<host>
                "log_pattern": f"outbound|{_port_of(url)}||{host}",
                "route_problems": _egress_path_problems(host, via, egress_routes, mesh_routes),
            })
    return plan


def _port_of(url):
    scheme, _sep, rest = url.partition("://")
    authority = rest.split("/", 1)[0]
    if ":" in authority:
        return int(authority.rsplit(":", 1)[1])
    return 443 if scheme == "https" else 80


def _egress_path_problems(host, via, egress_routes, mesh_routes):
    """Why the route table would not send `host` out through the gateway
    `via` names: no egress route for it, no ServiceEntry, no sidecar hop."""
    if egress_routes is None:
        return []
    selector = dict(item.split("=", 1) for item in (via.get("selector") or "").split(",") if "=" in item)
    found = [r for r in egress_routes if _host_matches(r.get("host"), host)
             and dict(r.get("selector") or {}).items() <= selector.items()]
    if not found:
        return [f"no Gateway of the gateway pods {via.get('selector')} routes {host} out of the mesh (the egress "
                "Gateway, or the VirtualService bound to it, is missing)"]
    problems = []
    if not any(r.get("service_entries") for r in found):
        problems.append(f"no ServiceEntry declares {host}: the egress gateway has no cluster for it")
    if not any(r.get("mesh_hops") for r in found):
        bound = [m["virtual_service"] for m in mesh_routes or [] if host in m.get("hosts", [])]
        problems.append(f"no VirtualService bound to mesh sends {host} to the egress gateway's Service"
                        + (f" ({', '.join(bound)} sends it elsewhere)" if bound else "")
                        + ": sidecars would call it directly")
    return problems


def lab_verify_mesh_report(plan, execs=None, logs=None, run=True):
    """One report entry per in-mesh probe. `execs` / `logs`: lab_mesh_probe's
    results, by the plan entry's url (None, or run=False,
    when they could not run here: the entry then says so and lists the
    commands to run on a real cluster)."""
    execs = {r["item"]["url"]: r for r in execs or [] if r.get("item") and not r.get("skipped")}
    logs = {r["item"]["url"]: r for r in logs or [] if r.get("item") and not r.get("skipped")}
    report = []
    for entry in plan:
        row = {"chapter": entry["chapter"], "host": entry["host"], "url": entry["url"], "expected_status": 200,
               "status": None, "server": "", "mesh": True, "commands": entry["kubectl"], "skipped": False}
        reasons = list(entry["route_problems"])
        if not run:
            row.update(skipped=True, ok=not reasons,
                       explanation="; ".join(reasons) or "in-mesh request not run here (lab_verify_mesh_probes is "
                       "false): on a real cluster run " + " and ".join(entry["kubectl"]))
            report.append(row)
            continue
        done = execs.get(entry["url"]) or {}
        code = str(done.get("stdout") or (done.get("result") or {}).get("stdout") or "").strip()
        row["status"] = int(code) if code.isdigit() and int(code) >= 100 else None
        if done.get("failed") or row["status"] is None:
            reasons.append(f"the client pod's request failed: {(done.get('stderr') or done.get('msg') or '').strip()}"
                           .rstrip(": "))
        elif row["status"] >= 500:
            reasons.append(f"the request answered {row['status']}: the sidecar or the egress gateway could not "
                           "reach the host (the ServiceEntry, the egress Gateway or the VirtualService's egress "
                           "route is wrong, or the cluster cannot reach the Internet)")
        log = logs.get(entry["url"]) or {}
        lines = log.get("log_lines") or (log.get("log") or "").splitlines()
        answered = row["status"] is not None and not done.get("failed")
        if answered and entry["via"] and not any(entry["log_pattern"] in line for line in lines):
            reasons.append(f"the egress gateway's access log shows no {entry['log_pattern']}: the request did not "
                           "pass through it (sidecars called the host directly, or access logging is off: "
                           "meshConfig.accessLogFile)")
        row.update(ok=not reasons, server="egress" if not reasons else "", explanation="; ".join(reasons))
        report.append(row)
    return report


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
    if not chain or not serving or serving & {link[0] for link in chain}:
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
    and redirects are accepted, the application's redirect): the probes'
    own retry rule."""
    return answered(status, server, expected, ENVOY_SERVER, accept_redirects)


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
        if entry.get("mesh"):  # reached from inside the mesh, not through the ingress IP
            continue
        if host and host != unrouted_host and entry.get("expected_status") != 404 and host not in hosts:
            hosts.append(host)
    return f"{ip} {' '.join(hosts)}" if hosts else ""


def lab_verify_table(report):
    """The report as aligned text lines for the play's output."""
    header = ("", "chapter", "host", "url", "expected", "status", "server")
    rows = [
        (
            ("SKIP" if e.get("skipped") else "OK") if e["ok"] else "FAIL",
            e["chapter"] or "-",
            (e["host"] or "(ingress IP)") + (" (in mesh)" if e.get("mesh") else ""),
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
        if e.get("split"):
            lines.append(f"SPLIT {e['host']}: {e['split']['text']} of {e['split']['samples']} requests "
                         f"(tolerance {e['split']['tolerance']:g} points)")
    for e in report:
        if not e["ok"]:
            lines.append(f"FAIL {e['host'] or e['url']}: {e['explanation']}")
        elif e.get("skipped"):
            lines.append(f"SKIP {e['host'] or e['url']}: {e['explanation']}")
    return lines


# ---------------------------------------------------------------- the module's work


def ingress_address(client, namespace, service):
    """The external IP of the ingress gateway Service (status.loadBalancer), or VerifyError saying why not."""
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import ApiStatusError

    try:
        found = client.request("get", "GET", f"/api/v1/namespaces/{namespace}/services/{service}")
    except ApiStatusError as exc:
        if exc.status != 404:
            raise
        raise VerifyError(f"Service {namespace}/{service} does not exist: install Istio first "
                          "(playbooks/istio.yml).") from None
    for ingress in ((found.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if ingress.get("ip"):
            return ingress["ip"]
    raise VerifyError(f"Service {namespace}/{service} has no external IP yet: MetalLB has not assigned one (check "
                      "playbooks/metallb.yml and the address pool) or the Service is not of type LoadBalancer.")


def _read_for_explaining(client, report, routes, ip, gateway_port, api_version):
    """What the cluster holds behind the failed probes: the ready endpoints of their Services (EndpointSlices)
    and which Gateways and VirtualServices exist."""
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.resource import IstioResource, list_objects

    lookups = []
    for wanted in lab_verify_failed_destinations(report, routes, ip, gateway_port):
        slices = list_objects(client, "/apis/discovery.k8s.io/v1", "endpointslices", {wanted["namespace"]},
                              "EndpointSlice", label_selector=f"kubernetes.io/service-name={wanted['service']}")
        lookups.append({"item": wanted, "resources": list(slices.values())})
    existing = [{"item": kind, "resources": list(IstioResource(client, kind, api_version).list(None).values())}
                for kind in ("Gateway", "VirtualService")]
    return lab_verify_ready_endpoints(lookups), lab_verify_existing_objects(existing)


def verify(client, options, probe=probe_all):
    """The whole verification: read the route table, keep the ingress gateway's routes, find the address, plan
    and send the probes (weighted samples included), judge them, explain the failures from what the cluster
    holds behind them, add the in-mesh probes (judged here only when they cannot run: `mesh_run` false).
    `options`: the module's parameters. Returns the module's result (report, ingress_ip, mesh_plan, ...)."""
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import KubeError

    try:
        return _verify(client, options, probe)
    except VerifyError as exc:
        raise KubeError(str(exc)) from None


def _verify(client, options, probe):
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.resource import (
        DEFAULT_API_VERSION,
        read_route_table,
    )

    catalogue, ids = options["catalogue"], options["chapters"]
    unknown = lab_unknown_chapters(catalogue, ids)
    if unknown:
        raise VerifyError(f"chapters names chapter(s) {', '.join(unknown)}, which the catalogue does not define; "
                          f"known chapters: {', '.join(map(str, catalogue))}.")
    api_version = options.get("api_version") or DEFAULT_API_VERSION
    table = read_route_table(client, None, api_version)
    routes = lab_verify_ingress_routes(table["routes"], options["ingress_labels"])
    ip = options["ingress_ip"] or ingress_address(client, options["ingress_namespace"], options["ingress_service"])
    gateway_port = options["gateway_port"]
    probes = lab_verify_probes(catalogue, ids, routes, options["unrouted_host"], gateway_port)
    results = probe(f"http://{ip}:{options['http_port']}", probes, {
        "server": ENVOY_SERVER, "accept_redirects": options["accept_redirects"], "retries": options["retries"],
        "delay": options["delay"], "samples": options["split_samples"], "timeout": options["timeout"]})
    context = {"ip": ip, "port": options["http_port"], "catalogue": catalogue, "routes": routes,
               "problems": table["problems"], "gateway_port": gateway_port,
               "accept_redirects": options["accept_redirects"]}
    report = lab_verify_add_splits(lab_verify_report(results, context), results, options["split_tolerance"])
    if any(not entry["ok"] for entry in report):
        endpoints, existing = _read_for_explaining(client, report, routes, ip, gateway_port, api_version)
        report = lab_verify_add_splits(lab_verify_report(results, {**context, "endpoints": endpoints,
                                                                   "existing": existing}),
                                       results, options["split_tolerance"])
    plan = lab_verify_mesh_plan(catalogue, ids, table["egress_routes"], table["mesh_routes"], options["timeout"])
    if plan and not options["mesh_run"]:
        report = report + lab_verify_mesh_report(plan, run=False)
    return {"changed": False, "report": report, "ingress_ip": ip,
            "mesh_plan": plan if options["mesh_run"] else [],
            "failed_probes": sum(1 for entry in report if not entry["ok"])}
