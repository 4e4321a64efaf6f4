"""bench/run: the scenarios, one table each, one JSON in bench/results/.

routes: apply N generated Istio objects with five methods. site: site.yml for one lab and classroom.yml for a
class, first build and no-op re-run, wall and controller CPU seconds (bench/istio_lab_bench/site.py). upgrade and
check (check.yml against the no-op verify.yml) run when asked."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from . import check as check_scenario
from . import objects as workload
from . import report
from . import site as site_scenario
from . import upgrade as upgrade_scenario
from .harness import REPO, DoubleTarget, mismatches, run_measured
from .methods import ANSIBLE_FLOOR, METHODS, command, kubectl_path, outcome, render

DEFAULT_SIZES = (12, 120, 360)
QUICK_SIZES = (12, 36)
FLOOR_RUNS = 3
SCENARIOS = ("routes", "site", "upgrade", "check")
# The upgrade and check scenarios (bench/istio_lab_bench/upgrade.py, check.py) run when asked: --scenarios upgrade.
DEFAULT_SCENARIOS = ("routes", "site")
DEFAULT_LABS = (1, 30)
QUICK_LABS = (1, 3)
# "Today" in issue 11's targets: main before one apply engine served every stage.
SITE_BASELINE_REF = "e6ada6d"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--sizes", help="object counts, comma separated (default 12,120,360)")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="methods to run, comma separated (default 1,2,3,4,5)"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"sizes {','.join(map(str, QUICK_SIZES))} only (a smoke run)"
    )
    parser.add_argument(
        "--namespaces",
        type=int,
        help="spread the objects over this many namespaces (default: one namespace per student)",
    )
    parser.add_argument("--change-fraction", type=float, default=0.10, help="share of objects the changed run edits")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                        help="routes,site,upgrade,check (default routes,site)")
    parser.add_argument("--labs", help="site, upgrade and check scenarios: lab counts, comma separated "
                                       "(default 1,30)")
    parser.add_argument("--site-baseline", default=SITE_BASELINE_REF, metavar="REF",
                        help=f"site scenario: also measure one lab at this git commit (default {SITE_BASELINE_REF}, "
                             "main before issue 11; 'none' to skip)")
    parser.add_argument("--site-vars", type=Path, metavar="YAML",
                        help="site scenario on a real cluster: the extra vars site.yml needs there (address pool, "
                             "ingress IP, sources), as for ansible-playbook -e @YAML")
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--report", type=Path, metavar="JSON", help="only print the table of an earlier run's JSON")
    args = parser.parse_args(argv)
    if args.sizes:
        args.sizes = tuple(int(s) for s in args.sizes.split(","))
    else:
        args.sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    args.methods = tuple(m.strip() for m in args.methods.split(","))
    args.scenarios = tuple(s.strip() for s in args.scenarios.split(","))
    if set(args.scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios {sorted(set(args.scenarios) - set(SCENARIOS))}; "
                     "choose from routes,site,upgrade,check")
    if args.labs:
        args.labs = tuple(int(n) for n in args.labs.split(","))
    else:
        args.labs = QUICK_LABS if args.quick else DEFAULT_LABS
    if args.site_baseline == "none":
        args.site_baseline = None
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {','.join(METHODS)}")
    return args


def machine() -> dict:
    """What the figures were measured on."""
    pretty = next(
        (
            line.split("=", 1)[1].strip().strip('"')
            for line in Path("/etc/os-release").read_text().splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.platform(),
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "",
    )
    from ansible.release import __version__ as ansible_core

    kubectl = kubectl_path()
    kubectl_version = (
        subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True).stdout.splitlines()[0]
        if kubectl
        else None
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "os": pretty,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ansible_core": ansible_core,
        "kubectl": kubectl_version,
        "loadavg_start": os.getloadavg(),
    }


def make_target(workdir: Path, args: argparse.Namespace):
    if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
        from .cluster import ClusterTarget

        return ClusterTarget(workdir, Path(os.environ["ISTIO_LAB_TEST_KUBECONFIG"]))
    return DoubleTarget(workdir)


def serves_openapi(api) -> bool:
    """kubectl validates against the server's OpenAPI v3 document of networking.istio.io/v1; a server
    that does not publish it (the double) gets --validate=false."""
    try:
        return f"apis/{workload.API_VERSION}" in (api.raw("GET", "/openapi/v3") or {}).get("paths", {})
    except Exception:  # noqa: BLE001 - no document at all: kubectl could not validate either
        return False


def run_one(method_key: str, n: int, args: argparse.Namespace, on_phase=lambda result: None) -> dict:
    """One method at one size against a fresh API: first run, no-op re-run, changed run.

    `on_phase(result)` is called after each run with the result so far (`"running": true` until the end).
    """
    method = METHODS[method_key]
    # On a real cluster, namespaces of an earlier run may still be terminating: make this run's names unique.
    scope = f"bench-m{method_key}-n{n}" + (f"-{args.run_id}" if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG") else "")
    objects = workload.generate(n, scope, args.namespaces)
    _changed_objects, changed_keys = workload.with_changes(objects, args.change_fraction)
    namespaces = {obj.namespace for obj in objects}
    result = {
        "method": method_key,
        "label": report.METHOD_LABELS[method_key],
        "n": n,
        "counts": workload.counts_by_kind(objects),
        "namespaces": len(namespaces),
        "scopes": len(workload.scopes(objects)),
        "changed_keys": sorted(list(key) for key in changed_keys),
        "phases": {},
        "running": True,
    }
    if method.is_kubectl and not kubectl_path():
        result["error"] = "kubectl not installed"
        return result
    with tempfile.TemporaryDirectory(prefix=f"istio-lab-{scope}-") as tmp:
        workdir = Path(tmp)
        target = make_target(workdir, args)
        created: set[str] = set()
        try:
            result["requests_source"] = target.requests_source
            validate = serves_openapi(target.api)
            if method.is_kubectl:
                result["kubectl_validate"] = validate
            for run_pass in target.passes():
                error = _run_pass(method, run_pass, workdir / run_pass.name, target, scope, n, args, validate,
                                  result, created, on_phase)
                if error:
                    result.update(error)
                    return result
        finally:
            target.cleanup(created)
            target.close()
    return result


def _run_pass(method, run_pass, workdir: Path, target, scope: str, n: int, args: argparse.Namespace,
              validate: bool, result: dict, created: set[str], on_phase) -> dict | None:
    """The method's three runs (first, no-op, changed) in one pass: timed ones keep their wall seconds, counting
    ones their requests, each over its own namespaces (a second pass over the same objects would be a no-op)."""
    workdir.mkdir()
    objects = workload.generate(n, scope + run_pass.scope_suffix, args.namespaces)
    changed_objects, changed_keys = workload.with_changes(objects, args.change_fraction)
    if run_pass.counts is not None:  # the requests judged against the changed objects are this pass's
        result["changed_keys"] = sorted(list(key) for key in changed_keys)
    namespaces = {obj.namespace for obj in objects}
    created.update(namespaces)
    target.api.create_namespaces(namespaces)
    for phase, objs in (("first", objects), ("noop", objects), ("changed", changed_objects)):
        render(objs, workdir, run_pass.kubeconfig)
        if run_pass.counts is not None:
            run_pass.counts.reset()
        load = os.getloadavg()[0]
        argv, env = command(method, workdir, run_pass.kubeconfig, kubectl_validate=validate)
        measured = run_measured(argv, env)
        records = run_pass.counts.records() if run_pass.counts is not None else None
        print(f"  method {method.key} N={n} {phase} ({run_pass.name}): {measured.wall_s:.2f}s"
              + (f", {len(records)} requests" if records is not None else ""), file=sys.stderr)
        if measured.returncode != 0:
            return {"error": f"{phase} run ({run_pass.name}) failed (rc {measured.returncode})",
                    "output_tail": (measured.stdout + measured.stderr)[-4000:]}
        problems = mismatches(target.api, scope + run_pass.scope_suffix, objs)
        if problems:
            return {"error": f"{phase} run ({run_pass.name}) did not converge: {len(problems)} problems, "
                             f"e.g. {problems[:3]}"}
        data = result["phases"].setdefault(phase, {})
        if run_pass.timed:
            data.update(wall_s=measured.wall_s, peak_rss_mib=measured.peak_rss_mib, max_rss_mib=measured.max_rss_mib,
                        reported=outcome(method, measured.stdout), loadavg_1min_before=load)
        else:
            data["counting_pass_wall_s"] = measured.wall_s  # through the proxy: never a timing to quote
        if records is not None:
            data["requests"] = report.summarize_requests(records)
        on_phase(result)
    return None


def measure_floor(n: int, args: argparse.Namespace) -> dict:
    """Ansible's floor at N: the playbook of ANSIBLE_FLOOR with the same extra vars as methods 1-3, FLOOR_RUNS
    times; the least of them is the floor (no API is called, so no API is needed)."""
    objects = workload.generate(n, f"bench-floor-n{n}", args.namespaces)
    with tempfile.TemporaryDirectory(prefix="istio-lab-floor-") as tmp:
        workdir = Path(tmp)
        render(objects, workdir, workdir / "kubeconfig-not-used")
        argv, env = command(ANSIBLE_FLOOR, workdir, workdir / "kubeconfig-not-used")
        runs = []
        for _ in range(FLOOR_RUNS):
            measured = run_measured(argv, env)
            if measured.returncode != 0:
                return {"error": f"floor run failed (rc {measured.returncode})",
                        "output_tail": (measured.stdout + measured.stderr)[-2000:]}
            runs.append(measured.wall_s)
    print(f"  Ansible floor N={n}: {min(runs):.2f}s (least of {FLOOR_RUNS})", file=sys.stderr)
    return {"wall_s": min(runs), "runs_s": runs}


def print_report(document: dict, out: Path) -> None:
    info = document["machine"]
    print(f"{info['api']}; {info['cpus']} CPUs, {info['os']}, ", end="")
    print(f"Python {info['python']}, ansible-core {info['ansible_core']}, load {info['loadavg_start'][0]:.1f}")
    if document["results"]:
        print("\nroutes: N Istio objects")
        print(report.table(document["results"]))
        print("speedup (Nx) = method 2's wall time / this method's, in this run (compare ratios, not seconds "
              "measured on other machines or hours); requests: reads r / writes w (+ dry-run writes)")
        sources = sorted({r["requests_source"] for r in document["results"] if r.get("requests_source")})
        if sources:
            print("requests " + "; ".join(sources))
        floors = report.format_floors(document.get("floors", {}))
        if floors:
            print(floors)
    if document.get("site"):
        print("\nsite: site.yml (one lab) and classroom.yml (a class), each lab on its own API double, or one lab on "
              "the real cluster (timed directly; requests not counted there)")
        print(report.site_table(document["site"]))
        print("CPU s = user + system seconds of the whole ansible-playbook process tree (the doubles' apart)")
    if document.get("upgrade"):
        print("\nupgrade: upgrade.yml of a lab (site.yml) or a class (classroom.yml) built on Istio 1.29.6 / "
              "MetalLB 0.15.3, then nothing to upgrade, then the no-op build for comparison")
        print(upgrade_scenario.table(document["upgrade"]))
    if document.get("check"):
        print("\ncheck: check.yml -e chapter=1 over a lab (built by site.yml) or a class (classroom.yml), the same "
              "again (the re-check), then the no-op verify.yml for comparison")
        print(check_scenario.table(document["check"]))
    print(report.format_targets(document["targets"]))
    complete = "" if document.get("complete", True) else " (INCOMPLETE run)"
    print(f"total {document['duration_s']:.0f}s{complete}; JSON: {out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        print_report(json.loads(args.report.read_text()), args.report)
        return 0
    started = datetime.now(UTC)
    args.run_id = started.strftime("%H%M%S")
    clock = time.perf_counter()
    info = machine()
    info["api"] = ("real cluster (ISTIO_LAB_TEST_KUBECONFIG): timed directly, requests counted in a separate "
                   "untimed pass through the counting proxy" if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG")
                   else "API double on loopback (requests counted in-process)")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    results: list[dict] = []
    floors: dict[str, dict] = {}
    site: list[dict] = []
    upgrade: list[dict] = []
    check: list[dict] = []
    document: dict = {"floors": floors, "site": site, "upgrade": upgrade, "check": check}

    def save(complete: bool, running: dict | None = None) -> None:
        # Written after every run, so an interrupted benchmark still leaves its figures.
        document["results"] = results + ([running] if running else [])
        report.add_ratios(document["results"])
        info["loadavg_end"] = os.getloadavg()
        document.update(
            started=started.isoformat(timespec="seconds"),
            complete=complete,
            duration_s=time.perf_counter() - clock,
            machine=info,
            sizes=list(args.sizes),
            methods=list(args.methods),
            namespaces=args.namespaces or "one per student",
            change_fraction=args.change_fraction,
            scenarios=list(args.scenarios),
            labs=list(args.labs),
            targets=(report.evaluate_targets(document["results"], floors) if "routes" in args.scenarios else [])
            + (report.evaluate_site_targets(site) if "site" in args.scenarios else [])
            + [t for result in upgrade + check for t in result.get("targets", [])],
        )
        out.write_text(json.dumps(document, indent=2))

    # Method 2 takes minutes at 360: last at each size, so an interrupted run keeps the other figures.
    order = sorted(args.methods, key=lambda m: (m == report.BASELINE, m))
    ansible_methods = [m for m in args.methods if not METHODS[m].is_kubectl]
    for n in args.sizes if "routes" in args.scenarios else ():
        if ansible_methods:
            floors[str(n)] = measure_floor(n, args)
        for method_key in order:
            print(f"method {method_key} ({report.METHOD_LABELS[method_key]}), N={n}", file=sys.stderr)
            result = run_one(method_key, n, args, on_phase=lambda partial: save(False, partial))
            result.pop("running")
            results.append(result)
            save(complete=False)
    if "site" in args.scenarios:
        if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
            # One lab only (a class needs a cluster per lab); no baseline tree (it would rebuild the same lab).
            print("site scenario, 1 lab on the real cluster", file=sys.stderr)
            site.append(site_scenario.real_cluster_lab(Path(os.environ["ISTIO_LAB_TEST_KUBECONFIG"]), args.site_vars))
            save(complete=False)
        else:
            runs = ([("baseline", args.site_baseline)] if args.site_baseline else []) + [("labs", n) for n in args.labs]
            for what, value in runs:
                site.append(site_scenario.baseline(value) if what == "baseline" else site_scenario.run((value,))[0])
                save(complete=False)
    if "upgrade" in args.scenarios and not os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
        for labs in args.labs:
            upgrade.extend(upgrade_scenario.run((labs,)))
            save(complete=False)
    if "check" in args.scenarios and not os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
        for labs in args.labs:
            check.extend(check_scenario.run((labs,)))
            save(complete=False)
    save(complete=True)
    print_report(document, out.relative_to(REPO) if out.is_relative_to(REPO) else out)
    return 1 if any(r.get("error") for r in results + site + upgrade + check) else 0


if __name__ == "__main__":
    sys.exit(main())
