# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The check of a student's exercise (module lab_exercise_check): the objects
the student wrote, found by what they do (any Gateway, VirtualService,
DestinationRule or ServiceEntry of the lab that serves the chapter's hosts,
whatever its name, namespace or labels), the chapter's probes sent as the
student's curl would (verify.py's machinery), and, when the exercise is not
done, the first broken link explained in the student's words, naming their
object and field, with a hint for the common mistakes.

The links, in the order a request follows them:
- ingress (chapters 1-3, 5): a VirtualService whose `hosts` cover the probe's
  host -> its `gateways` entry -> that Gateway (selector on the ingress
  gateway's pods, a server on the port admitting the host) -> each
  destination (Service, its namespace and port) -> subset (a DestinationRule
  defines it, its labels match ready pods) -> the weights of the lesson's step;
- rules (chapter 4): a DestinationRule for the chapter's host whose subsets
  match ready pods;
- egress (chapter 6): the ServiceEntry, the egress Gateway, the VirtualService
  bound to `mesh` and to that Gateway, its two legs, the DestinationRule's
  subset.
Then the probes' own answers (verify.py's explanation for what the objects
cannot show: no endpoints, nothing answering, not Envoy).

A manifest the API server refused (a typo in apiVersion or kind) never exists
in the cluster: the check can only see that the object is missing, so the
"no route yet" explanation says that an apply that printed an error is the
likely cause and what the apiVersion must be."""

from __future__ import annotations

import datetime
import difflib

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.probe import probe_all
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.routes import (
    CLUSTER_SUFFIX,
    resolve_host,
    service_entry_for,
    service_key,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate import (
    MESH_GATEWAY,
    admitting_servers,
    gateway_key,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.verify import (
    ENVOY_SERVER,
    VerifyError,
    _egress_path_problems,
    _host_matches,
    _read_for_explaining,
    _specificity,
    ingress_address,
    lab_unknown_chapters,
    lab_verify_add_splits,
    lab_verify_ingress_routes,
    lab_verify_probes,
    lab_verify_report,
)

API_VERSION = "networking.istio.io/v1"
CATALOGUE_KEYS = {"ServiceEntry": "service_entries", "Gateway": "gateways", "VirtualService": "virtual_services",
                  "DestinationRule": "destination_rules"}
APPLY_HINT = ("If you did run kubectl apply, read what it printed: the API server refuses a manifest with a typo in "
              f"apiVersion or kind (it must be apiVersion: {API_VERSION}, kind: Gateway / VirtualService / "
              "DestinationRule / ServiceEntry), and a refused object never exists in the cluster. "
              "kubectl get gateways,virtualservices -A shows what exists.")


def _key(obj):
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _name(obj):
    return "/".join(_key(obj))


def _labels_text(labels):
    return ", ".join(f"{k}={v}" for k, v in sorted(dict(labels or {}).items())) or "none"


def _finding(obj, field, text, reason, hint=None):
    """One broken link: `obj` the student's object (or None), `field` the field at fault."""
    where = f"{obj['kind']} {_name(obj)}" if obj else ""
    if where and field:
        where += f": {field}"
    return {"object": where, "text": f"{where} {text}".strip() if where else text, "reason": reason, "hint": hint}


def chapter_exercise(catalogue, chapter):
    """The chapter's entry, refused with VerifyError when the catalogue does not know it or gives it no exercise."""
    unknown = lab_unknown_chapters(catalogue, [chapter])
    if unknown:
        raise VerifyError(f"chapter {chapter} is not in the catalogue; known chapters: "
                          f"{', '.join(map(str, catalogue))}.")
    entry = catalogue[str(chapter)]
    if not (entry.get("exercise") or {}).get("student_objects"):
        raise VerifyError(f"chapter {chapter} has no exercise (exercise.student_objects in lab_chapters).")
    return entry


def student_kinds(entry):
    return {obj["kind"] for obj in entry["exercise"]["student_objects"]}


def answer_key(entry):
    """The chapter's own definitions of the student's objects: {kind: [definition]}."""
    wanted = {(o["kind"], o["namespace"], o["name"]) for o in entry["exercise"]["student_objects"]}
    return {kind: [d for d in entry.get(key) or [] if (kind, d.get("namespace"), d["name"]) in wanted]
            for kind, key in CATALOGUE_KEYS.items()}


def _destinations(spec):
    """(field path, destination, weight, gateways its route's matches name) of every http/tls/tcp destination."""
    found = []
    for kind in ("http", "tls", "tcp"):
        for i, rule in enumerate(spec.get(kind) or []):
            for j, target in enumerate(rule.get("route") or []):
                found.append((f"spec.{kind}[{i}].route[{j}]", target.get("destination") or {}, target.get("weight"),
                              [g for m in rule.get("match") or [] for g in m.get("gateways") or []]))
    return found


def _covering(vs, host):
    """The specificity of the VirtualService's most specific host covering `host`, or None."""
    matching = [_specificity(h) for h in (vs.get("spec") or {}).get("hosts") or [] if _host_matches(h, host)]
    return max(matching) if matching else None


class Lab:
    """What the check read of one lab, the Pods it reads on demand (one LIST per namespace, only for subsets), and
    the objects it attributes to the exercise."""

    def __init__(self, client, read, table, options, kinds):
        self.client = client
        self.ip = options.get("ingress_ip") or ""
        self.table = table
        self.options = options
        self.kinds = kinds
        self.gateways = {_key(o): o for o in read["Gateway"]}
        self.virtual_services = sorted(read["VirtualService"], key=_key)
        self.rules = sorted(read["DestinationRule"], key=_key)
        self.entries = sorted(read["ServiceEntry"], key=_key)
        self.services = {_key(o): o for o in read["Service"]}
        self._pods = {}
        self.attributed = []

    def attribute(self, obj):
        """Count `obj` as the student's work on this exercise (only kinds the exercise asks the student for)."""
        if obj is not None and obj.get("kind") in self.kinds and obj not in self.attributed:
            self.attributed.append(obj)

    def ready_pods(self, namespace):
        if namespace not in self._pods:
            from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.resource import list_objects

            pods = list_objects(self.client, "/api/v1", "pods", {namespace}, "Pod").values()
            self._pods[namespace] = [p for p in pods if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or [])]
        return self._pods[namespace]


def _pod_labels(pod):
    return (pod.get("metadata") or {}).get("labels") or {}


# ---------------------------------------------------------------- links shared by the walks


def _missing_gateway(lab, vs, field, reference, wanted):
    """Why `reference` (spec.gateways[i]) finds no Gateway: another namespace without the prefix, a misspelt name,
    or no Gateway at all."""
    vs_namespace = _key(vs)[0]
    elsewhere = sorted(k for k in lab.gateways if k[1] == wanted[1] and k != wanted)
    if "/" not in reference and elsewhere:
        found = f"{elsewhere[0][0]}/{elsewhere[0][1]}"
        return _finding(vs, field, f"names '{reference}', which Istio looks for in the VirtualService's own namespace "
                        f"{vs_namespace}; the Gateway {reference} is in namespace {elsewhere[0][0]}: write '{found}'",
                        f"spec.gateways names '{reference}' without its namespace ({found})",
                        "A Gateway of another namespace is named <namespace>/<name> in gateways:.")
    same = [k[1] for k in lab.gateways if k[0] == wanted[0]]
    close = difflib.get_close_matches(wanted[1], same, 1, 0.6)
    if close:
        shown = close[0] if "/" not in reference else f"{wanted[0]}/{close[0]}"
    else:
        anywhere = difflib.get_close_matches(wanted[1], [k[1] for k in lab.gateways], 1, 0.6)
        other = next((k for k in sorted(lab.gateways) if anywhere and k[1] == anywhere[0]), None)
        shown = f"{other[0]}/{other[1]}" if other else None
    if shown:
        return _finding(vs, field, f"names '{reference}' but the Gateway is '{shown}'",
                        f"spec.gateways names '{reference}', not '{shown}'",
                        "gateways: must name the Gateway exactly as its metadata.name (with <namespace>/ when it is "
                        "in another namespace).")
    return _finding(vs, field, f"names '{reference}', but there is no Gateway {wanted[0]}/{wanted[1]}: write the "
                    "Gateway too", f"no Gateway {wanted[0]}/{wanted[1]} yet", APPLY_HINT)


def _gateway_findings(lab, gateway, vs, host, labels, role):
    """Why `gateway` does not take the VirtualService's route for `host`: its selector misses the gateway's pods,
    no server admits the host, or none listens on the port students use."""
    spec = gateway.get("spec") or {}
    selector = dict(spec.get("selector") or {})
    if not selector or not selector.items() <= dict(labels).items():
        return _finding(gateway, "spec.selector", f"is {{{_labels_text(selector)}}}, which the {role} gateway's pods "
                        f"do not carry (they carry {_labels_text(labels)}): no gateway takes this Gateway's servers",
                        f"Gateway {_name(gateway)}: selector matches no {role} gateway pod",
                        f"The course's selector is istio: {role}gateway.")
    vs_namespace = _key(vs)[0]
    vs_hosts = [h for h in (vs.get("spec") or {}).get("hosts") or [] if _host_matches(h, host)] or [host]
    admitted = [port for h in vs_hosts for _i, port, _effective in admitting_servers(vs_namespace, h, gateway)]
    if not admitted:
        server_hosts = [h for server in spec.get("servers") or [] for h in server.get("hosts") or []]
        return _finding(gateway, "spec.servers[].hosts", f"are {server_hosts}, which do not admit '{vs_hosts[0]}' "
                        f"(the host of VirtualService {_name(vs)}): the gateway ignores that route",
                        f"Gateway {_name(gateway)} does not admit {host}",
                        "A Gateway server's hosts must cover the VirtualService's hosts: '*' admits every host, "
                        "otherwise write the very same name.")
    wanted = lab.options.get("gateway_port")
    if wanted and not any(str(port.get("number")) == str(wanted) for port in admitted):
        numbers = sorted({port.get("number") for port in admitted}, key=str)
        return _finding(gateway, "spec.servers[].port.number", f"is {numbers}, but the requests come to port "
                        f"{wanted}", f"Gateway {_name(gateway)} has no server on port {wanted}",
                        f"The course's gateways listen on port {wanted}, protocol HTTP.")
    return None


def _bind(lab, vs, host, labels, role):
    """(reference, Gateway) the VirtualService is bound to for `host` on the `role` gateway, or a finding."""
    problems = []
    vs_namespace = _key(vs)[0]
    for i, reference in enumerate((vs.get("spec") or {}).get("gateways") or []):
        if reference == MESH_GATEWAY:
            continue
        wanted = gateway_key(reference, vs_namespace)
        gateway = lab.gateways.get(wanted)
        if gateway is None:
            problems.append(_missing_gateway(lab, vs, f"spec.gateways[{i}]", reference, wanted))
            continue
        lab.attribute(gateway)
        problem = _gateway_findings(lab, gateway, vs, host, labels, role)
        if problem:
            problems.append(problem)
            continue
        return reference, gateway
    return problems[0] if problems else None


def _subset_pods_finding(lab, rule, index, subset, service_ref):
    """A subset whose labels match no ready pod of its host's Service."""
    labels = dict(subset.get("labels") or {})
    service = lab.services.get(service_ref) if service_ref else None
    if not labels or service is None:
        return None
    selector = dict((service.get("spec") or {}).get("selector") or {})
    pods = [p for p in lab.ready_pods(service_ref[0]) if selector.items() <= _pod_labels(p).items()]
    if any(labels.items() <= _pod_labels(p).items() for p in pods):
        return None
    carried = sorted({f"{k}={v}" for p in pods for k, v in _pod_labels(p).items() if k in labels})
    shown = f"{service_ref[0]}/{service_ref[1]}"
    return _finding(rule, f"spec.subsets[{index}].labels", f"({subset.get('name')}) are {{{_labels_text(labels)}}}, "
                    f"which match no ready pod of Service {shown}"
                    + (f" (its pods carry {', '.join(carried)})" if carried else " (it has no ready pod)"),
                    f"subset {subset.get('name')} matches no pod of {shown}",
                    "A subset's labels select pods of the host's Service: use labels its pods carry "
                    "(kubectl get pods --show-labels).")


def _subset_findings(lab, vs, path, fqdn, name, service_ref):
    """The subset a destination names: a DestinationRule for its host defines it, and its labels match pods."""
    rules = [r for r in lab.rules if resolve_host((r.get("spec") or {}).get("host", ""), _key(r)[0]) == fqdn]
    for rule in rules:
        for index, subset in enumerate((rule.get("spec") or {}).get("subsets") or []):
            if subset.get("name") == name:
                lab.attribute(rule)
                return _subset_pods_finding(lab, rule, index, subset, service_ref)
    defined = sorted({s.get("name") for r in rules for s in (r.get("spec") or {}).get("subsets") or []})
    return _finding(vs, f"{path}.destination.subset", f"is '{name}', but no DestinationRule for {fqdn} defines it"
                    + (f" (they define {', '.join(defined)})" if defined else ""),
                    f"no DestinationRule defines subset {name}",
                    "Subsets are defined by a DestinationRule for the same host (chapter 4's): apply it first.")


def _destination_findings(lab, vs, path, destination, expected, shown):
    """One destination: its Service exists where the host says (short names mean the VirtualService's namespace),
    has the port, is the exercise's app, and its subset is defined and matches pods."""
    vs_namespace = _key(vs)[0]
    host = destination.get("host", "")
    fqdn = resolve_host(host, vs_namespace)
    ref = service_key(fqdn)
    field = f"{path}.destination.host"
    if ref and ref not in lab.services:
        elsewhere = sorted(k for k in lab.services if k[1] == ref[1] and k[0] != ref[0])
        if "." not in host and elsewhere:
            right = f"{ref[1]}.{elsewhere[0][0]}{CLUSTER_SUFFIX}"
            return _finding(vs, field, f"is the short name '{host}', which Istio completes with the VirtualService's "
                            f"own namespace: {fqdn}; there is no Service {host} in {vs_namespace}, it is in "
                            f"{elsewhere[0][0]}: write {right}",
                            f"short host '{host}' means {fqdn}, not {right}",
                            "A short host name only reaches a Service of the VirtualService's own namespace; from "
                            "another namespace write <name>.<namespace>.svc.cluster.local.")
        return _finding(vs, field, f"is '{host}': Service {ref[0]}/{ref[1]} does not exist",
                        f"Service {ref[0]}/{ref[1]} does not exist", "kubectl get svc -A lists the Services.")
    if ref is None:
        if fqdn.count(".") == 1:
            return _finding(vs, field, f"is '{host}': Istio completes only names without dots; write "
                            f"{host}{CLUSTER_SUFFIX}", f"host '{host}' is not a Service name",
                            "Write a Service's full name, <name>.<namespace>.svc.cluster.local.")
        return None
    service = lab.services[ref]
    ports = [p.get("port") for p in (service.get("spec") or {}).get("ports") or []]
    port = (destination.get("port") or {}).get("number")
    service_name = f"{ref[0]}/{ref[1]}"
    if port is None and len(ports) != 1:
        return _finding(vs, f"{path}.destination.port", f"is missing and Service {service_name} has ports {ports}: "
                        "say which one", f"no destination port for {service_name}",
                        "Set destination.port.number to the Service's port.")
    if port is not None and port not in ports:
        targets = {p.get("targetPort") for p in (service.get("spec") or {}).get("ports") or []}
        return _finding(vs, f"{path}.destination.port.number", f"is {port}, but Service {service_name} has "
                        f"port(s) {ports}", f"Service {service_name} has no port {port}",
                        f"The destination port is the Service's port ({ports[0]}), not the container's port "
                        f"({port}) behind it." if port in targets and ports else
                        "kubectl get svc shows the Service's ports.")
    if expected and fqdn not in expected:
        wanted = ", ".join(sorted(expected))
        return _finding(vs, field, f"sends {shown} to Service {service_name}, but this exercise's app is {wanted}",
                        f"{shown} goes to {service_name}, not {wanted}", None)
    if destination.get("subset"):
        return _subset_findings(lab, vs, path, fqdn, destination["subset"], ref)
    return None


def _weights(rule):
    got = {}
    targets = rule.get("route") or []
    for target in targets:
        subset = (target.get("destination") or {}).get("subset") or "(no subset)"
        weight = target.get("weight")
        weight = 100 if weight is None and len(targets) == 1 else int(weight or 0)
        got[subset] = got.get(subset, 0) + weight
    return {k: v for k, v in got.items() if v}


def _split_text(weights):
    return ", ".join(f"{k} {v}" for k, v in weights.items()) or "nothing"


def _weights_finding(vs, weights):
    """The first HTTP route's weights against the lesson's step (`weights`, subset -> percent)."""
    wanted = {str(k): int(v) for k, v in dict(weights).items() if int(v)}
    for i, rule in enumerate((vs.get("spec") or {}).get("http") or []):
        got = _weights(rule)
        if got != wanted:
            return _finding(vs, f"spec.http[{i}].route[].weight", f"gives {_split_text(got)}, but the lesson's step "
                            f"wants {_split_text(wanted)}", "weights differ from the lesson's split",
                            "Each destination's weight is its share in percent (together 100); one destination per "
                            "subset.")
        return None
    return None


# ---------------------------------------------------------------- the walks


def _shown(host, ip):
    return host or str(ip)


def _no_route(key_vs, shown):
    """The exercise's start, or a manifest the API server refused: no VirtualService of the student's for the host."""
    lesson = ""
    if key_vs:
        d = key_vs[0]
        spec = d.get("spec") or {}
        lesson = (f" The lesson's VirtualService is {d['namespace']}/{d['name']} (hosts {spec.get('hosts')}, "
                  f"gateways {spec.get('gateways')}).")
    return _finding(None, "", f"No VirtualService in the lab has {shown} in its hosts: the ingress gateway has no "
                    f"route for it yet and answers 404.{lesson}", f"no route for {shown} yet", APPLY_HINT)


def _ingress_finding(lab, key, probe, shown, split):
    """The first broken link for one probe through the ingress gateway, or None."""
    host = probe.get("host") or ""
    target = host or str(lab.ip)
    key_vs = [d for d in key["VirtualService"] if _covering(d, target if host else "*") is not None]
    if not key_vs:
        return None
    expected = {resolve_host(dest.get("host", ""), d["namespace"])
                for d in key_vs for _p, dest, _w, _g in _destinations(d.get("spec") or {})}
    names = {service_key(f)[1] for f in expected if service_key(f)}
    specific = host and all(_covering(d, target) for d in key_vs)
    if specific:  # a Gateway that opens this very host is the student's, route or not (a reset may remove it)
        for gateway in lab.gateways.values():
            if any(h.split("/", 1)[-1].lower() == target.lower() for server in (gateway.get("spec") or {}).get(
                    "servers") or [] for h in server.get("hosts") or []):
                lab.attribute(gateway)

    def routes_expected(vs):
        namespace = _key(vs)[0]
        return any(resolve_host(dest.get("host", ""), namespace) in expected
                   or dest.get("host", "").split(".")[0] in names
                   for _p, dest, _w, _g in _destinations(vs.get("spec") or {}))

    candidates = []
    for vs in lab.virtual_services:
        level = _covering(vs, target)
        if level is None or (specific and level == 0):
            continue
        if level == 1_000_000 or routes_expected(vs):
            candidates.append((level, vs))
    if not candidates:
        misplaced = [vs for vs in lab.virtual_services if routes_expected(vs) and _covering(vs, target) is None]
        if misplaced:
            vs = misplaced[0]
            lab.attribute(vs)
            hosts = (vs.get("spec") or {}).get("hosts") or []
            return _finding(vs, "spec.hosts", f"is {hosts}, which does not cover {shown} (the Host students "
                            f"curl): the route is never used", f"VirtualService {_name(vs)}: spec.hosts does not "
                            f"include {shown}", "hosts: lists the names students put in the Host header "
                            "(the exercise's: " + ", ".join(h for d in key_vs for h in d["spec"].get("hosts") or [])
                            + ").")
        return _no_route(key_vs, shown)
    best = max(level for level, _vs in candidates)
    findings = []
    for vs in [vs for level, vs in candidates if level == best]:
        lab.attribute(vs)
        found = _virtual_service_finding(lab, vs, target, expected, shown, split, key_vs)
        if found is None:
            return None
        findings.append(found)
    return findings[0]


def _virtual_service_finding(lab, vs, target, expected, shown, split, key_vs):
    spec = vs.get("spec") or {}
    gateways = spec.get("gateways") or []
    lesson = ", ".join(g for d in key_vs for g in (d.get("spec") or {}).get("gateways") or [])
    if not [g for g in gateways if g != MESH_GATEWAY]:
        what = ("is missing: without it a VirtualService applies only inside the mesh (the gateway 'mesh', the "
                "sidecars)" if not gateways else "lists only 'mesh', which means the sidecars inside the mesh")
        return _finding(vs, "spec.gateways", f"{what}, not the ingress gateway: curl through the ingress IP finds no "
                        f"route for {shown}", f"VirtualService {_name(vs)} is not bound to a Gateway",
                        f"Bind it to the Gateway: gateways: [{lesson}].")
    bound = _bind(lab, vs, target, lab.options["ingress_labels"], "ingress")
    if bound is None or isinstance(bound, dict):
        return bound
    reference, _gateway = bound
    for problem in lab.table["problems"]:
        if problem["object"] == f"VirtualService {_name(vs)}" and problem["field"] == "spec.exportTo":
            return _finding(vs, "spec.exportTo", problem["message"], f"VirtualService {_name(vs)} is not exported "
                            "to the gateway", "Leave exportTo out (exported everywhere) or list the gateway's "
                            "namespace.")
    namespace = _key(vs)[0]
    for path, destination, _weight, matched in _destinations(spec):
        if matched and not any(gateway_key(g, namespace) == gateway_key(reference, namespace) for g in matched):
            continue
        found = _destination_findings(lab, vs, path, destination, expected, shown)
        if found:
            return found
    if split:
        return _weights_finding(vs, split["weights"])
    return None


def _rule_finding(lab, definition):
    """Chapter 4: a DestinationRule for the lesson's host whose subsets match ready pods."""
    spec = definition.get("spec") or {}
    fqdn = resolve_host(spec.get("host", ""), definition["namespace"])
    ref = service_key(fqdn)
    rules = [r for r in lab.rules if resolve_host((r.get("spec") or {}).get("host", ""), _key(r)[0]) == fqdn]
    if not rules:
        for rule in lab.rules:
            host = (rule.get("spec") or {}).get("host", "")
            if ref and "." not in host and host == ref[1]:
                lab.attribute(rule)
                return _finding(rule, "spec.host", f"is the short name '{host}', which Istio completes with the "
                                f"DestinationRule's own namespace: {resolve_host(host, _key(rule)[0])}; write {fqdn}",
                                f"short host '{host}' is not {fqdn}",
                                "A short host name means a Service of the rule's own namespace.")
        subsets = ", ".join(f"{s['name']} ({_labels_text(s.get('labels'))})" for s in spec.get("subsets") or [])
        return _finding(None, "", f"No DestinationRule in the lab has host {fqdn} yet. The lesson's is "
                        f"{definition['namespace']}/{definition['name']}, with subsets {subsets}.",
                        f"no DestinationRule for {fqdn} yet", APPLY_HINT)
    wanted = [s["name"] for s in spec.get("subsets") or []]
    rules.sort(key=lambda r: -len({s.get("name") for s in (r.get("spec") or {}).get("subsets") or []} & set(wanted)))
    rule = rules[0]
    lab.attribute(rule)
    subsets = (rule.get("spec") or {}).get("subsets") or []
    for name in wanted:
        found = [(i, s) for i, s in enumerate(subsets) if s.get("name") == name]
        if not found:
            return _finding(rule, "spec.subsets", f"defines {[s.get('name') for s in subsets]}, not the subset "
                            f"'{name}' the lesson routes to", f"no subset {name} in {_name(rule)}",
                            "Subset names are what a VirtualService's destination.subset names: v1 and v2.")
        problem = _subset_pods_finding(lab, rule, found[0][0], found[0][1], ref)
        if problem:
            return problem
    return None


def _egress_finding(lab, mesh_probe):
    """Chapter 6: the ServiceEntry, the egress Gateway, the VirtualService bound to mesh and to that Gateway, its
    two legs (sidecars -> egress gateway's Service, egress gateway -> the host), the subset."""
    url = mesh_probe["url"]
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    entry = service_entry_for(host, lab.entries)
    if entry is None:
        started = any(_covering(vs, host) for vs in lab.virtual_services)
        return _finding(None, "", f"No ServiceEntry declares {host}: the mesh does not know the external host, and "
                        "the egress gateway has no cluster to send it to.",
                        f"no ServiceEntry for {host}" if started else f"no route for {host} yet",
                        "Istio's egress task starts with a ServiceEntry (hosts, ports 80 and 443, resolution DNS). "
                        + APPLY_HINT)
    lab.attribute(entry)
    candidates = sorted(((_covering(vs, host), vs) for vs in lab.virtual_services if _covering(vs, host)),
                        key=lambda item: -item[0])
    if not candidates:
        return _finding(None, "", f"No VirtualService has {host} in its hosts: the sidecars send the request straight "
                        "out, never through the egress gateway.", f"no route for {host} yet", APPLY_HINT)
    vs = candidates[0][1]
    lab.attribute(vs)
    namespace = _key(vs)[0]
    spec = vs.get("spec") or {}
    gateways = spec.get("gateways") or []
    if MESH_GATEWAY not in gateways:
        return _finding(vs, "spec.gateways", f"is {gateways}, without 'mesh': the VirtualService does not apply to "
                        "the sidecars, so the client's request never goes to the egress gateway",
                        f"VirtualService {_name(vs)} is missing its mesh leg",
                        "Bind it to both: gateways: [<the egress Gateway>, mesh].")
    if not [g for g in gateways if g != MESH_GATEWAY]:
        return _finding(vs, "spec.gateways", "lists only 'mesh': the egress gateway has no route for the host",
                        f"VirtualService {_name(vs)} is not bound to the egress Gateway",
                        "Bind it to both: gateways: [<the egress Gateway>, mesh].")
    bound = _bind(lab, vs, host, lab.options["egress_labels"], "egress")
    if bound is None or isinstance(bound, dict):
        return bound
    reference, gateway = bound
    selector = dict((gateway.get("spec") or {}).get("selector") or {})
    fronting = {k for k, svc in lab.services.items()
                if selector.items() <= dict((svc.get("spec") or {}).get("selector") or {}).items()}
    legs = _destinations(spec)
    mesh_leg = [(p, d) for p, d, _w, g in legs if not g or MESH_GATEWAY in g]
    to_gateway = [(p, d) for p, d in mesh_leg if service_key(resolve_host(d.get("host", ""), namespace)) in fronting]
    if not to_gateway:
        shown = ", ".join(f"{k[1]}.{k[0]}{CLUSTER_SUFFIX}" for k in sorted(fronting)) or "the egress gateway"
        return _finding(vs, "spec.http[]", f"has no route for the sidecars (match gateways: [mesh]) that sends {host} "
                        f"to {shown}: the mesh leg is missing, so the sidecars call {host} directly",
                        f"VirtualService {_name(vs)} is missing its mesh leg",
                        "Istio's egress task has two routes: mesh -> the egress gateway's Service, the egress "
                        "Gateway -> the external host.")
    for path, destination in to_gateway:
        if destination.get("subset"):
            fqdn = resolve_host(destination.get("host", ""), namespace)
            found = _subset_findings(lab, vs, path, fqdn, destination["subset"], service_key(fqdn))
            if found:
                return found
    wanted = gateway_key(reference, namespace)
    out = [d for _p, d, _w, g in legs if (not g or any(gateway_key(x, namespace) == wanted for x in g))
           and _host_matches(resolve_host(d.get("host", ""), namespace), host)]
    if not out:
        return _finding(vs, "spec.http[]", f"has no route for the egress Gateway '{reference}' (match gateways: "
                        f"[{reference}]) that sends {host} out: the egress gateway has nowhere to send it",
                        f"VirtualService {_name(vs)} is missing its egress gateway leg",
                        "The second route matches gateways: [<the egress Gateway>] and routes to the external host.")
    problems = _egress_path_problems(host, {"selector": mesh_probe.get("via", {}).get("selector", "")},
                                     lab.table["egress_routes"], lab.table["mesh_routes"])
    if problems:
        return _finding(None, "", problems[0], problems[0].split(":")[0], None)
    return None


# ---------------------------------------------------------------- the module's work


def _probe_line(entry):
    if entry.get("mesh"):
        return ""
    host = entry.get("host")
    command = f"curl -i {'-H ' + repr('Host: ' + host) + ' ' if host else ''}{entry['url']}"
    if entry.get("status") is None:
        return f"{command} gets no answer."
    return f"{command} answers {entry['status']} (server: {entry.get('server') or 'none'})."


def check(client, options, probe=probe_all, now=None):
    """The whole check of one lab's exercise in one process: read the lab's Istio objects and Services once, send
    the chapter's probes, walk the links, say the first broken one. Returns the module's result: the report's
    fields (state done | not_yet, reason, explanation, hint, probes, student_objects, ingress_ip, ...)."""
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import KubeError

    try:
        return _check(client, options, probe, now)
    except VerifyError as exc:
        raise KubeError(str(exc)) from None


def _check(client, options, probe, now):
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.resource import (
        read_route_objects,
        table_of,
    )

    catalogue, chapter = options["catalogue"], str(options["chapter"])
    entry = chapter_exercise(catalogue, chapter)
    api_version = options.get("api_version") or API_VERSION
    read = read_route_objects(client, None, api_version)
    table = table_of(read)
    lab = Lab(client, read, table, options, student_kinds(entry))
    lab.ip = options["ingress_ip"] or ingress_address(client, options["ingress_namespace"], options["ingress_service"])
    key = answer_key(entry)
    gateway_port = options["gateway_port"]
    routes = lab_verify_ingress_routes(table["routes"], options["ingress_labels"])
    probes = lab_verify_probes(catalogue, [chapter], [], "", gateway_port)
    results = probe(f"http://{lab.ip}:{options['http_port']}", probes, {
        "server": ENVOY_SERVER, "accept_redirects": options["accept_redirects"], "retries": options["retries"],
        "delay": options["delay"], "samples": options["split_samples"], "timeout": options["timeout"]})
    # No catalogue: verify's explanations would name the answer key's objects, not the student's (the walk does).
    context = {"ip": lab.ip, "port": options["http_port"], "catalogue": {}, "routes": routes,
               "problems": table["problems"], "gateway_port": gateway_port,
               "accept_redirects": options["accept_redirects"]}
    report = lab_verify_add_splits(lab_verify_report(results, context), results, options["split_tolerance"])

    finding = None
    for item in probes:
        found = _ingress_finding(lab, key, item, _shown(item["host"], lab.ip), item.get("split"))
        finding = finding or found
    for definition in key["DestinationRule"] if not probes and not entry.get("mesh_probes") else []:
        finding = finding or _rule_finding(lab, definition)
    for mesh_probe in entry.get("mesh_probes") or []:
        finding = finding or _egress_finding(lab, mesh_probe)
    failed = [e for e in report if not e["ok"]]
    if failed and finding is None:
        endpoints, existing = _read_for_explaining(client, report, routes, lab.ip, gateway_port, api_version)
        report = lab_verify_add_splits(lab_verify_report(results, {**context, "endpoints": endpoints,
                                                                   "existing": existing}),
                                       results, options["split_tolerance"])
        failed = [e for e in report if not e["ok"]]
        first = failed[0]
        shown = _shown(first["host"], lab.ip)
        finding = _finding(None, "", f"{shown}: {first['explanation']}", f"{shown}: {first['explanation']}"[:120],
                           None)
    if plan := verify_mesh_plan(catalogue, chapter, table):
        report = report + plan
    explanation = []
    if finding:
        explanation.append(finding["text"])
        explanation += [line for line in (_probe_line(e) for e in failed[:1]) if line]
    stamp = now or datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    return {
        "changed": False,
        "chapter": chapter,
        "title": entry.get("title", ""),
        "state": "not_yet" if finding or failed else "done",
        "reason": finding["reason"] if finding else "",
        "explanation": explanation,
        "hint": finding["hint"] if finding else None,
        "ingress_ip": str(lab.ip),
        "probes": report,
        "student_objects": [{"apiVersion": o.get("apiVersion", api_version), "kind": o["kind"],
                             "namespace": _key(o)[0], "name": _key(o)[1]} for o in lab.attributed],
        "checked_at": stamp,
    }


def verify_mesh_plan(catalogue, chapter, table):
    """The in-mesh probes as report entries, not run here (one module process, no pod exec): what the route table
    says about their path, and the commands to run."""
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.verify import (
        lab_verify_mesh_plan,
        lab_verify_mesh_report,
    )

    plan = lab_verify_mesh_plan(catalogue, [chapter], table["egress_routes"], table["mesh_routes"])
    return lab_verify_mesh_report(plan, run=False) if plan else []
