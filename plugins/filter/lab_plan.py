"""The run's plan: what a later stage would refuse, refused before the run's first write (docs/site.md).

``lab_plan_refusals`` looks at the inventory alone (no cluster read, no module
process) and returns every condition under which a stage of this run would
stop once reached, after the stages before it wrote: the lab would be left
half-changed (issue 27: the addons stage deleted Zipkin, then the routes stage
refused chapter 3). The role ``lab_preflight`` (tasks/plan.yml) asserts that
the list is empty at the start of site.yml, classroom.yml (per lab),
upgrade.yml and each stage playbook; the stages keep their own checks as a
second line of defence.

Each refusal is ``{condition, stage, message}``: ``stage`` is the stage that
used to find it (after the earlier stages' writes); the message names both
sides and what to change. The conditions (tests/unit/test_lab_plan.py holds
one case each):

============================  ===================  =====================================================
condition                     stage that found it  what
============================  ===================  =====================================================
unknown-chapter               apps, routes         a chapter of the run that lab_chapters does not define
unknown-app                   apps                 a chapter's app that lab_apps_catalogue does not define
chapter-needs-chapter         apps, routes         a chapter builds on a chapter (requires.chapters, or a
                                                   Service that chapter's app provides) left out of the run
addon-left-out                routes               a chapter routes to (or requires) an addon's Service,
                                                   the addon left out of istio_addons_enabled
egress-gateway-left-out       routes               a chapter needs istio-egressgateway, turned off
                                                   (istio_egress_gateway_enabled)
route-rules                   routes               a chapter's ServiceEntry, Gateway, VirtualService or
                                                   DestinationRule breaks one of istiod's single-object
                                                   rules (the routes stage validates them all first)
app-service-port              routes               a chapter routes to a port of an app's Service other
                                                   than its service_port in lab_apps_catalogue
traffic-shift-step            routes               chapter 5's lab_traffic_shift_step is not a step of
                                                   lab_traffic_shift_steps
unknown-addon                 addons               istio_addons_enabled names an addon istio-lab lacks
zipkin-with-jaeger            addons               both define Services zipkin and tracing
role-option                   the option's role    a value the argument spec of a stage's role refuses
                                                   (type, choices), set in the inventory or with -e
address-pool                  metallb              metallb_address_range empty, malformed, or covering a
                                                   reserved (or, once read, a node's) address
ingress-ip-outside-pool       metallb, istio       lab_ingress_ip outside metallb_address_range
============================  ===================  =====================================================

``stages`` says which stages the run has (site.yml: all six; a stage
playbook: its own): a condition is checked when it concerns one of them.
"""

from __future__ import annotations

import importlib.util
import os

import yaml
from ansible.errors import AnsibleError, AnsibleFilterError

# Not routes.py nor verify.py: every lab's fork on the controller imports this filter anew, and their imports
# (the validators, http.client) would cost each lab 0.07 CPU-s.
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.destinations import service_destinations

# verify writes nothing to the cluster; its role's options are checked so that a run does not fail at its end.
STAGES = ("metallb", "istio", "addons", "apps", "routes", "verify")

# The Services (istio-system) each addon's upstream manifest defines (samples/addons of the Istio release).
# Keys: the addons roles/istio_addons knows (its vars istio_addons_files; tests/unit/test_lab_plan.py keeps
# them equal).
ADDON_SERVICES = {
    "prometheus": ("prometheus",),
    "grafana": ("grafana",),
    "kiali": ("kiali",),
    "zipkin": ("zipkin", "tracing"),
    "jaeger": ("tracing", "zipkin", "jaeger-collector"),
    "loki": ("loki", "loki-headless", "loki-memberlist"),
}
ADDONS_NAMESPACE = "istio-system"
INGRESS_GATEWAY = "istio-system/istio-ingressgateway"
EGRESS_GATEWAY = "istio-system/istio-egressgateway"

# Which stages each condition concerns: checked when the run has one of them.
CONCERNS = {
    "unknown-chapter": {"apps", "routes"},
    "unknown-app": {"apps"},
    "chapter-needs-chapter": {"apps", "routes"},
    # The addons stage prunes an addon left out: a run that has it must not leave the chapter without it.
    "addon-left-out": {"addons", "routes"},
    "egress-gateway-left-out": {"istio", "routes"},
    "app-service-port": {"apps", "routes"},
    "route-rules": {"routes"},
    "traffic-shift-step": {"routes"},
    "unknown-addon": {"addons"},
    "zipkin-with-jaeger": {"addons"},
    "address-pool": {"metallb"},
    "ingress-ip-outside-pool": {"metallb", "istio"},
    "role-option": set(STAGES),
}
FOUND_BY = {
    "unknown-chapter": "apps",
    "unknown-app": "apps",
    "chapter-needs-chapter": "apps",
    "addon-left-out": "routes",
    "egress-gateway-left-out": "routes",
    "app-service-port": "routes",
    "route-rules": "routes",
    "traffic-shift-step": "routes",
    "unknown-addon": "addons",
    "zipkin-with-jaeger": "addons",
    "address-pool": "metallb",
    "ingress-ip-outside-pool": "metallb",
    "role-option": "",  # the stage of the option's role
}

# Each stage's role, whose argument spec (meta/argument_specs.yml, entry point main) checks its options when
# the role starts. The plan checks the values set by the user (inventory, -e) against them up front.
STAGE_ROLES = {"metallb": "metallb", "istio": "istio", "addons": "istio_addons", "apps": "lab_apps",
               "routes": "lab_routes", "verify": "lab_verify"}
ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")
# Checked by the plan's own conditions (with both sides named), or not the user's to set.
OWN_OPTIONS = {"lab_chapters", "istio_addons_enabled", "lab_preflight_node_addresses"}
_SPECS = {}
# What tasks/plan.yml's vars lookup gives for an option nobody set.
UNSET = "(istio-lab: not set)"


def _load(path, name):
    """A sibling plugin file of this collection, by its path under plugins/ (one piece of code per check)."""
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The platform's pool check, and the vars plugin's check of boolean and integer options.
lab_addresses = _load("filter/lab_addresses.py", "istio_lab_filter_lab_addresses_plan")
lab_options = _load("vars/lab_options.py", "istio_lab_vars_lab_options_plan")


def _chapter_ids(ids):
    """Chapter ids as strings (verify.py's rule: `-e lab_enabled_chapters=[1,3]` gives integers)."""
    return [str(i) for i in ([ids] if isinstance(ids, (str, int)) else ids)]


def _refusal(condition, message, stage=None):
    return {"condition": condition, "stage": stage or FOUND_BY[condition], "message": message}


def _role_options(role):
    """The options of a role's main entry point, read once per process."""
    if role not in _SPECS:
        with open(os.path.join(ROLES, role, "meta", "argument_specs.yml"), encoding="utf-8") as handle:
            specs = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}  # noqa: S506
        _SPECS[role] = ((specs.get("argument_specs") or {}).get("main") or {}).get("options") or {}
    return _SPECS[role]


def lab_plan_options(stages):
    """The names of the options the stages' roles check, for tasks/plan.yml to look up the values set."""
    names = set()
    for stage in stages or []:
        if str(stage) in STAGE_ROLES:
            names |= set(_role_options(STAGE_ROLES[str(stage)]))
    return sorted(names - OWN_OPTIONS)


def _option_refusals(options, stages):
    """What each stage's role would refuse of the values set (None or UNSET: not set), as its argument check
    would: booleans and integers by the vars plugin's check (its messages for -e), choices here. Not the
    role's own validator: importing it would cost each lab's fork 0.09 CPU-s."""
    refusals = []
    given = {name: value for name, value in (options or {}).items()
             if value is not None and not (isinstance(value, str) and value == UNSET) and name not in OWN_OPTIONS}
    checked = set()  # an option several roles share (lab_wait_timeout) is named once, by the first stage
    for stage in STAGES:
        if stage not in stages or not given:
            continue
        role = STAGE_ROLES[stage]
        spec = {name: option for name, option in _role_options(role).items() if name in given and name not in checked}
        checked |= set(spec)
        messages = lab_options.option_errors(given, {name: option.get("type") for name, option in spec.items()})
        for name, option in sorted(spec.items()):
            choices = option.get("choices")
            values = given[name] if isinstance(given[name], list) else [given[name]]
            wrong = [v for v in values if choices and v not in choices]
            if wrong:
                messages.append(f"{name}={given[name]!r} is not one of {', '.join(map(str, choices))}")
        for message in messages:
            refusals.append(_refusal("role-option", (
                f"the {stage} stage's role {role} refuses the value set: {message} (fix it in the inventory or "
                "the -e)"), stage))
    return refusals


def _and(names):
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _destinations(entry):
    """The in-cluster destinations of one chapter's VirtualServices (the routes stage checks them live)."""
    virtual_services = [{"metadata": {"name": vs.get("name", ""), "namespace": vs.get("namespace", "")},
                         "spec": vs.get("spec") or {}} for vs in entry.get("virtual_services") or []]
    return service_destinations(virtual_services)


def _chapter_services(entry):
    """{'namespace/name': 'routes to'|'needs'} of one chapter: its routes' destinations and its
    requires.services."""
    services = {f"{d['namespace']}/{d['service']}": "routes to" for d in _destinations(entry)}
    for key in (entry.get("requires") or {}).get("services") or []:
        services.setdefault(str(key), "needs")
    return services


ROUTE_KINDS = {"service_entries": "ServiceEntry", "gateways": "Gateway", "virtual_services": "VirtualService",
               "destination_rules": "DestinationRule"}


def _rule_refusals(entry, chapter, variable):
    """istiod's single-object rules on the chapter's objects, as istio_routes applies them before its write
    (the CRD schemas need the cluster and the cross-object rules its Gateways: the routes stage checks those)."""
    # imported here: only a run with the routes stage needs the validators
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate import POLICY_RULES, object_problems

    refusals = []
    for key, kind in ROUTE_KINDS.items():
        for obj in entry.get(key) or []:
            desired = {"apiVersion": "networking.istio.io/v1", "kind": kind,
                       "metadata": {"name": obj.get("name", ""), "namespace": obj.get("namespace", "")},
                       "spec": obj.get("spec") or {}}
            try:
                problems = object_problems(desired)
            except (AttributeError, TypeError, KeyError):  # a field of the wrong type: the schema's to name
                problems = []
            except AnsibleError as exc:  # a variable its spec uses does not render (lazy templating)
                refusals.append(_refusal("route-rules", (
                    f"chapter {chapter}'s {kind} {desired['metadata']['namespace']}/{desired['metadata']['name']} "
                    f"cannot be rendered ({exc.message}): fix the variable or take chapter {chapter} out of "
                    f"{variable}")))
                continue
            problems = [p for p in problems if p.rule not in POLICY_RULES]
            if problems:
                refusals.append(_refusal("route-rules", (
                    f"chapter {chapter}'s {kind} {desired['metadata']['namespace']}/{desired['metadata']['name']} "
                    f"breaks istiod's rules ({'; '.join(f'{p.field}: {p.message}' for p in problems)}): fix it in "
                    f"lab_chapters (or a variable it uses, such as lab_domain) or take chapter {chapter} out of "
                    f"{variable}")))
    return refusals


def _port_refusals(entry, chapter, apps, variable):
    """A route to a port of an app's Service that lab_apps_catalogue does not give it."""
    refusals = []
    by_key = {f"{app.get('namespace', '')}/{name}": (name, app) for name, app in apps.items() if isinstance(app, dict)}
    for destination in _destinations(entry):
        key = f"{destination['namespace']}/{destination['service']}"
        if key not in by_key or destination["port"] is None or by_key[key][1].get("service_port") is None:
            continue
        name, app = by_key[key]
        try:
            port = int(app["service_port"])
        except (TypeError, ValueError):
            continue
        if int(destination["port"]) != port:
            refusals.append(_refusal("app-service-port", (
                f"chapter {chapter} routes to port {destination['port']} of Service {key}, which lab_apps_catalogue "
                f"gives port {port} ({name}.service_port): make them agree or take chapter {chapter} out of "
                f"{variable}")))
    return refusals


def _app_services(catalogue, apps, chapters):
    """{'namespace/name': chapter id} of the apps the chapters deploy (first chapter wins, as lab_apps)."""
    provided = {}
    for chapter in chapters:
        for app in catalogue.get(chapter, {}).get("apps") or []:
            if app in apps:
                provided.setdefault(f"{apps[app].get('namespace', '')}/{app}", chapter)
    return provided


def _chapter_refusals(catalogue, settings, stages):
    chapters = _chapter_ids(settings.get("chapters") or [])
    enabled = _chapter_ids(settings.get("enabled", chapters) or [])
    variable = settings.get("chapters_variable") or "lab_enabled_chapters"
    apps = dict(settings.get("apps") or {})
    addons = [str(a) for a in settings.get("addons") or []]
    egress = bool(settings.get("egress_gateway", True))
    refusals = []
    known = {str(k) for k in catalogue}
    unknown = [c for c in chapters if c not in known]
    if unknown and stages & CONCERNS["unknown-chapter"]:
        refusals.append(_refusal("unknown-chapter", (
            f"{variable} names chapter(s) {', '.join(unknown)}, which lab_chapters does not define; known chapters: "
            f"{', '.join(sorted(known, key=_order))} (take them out of {variable} or define them in lab_chapters)")))
    chapters = [c for c in chapters if c in known]
    catalogue = {str(k): v or {} for k, v in catalogue.items()}

    if stages & CONCERNS["unknown-app"]:
        for chapter in chapters:
            missing = [str(a) for a in catalogue[chapter].get("apps") or [] if a not in apps]
            if missing:
                refusals.append(_refusal("unknown-app", (
                    f"chapter {chapter} deploys app(s) {', '.join(missing)}, which lab_apps_catalogue does not "
                    f"define (known: {', '.join(sorted(apps))}): define them or take chapter {chapter} out of "
                    f"{variable}")))

    # What the run and the chapters already enabled provide.
    present = list(dict.fromkeys(chapters + [c for c in enabled if c in known]))
    provided = set(_app_services(catalogue, apps, present))
    provided |= {f"{ADDONS_NAMESPACE}/{s}" for a in addons for s in ADDON_SERVICES.get(a, ())}
    provided.add(INGRESS_GATEWAY)
    if egress:
        provided.add(EGRESS_GATEWAY)
    # Who would provide the others.
    by_chapter = _app_services(catalogue, apps, sorted(known, key=_order))

    # Chapter 5's weights are lab_traffic_shift_steps[step - 1]: with a step it lacks, its routes cannot even
    # be rendered, so they are not looked at.
    unrendered = set()
    steps = settings.get("traffic_shift_steps")
    if "5" in chapters and steps is not None:
        step = settings.get("traffic_shift_step")
        try:
            valid = 1 <= int(step) <= len(steps)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            unrendered.add("5")
            if stages & CONCERNS["traffic-shift-step"]:
                refusals.append(_refusal("traffic-shift-step", (
                    f"chapter 5 shifts traffic by lab_traffic_shift_step={step!r}, which lab_traffic_shift_steps "
                    f"does not have (steps 1-{len(steps)}): pick one of them or take chapter 5 out of {variable}")))

    for chapter in chapters:
        entry = catalogue[chapter]
        needed_chapters = {}  # chapter id -> what of it (for the message)
        for required in _chapter_ids((entry.get("requires") or {}).get("chapters") or []):
            if required not in present:
                needed_chapters.setdefault(required, [])
        left_out_addons = {}
        for key, how in _chapter_services(entry).items():
            if key in provided:
                continue
            namespace, _slash, name = key.partition("/")
            if key in by_chapter and by_chapter[key] not in present and by_chapter[key] != chapter:
                needed_chapters.setdefault(by_chapter[key], []).append(f"Service {key}")
            elif key == EGRESS_GATEWAY and stages & CONCERNS["egress-gateway-left-out"]:
                refusals.append(_refusal("egress-gateway-left-out", (
                    f"chapter {chapter} {how} Service {key}, which istio_egress_gateway_enabled=false leaves "
                    f"out: turn the egress gateway on or take chapter {chapter} out of {variable}")))
            elif namespace == ADDONS_NAMESPACE:
                addon = next((a for a, names in ADDON_SERVICES.items() if name in names), None)
                if addon is not None:
                    left_out_addons.setdefault(addon, (how, key))
            # A Service no stage of istio-lab provides is the user's: the routes stage checks it live.
        if needed_chapters and stages & CONCERNS["chapter-needs-chapter"]:
            parts = [f"chapter {c}" + (f" ({', '.join(what)})" if what else "")
                     for c, what in sorted(needed_chapters.items(), key=lambda item: _order(item[0]))]
            ids = sorted(needed_chapters, key=_order)
            refusals.append(_refusal("chapter-needs-chapter", (
                f"chapter {chapter} builds on {_and(parts)}, which {variable} leaves out: add chapter(s) "
                f"{', '.join(ids)} or take chapter {chapter} out")))
        if stages & CONCERNS["route-rules"] and chapter not in unrendered:
            refusals.extend(_rule_refusals(entry, chapter, variable))
        if stages & CONCERNS["app-service-port"] and chapter not in unrendered:
            refusals.extend(_port_refusals(entry, chapter, apps, variable))
        if stages & CONCERNS["addon-left-out"]:
            for addon, (how, key) in left_out_addons.items():
                refusals.append(_refusal("addon-left-out", (
                    f"chapter {chapter} {how} {addon} (Service {key}), which istio_addons_enabled leaves out: "
                    f"add {addon} to istio_addons_enabled or take chapter {chapter} out of {variable}")))

    return refusals


def _order(chapter_id):
    return (0, int(chapter_id)) if str(chapter_id).isdigit() else (1, str(chapter_id))


def _addon_refusals(settings, stages):
    addons = [str(a) for a in settings.get("addons") or []]
    refusals = []
    unknown = [a for a in addons if a not in ADDON_SERVICES]
    if unknown and stages & CONCERNS["unknown-addon"]:
        refusals.append(_refusal("unknown-addon", (
            f"istio_addons_enabled names {', '.join(unknown)}, which istio-lab does not install (it knows "
            f"{', '.join(ADDON_SERVICES)}): take them out of istio_addons_enabled")))
    if {"zipkin", "jaeger"} <= set(addons) and stages & CONCERNS["zipkin-with-jaeger"]:
        refusals.append(_refusal("zipkin-with-jaeger", (
            "istio_addons_enabled lists both zipkin and jaeger, whose manifests define the same Services (zipkin, "
            "tracing) and would overwrite each other: keep one (the lab's tracing provider is Zipkin)")))
    return refusals


def _pool_refusals(settings, stages):
    pool = settings.get("pool") or ""
    ingress_ip = settings.get("ingress_ip") or ""
    reserved = list(settings.get("reserved") or []) + list(settings.get("node_addresses") or [])
    if "metallb" in stages:
        try:
            lab_addresses.lab_address_pool(pool, reserved, ingress_ip)
        except AnsibleFilterError as exc:
            condition = "ingress-ip-outside-pool" if str(exc).startswith("lab_ingress_ip") else "address-pool"
            return [_refusal(condition, str(exc))]
        return []
    # Without the MetalLB stage the pool on the cluster is still metallb_address_range's.
    if "istio" in stages and pool and ingress_ip:
        try:
            lab_addresses.lab_address_pool(pool, (), ingress_ip)
        except AnsibleFilterError as exc:
            if str(exc).startswith("lab_ingress_ip"):
                return [_refusal("ingress-ip-outside-pool", str(exc))]
    return []


def lab_plan_refusals(catalogue, settings):
    """Every refusal of the run's plan, in stage order; [] when the run may go.

    ``catalogue``: lab_chapters. ``settings``: ``stages`` (the run's, of STAGES), ``chapters`` (whose apps
    and routes the run builds), ``enabled`` (lab_enabled_chapters, already on the cluster),
    ``chapters_variable`` (the name to tell the user), ``apps`` (lab_apps_catalogue), ``addons``
    (istio_addons_enabled), ``egress_gateway``, ``pool`` (metallb_address_range), ``reserved``,
    ``node_addresses`` (when read), ``ingress_ip``, ``traffic_shift_step``, ``traffic_shift_steps``,
    ``options`` ({name: value} of lab_plan_options' names, None where not set).
    """
    if not isinstance(settings, dict):
        raise AnsibleFilterError("lab_plan_refusals: settings must be a mapping")
    stages = {str(s) for s in settings.get("stages") or []}
    unknown = stages - set(STAGES)
    if unknown:
        raise AnsibleFilterError(f"lab_plan_refusals: unknown stage(s) {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(STAGES)}")
    if not stages:
        return []
    refusals = (_option_refusals(settings.get("options"), stages) + _pool_refusals(settings, stages)
                + _addon_refusals(settings, stages) + _chapter_refusals(dict(catalogue or {}), settings, stages))
    return sorted(refusals, key=lambda r: STAGES.index(r["stage"]))


class FilterModule:
    def filters(self):
        return {"lab_plan_refusals": lab_plan_refusals, "lab_plan_options": lab_plan_options}
