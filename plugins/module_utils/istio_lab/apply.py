# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apply engine of istio_gateway, istio_virtual_service,
istio_destination_rule, istio_service_entry and istio_routes (every route
kind in one task).

One task = one process = one connection: one LIST per kind and namespace
scope gives the live objects (no per-object GET), the comparison decides
what to write, the whole list is validated before the first write, and only
objects that differ are written (PUT with the live resourceVersion, retried
on 409; POST for new ones; DELETE for state=absent)."""

from __future__ import annotations

import traceback
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab import applyset
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab import client as client_module
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab import validate as validate_module
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import (
    RESOURCE_MODULE_KWARGS,
    resource_argument_spec,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import (
    POOL_SIZE,
    ApiStatusError,
    KubeError,
    client_from_params,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.normalize import (
    desired_object,
    diff_view,
    differs,
    is_managed,
    merged_object,
    view,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.resource import (
    GROUP,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    IstioResource,
    NotServed,
    list_objects,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.sources import SourceError, yaml_documents
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate import (
    POLICY_RULES,
    WARNING_RULES,
    Problem,
    SchemaValidator,
    gateway_index,
    gateway_key,
    gateway_references,
    object_problems,
    virtual_service_reference_problems,
)

# Tries of a replace that meets 409 Conflict (someone wrote in between).
CONFLICT_TRIES = 5
# Writes in flight at once (client.POOL_SIZE connections).
WRITE_WORKERS = POOL_SIZE


class ApplyFailed(KubeError):
    """Nothing (more) could be written; `problems` lists what was found."""

    def __init__(self, message, problems=()):
        super().__init__(message)
        self.problems = list(problems)


def object_definitions(params):
    """The objects a task asks for: `definitions`, each inheriting the task's
    namespace, state, labels and annotations, or the single object of the
    top-level options."""
    inherited = {key: params.get(key) for key in ("namespace", "state", "labels", "annotations")}
    if params.get("definitions") is None:
        return [{**inherited, "name": params["name"], "spec": params.get("spec")}]
    found = []
    for item in params["definitions"]:
        definition = {key: item.get(key) if item.get(key) is not None else inherited[key]
                      for key in ("namespace", "state")}
        for key in ("labels", "annotations"):
            definition[key] = {**(inherited[key] or {}), **(item.get(key) or {})}
        definition.update(name=item["name"], spec=item.get("spec"))
        found.append(definition)
    return found


class Plan:
    """What to do with one definition."""

    def __init__(self, definition, desired, live, action):
        self.definition = definition
        self.desired = desired
        self.live = live
        self.action = action  # create | update | delete | unchanged | absent
        self.stored = None

    @property
    def key(self):
        return self.definition["namespace"], self.definition["name"]


class Applier:
    """Plan, validate and write the objects of one kind. `option` names the
    module option the definitions came from (problems say `option[i]`);
    None for the single-kind modules (`definitions[i]`, or `options`)."""

    def __init__(self, client, kind, api_version, validate="strict", adopt=False, check_mode=False, option=None):
        self.client = client
        self.kind = kind
        self.resource = IstioResource(client, kind, api_version)
        self.validate = validate
        self.adopt = adopt
        self.check_mode = check_mode
        self.option = option
        self.warnings = []
        self.live = {}  # the objects the plan's LIST found, by (namespace, name)
        self._dry_run_writes = []  # writes no readable CRD schema checked

    def ref(self, key):
        return f"{self.kind} {key[0]}/{key[1]}"

    # ------------------------------------------------------------ planning

    def definition_problems(self, definitions):
        problems = []
        seen = set()
        for i, definition in enumerate(definitions):
            key = (definition.get("namespace"), definition.get("name"))
            if self.option:
                where = f"{self.option}[{i}]"
            else:
                where = f"definitions[{i}]" if len(definitions) > 1 else "options"
            if not key[0]:
                problems.append(Problem(self.ref(key), "metadata.namespace", f"{where}: namespace is required"))
            if key in seen:
                problems.append(Problem(self.ref(key), "metadata.name", f"{where}: the same object appears twice"))
            seen.add(key)
            if definition["state"] == "present" and definition.get("spec") is None:
                problems.append(Problem(self.ref(key), "spec", f"{where}: spec is required with state=present"))
        return problems

    def plan(self, definitions, extra_namespaces=()):
        """One LIST of the definitions' namespaces (and `extra_namespaces`,
        for a caller that needs more of this kind's live objects: self.live)
        decides each definition's action."""
        problems = self.definition_problems(definitions)
        if problems:
            raise ApplyFailed(self._problem_message(problems), problems)
        namespaces = {d["namespace"] for d in definitions} | set(extra_namespaces)
        try:
            live = self.live = self.resource.list(namespaces)
        except NotServed:
            if all(d["state"] == "absent" for d in definitions):
                return [Plan(d, None, None, "absent") for d in definitions]
            raise
        plans = []
        for definition in definitions:
            key = (definition["namespace"], definition["name"])
            current = live.get(key)
            if definition["state"] == "absent":
                plans.append(Plan(definition, None, current, "delete" if current else "absent"))
                continue
            desired = desired_object(self.kind, self.resource.api_version, definition["name"],
                                     definition["namespace"], definition["spec"], definition.get("labels"),
                                     definition.get("annotations"))
            if current is None:
                action = "create"
            else:
                action = "update" if differs(current, desired) else "unchanged"
            plans.append(Plan(definition, desired, current, action))
        return plans

    # ------------------------------------------------------------ validation

    def _ownership_problems(self, plans):
        problems = []
        for plan in plans:
            if plan.live is not None and plan.action in ("update", "delete") and not is_managed(plan.live):
                if self.adopt:
                    continue
                problems.append(Problem(self.ref(plan.key), f"metadata.labels[{MANAGED_BY_LABEL}]",
                                        f"exists but was not created by istio-lab (no {MANAGED_BY_LABEL}="
                                        f"{MANAGED_BY_VALUE} label): istio-lab leaves it alone; delete it, or set "
                                        "adopt: true to take it over"))
        return problems

    def _cross_object_problems(self, objects, gateways=None):
        """Gateway references of VirtualServices, against `gateways` (an
        index of gateway_index, when the caller knows them) or one LIST of
        the referenced namespaces."""
        if self.kind != "VirtualService":
            return []
        index = gateways
        if index is None:
            namespaces = referenced_gateway_namespaces(objects)
            if not namespaces:
                return []
            listed = IstioResource(self.client, "Gateway", self.resource.api_version).list(namespaces)
            index = gateway_index(listed.values())
        problems = []
        for vs in objects:
            problems += _rule(virtual_service_reference_problems, vs, index)
        return problems

    def validate_plans(self, plans):
        """Every problem of the whole list, before the first write."""
        errors = self.validation_problems(plans)
        if errors:
            raise ApplyFailed(self._problem_message(errors), errors)
        errors = self.dry_run_problems()
        if errors:
            raise ApplyFailed(self._problem_message(errors), errors)

    def validation_problems(self, plans, gateways=None):
        """Every problem of the plans (warnings go to self.warnings). Schema
        and single-object rules always fail; cross-object rules fail with
        validate=strict and warn with validate=warn or in check mode (an
        earlier task of the same check run only pretended to apply what they
        refer to). Like the API server, the rules only look at objects whose
        schema is valid. `gateways`: see _cross_object_problems. Writes no
        schema could check are left to dry_run_problems()."""
        errors = self._ownership_problems(plans)
        writes = [p for p in plans if p.action in ("create", "update")]
        malformed = set()
        validator = None
        if writes:
            # Only objects to write need the schema: an unchanged one is what
            # the server already accepted.
            schema = self.schema()
            validator = SchemaValidator(schema) if schema else None
            for plan in writes if validator else []:
                problems = validator.problems(plan.desired)
                if problems:
                    malformed.add(plan.key)
                    errors += problems
        checked = [p.desired for p in plans if p.desired is not None and p.key not in malformed]
        for obj in checked:
            for problem in _rule(object_problems, obj):
                if problem.rule in WARNING_RULES:  # istiod warns and stores it: so do the modules
                    self.warnings.append(f"{problem} (istiod warns about this too)")
                elif problem.rule in POLICY_RULES:  # istiod accepts it: say so, never refuse it
                    self.warnings.append(f"{problem} (istiod accepts this; the course's convention differs)")
                else:
                    errors.append(problem)
        cross = self._cross_object_problems(checked, gateways)
        if self.validate == "strict" and not self.check_mode:
            errors += cross
        else:
            self.warnings += [str(p) for p in cross]
        self._dry_run_writes = writes if writes and validator is None else []
        return errors

    def schema(self):
        """The kind's CRD schema, read once (read_schemas() may have read it)."""
        if not hasattr(self, "_schema"):
            self._schema = self.resource.schema()
        return self._schema

    def dry_run_problems(self):
        """No CRD schema readable (a student's credentials): let the server
        validate each write strictly without storing anything."""
        errors = []
        for plan in self._dry_run_writes:
            try:
                if plan.action == "create":
                    self.resource.create(plan.desired, dry_run=True)
                else:
                    self.resource.replace(merged_object(plan.live, plan.desired), dry_run=True)
            except ApiStatusError as exc:
                if exc.status in (400, 422):
                    errors.append(Problem(self.ref(plan.key), "spec", f"the API server refused it: {_detail(exc)}"))
                else:
                    raise
        return errors

    @staticmethod
    def _problem_message(problems):
        lines = "\n".join(f"- {p}" for p in problems)
        return f"{len(problems)} problem(s) found, nothing was written:\n{lines}"

    # ------------------------------------------------------------ writing

    def _write_failed(self, plan, exc):
        hint = ""
        if exc.status == 404 and plan.action == "create":
            hint = f" (create namespace {plan.key[0]} first)"
        return ApplyFailed(f"{self.ref(plan.key)}: the API server refused the {plan.action}: {_detail(exc)}{hint}",
                           [Problem(self.ref(plan.key), "spec", _detail(exc))])

    def _replace(self, plan, live):
        for _attempt in range(CONFLICT_TRIES):
            try:
                return self.resource.replace(merged_object(live, plan.desired))
            except ApiStatusError as exc:
                if exc.status != 409:
                    raise
            live = self.resource.get(*plan.key)
            if live is None:
                return self.resource.create(plan.desired)
            if not is_managed(live) and not self.adopt:
                refused = [Plan(plan.definition, None, live, "update")]
                raise ApplyFailed(self._problem_message(self._ownership_problems(refused)))
            if not differs(live, plan.desired):
                plan.action = "unchanged"
                return live
        raise ApplyFailed(f"{self.ref(plan.key)}: kept conflicting with other writers after {CONFLICT_TRIES} tries;"
                          " run the task again")

    def _create(self, plan):
        try:
            return self.resource.create(plan.desired)
        except ApiStatusError as exc:
            if exc.status != 409:
                raise
        # Created by someone else since our LIST: update it like any other.
        live = self.resource.get(*plan.key)
        if live is None:  # and deleted again: create it
            return self.resource.create(plan.desired)
        if not is_managed(live) and not self.adopt:
            refused = [Plan(plan.definition, None, live, "update")]
            raise ApplyFailed(self._problem_message(self._ownership_problems(refused)))
        plan.action = "update"
        return self._replace(plan, live)

    def _write(self, plan):
        """One object's write; ApplyFailed when the server refuses it."""
        try:
            if plan.action == "create":
                plan.stored = self._create(plan)
            elif plan.action == "update":
                plan.stored = self._replace(plan, plan.live)
            else:
                if not self.resource.delete(*plan.key):
                    plan.action = "absent"
                plan.stored = None
        except ApiStatusError as exc:
            if exc.status in (400, 404, 422):
                raise self._write_failed(plan, exc) from None
            raise

    def execute(self, plans, written_before=0):
        """Write what differs, a few objects at a time over the shared
        connection pool (the API server's latency, not our CPU, is what a
        first run of a classroom waits for). Every write is attempted; the
        first failure in input order is raised afterwards, counting the
        objects written (with `written_before`, those of earlier calls of
        the same task). Returns the number of objects written."""
        writes = []
        for plan in plans:
            if plan.action in ("unchanged", "absent"):
                plan.stored = plan.live
            elif self.check_mode:
                plan.stored = None if plan.action == "delete" else (
                    plan.desired if plan.action == "create" else merged_object(plan.live, plan.desired))
            else:
                writes.append(plan)
        if not writes:
            return 0
        with ThreadPoolExecutor(max_workers=min(WRITE_WORKERS, len(writes))) as pool:
            futures = [pool.submit(self._write, plan) for plan in writes]
        failures = [f.exception() for f in futures if f.exception() is not None]
        written = sum(1 for f in futures if f.exception() is None)
        if failures:
            written += written_before
            first = failures[0]
            if isinstance(first, ApplyFailed):
                raise ApplyFailed(f"{first} ({written} other object(s) of this task were written; run the task "
                                  "again once fixed)", first.problems)
            raise first
        return written


def referenced_gateway_namespaces(virtual_services):
    """Namespaces of the Gateways the VirtualServices name (not `mesh`)."""
    namespaces = set()
    for vs in virtual_services:
        for _field, reference in _rule(gateway_references, vs) or []:
            key = gateway_key(reference, vs["metadata"]["namespace"])
            if key:
                namespaces.add(key[0])
    return namespaces


def _rule(check, obj, *args):
    """Run one Istio rule; a field of the wrong type (possible only when the
    CRD schema could not be read) is left to the server's dry run to name."""
    try:
        return check(obj, *args)
    except (AttributeError, TypeError, KeyError):
        return []


PAST_TENSE = {"create": "created", "update": "updated", "delete": "deleted", "unchanged": "unchanged",
              "absent": "absent"}


def _changed(plan):
    return plan.action in ("create", "update", "delete")


def _row(plan):
    return {"name": plan.key[1], "namespace": plan.key[0], "action": PAST_TENSE[plan.action]}


def _diff(applier, plan):
    return {"before": diff_view(plan.live), "after": diff_view(plan.stored),
            "before_header": applier.ref(plan.key), "after_header": applier.ref(plan.key)}


def _detail(exc):
    body = exc.body if isinstance(exc.body, dict) else {}
    return body.get("message") or str(exc)


def apply(client, kind, params, check_mode=False, want_diff=False):
    """Apply a task's objects; the module's result (without api_requests)."""
    definitions = object_definitions(params)
    listed = params.get("definitions") is not None
    if not definitions:  # an empty list: nothing to do, not even a request
        return {"changed": False, "warnings": [], "results": [], **({"diff": []} if want_diff else {})}
    applier = Applier(client, kind, params.get("api_version") or "", params.get("validate", "strict"),
                      params.get("adopt", False), check_mode)
    plans = applier.plan(definitions)
    if any(p.action != "absent" for p in plans):
        applier.validate_plans(plans)
    applier.execute(plans)
    changed = any(_changed(p) for p in plans)
    results = [_row(plan) for plan in plans]
    diffs = [_diff(applier, plan) for plan in plans if _changed(plan) or not listed]
    result = {"changed": changed, "warnings": applier.warnings}
    if listed:
        result["results"] = results
        if want_diff:
            result["diff"] = diffs
    else:
        result["result"] = view(plans[0].stored)
        # `action` is a key Ansible itself sets in every task result (the module name)
        result["operation"] = results[0]["action"]
        if want_diff:
            result["diff"] = diffs[0]
    return result


# istio_routes' options, in dependency order: a ServiceEntry adds the
# external hosts routes and rules may name (and that an egress Gateway
# admits) to the mesh's registry, a VirtualService names Gateways, and
# DestinationRules take effect for the hosts routes send to.
ROUTE_KINDS = (("service_entries", "ServiceEntry"), ("gateways", "Gateway"),
               ("virtual_services", "VirtualService"), ("destination_rules", "DestinationRule"))


def definitions_from_files(paths):
    """The Istio objects of YAML files (or directories of them), as `definitions` entries by kind."""
    kinds = {kind for _option, kind in ROUTE_KINDS}
    found = {}
    try:
        for path, i, doc in yaml_documents(paths):
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            if not isinstance(meta, dict) or doc.get("kind") not in kinds or not meta.get("name"):
                raise KubeError(f"src: document {i} of {path} is not an Istio object of kind "
                                f"{', '.join(sorted(kinds))} with metadata.name")
            found.setdefault(doc["kind"], []).append({
                "name": meta["name"], "namespace": meta.get("namespace"), "spec": doc.get("spec"),
                "labels": meta.get("labels"), "annotations": meta.get("annotations"), "state": "present"})
    except SourceError as exc:
        raise KubeError(str(exc)) from None
    return found


def _gateways_after(live, plans):
    """gateway_index of the Gateways as they will be once the task ran: the
    live ones, with the task's own Gateways created, updated or removed."""
    gateways = dict(live)
    for plan in plans:
        if plan.desired is None:
            gateways.pop(plan.key, None)
        else:
            gateways[plan.key] = plan.desired
    return gateway_index(gateways.values())


class RouteSets:
    """istio_routes' owned sets (applyset.py): each definition's set is
    `applyset`, or with `applyset_label` `<applyset>-<its value of that
    label>` (the chapters: chapter-1, chapter-2...). The parents are read in
    one request; the members found in the LISTs the task makes anyway
    (widened to the namespaces the parents record, one LIST per kind)."""

    def __init__(self, client, params, check_mode):
        self.base = params.get("applyset")
        self.by_label = params.get("applyset_label")
        prune = params.get("prune")
        self.prune = prune if prune is not None else True
        # The sets of this base the task names no object of (a chapter no longer enabled) go whole.
        self.prune_others = bool(params.get("prune_other_sets") and self.by_label and self.prune)
        self.parents = applyset.Parents(client, {MANAGED_BY_LABEL: MANAGED_BY_VALUE}, check_mode)
        self.members = {}  # set name -> [(kind, definition)]
        self.dropped = {}  # set name -> parent, of the sets the task names no object of (prune_other_sets)

    def assign(self, definitions):
        """Each definition's set, its set label added to the present ones;
        problems for a definition without the label that names its set."""
        problems = []
        for kind, found in definitions.items():
            for definition in found:
                value = (definition.get("labels") or {}).get(self.by_label) if self.by_label else ""
                if self.by_label and not value:
                    problems.append(Problem(f"{kind} {definition.get('namespace')}/{definition.get('name')}",
                                            "metadata.labels", f"applyset_label: the object has no label "
                                            f"{self.by_label}, which names its set"))
                    continue
                name = f"{self.base}-{value}" if value else self.base
                self.members.setdefault(name, []).append((kind, definition))
                if definition["state"] == "present":
                    definition["labels"] = {**(definition.get("labels") or {}), applyset.PART_OF: applyset.set_id(name)}
        return problems

    def read(self):
        refused = self.parents.read(self.members, f"{self.base}-" if self.prune_others else "")
        if refused:
            raise ApplyFailed("; ".join(refused) + ": istio-lab will not record its sets there; nothing was written")
        for name in self.parents.others:  # no member is asked: all of them are pruned, then the parent deleted
            self.members[name] = []
            self.dropped[name] = self.parents.live[name]

    def recorded_namespaces(self):
        return set().union(*(self.parents.recorded(name)[1] for name in self.members)) if self.prune else set()

    def recorded_kinds(self):
        kinds = set()
        for name in self.members:
            kinds |= {kind for group, kind in self.parents.recorded(name)[0] if group == GROUP}
        return kinds if self.prune else set()

    def _present(self, name):
        present = [(kind, d) for kind, d in self.members[name] if d["state"] == "present"]
        return {(GROUP, kind) for kind, _d in present}, {d["namespace"] for _kind, d in present}

    def record_before(self):
        """KEP-3659: new kinds and namespaces recorded before they are applied."""
        for name in sorted(self.members):
            kinds, namespaces = self._present(name)
            old_kinds, old_namespaces = self.parents.recorded(name)
            if kinds and (self.parents.live.get(name) is None or not kinds <= old_kinds or
                          not namespaces <= old_namespaces):
                self.parents.write(name, kinds | old_kinds, namespaces | old_namespaces)

    def record_after(self):
        for name in sorted(self.members):
            kinds, namespaces = self._present(name)
            if not self.prune:
                old_kinds, old_namespaces = self.parents.recorded(name)
                kinds, namespaces = kinds | old_kinds, namespaces | old_namespaces
            if kinds:
                self.parents.write(name, kinds, namespaces)
            else:
                self.parents.delete(name)

    def candidates(self, kind, live):
        """The members of the task's sets of this kind that left them."""
        ids = {applyset.set_id(name) for name in self.members}
        asked = {(d["namespace"], d["name"]) for name in self.members for k, d in self.members[name] if k == kind}
        return [key for key, obj in sorted(live.items())
                if key not in asked and ((obj.get("metadata") or {}).get("labels") or {}).get(applyset.PART_OF) in ids
                and not applyset.terminating(obj)]


def _prune_routes(sets, appliers, kinds, check_mode, result, want_diff):
    """Delete the members that left the task's sets, in reverse dependency
    order (DestinationRules first, ServiceEntries last)."""
    for kind in reversed([k for _option, k in ROUTE_KINDS]):
        applier = appliers.get(kind)
        if applier is None:
            continue
        for key in sets.candidates(kind, applier.live):
            if not check_mode:
                applier.resource.delete(*key)
            obj = applier.live[key]
            result["changed"] = True
            result["pruned"].append({"kind": kind, "api_version": obj.get("apiVersion", ""), "namespace": key[0],
                                     "name": key[1], "action": "deleted",
                                     "ref": applyset.ref((GROUP, kind, key[0], key[1]))})
            if want_diff:
                result["diff"].append({"before": diff_view(obj), "after": {},
                                       "before_header": applier.ref(key) + " (pruned)", "after_header": "(deleted)"})


def apply_routes(client, params, check_mode=False, want_diff=False):
    """istio_routes: ServiceEntries, Gateways, VirtualServices and
    DestinationRules of one task, one LIST per kind (the Gateway LIST also
    serves the VirtualServices' gateway references, and the task's own
    Gateways count as they will be), every object of every kind validated
    before the first write. Creates and updates go in dependency order
    (ROUTE_KINDS: ServiceEntries, Gateways, VirtualServices,
    DestinationRules), then deletions in reverse order, so that nothing is
    left referring to an object not yet written or already removed. The
    module's result (without api_requests)."""
    options = {kind: option for option, kind in ROUTE_KINDS}
    from_files = definitions_from_files(params.get("src") or [])
    definitions = {kind: object_definitions({**params, "definitions": (params.get(option) or [])
                                             + from_files.get(kind, [])})
                   for option, kind in ROUTE_KINDS}
    kinds = [kind for _option, kind in ROUTE_KINDS if definitions[kind]]
    result = {"changed": False, "warnings": [], "results": [], **({"diff": []} if want_diff else {})}
    if not kinds and not (params.get("applyset") and params.get("prune_other_sets")):
        return result  # nothing asked: not even a request
    appliers = {kind: Applier(client, kind, params.get("api_version") or "", params.get("validate", "strict"),
                              params.get("adopt", False), check_mode, options[kind]) for kind in kinds}
    problems = [p for kind in kinds for p in appliers[kind].definition_problems(definitions[kind])]
    sets = RouteSets(client, params, check_mode) if params.get("applyset") else None
    if sets is not None and not problems:
        problems = sets.assign(definitions)
    if problems:
        raise ApplyFailed(Applier._problem_message(problems), problems)
    extra = set()
    if sets is not None:
        sets.read()
        extra = sets.recorded_namespaces()
        result.update(pruned=[], applysets=[])

    plans = {}
    if "ServiceEntry" in appliers:
        plans["ServiceEntry"] = appliers["ServiceEntry"].plan(definitions["ServiceEntry"], extra)
    if "VirtualService" in appliers:
        plans["VirtualService"] = appliers["VirtualService"].plan(definitions["VirtualService"], extra)
    gateways = None  # the VirtualServices' check lists the Gateways itself
    if "Gateway" in appliers:
        referenced = referenced_gateway_namespaces(p.desired for p in plans.get("VirtualService", [])
                                                   if p.desired is not None)
        plans["Gateway"] = appliers["Gateway"].plan(definitions["Gateway"], referenced | extra)
        gateways = _gateways_after(appliers["Gateway"].live, plans["Gateway"])
    if "DestinationRule" in appliers:
        plans["DestinationRule"] = appliers["DestinationRule"].plan(definitions["DestinationRule"], extra)
    # A kind a set recorded that the task no longer applies: one LIST to find its members.
    lost = {} if sets is None else {
        kind: Applier(client, kind, params.get("api_version") or "", check_mode=check_mode, option=options[kind])
        for kind in sets.recorded_kinds() - set(kinds) if kind in options}
    for applier in lost.values():
        applier.plan([], extra)

    active = [kind for kind in kinds if any(p.action != "absent" for p in plans[kind])]
    read_schemas([appliers[kind] for kind in active if any(p.action in ("create", "update") for p in plans[kind])])
    problems = [p for kind in active for p in appliers[kind].validation_problems(plans[kind], gateways)]
    if not problems:
        problems = [p for kind in active for p in appliers[kind].dry_run_problems()]
    if problems:
        raise ApplyFailed(Applier._problem_message(problems), problems)
    if params.get("check_services") and "VirtualService" in plans:
        _check_services(client, plans["VirtualService"], check_mode, result["warnings"])

    if sets is not None:
        sets.record_before()
    written = 0
    for kind in kinds:
        written += appliers[kind].execute([p for p in plans[kind] if p.action != "delete"], written)
    for kind in reversed(kinds):
        written += appliers[kind].execute([p for p in plans[kind] if p.action == "delete"], written)
    # Pruning only once every write of the task succeeded (a failure raised above).
    if sets is not None:
        if sets.prune:
            _prune_routes(sets, {**lost, **appliers}, kinds, check_mode, result, want_diff)
        sets.record_after()
        if want_diff:
            result["diff"] += [{"before": diff_view(parent), "after": {}, "after_header": "(deleted)",
                                "before_header": f"ConfigMap {applyset.PARENT_NAMESPACE}/{applyset.parent_name(name)} "
                                                 f"(parent of the pruned set {name})"}
                               for name, parent in sorted(sets.dropped.items())]
        result["applysets"] = [sets.parents.result(name) for name in sorted(sets.members)]
        result["changed"] = result["changed"] or bool(sets.parents.actions)

    for kind in kinds:
        result["warnings"] += appliers[kind].warnings
        for plan in plans[kind]:
            result["changed"] = result["changed"] or _changed(plan)
            result["results"].append({"kind": kind, **_row(plan)})
            if want_diff and _changed(plan):
                result["diff"].append(_diff(appliers[kind], plan))
    return result


def read_schemas(appliers):
    """Read the CRD schemas of the kinds to write all at once, while this
    thread imports the schema validator: a first run then waits one round
    trip for them instead of one per kind, and the import overlaps it."""
    if not appliers:
        return
    with ThreadPoolExecutor(max_workers=len(appliers)) as pool:
        futures = [pool.submit(applier.schema) for applier in appliers]
        validate_module.load_validator()
    for future in futures:
        future.result()  # the first failure, as a sequential read would raise it


def _check_services(client, plans, check_mode, warnings):
    """Refuse, before any write, VirtualServices that route to a Service or
    port that does not exist (one LIST of the Services' namespaces). In check
    mode an earlier stage only pretended to create its Services: warn."""
    # imported here: only check_services needs the route table's code, and
    # every module process compiles what it imports (AnsiballZ ships sources)
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.routes import (
        missing_service_messages,
        service_destinations,
    )

    destinations = service_destinations(p.desired for p in plans if p.desired is not None)
    if not destinations:
        return
    services = list_objects(client, "/api/v1", "services", {d["namespace"] for d in destinations}, "Service")
    messages = missing_service_messages(destinations, services)
    if not messages:
        return
    if check_mode:
        warnings.append(f"A real run would refuse: {'; '.join(messages)}.")
        return
    problems = [Problem(f"VirtualService {m.split()[1]}", "spec", m) for m in messages]
    raise ApplyFailed(f"Nothing was written: {'; '.join(messages)}.", problems)


def check_libraries(module):
    if not client_module.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=repr(client_module.KUBERNETES_IMPORT_ERROR))
    if not validate_module.HAS_JSONSCHEMA:
        module.fail_json(msg=missing_required_lib("jsonschema"))


def run_guarded(module, work):
    """The body of every istio-lab module's main(): `work(client)` returns the
    result; every failure becomes fail_json with a message that says what to
    do, and the result always carries the requests made (api_requests)."""
    check_libraries(module)
    client = None
    try:
        client = client_from_params(module.params, light_imports=True)
        result = work(client)
    except ApplyFailed as exc:
        module.fail_json(msg=str(exc), problems=[p.as_dict() for p in exc.problems],
                         api_requests=client.counts if client else {})
    except KubeError as exc:
        module.fail_json(msg=str(exc), api_requests=client.counts if client else {})
    except Exception as exc:  # noqa: BLE001 -- report, with the traceback, instead of a bare crash
        module.fail_json(msg=f"unexpected error: {exc}", exception=traceback.format_exc(),
                         api_requests=client.counts if client else {})
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(api_requests=client.counts, **result)


def run_resource_module(module_class, kind):
    """main() of the single-kind resource modules (istio_gateway, istio_virtual_service, istio_destination_rule,
    istio_service_entry): their one argument spec, then one object kind applied. The module passes its
    AnsibleModule class, so that the module file imports it as ansible-test's validate-modules looks for."""
    module = module_class(argument_spec=resource_argument_spec(), **RESOURCE_MODULE_KWARGS)
    run_guarded(module, lambda client: apply(client, kind, module.params, module.check_mode, module._diff))


def run_routes_module(module):
    """main() of istio_routes."""
    run_guarded(module, lambda client: apply_routes(client, module.params, module.check_mode, module._diff))
