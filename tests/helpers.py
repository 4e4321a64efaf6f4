"""Run istio-lab's playbooks and modules from tests, the way an instructor
would (ansible-playbook from the repository root), against the `kube`
fixture's API."""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.conftest import KubeTarget, shared_path
from tests.kube_double import KubeDouble

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
_RECAP_LINE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


@dataclass
class PlaybookResult:
    rc: int
    stdout: str
    stderr: str
    recap: dict = field(default_factory=dict)
    command: list = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(host.get("changed", 0) for host in self.recap.values())

    @property
    def failed(self) -> int:
        return sum(host.get("failed", 0) + host.get("unreachable", 0) for host in self.recap.values())

    def __str__(self) -> str:  # shown by pytest when an assertion on the result fails
        return f"rc={self.rc} recap={self.recap}\n--- stdout ---\n{self.stdout[-8000:]}\n--- stderr ---\n" \
               f"{self.stderr[-4000:]}"


def parse_recap(stdout: str) -> dict:
    """PLAY RECAP lines -> {host: {ok, changed, unreachable, failed, skipped, rescued, ignored}}."""
    recap = {}
    in_recap = False
    for line in stdout.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap:
            match = _RECAP_LINE.match(line.strip())
            if match:
                recap[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return recap


def _environment(kube, env) -> dict:
    environment = dict(os.environ)
    environment["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    environment["PATH"] = f"{VENV_BIN}{os.pathsep}{environment.get('PATH', '')}"
    environment.setdefault("ANSIBLE_FORCE_COLOR", "0")
    environment["ANSIBLE_NOCOLOR"] = "1"
    environment["ANSIBLE_RETRY_FILES_ENABLED"] = "0"
    if kube is not None:
        environment.update(kube.env)
    environment.update(env or {})
    return environment


def run_playbook(playbook, kube=None, extra_vars=None, check=False, diff=False, inventory=None, limit=None,
                 env=None, timeout=600, cli_vars=None) -> PlaybookResult:
    """Run `ansible-playbook <playbook>` from the repository root with the
    kube fixture's kubeconfig in the environment (K8S_AUTH_*); extra vars go
    through a temporary JSON file, `cli_vars` ({name: text}) after it as
    `-e name=text`, the strings an instructor types."""
    command = [str(VENV_BIN / "ansible-playbook"), str(playbook)]
    if inventory:
        command += ["-i", str(inventory)]
    if limit:
        command += ["--limit", limit]
    if check:
        command.append("--check")
    if diff:
        command.append("--diff")
    extra = dict(extra_vars or {})
    if kube is not None and inventory is None:
        # The default inventory reads $KUBECONFIG; say it explicitly too. A custom
        # inventory keeps its own (per-host) kubeconfigs: extra vars would override them.
        extra.setdefault("lab_kubeconfig", kube.kubeconfig)
        extra.setdefault("lab_kube_context", kube.context)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="extra-vars-", delete=False) as handle:
        json.dump(extra, handle)
        vars_file = handle.name
    command += ["-e", f"@{vars_file}"]
    for name, text in (cli_vars or {}).items():
        command += ["-e", f"{name}={text}"]
    try:
        # Nobody answers a prompt: a play that asks (remove-platform.yml) reads end of input, never hangs.
        completed = subprocess.run(command, cwd=REPO, env=_environment(kube, env), capture_output=True, text=True,
                                   stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    finally:
        os.unlink(vars_file)
    return PlaybookResult(completed.returncode, completed.stdout, completed.stderr, parse_recap(completed.stdout),
                          command)


ISTIOCTL_DOUBLE = REPO / "tests" / "bin" / "istioctl"
# The previous releases (../shared) a lab is built on before an upgrade to the pins (docs/upgrade.md).
OLD = {"istio_version": "1.29.6", "metallb_version": "0.15.3"}


def platform_vars(upstream: Path, workdir: Path, pool: str, ingress_ip: str, **overrides) -> dict:
    """What an instructor sets for the platform stages (MetalLB, Istio, addons), with every download source
    pointed at `upstream` (../shared/upstream), istioctl's test double, and short waits."""
    return {
        "metallb_address_range": pool,
        "lab_ingress_ip": ingress_ip,
        "metallb_manifest_src": str(upstream / "metallb-0.16.1" / "metallb-native.yaml"),
        "istio_addons_src": str(upstream / "istio-1.30.3" / "addons"),
        "istio_istioctl_path": str(ISTIOCTL_DOUBLE),
        "lab_cache_dir": str(workdir / "cache"),
        "metallb_webhook_retry_delay": 1,
        "istio_poll_delay": 1,
        "istio_install_retry_delay": 1,
        "lab_wait_timeout": 60,
        **overrides,
    }


def releases(workdir: Path) -> Path:
    """<workdir>/releases/istio-X/bin/istioctl for the previous and the pinned Istio: the istioctl double,
    claiming X (as an extracted release's bin/istioctl does)."""
    for version in (OLD["istio_version"], "1.30.3"):
        binary = workdir / "releases" / f"istio-{version}" / "bin" / "istioctl"
        binary.parent.mkdir(parents=True, exist_ok=True)
        if not binary.exists():
            binary.symlink_to(ISTIOCTL_DOUBLE)
    return workdir / "releases"


def versioned_sources(upstream: Path, workdir: Path) -> dict:
    """Every release source named after its version ({{ istio_version }}, {{ metallb_version }}), as the
    defaults are, so that an upgrade's rollback finds the previous release."""
    return {
        "istio_istioctl_path": "",
        "istio_release_src": f"{releases(workdir)}/istio-{{{{ istio_version }}}}",
        "istio_addons_src": f"{upstream}/istio-{{{{ istio_version }}}}/addons",
        "metallb_manifest_src": f"{upstream}/metallb-{{{{ metallb_version }}}}/metallb-native.yaml",
    }


def record(kube) -> dict:
    """The platform record (ConfigMap istio-lab/istio-lab-record) of the lab behind `kube`."""
    config_map = kube.get("v1", "ConfigMap", "istio-lab-record", "istio-lab")
    assert config_map is not None, "no platform record"
    return config_map["data"]


def image(kube, name, namespace="istio-system") -> str:
    """The first container's image of Deployment namespace/name."""
    deployment = kube.get("apps/v1", "Deployment", name, namespace)
    assert deployment is not None, f"Deployment {namespace}/{name} missing"
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def run_module(name: str, args: dict, kube=None, check=False, diff=False, timeout=300) -> dict:
    """Run one module on localhost (`ansible localhost -m name -a <json>`) with
    the playbook's Python and return its result dict (json callback)."""
    fqcn = name if "." in name else f"istio_lab.lab.{name}"  # istio-lab's own modules by their FQCN
    command = [str(VENV_BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-m", fqcn,
               "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}"]
    if args:
        # An empty -a is taken as raw parameters, which most modules refuse.
        command += ["-a", json.dumps(args)]
    if check:
        command.append("--check")
    if diff:
        command.append("--diff")
    environment = _environment(kube, {"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
                                      "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"})
    completed = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout,
                               check=False)
    try:
        output = json.loads(completed.stdout)
        return output["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError) as exc:
        raise RuntimeError(f"no JSON result from {name} (rc={completed.returncode}):\n{completed.stdout[-4000:]}\n"
                           f"{completed.stderr[-4000:]}") from exc


def _documentation(path: Path) -> dict:
    """DOCUMENTATION of a module file, or of a doc fragment's ModuleDocFragment class."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef):
            node = next(item for item in node.body if isinstance(item, ast.Assign))
        if isinstance(node, ast.Assign) and node.targets[0].id == "DOCUMENTATION":
            return yaml.safe_load(node.value.value)
    raise AssertionError(f"{path} has no DOCUMENTATION")


def documented_options(module: str) -> dict:
    """A module's options with those of the doc fragments it extends, as ansible-doc shows them."""
    documentation = _documentation(REPO / "plugins" / "modules" / f"{module}.py")
    options = dict(documentation.get("options") or {})
    for fragment in documentation.get("extends_documentation_fragment", []):
        fragment = fragment.removeprefix("istio_lab.lab.")  # the collection's own fragments, by FQCN
        for name, option in _documentation(REPO / "plugins" / "doc_fragments" / f"{fragment}.py")["options"].items():
            options[name] = {**option, **options.get(name, {})}  # as ansible-doc merges: the module's fields win
    return options


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Classroom:
    """The doubles, Envoy stand-ins, generated inventory and output folders of one class: one API double per
    student, except `unreachable` (a kubeconfig to a port nothing listens on: the student's API is down)."""

    def __init__(self, root: Path, students: list[str], unreachable: str | None = None,
                 address_range: str = "127.20.0.0/22"):
        self.root = root
        self.students = list(students)
        self.unreachable = unreachable
        self.address_range = address_range  # the address plan gives each lab a MetalLB pool and an ingress IP in it
        self.doubles: dict[str, KubeDouble] = {}
        self.targets: dict[str, KubeTarget] = {}
        self.envoys: list = []
        self.kubeconfigs = {s: root / "kubeconfigs" / f"{s}.yaml" for s in self.students}
        self.unreachable_port = free_port()
        self.inventory = root / "inventory"
        self.handouts = root / "handouts"
        self.status = root / "status"
        self.reports = root / "artifacts"
        self.retry_dir = root / "retry"
        self.env = {"TMPDIR": str(root / "tmp"), "ANSIBLE_RETRY_FILES_ENABLED": "1",
                    "ANSIBLE_RETRY_FILES_SAVE_PATH": str(self.retry_dir)}
        (root / "tmp").mkdir()
        (root / "kubeconfigs").mkdir()

    @staticmethod
    def _crds() -> Path:
        crds = shared_path() / "crds" / "istio-1.30.3-crds.yaml"
        if not crds.is_file():
            import pytest

            pytest.skip(f"Istio CRDs not found at {crds}")
        return crds

    def start(self):
        crds = self._crds()
        for student in self.students:
            if student == self.unreachable:
                # Nothing listens on this port: the student's API is down.
                KubeDouble(port=self.unreachable_port).write_kubeconfig(self.kubeconfigs[student])
                continue
            self._start_double(student, KubeDouble(crds=[crds]).start())
        return self

    def _start_double(self, student: str, double: KubeDouble):
        self.doubles[student] = double
        double.write_kubeconfig(self.kubeconfigs[student])
        workdir = self.root / "clients" / student
        workdir.mkdir(parents=True)
        self.targets[student] = KubeTarget(str(self.kubeconfigs[student]), "double", double, double, workdir)

    def revive_unreachable(self):
        double = KubeDouble(crds=[self._crds()], port=self.unreachable_port).start()
        self.doubles[self.unreachable] = double
        workdir = self.root / "clients" / self.unreachable
        workdir.mkdir(parents=True)
        self.targets[self.unreachable] = KubeTarget(str(self.kubeconfigs[self.unreachable]), "double", double,
                                                    double, workdir)

    def generate_inventory(self):
        roster = self.root / "roster.csv"
        with roster.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "name", "kubeconfig", "context", "machines"])
            for n, student in enumerate(self.students, 1):
                writer.writerow([student, f"Student Number{n}", str(self.kubeconfigs[student]), "", ""])
        result = run_playbook("playbooks/classroom-inventory.yml", env=self.env, extra_vars={
            "classroom_inventory_roster": str(roster), "classroom_inventory_dir": str(self.inventory),
            "classroom_inventory_address_ranges": self.address_range, "classroom_inventory_domain": "lab.test"})
        assert result.rc == 0, result
        self.hostvars = yaml.safe_load((self.inventory / "hosts.yml").read_text())["all"]["children"]["labs"]["hosts"]

    def start_envoys(self, make_envoy=None):
        """One Envoy stand-in per student, on the student's own ingress IP, same port for all;
        `make_envoy(student, address, port)` builds it (default: every host answers 200)."""
        from tests.verify_envoy import EnvoyLikeServer

        self.envoy_port = free_port()
        for student in self.students:
            address = self.hostvars[student]["lab_ingress_ip"]
            envoy = make_envoy(student, address, self.envoy_port) if make_envoy else \
                EnvoyLikeServer(address, self.envoy_port, routes={"*": 200})
            self.envoys.append(envoy.start())

    def extra_vars(self, **more):
        platform = platform_vars(shared_path() / "upstream", self.root, "", "")
        # The address plan in the inventory sets each lab's pool and ingress IP.
        del platform["metallb_address_range"], platform["lab_ingress_ip"]
        return {
            **platform,
            "lab_enabled_chapters": ["1"],
            "lab_verify_ingress_ip": "{{ lab_ingress_ip }}",
            "lab_verify_http_port": self.envoy_port,
            "lab_verify_retries": 0,
            "lab_verify_report_dir": str(self.reports),
            "classroom_handout_dir": str(self.handouts),
            "classroom_status_dir": str(self.status),
            **more,
        }

    def upgrade_vars(self, **more):
        """`extra_vars` with every release source named after its version (`versioned_sources`): the class is
        built on last term's releases with `{**room.upgrade_vars(), **OLD}`, then upgrade.yml with the same
        values upgrades it to the pins of the inventory's group_vars (and can roll back to `OLD`)."""
        return self.extra_vars(**versioned_sources(shared_path() / "upstream", self.root), **more)

    def stop(self):
        for envoy in self.envoys:
            envoy.stop()
        for double in self.doubles.values():
            double.stop()


def changed_tasks(stdout: str) -> list[str]:
    """Names of the tasks that reported `changed` in a play's output."""
    names, task = [], None
    for line in stdout.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK ["):line.rindex("]")]
        elif line.startswith("changed:") and task and task not in names:
            names.append(task)
    return names
