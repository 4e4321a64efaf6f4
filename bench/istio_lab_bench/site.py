"""The `site` scenario: what an instructor waits for before a lesson.

`site.yml` for one lab, and `playbooks/classroom.yml` (every stage) for a class
of labs, each lab on its own API double (a subprocess, TLS on loopback, with
its simulated controllers), twice: the first build and the no-op re-run.
Figures per run: wall time, the controller's CPU seconds (user + system of the
whole ansible-playbook process tree: Ansible's workers and every module
process, reaped by their parents; the doubles' and the Envoy stand-ins' CPU
are not in it), the module processes it started (each lab's Python interpreter
is a logging wrapper: one line per module run, naming the module), and the
requests every lab's API received (writes above all: a no-op re-run must send
none).

Boundaries, as in tests/api/test_site.py: istioctl is its test double
(tests/bin/istioctl), pods "run" because the doubles' controllers say so, and
the route probes go to local Envoy stand-ins (tests/verify_envoy.py) on the
labs' 127.x ingress addresses.
"""

from __future__ import annotations

import contextlib
import csv
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from .harness import REPO, DoubleTarget, run_measured
from .report import summarize_requests

PHASES = ("first", "noop")
# One lab: the pool and ingress IP of tests/api/test_site.py (127.0.0.1 is the doubles' node address).
ONE_LAB_POOL = "127.242.0.10-127.242.0.20"
ONE_LAB_INGRESS_IP = "127.242.0.10"
ENVOY_ADDRESS = "127.242.1.1"
# A class: the address plan hands each lab a pool and ingress IP from this range.
CLASS_RANGE = "127.20.0.0/22"
CLASS_DOMAIN = "lab.test"
# Generous: a first classroom build on 2 cores takes minutes.
RUN_TIMEOUT_S = 3600


def _shared_dir() -> Path:
    return Path(os.environ.get("ISTIO_LAB_SHARED") or REPO.parent / "shared").resolve()


def _tests():
    """The test helpers the scenario shares with tests/api/test_site.py (imported late: they need the repo on
    sys.path, which `python -m bench.istio_lab_bench` from the root gives)."""
    from tests import helpers, verify_envoy

    return helpers, verify_envoy


def _environment(workdir: Path, repo: Path = REPO) -> dict:
    env = dict(os.environ)
    env.update(ANSIBLE_CONFIG=str(repo / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
               PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}", TMPDIR=str(workdir / "tmp"),
               ISTIOCTL_DOUBLE_LOG=str(workdir / "istioctl.log"))
    (workdir / "tmp").mkdir(exist_ok=True)
    return env


def _write_vars(workdir: Path, values: dict) -> Path:
    path = workdir / "extra-vars.yml"
    path.write_text(yaml.safe_dump({**values, "ansible_python_interpreter": str(_module_log_interpreter(workdir))}))
    return path


MODULE_LOG = "modules.log"


def _module_log_interpreter(workdir: Path) -> Path:
    """The Python every module runs with in the scenario: the venv's, behind a wrapper that appends one line per
    module process to workdir/modules.log (Ansible runs `<interpreter> .../AnsiballZ_<module>.py`)."""
    wrapper = workdir / "module-python"
    if not wrapper.exists():
        wrapper.write_text(f"#!/bin/sh\nprintf '%s\\n' \"${{1:-stdin}}\" >> '{workdir / MODULE_LOG}'\n"
                           f"exec '{REPO / '.venv' / 'bin' / 'python'}' \"$@\"\n")
        wrapper.chmod(0o755)
    return wrapper


def module_processes(log: Path) -> dict[str, int]:
    """{module name: processes} from the wrapper's log (AnsiballZ_<name>.py; `stdin` when pipelined)."""
    counts: dict[str, int] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            name = Path(line.strip()).name
            name = name.removeprefix("AnsiballZ_").removesuffix(".py") or "stdin"
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def _playbook(playbook: str, workdir: Path, values: dict, inventory: Path | None = None) -> list[str]:
    """ansible-playbook of `playbook` (relative to the tree it runs in) with `values` as extra vars."""
    argv = [str(REPO / ".venv" / "bin" / "ansible-playbook"), playbook, "-e", f"@{_write_vars(workdir, values)}"]
    return argv + (["-i", str(inventory)] if inventory else [])


def _phase(measured, records_by_lab: dict[str, list[dict]], modules: dict[str, int] | None = None) -> dict:
    requests = {lab: summarize_requests(records) for lab, records in records_by_lab.items()}
    total = {key: sum(r[key] for r in requests.values())
             for key in ("total", "reads", "writes", "dry_run_writes", "lists", "object_gets", "discovery")}
    return {
        "wall_s": measured.wall_s,
        "cpu_s": measured.cpu_s,
        "peak_rss_mib": measured.peak_rss_mib,
        "requests": total,
        "writes_by_lab": {lab: r["writes"] + r["dry_run_writes"] for lab, r in requests.items()},
        "module_processes": sum((modules or {}).values()),
        "modules": modules or {},
        "write_paths": sorted({f"{rec.get('method')} {rec.get('path', '').split('?')[0]}"
                               for records in records_by_lab.values() for rec in records
                               if rec.get("method", "GET").upper() in ("POST", "PUT", "PATCH", "DELETE")})[:40],
        "recap_tail": measured.stdout[-1500:] if measured.returncode else "",
        "returncode": measured.returncode,
    }


def _run_phases(runs: list[tuple[str, list[str]]], env: dict, targets: dict[str, DoubleTarget], label: str,
                repo: Path = REPO, workdir: Path | None = None, scenario: str = "site") -> dict:
    """Each (phase, argv) of `runs` in turn, measured, the labs' request records cleared before each; stops at
    the first that fails."""
    phases = {}
    log = (workdir or Path(env["TMPDIR"]).parent) / MODULE_LOG
    for phase, argv in runs:
        for target in targets.values():
            target.reset()
        log.unlink(missing_ok=True)
        measured = run_measured(argv, env, cwd=repo, timeout_s=RUN_TIMEOUT_S)
        phases[phase] = _phase(measured, {lab: target.records() for lab, target in targets.items()},
                               module_processes(log))
        if not targets:  # a real cluster: timed directly, nothing counted the requests
            phases[phase]["requests"] = None
        writes = f"{phases[phase]['requests']['writes']} writes" if phases[phase]["requests"] else "uncounted"
        print(f"  {scenario} {label} {phase}: {measured.wall_s:.1f}s wall, {measured.cpu_s:.1f} CPU-s, "
              f"{phases[phase]['module_processes']} module processes, {writes} (rc {measured.returncode})",
              file=sys.stderr)
        if measured.returncode != 0:
            phases[phase]["output_tail"] = (measured.stdout[-3000:] + measured.stderr[-2000:])
            break
    return phases


@contextlib.contextmanager
def one_lab_on_a_double(prefix: str, repo: Path = REPO, versioned: bool = False):
    """One lab on its own double with an Envoy stand-in answering the chapters: yields (workdir, target, values,
    env), the extra vars of an instructor's site.yml (`versioned`: the release sources named after their
    version, for a lab built on last term's releases)."""
    helpers, verify_envoy = _tests()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir = Path(tmp)
        target = DoubleTarget(workdir)
        try:
            with verify_envoy.EnvoyLikeServer(ENVOY_ADDRESS, 0, verify_envoy.chapter_answers("kubernets.cn")) as envoy:
                upstream = _shared_dir() / "upstream"
                values = helpers.platform_vars(
                    upstream, workdir, ONE_LAB_POOL, ONE_LAB_INGRESS_IP,
                    cluster_provider="existing", lab_kubeconfig=str(target.kubeconfig),
                    lab_verify_report_dir=str(workdir / "artifacts"), lab_verify_retries=0,
                    lab_verify_ingress_ip=envoy.address, lab_verify_http_port=envoy.port,
                    **(helpers.versioned_sources(upstream, workdir) if versioned else {}))
                yield workdir, target, values, _environment(workdir, repo)
        finally:
            target.close()


def one_lab(repo: Path = REPO, label: str = "1 lab") -> dict:
    """site.yml of the tree `repo` for one lab on one double: first build, then the no-op re-run."""
    with one_lab_on_a_double("istio-lab-site-", repo) as (workdir, target, values, env):
        argv = _playbook("site.yml", workdir, values)
        phases = _run_phases([(phase, argv) for phase in PHASES], env, {"lab": target}, label, repo)
    return {"scenario": "site", "labs": 1, "playbook": "site.yml", "phases": phases}


def _platform_manifests(values: dict) -> list[Path]:
    """The upstream manifests site.yml's platform stages apply (MetalLB's, the addons'), as local files: the
    instructor's sources when they are paths, else ../shared/upstream's copies of the same releases."""
    upstream = _shared_dir() / "upstream"
    metallb = values.get("metallb_manifest_src") or ""
    addons = values.get("istio_addons_src") or ""
    metallb = Path(metallb) if metallb and "://" not in metallb else upstream / "metallb-0.16.1" / "metallb-native.yaml"
    addons = Path(addons) if addons and "://" not in addons else upstream / "istio-1.30.3" / "addons"
    return [metallb, *sorted(addons.glob("*.yaml"))]


def floor(kubeconfig: Path, manifests: list[Path], workdir: Path) -> dict:
    """`kubectl apply --server-side --dry-run=server` of the platform manifests, once the lab is built: what the
    API server spends on the same objects with nothing but kubectl in front (the server validates, admits and
    applies each, and stores nothing: a real apply would take the fields over from istio-lab's field manager on
    the instructor's cluster)."""
    from .methods import kubectl_path

    kubectl = kubectl_path()
    if not kubectl:
        return {"error": "kubectl not installed"}
    argv = [kubectl, "--kubeconfig", str(kubeconfig), "--cache-dir", str(workdir / "kube-cache"), "apply",
            "--server-side", "--force-conflicts", "--dry-run=server", *(a for m in manifests for a in ("-f", str(m)))]
    measured = run_measured(argv, dict(os.environ), timeout_s=RUN_TIMEOUT_S)
    print(f"  site floor (kubectl apply --server-side --dry-run=server, {len(manifests)} files): "
          f"{measured.wall_s:.1f}s wall, {measured.cpu_s:.1f} CPU-s (rc {measured.returncode})", file=sys.stderr)
    result = {"wall_s": measured.wall_s, "cpu_s": measured.cpu_s, "returncode": measured.returncode,
              "files": [str(m) for m in manifests]}
    if measured.returncode:
        result["output_tail"] = (measured.stdout + measured.stderr)[-2000:]
    return result


def real_cluster_lab(kubeconfig: Path, vars_file: Path | None) -> dict:
    """site.yml for one lab on the cluster of ISTIO_LAB_TEST_KUBECONFIG, nothing between Ansible and the API
    server: the first build and the no-op re-run (wall, controller CPU, module processes; requests are not
    counted: a counting pass would meet the first pass's objects, the lab's names being fixed), then the floor.
    `vars_file`: the instructor's extra vars for this cluster (address pool, ingress IP, sources; YAML)."""
    values = yaml.safe_load(vars_file.read_text()) if vars_file else {}
    with tempfile.TemporaryDirectory(prefix="istio-lab-site-real-") as tmp:
        workdir = Path(tmp)
        values = {"lab_verify_report_dir": str(workdir / "artifacts"), **(values or {}),
                  "lab_kubeconfig": str(kubeconfig)}
        env = _environment(workdir)
        argv = _playbook("site.yml", workdir, values)
        phases = _run_phases([(phase, argv) for phase in PHASES], env, {}, "1 lab on the cluster")
        if all(p.get("returncode") == 0 for p in phases.values()) and len(phases) == len(PHASES):
            phases["floor"] = floor(kubeconfig, _platform_manifests(values), workdir)
    return {"scenario": "site", "labs": 1, "playbook": "site.yml", "api": "real cluster", "phases": phases}


class ClassError(Exception):
    """The class could not be set up (its output tail in the message)."""


@dataclass
class Class:
    """A class of labs on doubles: its generated inventory, the extra vars classroom.yml and upgrade.yml take
    with it, each lab's double and the run environment."""

    workdir: Path
    inventory: Path
    values: dict
    targets: dict[str, DoubleTarget]
    env: dict


@contextlib.contextmanager
def class_of(labs: int, prefix: str = "istio-lab-class-"):
    """`labs` students, each with their own double and Envoy stand-in (the chapters' answers on the student's
    ingress IP), an inventory generated by classroom-inventory.yml from their roster, and the extra vars of an
    instructor's run (default sources: ../shared's copies of the pinned releases). Raises ClassError."""
    helpers, verify_envoy = _tests()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir = Path(tmp)
        students = [f"student{n:02d}" for n in range(1, labs + 1)]
        targets: dict[str, DoubleTarget] = {}
        envoys = []
        try:
            for student in students:
                (workdir / student).mkdir()
                targets[student] = DoubleTarget(workdir / student)
            roster = workdir / "roster.csv"
            with roster.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["id", "name", "kubeconfig", "context", "machines"])
                for student in students:
                    writer.writerow([student, student, str(targets[student].kubeconfig), "", ""])
            env = _environment(workdir)
            inventory = workdir / "inventory"
            generated = subprocess.run(
                _playbook("playbooks/classroom-inventory.yml", workdir, {
                    "classroom_inventory_roster": str(roster), "classroom_inventory_dir": str(inventory),
                    "classroom_inventory_address_ranges": CLASS_RANGE, "classroom_inventory_domain": CLASS_DOMAIN}),
                cwd=REPO, env=env, capture_output=True, text=True, check=False)
            if generated.returncode:
                raise ClassError(f"classroom inventory failed: {generated.stdout[-3000:]}")
            hosts = yaml.safe_load((inventory / "hosts.yml").read_text())["all"]["children"]["labs"]["hosts"]
            port = None
            for student in students:
                envoy = verify_envoy.EnvoyLikeServer(hosts[student]["lab_ingress_ip"], port or 0,
                                                     verify_envoy.chapter_answers(hosts[student]["lab_domain"]))
                envoys.append(envoy.start())
                port = envoy.port
            values = helpers.platform_vars(_shared_dir() / "upstream", workdir, "{{ metallb_address_range }}",
                                           "{{ lab_ingress_ip }}")
            # The address plan sets each lab's pool and ingress IP: keep them.
            values.pop("metallb_address_range")
            values.pop("lab_ingress_ip")
            values.update(lab_verify_ingress_ip="{{ lab_ingress_ip }}", lab_verify_http_port=port,
                          lab_verify_retries=0, lab_verify_report_dir=str(workdir / "artifacts"),
                          classroom_handout_dir=str(workdir / "handouts"),
                          classroom_status_dir=str(workdir / "status"))
            yield Class(workdir, inventory, values, targets, env)
        finally:
            for envoy in envoys:
                envoy.stop()
            for target in targets.values():
                target.close()


def classroom(labs: int) -> dict:
    """playbooks/classroom.yml, every stage, for `labs` labs, each on its own double."""
    try:
        with class_of(labs) as room:
            argv = _playbook("playbooks/classroom.yml", room.workdir, room.values, room.inventory)
            phases = _run_phases([(phase, argv) for phase in PHASES], room.env, room.targets, f"{labs} labs")
    except ClassError as exc:
        return {"scenario": "site", "labs": labs, "error": "classroom inventory failed", "output_tail": str(exc)}
    return {"scenario": "site", "labs": labs, "playbook": "playbooks/classroom.yml", "phases": phases}


def baseline(ref: str) -> dict:
    """One lab's site.yml as the commit `ref` had it ("today" in the issue's targets), measured in the same run
    against the same double, from a copy of that commit's tree beside this one (so ../shared is found)."""
    with tempfile.TemporaryDirectory(prefix="istio-lab-baseline-", dir=REPO.parent) as tmp:
        tree = Path(tmp)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True, check=False)
        if archive.returncode:
            return {"scenario": "site", "labs": 1, "ref": ref,
                    "error": f"git archive {ref} failed: {archive.stderr.decode(errors='replace')[-300:]}"}
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        (tree / ".venv").symlink_to(REPO / ".venv")
        print(f"site scenario, 1 lab, baseline {ref}", file=sys.stderr)
        result = one_lab(tree, f"1 lab at {ref}")
    return {**result, "ref": ref}


def run(lab_counts: tuple[int, ...]) -> list[dict]:
    results = []
    for labs in lab_counts:
        print(f"site scenario, {labs} lab(s)", file=sys.stderr)
        results.append(one_lab() if labs == 1 else classroom(labs))
    return results
