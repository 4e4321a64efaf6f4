"""The five ways of applying the workload, each as the exact command a user would run."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from .harness import REPO
from .objects import IstioObject

VENV_BIN = REPO / ".venv" / "bin"
PLAYBOOKS = REPO / "bench" / "playbooks"


@dataclass(frozen=True)
class Method:
    key: str
    playbook: str = ""  # ansible methods
    kubectl_args: tuple[str, ...] = ()  # kubectl methods
    vars_file: str = "vars.json"  # ansible methods: the extra vars they are given

    @property
    def is_kubectl(self) -> bool:
        return not self.playbook


METHODS = {
    # Given only the directory and the kubeconfig, as a user of src would: not 360 objects of extra vars.
    "1": Method("1", playbook="istio_lab_modules.yml", vars_file="vars-src.json"),
    "2": Method("2", playbook="k8s_task_per_object.yml"),
    "3": Method("3", playbook="k8s_one_task.yml"),
    "4": Method("4", kubectl_args=("apply",)),
    "5": Method("5", kubectl_args=("apply", "--server-side")),
}
# Not a method: the least any Ansible method pays (start-up, reading the extra vars, one module run, no API call).
ANSIBLE_FLOOR = Method("floor", playbook="ansible_floor.yml")


def kubectl_path() -> str | None:
    return shutil.which("kubectl")


def render(objects: list[IstioObject], workdir: Path, kubeconfig: Path) -> None:
    """Write the workload as the methods read it: extra vars for Ansible, one YAML file per object for kubectl."""
    by_kind: dict[str, list[dict]] = {"Gateway": [], "VirtualService": [], "DestinationRule": []}
    for obj in objects:
        by_kind[obj.kind].append(obj.definition())
    extra_vars = {
        "bench_kubeconfig": str(kubeconfig),
        "bench_gateways": by_kind["Gateway"],
        "bench_virtual_services": by_kind["VirtualService"],
        "bench_destination_rules": by_kind["DestinationRule"],
        "bench_manifests": [obj.manifest() for obj in objects],
        # method 1 reads the files kubectl reads (istio_routes' src)
        "bench_manifests_dir": str(workdir / "manifests"),
    }
    (workdir / "vars.json").write_text(json.dumps(extra_vars))
    (workdir / "vars-src.json").write_text(json.dumps({key: extra_vars[key]
                                                       for key in ("bench_kubeconfig", "bench_manifests_dir")}))
    manifests = workdir / "manifests"
    if manifests.exists():
        shutil.rmtree(manifests)
    manifests.mkdir()
    for index, obj in enumerate(objects):
        name = f"{index:04d}-{obj.kind.lower()}-{obj.namespace}-{obj.name}.yaml"
        (manifests / name).write_text(yaml.safe_dump(obj.manifest(), sort_keys=False))


def command(method: Method, workdir: Path, kubeconfig: Path, kubectl_validate: bool = True) -> tuple[list[str], dict]:
    """argv and environment of one run of `method` on what `render` wrote in `workdir`."""
    env = dict(os.environ)
    if method.is_kubectl:
        argv = [
            kubectl_path() or "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "--cache-dir",
            str(workdir / "kube-cache"),
        ]
        argv += [*method.kubectl_args, "-f", str(workdir / "manifests")]
        if not kubectl_validate:
            argv.append("--validate=false")
        return argv, env
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_RETRY_FILES_ENABLED="false",
        K8S_AUTH_KUBECONFIG=str(kubeconfig),
    )
    argv = [
        str(VENV_BIN / "ansible-playbook"),
        "-i",
        "localhost,",
        str(PLAYBOOKS / method.playbook),
        "-e",
        f"@{workdir / method.vars_file}",
    ]
    return argv, env


def outcome(method: Method, stdout: str) -> dict:
    """What the tool itself reported: Ansible's recap, or kubectl's per-object verdicts."""
    if method.is_kubectl:
        verdicts = Counter(line.rsplit(" ", 1)[-1] for line in stdout.splitlines() if line.strip())
        return {"kubectl": dict(verdicts)}
    try:
        printed = json.loads(stdout[stdout.index("{") :])
    except ValueError:
        return {"ansible": None}
    return {"ansible": printed.get("stats", {}).get("localhost"), "task_seconds": task_seconds(printed)}


def task_seconds(printed: dict) -> dict[str, float]:
    """Wall time of each task, from the json callback's timestamps (where Ansible's time goes)."""
    seconds = {}
    for play in printed.get("plays", []):
        for task in play.get("tasks", []):
            duration = task["task"].get("duration", {})
            if duration.get("start") and duration.get("end"):
                start, end = (datetime.fromisoformat(duration[k].replace("Z", "+00:00")) for k in ("start", "end"))
                seconds[task["task"]["name"]] = round((end - start).total_seconds(), 3)
    return seconds
