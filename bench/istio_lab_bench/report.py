"""Pure maths of the benchmark: request classification, ratios, the table and the targets."""

from __future__ import annotations

import re
from collections import Counter

from .objects import KINDS

PHASES = ("first", "noop", "changed")
BASELINE = "2"
OURS = "1"
METHOD_LABELS = {
    "1": "istio-lab modules",
    "2": "k8s, task per object",
    "3": "k8s, one task",
    "4": "kubectl apply",
    "5": "kubectl apply --server-side",
}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_DISCOVERY = re.compile(r"^/(api(/[^/]+)?|apis(/[^/]+){0,2}|version|openapi(/.*)?)/?$")
_OBJECT_PATH = re.compile(r"^/apis?/(?:[^/]+/)?[^/]+/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)/(?P<name>[^/]+)$")
_KIND_OF_PLURAL = {k.plural: k.kind for k in KINDS}


def is_discovery(path: str) -> bool:
    return bool(_DISCOVERY.match(path.split("?", 1)[0]))


def written_object(path: str) -> tuple[str, str, str] | None:
    """(kind, namespace, name) of a write addressed to one Istio object, else None (e.g. a POST to a collection)."""
    match = _OBJECT_PATH.match(path.split("?", 1)[0])
    if not match or match["plural"] not in _KIND_OF_PLURAL:
        return None
    return (_KIND_OF_PLURAL[match["plural"]], match["ns"], match["name"])


def _is_object_get(record: dict, verb: str, path: str) -> bool:
    # The server's verb tells a get from a list; without it, the path does.
    if record.get("verb"):
        return verb == "get"
    return written_object(path) is not None


def summarize_requests(records: list[dict]) -> dict:
    """Count requests by verb and by class: discovery, object GETs, lists, writes, dry-run writes.

    A record has at least `method` and `path`; `verb` (Kubernetes verb) and
    `dry_run` when the server (the double) or the counting proxy knows them.
    """
    by_verb: Counter = Counter()
    summary = {"total": 0, "discovery": 0, "object_gets": 0, "lists": 0, "writes": 0, "dry_run_writes": 0, "errors": 0}
    written: list[list[str] | None] = []
    for record in records:
        method = record.get("method", "GET").upper()
        path = record.get("path", "")
        verb = record.get("verb") or method.lower()
        dry_run = bool(record.get("dry_run")) or "dryRun=" in path
        summary["total"] += 1
        by_verb[f"{verb} (dry-run)" if dry_run else verb] += 1
        if int(record.get("status") or 0) >= 400:
            summary["errors"] += 1
        if method in WRITE_METHODS:
            summary["dry_run_writes" if dry_run else "writes"] += 1
            if not dry_run:
                target = written_object(path)
                written.append(list(target) if target else None)
        elif is_discovery(path):
            summary["discovery"] += 1
        elif _is_object_get(record, verb, path):
            summary["object_gets"] += 1
        else:
            summary["lists"] += 1
    summary["reads"] = summary["total"] - summary["writes"] - summary["dry_run_writes"]
    summary["by_verb"] = dict(sorted(by_verb.items()))
    summary["written"] = written
    return summary


def speedup(baseline_s: float | None, other_s: float | None) -> float | None:
    """How many times faster `other` is than the baseline (>1: faster)."""
    if not baseline_s or not other_s:
        return None
    return baseline_s / other_s


def _result(results: list[dict], method: str, n: int) -> dict | None:
    """The method's result at N, unless it failed (an interrupted one counts for the runs it finished)."""
    return next((r for r in results if r["method"] == method and r["n"] == n and not r.get("error")), None)


def _phase(result: dict | None, phase: str) -> dict | None:
    return result["phases"].get(phase) if result else None


def _wall(result: dict | None, phase: str) -> float | None:
    data = _phase(result, phase)
    return data.get("wall_s") if data else None


def add_ratios(results: list[dict]) -> None:
    """Store, in every phase, the speedup against method 2 at the same N."""
    for result in results:
        baseline = _result(results, BASELINE, result["n"])
        for phase, data in result.get("phases", {}).items():
            data["speedup_vs_m2"] = speedup(_wall(baseline, phase), data.get("wall_s"))


def _fmt_time(seconds: float | None, ratio: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.2f}" + (f" ({ratio:.1f}x)" if ratio is not None else "")


def _fmt_requests(summary: dict) -> str:
    return f"{summary['reads']}r/{summary['writes']}w" + (
        f"+{summary['dry_run_writes']}dry" if summary["dry_run_writes"] else ""
    )


def _peak_mib(phase: dict) -> float:
    # The 50 ms samples can miss a short run's peak; the tree holds at least its largest process.
    return max(phase["peak_rss_mib"], phase.get("max_rss_mib", 0))


def table(results: list[dict]) -> str:
    """One table: wall seconds (speedup against method 2), requests (reads/writes) and peak memory."""
    header = ["N", "method", "first s", "no-op s", "changed s", "req first", "req no-op", "req changed", "peak MiB"]
    rows = [header]
    for result in sorted(results, key=lambda r: (r["n"], r["method"])):
        label = f"{result['method']} {METHOD_LABELS.get(result['method'], '')}".strip()
        if result.get("error"):
            rows.append([str(result["n"]), label, "error: " + result["error"][:60], "", "", "", "", "", ""])
            continue
        phases = result["phases"]  # an interrupted run has only some
        done = [p for p in PHASES if p in phases]
        rows.append(
            [str(result["n"]), label + (" (interrupted)" if result.get("running") else "")]
            + [_fmt_time(phases[p]["wall_s"], phases[p].get("speedup_vs_m2")) if p in phases else "-" for p in PHASES]
            + [_fmt_requests(phases[p]["requests"]) if "requests" in phases.get(p, {}) else "-" for p in PHASES]
            + [f"{max(_peak_mib(phases[p]) for p in done):.0f}" if done else "-"]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def floor_s(floors: dict | None, n: int | None) -> float | None:
    """Ansible's floor at N (seconds), when it was measured."""
    return ((floors or {}).get(str(n)) or {}).get("wall_s")


def format_floors(floors: dict) -> str:
    measured = [f"N={n} {data['wall_s']:.2f}s" for n, data in sorted(floors.items(), key=lambda i: int(i[0]))
                if "wall_s" in data]
    if not measured:
        return ""
    return ("Ansible floor (ansible-playbook reading the same extra vars, one module that calls no API, least of "
            "3 runs): " + ", ".join(measured))


def _below_floor(walls: dict[str, float | None], floor: float | None) -> str:
    """The note for methods that finished faster than any Ansible run can start and stop."""
    below = [f"{method} ({wall:.2f}s)" for method, wall in walls.items() if wall is not None and floor and wall < floor]
    if not below:
        return ""
    return (f"method(s) {', '.join(below)} finished below Ansible's floor of {floor:.2f}s: "
            "against this API no Ansible-driven method can be as fast")


def evaluate_targets(results: list[dict], floors: dict | None = None) -> list[dict]:
    """The issue's targets, each with held = True/False (None when not measured in this run) and the numbers.

    `floors` (Ansible's floor by N, see format_floors) adds, where a method beat method 1 in less time than
    Ansible needs to run one task, a note that says so."""
    targets = []
    sizes = sorted({r["n"] for r in results})
    largest = sizes[-1] if sizes else None

    ours, base = _result(results, OURS, largest), _result(results, BASELINE, largest)
    others = {m: _result(results, m, largest) for m in ("3", "4", "5")}
    detail, held = [], None
    noop = _wall(ours, "noop")
    if noop is not None:
        ratio = speedup(_wall(base, "noop"), noop)
        checks = []
        if ratio is not None:
            checks.append(ratio >= 50)
            detail.append(f"{ratio:.1f}x faster than method 2 ({_wall(base, 'noop'):.2f}s vs {noop:.2f}s)")
        for method, other in others.items():
            if _wall(other, "noop") is not None:
                checks.append(noop < _wall(other, "noop"))
                detail.append(f"method {method} {_wall(other, 'noop'):.2f}s")
        held = all(checks) if len(checks) == 1 + len(others) else None
        note = _below_floor({m: _wall(o, "noop") for m, o in others.items()}, floor_s(floors, largest))
        if note:
            detail.append(note)
    targets.append(
        {
            "target": f"no-op re-run of {largest} objects >= 50x faster than method 2 and faster than methods 3, 4, 5",
            "held": held,
            "detail": "; ".join(detail) or "method 1 not measured",
        }
    )

    detail, checks = [], []
    for n in sizes:
        result = _result(results, OURS, n)
        if "requests" not in (_phase(result, "noop") or {}):  # a real cluster's counting pass not run yet
            continue
        req = result["phases"]["noop"]["requests"]
        scope_count = result["scopes"]
        ok = (
            req["writes"] == 0
            and req["dry_run_writes"] == 0
            and req["object_gets"] == 0
            and req["lists"] <= scope_count
        )
        checks.append(ok)
        detail.append(
            f"N={n}: {req['lists']} lists for {scope_count} kind/namespace scopes, {req['object_gets']} object GETs, "
            f"{req['discovery']} discovery, {req['writes']} writes, {req['dry_run_writes']} dry-run writes"
        )
    targets.append(
        {
            "target": "no-op requests grow with kinds and namespace scopes, not objects (no per-object GET), no writes",
            "held": all(checks) if checks else None,
            "detail": "; ".join(detail) or "method 1 not measured",
        }
    )

    detail, checks = [], []
    for n in sizes:
        ours_n, m5 = _result(results, OURS, n), _result(results, "5", n)
        if _wall(ours_n, "first") is not None and _wall(m5, "first") is not None:
            checks.append(_wall(ours_n, "first") <= _wall(m5, "first"))
            detail.append(f"N={n}: {_wall(ours_n, 'first'):.2f}s vs {_wall(m5, 'first'):.2f}s")
            note = _below_floor({"5": _wall(m5, "first")}, floor_s(floors, n))
            if note:
                detail.append(note)
    targets.append(
        {
            "target": "first run no slower than method 5",
            "held": all(checks) if checks else None,
            "detail": "; ".join(detail) or "methods 1 and 5 not both measured",
        }
    )

    detail, checks = [], []
    for n in sizes:
        result = _result(results, OURS, n)
        if "requests" not in (_phase(result, "changed") or {}):
            continue
        written = result["phases"]["changed"]["requests"]["written"]
        expected = sorted(list(key) for key in result["changed_keys"])
        ok = None not in written and {tuple(w) for w in written} == {tuple(k) for k in expected}
        checks.append(ok)
        detail.append(
            f"N={n}: {len(written)} writes for {len(expected)} changed objects"
            + ("" if ok else " (other objects written)")
        )
    targets.append(
        {
            "target": "changed run writes only the changed objects",
            "held": all(checks) if checks else None,
            "detail": "; ".join(detail) or "method 1 not measured",
        }
    )
    return targets


def format_targets(targets: list[dict]) -> str:
    verdict = {True: "HELD", False: "NOT HELD", None: "NOT MEASURED"}
    return "\n".join(f"[{verdict[t['held']]}] {t['target']}: {t['detail']}" for t in targets)


# --- the site scenario (site.yml for one lab, classroom.yml for a class) ---------------------------------------

SITE_NOOP_MAX_S = 10.0  # one lab's no-op re-run: wall and controller CPU seconds
CLASS_NOOP_MAX_CPU_S = 300.0  # a class of 30: controller CPU seconds of the no-op re-run
CLASS_NOOP_MAX_WALL_S = 240.0
CLASS_SIZE = 30


def _site_label(result: dict) -> str:
    where = f" at {result['ref']}" if result.get("ref") else ""
    where += " on the real cluster" if result.get("api") == "real cluster" else ""
    return (f"{result['labs']} lab{'s' if result['labs'] > 1 else ''}{where}"
            f" ({result.get('playbook', 'site.yml')})")


SITE_RUN_LABELS = {"first": "first build", "noop": "no-op re-run",
                   "floor": "floor: kubectl apply --server-side --dry-run=server"}


def site_table(site: list[dict]) -> str:
    """Wall and controller CPU seconds, module processes, requests and peak memory of each site run (on a real
    cluster requests are not counted, and the floor row is kubectl's)."""
    header = ["labs", "run", "wall s", "CPU s", "CPU s/lab", "modules", "requests", "writes", "peak MiB"]
    rows = [header]
    for result in site:
        if result.get("error"):
            rows.append([_site_label(result), "error: " + result["error"][:70], "", "", "", "", "", "", ""])
            continue
        for phase, data in result["phases"].items():
            if data.get("error"):
                rows.append([_site_label(result), f"{SITE_RUN_LABELS.get(phase, phase)}: {data['error']}",
                             "", "", "", "", "", "", ""])
                continue
            failed = f" (rc {data['returncode']})" if data.get("returncode") else ""
            counted = data.get("requests")
            rows.append([_site_label(result), SITE_RUN_LABELS.get(phase, phase) + failed,
                         f"{data['wall_s']:.1f}", f"{data['cpu_s']:.1f}", f"{data['cpu_s'] / result['labs']:.1f}",
                         str(data["module_processes"]) if "module_processes" in data else "-",
                         _fmt_requests(counted) if counted else "-",
                         str(counted["writes"] + counted["dry_run_writes"]) if counted else "-",
                         f"{_peak_mib(data):.0f}" if "peak_rss_mib" in data else "-"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _site_phase(site: list[dict], labs: int, phase: str, baseline: bool = False) -> dict | None:
    result = next((r for r in site if r.get("labs") == labs and bool(r.get("ref")) == baseline
                   and not r.get("error") and not r.get("api")), None)
    data = result["phases"].get(phase) if result else None
    return data if data and not data.get("returncode") else None


def _writes(data: dict) -> int:
    return data["requests"]["writes"] + data["requests"]["dry_run_writes"]


def evaluate_site_targets(site: list[dict]) -> list[dict]:
    """The targets of issue 11 for the site scenario, each held True/False, or None when not measured."""
    targets = []
    noop = _site_phase(site, 1, "noop")
    targets.append({
        "target": f"one lab, no-op site.yml re-run: <= {SITE_NOOP_MAX_S:.0f} s wall, <= {SITE_NOOP_MAX_S:.0f} "
                  "controller CPU-s, zero writes",
        "held": None if noop is None else (noop["wall_s"] <= SITE_NOOP_MAX_S and noop["cpu_s"] <= SITE_NOOP_MAX_S
                                           and _writes(noop) == 0),
        "detail": "not measured" if noop is None else
        f"{noop['wall_s']:.1f} s wall, {noop['cpu_s']:.1f} CPU-s, {_writes(noop)} writes",
    })
    first, before = _site_phase(site, 1, "first"), _site_phase(site, 1, "first", baseline=True)
    ref = next((r["ref"] for r in site if r.get("ref")), "the baseline")
    targets.append({
        "target": f"one lab, first build no slower than {ref} (same run, same double)",
        "held": None if first is None or before is None else first["wall_s"] <= before["wall_s"],
        "detail": "not both measured" if first is None or before is None else
        f"{first['wall_s']:.1f} s ({first['cpu_s']:.1f} CPU-s) vs {before['wall_s']:.1f} s "
        f"({before['cpu_s']:.1f} CPU-s)",
    })
    class_noop = _site_phase(site, CLASS_SIZE, "noop")
    targets.append({
        "target": f"{CLASS_SIZE} labs, no-op classroom.yml re-run (every stage): <= {CLASS_NOOP_MAX_CPU_S:.0f} "
                  f"controller CPU-s, <= {CLASS_NOOP_MAX_WALL_S / 60:.0f} min wall, zero writes",
        "held": None if class_noop is None else (class_noop["cpu_s"] <= CLASS_NOOP_MAX_CPU_S
                                                 and class_noop["wall_s"] <= CLASS_NOOP_MAX_WALL_S
                                                 and _writes(class_noop) == 0),
        "detail": "not measured" if class_noop is None else
        f"{class_noop['cpu_s']:.0f} CPU-s, {class_noop['wall_s']:.0f} s wall, {_writes(class_noop)} writes",
    })
    return targets
