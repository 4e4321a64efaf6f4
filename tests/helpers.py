"""Run istio-lab's playbooks and modules from tests, the way an instructor
would (ansible-playbook from the repository root), against the `kube`
fixture's API."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

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
        completed = subprocess.run(command, cwd=REPO, env=_environment(kube, env), capture_output=True, text=True,
                                   timeout=timeout, check=False)
    finally:
        os.unlink(vars_file)
    return PlaybookResult(completed.returncode, completed.stdout, completed.stderr, parse_recap(completed.stdout),
                          command)


ISTIOCTL_DOUBLE = REPO / "tests" / "bin" / "istioctl"


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
    options = dict(documentation["options"])
    for fragment in documentation.get("extends_documentation_fragment", []):
        fragment = fragment.removeprefix("istio_lab.lab.")  # the collection's own fragments, by FQCN
        options.update(_documentation(REPO / "plugins" / "doc_fragments" / f"{fragment}.py")["options"])
    return options
