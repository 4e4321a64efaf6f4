"""Classroom filters: the address plan, its check, per-student host names and
the classroom inventory built from a roster.

Address plan
------------
A subnet's address ranges (CIDRs or ``first-last`` ranges, in the order the
instructor lists them) are cut into fixed blocks of ``pool_size`` consecutive
addresses. A block's index (its *slot*) never changes as long as ranges are
only appended. Each student owns one slot: their MetalLB pool is the block and
their pinned ingress IP its first address.

Slots are assigned once and recorded in a plan (``address-plan.yml`` next to
the generated inventory). On regeneration the recorded slots are kept as they
are; only students without a slot get one (the lowest free slot, new students
taken in id order). So adding a student never moves anyone, even when the new
id sorts first, and removing one frees only their own slot. Blocks that touch a
node address (or any reserved address) are never handed out; a node address
appearing inside an already assigned block is refused rather than silently
moving that student.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re
from datetime import UTC, datetime

import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.check_files import exercise_columns, read_checks
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.record import parse_record

DEFAULT_SUBNET = "default"
# Resolved by Ansible when it reads the generated inventory: next to hosts.yml.
KUBECONFIG_DIR_DEFAULT = "{{ inventory_dir }}/kubeconfigs"
STUDENT_ID_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")


def _load_lab_addresses():
    """The platform's range parser (plugins/filter/lab_addresses.py): one parser for the whole project."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lab_addresses.py")
    spec = importlib.util.spec_from_file_location("istio_lab_filter_lab_addresses", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lab_addresses = _load_lab_addresses()


def parse_address_range(text, name="address range"):
    """(first, last) ipaddress objects of a CIDR, a `first-last` range or a single address.

    The platform's parser with the classroom's semantics: a CIDR leaves out its
    network and broadcast addresses (IPv4), which are not addresses to hand a
    student as an ingress IP (``cidr="hosts"``), and a bare address is a range
    of one (``single=True``).
    """
    parsed = lab_addresses.lab_address_range(text, name, cidr="hosts", single=True)
    return ipaddress.ip_address(parsed["first"]), ipaddress.ip_address(parsed["last"])


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _reserved_intervals(reserved):
    return [tuple(int(a) for a in parse_address_range(item, "reserved address")) for item in _as_list(reserved)]


def _overlaps(first, last, intervals):
    return [interval for interval in intervals if first <= interval[1] and interval[0] <= last]


def _subnet_blocks(ranges, pool_size):
    """Every block of a subnet, in slot order: list of (first_int, last_int, version)."""
    blocks = []
    for text in _as_list(ranges):
        first, last = parse_address_range(text, "classroom address range")
        start, end = int(first), int(last)
        while start + pool_size - 1 <= end:
            blocks.append((start, start + pool_size - 1, first.version))
            start += pool_size
    return blocks


def _address(number, version):
    return str(ipaddress.IPv4Address(number) if version == 4 else ipaddress.IPv6Address(number))


def _normalise_students(students):
    """Students as [{'id', 'subnet'}] from ids or dicts; ids checked and unique."""
    result, seen = [], set()
    for student in _as_list(students):
        entry = {"id": student} if isinstance(student, str) else dict(student)
        student_id = str(entry.get("id", "")).strip()
        if not STUDENT_ID_PATTERN.match(student_id):
            raise AnsibleFilterError(
                f"student id {student_id!r}: use lowercase letters, digits and '-' (it becomes a host and DNS name)"
            )
        if student_id in seen:
            raise AnsibleFilterError(f"student id {student_id!r} appears twice in the roster")
        seen.add(student_id)
        result.append({"id": student_id, "subnet": str(entry.get("subnet") or "").strip()})
    return result


def address_plan(students, ranges, pool_size=4, reserved=None, previous=None):
    """Give every student a MetalLB pool and an ingress IP; see the module docstring.

    students: ids, or dicts {id, subnet}. ranges: one range, a list of ranges
    (one subnet), or {subnet: range or list}. reserved: node (and other) addresses
    or ranges that no pool may touch. previous: the recorded plan
    ({id: {subnet, slot, ...}}) whose slots are kept.
    Returns {id: {subnet, slot, address_range, ingress_ip}}.
    """
    pool_size = int(pool_size)
    if pool_size < 1:
        raise AnsibleFilterError(f"pool size {pool_size}: each student needs at least one address")
    subnet_ranges = dict(ranges) if isinstance(ranges, dict) else {DEFAULT_SUBNET: ranges}
    if not subnet_ranges or not any(_as_list(value) for value in subnet_ranges.values()):
        raise AnsibleFilterError("no classroom address range given")
    reserved_intervals = _reserved_intervals(reserved)
    blocks = {name: _subnet_blocks(value, pool_size) for name, value in subnet_ranges.items()}
    previous = previous or {}

    roster = _normalise_students(students)
    for student in roster:
        if not student["subnet"]:
            if len(subnet_ranges) != 1:
                raise AnsibleFilterError(
                    f"student {student['id']}: name a subnet, one of {sorted(subnet_ranges)}"
                )
            student["subnet"] = next(iter(subnet_ranges))
        if student["subnet"] not in subnet_ranges:
            raise AnsibleFilterError(
                f"student {student['id']}: unknown subnet {student['subnet']!r} (known: {sorted(subnet_ranges)})"
            )

    slots = {}
    taken = {name: set() for name in subnet_ranges}
    # Keep every recorded slot first, so that nobody already placed ever moves.
    for student in roster:
        recorded = previous.get(student["id"])
        if not recorded or recorded.get("subnet", DEFAULT_SUBNET) != student["subnet"]:
            continue
        slot = int(recorded["slot"])
        subnet_blocks = blocks[student["subnet"]]
        if slot >= len(subnet_blocks):
            raise AnsibleFilterError(
                f"student {student['id']}: recorded slot {slot} lies outside subnet {student['subnet']}'s ranges"
                " (ranges may only be appended to)"
            )
        first, last, _version = subnet_blocks[slot]
        clash = _overlaps(first, last, reserved_intervals)
        if clash:
            raise AnsibleFilterError(
                f"student {student['id']}: a reserved/node address now lies in their pool"
                f" {recorded.get('address_range', slot)}; free it or move the student by removing them from the plan"
            )
        slots[student["id"]] = slot
        taken[student["subnet"]].add(slot)

    # New students (and students who changed subnet) take the lowest free usable slot, in id order.
    for student in sorted(roster, key=lambda item: item["id"]):
        if student["id"] in slots:
            continue
        subnet_blocks = blocks[student["subnet"]]
        for slot, (first, last, _version) in enumerate(subnet_blocks):
            if slot not in taken[student["subnet"]] and not _overlaps(first, last, reserved_intervals):
                break
        else:
            usable = sum(1 for first, last, _v in subnet_blocks if not _overlaps(first, last, reserved_intervals))
            wanted = sum(1 for item in roster if item["subnet"] == student["subnet"])
            listed = ", ".join(_as_list(subnet_ranges[student["subnet"]]))
            raise AnsibleFilterError(
                f"address range too small: subnet {student['subnet']} ({listed})"
                f" holds {usable} usable pools of {pool_size} addresses, {wanted} students need one each"
            )
        slots[student["id"]] = slot
        taken[student["subnet"]].add(slot)

    plan = {}
    for student in roster:
        first, last, version = blocks[student["subnet"]][slots[student["id"]]]
        plan[student["id"]] = {
            "subnet": student["subnet"],
            "slot": slots[student["id"]],
            "address_range": f"{_address(first, version)}-{_address(last, version)}",
            "ingress_ip": _address(first, version),
        }
    return plan


def plan_problems(labs, reserved=None):
    """Everything wrong with a classroom's addresses, as sentences (empty: fine).

    labs: [{name, address_range, ingress_ip, cluster}]. Labs with the same
    non-empty `cluster` (shared-cluster mode) may share one pool; any other two
    pools must not overlap. Every ingress IP must lie in its own pool, and no
    pool may contain a reserved/node address.
    """
    problems, parsed = [], []
    reserved_intervals = []
    for item in _as_list(reserved):
        try:
            reserved_intervals.append((item, *(int(a) for a in parse_address_range(item, "reserved address"))))
        except AnsibleFilterError as exc:
            problems.append(f"node/reserved address: {exc}")
    for lab in labs:
        name = lab.get("name")
        try:
            first, last = (int(a) for a in parse_address_range(lab.get("address_range"), "metallb_address_range"))
        except AnsibleFilterError as exc:
            problems.append(f"{name}: {exc}")
            continue
        ingress = lab.get("ingress_ip")
        if ingress:
            try:
                if not first <= int(ipaddress.ip_address(ingress)) <= last:
                    problems.append(f"{name}: lab_ingress_ip {ingress} is outside its pool {lab['address_range']}")
            except ValueError:
                problems.append(f"{name}: lab_ingress_ip {ingress!r} is not an IP address")
        for text, low, high in reserved_intervals:
            if first <= high and low <= last:
                problems.append(f"{name}: pool {lab['address_range']} contains node/reserved address {text}")
        for other in parsed:
            same_cluster = lab.get("cluster") and lab.get("cluster") == other["cluster"]
            if first <= other["last"] and other["first"] <= last and not same_cluster:
                problems.append(
                    f"{name}: pool {lab['address_range']} overlaps {other['name']}'s pool {other['address_range']}"
                )
        parsed.append(
            {"name": name, "first": first, "last": last, "cluster": lab.get("cluster"),
             "address_range": lab["address_range"]}
        )
    return problems


def student_lab_domain(student, domain, style="subdomain", ingress_ip=""):
    """The domain a student's host names hang from: `<student>.<domain>`, or `<ip>.nip.io`."""
    if style == "subdomain":
        return f"{student}.{domain}"
    if style == "nip.io":
        if not ingress_ip:
            raise AnsibleFilterError(f"student {student}: nip.io host names need an ingress IP")
        return f"{ingress_ip}.nip.io"
    raise AnsibleFilterError(f"host name style {style!r}: use 'subdomain' or 'nip.io'")


def _parse_machines(student_id, text):
    """`cp=192.0.2.10 w1=192.0.2.11` (or bare addresses): [(node name, address)], control plane first."""
    machines = []
    for index, token in enumerate(re.split(r"[\s;]+", (text or "").strip())):
        if not token:
            continue
        label, _sep, address = token.rpartition("=")
        label = label or f"node{index + 1}"
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise AnsibleFilterError(f"student {student_id}: machine {token!r} is not name=address") from None
        machines.append((f"{student_id}-{label}", address))
    return machines


def roster_node_addresses(roster):
    """Every machine address the roster lists (they are reserved: no pool may use them)."""
    return [address for row in roster for _name, address in _parse_machines(row.get("id", ""), row.get("machines"))]


def classroom_inventory(roster, plan, settings):
    """The classroom inventory (a dict for to_nice_yaml) from the roster rows and the plan.

    settings: mode (per-student|shared), domain, host_style (subdomain|nip.io),
    provider (kubeadm|k3s, for students given machines), kubeconfig_dir (where
    built clusters' kubeconfigs land), shared_kubeconfig/shared_context,
    shared_address_range, shared_ingress_ip, node_user.
    One group per student (`class_<id>`) holds the lab host `<id>` and its
    machines, so `--limit <id>` picks exactly that lab.
    """
    mode = settings.get("mode", "per-student")
    labs, control_plane, workers, student_groups = {}, {}, {}, {}
    for row in roster:
        student_id = str(row.get("id", "")).strip()
        lab = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "classroom_student_id": student_id,
            "classroom_student_name": str(row.get("name", "")).strip(),
        }
        members = {student_id: {}}
        if mode == "shared":
            ingress_ip = settings.get("shared_ingress_ip", "")
            lab.update(
                cluster_provider="existing",
                lab_kubeconfig=settings["shared_kubeconfig"],
                lab_kube_context=settings.get("shared_context", ""),
                metallb_address_range=settings["shared_address_range"],
                lab_ingress_ip=ingress_ip,
                classroom_shared_cluster=True,
                classroom_namespace=f"{settings.get('namespace_prefix', 'lab-')}{student_id}",
            )
        else:
            entry = plan[student_id]
            ingress_ip = entry["ingress_ip"]
            lab.update(metallb_address_range=entry["address_range"], lab_ingress_ip=ingress_ip)
            machines = _parse_machines(student_id, row.get("machines"))
            kubeconfig = str(row.get("kubeconfig") or "").strip()
            if kubeconfig and machines:
                raise AnsibleFilterError(f"student {student_id}: give either a kubeconfig or machines, not both")
            if kubeconfig:
                lab.update(cluster_provider="existing", lab_kubeconfig=kubeconfig,
                           lab_kube_context=str(row.get("context") or "").strip())
            elif machines:
                lab.update(
                    cluster_provider=str(row.get("provider") or settings.get("provider", "k3s")).strip(),
                    lab_kubeconfig=f"{settings.get('kubeconfig_dir') or KUBECONFIG_DIR_DEFAULT}/{student_id}.yaml",
                    lab_kube_context="",
                )
                for position, (name, address) in enumerate(machines):
                    # cluster_lab: the lab this node's cluster serves (cluster.yml builds one cluster per lab).
                    node = {"ansible_host": address, "cluster_lab": student_id}
                    if settings.get("node_user"):
                        node["ansible_user"] = settings["node_user"]
                    (control_plane if position == 0 else workers)[name] = node
                    members[name] = {}
            else:
                raise AnsibleFilterError(f"student {student_id}: the roster gives neither a kubeconfig nor machines")
        lab["lab_domain"] = student_lab_domain(
            student_id, settings.get("domain", "kubernets.cn"), settings.get("host_style", "subdomain"), ingress_ip
        )
        labs[student_id] = lab
        student_groups[f"class_{student_id}"] = {"hosts": members}

    children = {"labs": {"hosts": labs}}
    if control_plane:
        children["kube_control_plane"] = {"hosts": control_plane}
    if workers:
        children["kube_workers"] = {"hosts": workers}
    children.update(student_groups)
    return {"all": {"children": children}}


def unconfirmed_deployments(expected, waited):
    """The expected Deployments ({namespace, name}) that this run's stages did not see rolled out: only those need
    reading again. waited: `lab_waited_deployments`, the rows (kind, namespace, name, ready) of what the stages
    waited for, each appending its own."""
    confirmed = {(row.get("namespace"), row.get("name"))
                 for row in waited or [] if isinstance(row, dict)
                 if row.get("kind") == "Deployment" and row.get("ready")}
    return [wanted for wanted in expected if (wanted["namespace"], wanted["name"]) not in confirmed]


def platform_versions(objects, records):
    """A lab's platform versions from the objects the status probe read (records among them; one missing reads null).

    records: [platform record, Istio install record] as {namespace, name}: the ConfigMaps istio-lab/istio-lab-record
    (site.yml and upgrade.yml write it) and istio-system/istio-lab-install (the Istio role's, the fallback for a lab
    built before the record existed). Returns {source, istio, istio_revisions, metallb, addons, tooling, updated_at}
    as text: source is `record`, `install` (Istio's version only) or `` (neither found); a value the source lacks is
    ``. The record is parsed as the upgrade parses it (module_utils/istio_lab/record.py).
    """
    found = {}
    for item in objects or []:
        if isinstance(item, dict) and item.get("kind", "ConfigMap") == "ConfigMap":
            meta = item.get("metadata") or {}
            found[(meta.get("namespace"), meta.get("name"))] = item
    record, install = ((found.get((wanted["namespace"], wanted["name"])) if wanted else None)
                       for wanted in (list(records or []) + [None, None])[:2])
    parsed = parse_record(record, install)
    revisions = parsed["istio_revisions"] if parsed["source"] == "record" else []
    return {"source": parsed["source"], "istio": parsed["istio_version"], "istio_revisions": ",".join(revisions),
            "metallb": parsed["metallb_version"], "addons": ",".join(parsed["addons"]), "tooling": parsed["tooling"],
            "updated_at": parsed["updated_at"]}


def unready_deployments(expected, info_results):
    """Which of the expected Deployments ({namespace, name}) are missing or not fully ready.

    info_results: the `results` of a looped k8s_info on Deployments. Returns
    sentences such as "istio-system/istiod: 0/1 ready".
    """
    found = {}
    for result in info_results or []:
        for item in result.get("resources") or []:
            meta = item.get("metadata", {})
            found[(meta.get("namespace"), meta.get("name"))] = item
    problems = []
    for wanted in expected:
        key = (wanted["namespace"], wanted["name"])
        label = f"{key[0]}/{key[1]}"
        item = found.get(key)
        if item is None:
            problems.append(f"{label}: missing")
            continue
        wanted_replicas = item.get("spec", {}).get("replicas", 1)
        ready = (item.get("status") or {}).get("readyReplicas", 0) or 0
        if ready < wanted_replicas:
            problems.append(f"{label}: {ready}/{wanted_replicas} ready")
    return problems


def status_rows(labs, build_run=False, report_dir=None):
    """One status-page row per lab from what the run learnt about it.

    labs: [{student, name, built, probe, routes}] where probe is the lab's
    classroom_status_row (absent when the lab dropped out of the run), routes
    its lab_verify_report (absent when verification did not run). build_run:
    the labs were being built in this run, so a lab without a probe failed.
    report_dir: where check.yml wrote each lab's exercise checks (<lab>/check-<chapter>.json).
    Each row: student, name, state (healthy|unhealthy|failed), reachable
    (yes|no|unknown), platform (ready or the problems), routes, problems, versions (platform_versions),
    exercises (module_utils check_files.read_checks: [] when no check ran).
    """
    rows = []
    for lab in sorted(labs, key=lambda item: item["student"]):
        probe = lab.get("probe") or None
        routes = [
            {
                "chapter": str(route.get("chapter", "")),
                "host": route.get("host") or "",
                "url": route.get("url", ""),
                "expected": route.get("expected_status"),
                "status": route.get("status"),
                "ok": bool(route.get("ok")),
                "explanation": route.get("explanation") or "",
            }
            for route in (lab.get("routes") or [])
        ]
        problems = []
        if probe is None:
            reachable, platform = "unknown", "unknown"
            problems.append("the lab failed during this run" if build_run and not lab.get("built") else "not probed")
        else:
            reachable = "yes" if probe.get("reachable") else "no"
            if not probe.get("reachable"):
                problems.append(f"API unreachable: {probe.get('error') or 'no answer'}")
                platform = "unknown"
            else:
                platform = "ready" if not probe.get("platform_problems") else "; ".join(probe["platform_problems"])
                if probe.get("platform_problems"):
                    problems.append("platform not ready")
        if lab.get("routes") is None:
            problems.append("routes not verified")
        problems += [f"route {route['url']} answered {route['status']}" for route in routes if not route["ok"]]
        if probe is None or reachable == "no":
            state = "failed"
        else:
            state = "healthy" if not problems else "unhealthy"
        rows.append(
            {
                "student": lab["student"],
                "name": lab.get("name") or "",
                "state": state,
                "reachable": reachable,
                "platform": platform,
                "routes": routes,
                "problems": problems,
                "versions": (probe or {}).get("versions") or platform_versions([], []),
                "exercises": read_checks(report_dir, lab["student"]) if report_dir else [],
            }
        )
    return rows


def collection_version(root):
    """The version of the collection whose root is `root`: galaxy.yml in a checkout, MANIFEST.json when installed."""
    try:
        with open(os.path.join(root, "MANIFEST.json"), encoding="utf-8") as handle:
            return str(json.load(handle)["collection_info"]["version"])
    except (OSError, ValueError, KeyError):
        pass
    try:
        with open(os.path.join(root, "galaxy.yml"), encoding="utf-8") as handle:
            return str((yaml.safe_load(handle) or {}).get("version") or "unknown")
    except (OSError, yaml.YAMLError):
        return "unknown"


def status_page(rows, retry_command, version, now=None):
    """The status page's data (status.js): the rows, when and by which istio-lab they were made, the retry command,
    the exercises checked (one column each, in chapter order).
    now: a datetime with its time zone (default: now, in the machine's local time)."""
    now = now or datetime.now().astimezone()
    return {
        "format": 1,
        "generated_utc": now.astimezone(UTC).isoformat(timespec="seconds"),
        "generated_local": now.isoformat(timespec="seconds"),
        "version": str(version),
        "retry_command": " ".join(str(retry_command).split()),
        "exercises": exercise_columns(rows),
        "labs": list(rows),
    }


def short_path(path, root):
    """`path` relative to `root` when it lies inside it (what an instructor types from the repo root), else absolute."""
    path, root = os.path.realpath(os.path.expanduser(str(path))), os.path.realpath(str(root))
    return os.path.relpath(path, root) if os.path.commonpath([path, root]) == root else path


class FilterModule:
    """Classroom filters."""

    def filters(self):
        return {
            "classroom_address_plan": address_plan,
            "classroom_plan_problems": plan_problems,
            "classroom_lab_domain": student_lab_domain,
            "classroom_roster_node_addresses": roster_node_addresses,
            "classroom_inventory": classroom_inventory,
            "classroom_unconfirmed_deployments": unconfirmed_deployments,
            "classroom_unready_deployments": unready_deployments,
            "classroom_platform_versions": platform_versions,
            "classroom_status_rows": status_rows,
            "classroom_short_path": short_path,
            "classroom_collection_version": collection_version,
            "classroom_status_page": status_page,
        }
