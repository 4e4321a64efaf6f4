"""What the benchmark runs against (a fresh API double, or a real cluster) and how it measures a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .objects import API_VERSION, BENCH_LABEL, KINDS, MANAGED_LABELS, IstioObject

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION = API_VERSION.split("/")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# --- measuring a command ---------------------------------------------------


@dataclass
class Measured:
    argv: list[str]
    returncode: int
    wall_s: float
    peak_rss_mib: float  # largest sampled sum of RSS over the whole process tree
    max_rss_mib: float  # largest single process of the tree (kernel's ru_maxrss via wait4)
    # user + system CPU seconds of the whole process tree: wait4's usage of the child holds every descendant its
    # parent reaped (Ansible reaps its workers, the workers their module processes)
    cpu_s: float
    stdout: str
    stderr: str


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                kids.extend(int(k) for k in handle.read().split())
    except OSError:  # the process ended between two reads
        pass
    return kids


def tree_rss_kib(root: int) -> int:
    """Sum of the resident memory of `root` and all its descendants, now."""
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * PAGE_KIB
        except (OSError, IndexError, ValueError):
            continue
        pending.extend(_children(pid))
    return total


def run_measured(
    argv: list[str], env: dict, cwd: Path = REPO, timeout_s: float = 3600, interval_s: float = 0.05
) -> Measured:
    """Run `argv`, timing it and sampling the memory of its process tree every `interval_s`."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err, start_new_session=True)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss_kib(proc.pid))
                done.wait(interval_s)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        deadline = start + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.01)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            argv=argv,
            returncode=proc.returncode,
            wall_s=wall,
            peak_rss_mib=peak / 1024,
            max_rss_mib=usage.ru_maxrss / 1024,
            cpu_s=usage.ru_utime + usage.ru_stime,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


# --- the passes of a method -------------------------------------------------------

TIMED = "timed"
COUNTED = "counted"


@dataclass
class Pass:
    """One pass of a method over its objects (first, no-op, changed): `timed` keeps its wall seconds, `counts`
    (records() and reset(), or None) its requests. A real cluster has two passes (ClusterTarget.passes), the
    double one that does both."""

    name: str
    kubeconfig: Path
    timed: bool
    counts: Any
    scope_suffix: str = ""


# --- the API ------------------------------------------------------------------


class Api:
    """The few calls the harness makes itself (never measured): namespaces, reading objects back."""

    def __init__(self, kubeconfig: Path):
        from kubernetes import client, config

        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)

    def create_namespaces(self, names: set[str]) -> None:
        from kubernetes.client.exceptions import ApiException

        for name in sorted(names):
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(MANAGED_LABELS)}}
            try:
                self.core.create_namespace(body)
            except ApiException as exc:
                if exc.status != 409:
                    raise

    def delete_namespaces(self, names: set[str]) -> None:
        from kubernetes.client.exceptions import ApiException

        for name in sorted(names):
            try:
                self.core.delete_namespace(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def read_objects(self, scope: str) -> dict[tuple, dict]:
        """The benchmark's objects of `scope` as stored: {(kind, namespace, name): spec}."""
        stored = {}
        for kind in KINDS:
            listing = self.custom.list_cluster_custom_object(
                GROUP, VERSION, kind.plural, label_selector=f"{BENCH_LABEL}={scope}"
            )
            for item in listing["items"]:
                meta = item["metadata"]
                stored[(kind.kind, meta["namespace"], meta["name"])] = item.get("spec", {})
        return stored

    def raw(self, method: str, path: str):
        return self.api_client.call_api(
            path, method, auth_settings=["BearerToken"], response_type="object", _return_http_data_only=True
        )


def mismatches(api: Api, scope: str, expected: list[IstioObject]) -> list[str]:
    """What differs between the cluster and `expected` (checks each method really converged)."""
    stored = api.read_objects(scope)
    problems = []
    for obj in expected:
        if obj.key not in stored:
            problems.append(f"missing {'/'.join(obj.key)}")
        elif stored[obj.key] != obj.spec:
            problems.append(f"spec differs {'/'.join(obj.key)}")
    extra = set(stored) - {obj.key for obj in expected}
    problems.extend(f"unexpected {'/'.join(key)}" for key in sorted(extra))
    return problems


class DoubleTarget:
    """A fresh Kubernetes API double (tests/kube_double) with the Istio CRDs, on loopback.

    With TLS, as a real kube-apiserver: kubectl sends credentials only over https.
    """

    kind = "double"
    command = (sys.executable, "-m", "tests.kube_double", "--istio-crds", "--tls", "--kubeconfig")
    requests_source = "counted in-process by the API double, in the timed run (no proxy)"

    def __init__(self, workdir: Path):
        self.kubeconfig = workdir / "kubeconfig.yaml"
        self.proc = subprocess.Popen(
            [*self.command, str(self.kubeconfig)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        self.url = self._wait_for_url()
        self.api = Api(self.kubeconfig)

    def _wait_for_url(self, timeout_s: float = 60) -> str:
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout_s)
        line = ready[0].strip() if ready else ""
        if not line or self.proc.poll() is not None:
            self.close()
            raise RuntimeError(
                f"the API double did not start: {self.proc.stderr.read()[-2000:] if self.proc.stderr else ''}"
            )
        # Keep draining its output so that a chatty double never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        return line

    def passes(self) -> list[Pass]:
        """One pass, timed and counted: the double logs requests in-process (its log calls are not logged)."""
        return [Pass(TIMED, self.kubeconfig, timed=True, counts=self)]

    def records(self) -> list[dict]:
        log = self.api.raw("GET", "/_double/requests")
        return log["requests"] if isinstance(log, dict) else log

    def reset(self) -> None:
        self.api.raw("DELETE", "/_double/requests")

    def cleanup(self, namespaces: set[str]) -> None:
        """Nothing to clean: the double goes away with its state."""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
