"""How the benchmark measures a run (bench/istio_lab_bench/harness.py, methods.py): wall time, peak
memory of the whole process tree, and what each tool reports about its own run."""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # bench/ is run from the repo root, not installed

import yaml  # noqa: E402

from bench.istio_lab_bench import harness, methods, objects  # noqa: E402

# A parent holding ~40 MiB that starts a child holding ~60 MiB: the tree peaks near 100 MiB,
# its largest single process holds at least 60 MiB.
TREE = """
import subprocess, sys, time
held = bytearray(40 * 2**20)
child = "held = bytearray(60 * 2**20); import time; time.sleep(1.0)"
subprocess.run([sys.executable, "-c", child], check=True)
print("done")
"""


def test_run_measured_times_and_sums_the_memory_of_the_process_tree():
    measured = harness.run_measured([sys.executable, "-c", TREE], env={}, interval_s=0.02)
    assert measured.returncode == 0
    assert measured.stdout.strip() == "done"
    assert measured.wall_s >= 1.0
    assert measured.peak_rss_mib >= 95  # parent and child sampled together
    # The kernel's figure (ru_maxrss) is the largest single process of the tree; how a forked
    # child's pages are counted before its exec varies, so only its floor is certain.
    assert measured.max_rss_mib >= 60


def test_run_measured_reports_failures():
    measured = harness.run_measured([sys.executable, "-c", "import sys; sys.exit('boom')"], env={})
    assert measured.returncode == 1
    assert "boom" in measured.stderr


def test_outcome_reads_kubectl_verdicts_and_the_ansible_recap():
    kubectl = "gateway.networking.istio.io/a created\nvirtualservice.networking.istio.io/b unchanged\n"
    assert methods.outcome(methods.METHODS["4"], kubectl) == {"kubectl": {"created": 1, "unchanged": 1}}
    duration = {"start": "2026-11-25T22:18:29.75Z", "end": "2026-11-25T22:18:34Z"}
    task = {"name": "Apply the Gateways", "duration": duration}
    recap = {"plays": [{"tasks": [{"task": task}]}], "stats": {"localhost": {"changed": 0, "failures": 0, "ok": 3}}}
    printed = "[WARNING]: noise before the JSON\n" + json.dumps(recap)
    assert methods.outcome(methods.METHODS["1"], printed) == {
        "ansible": {"changed": 0, "failures": 0, "ok": 3},
        "task_seconds": {"Apply the Gateways": 4.25},
    }


def test_commands_are_what_a_user_would_type(tmp_path):
    kubeconfig = tmp_path / "kubeconfig.yaml"
    argv, env = methods.command(methods.METHODS["5"], tmp_path, kubeconfig)
    assert argv[argv.index("apply") :] == ["apply", "--server-side", "-f", str(tmp_path / "manifests")]
    argv, env = methods.command(methods.METHODS["4"], tmp_path, kubeconfig, kubectl_validate=False)
    assert argv[-1] == "--validate=false"
    argv, env = methods.command(methods.METHODS["1"], tmp_path, kubeconfig)
    playbook = REPO / "bench" / "playbooks" / "istio_lab_modules.yml"
    # src: method 1 gets the directory and the kubeconfig, not the objects as extra vars
    assert argv[-3:] == [str(playbook), "-e", f"@{tmp_path / 'vars-src.json'}"]
    assert env["K8S_AUTH_KUBECONFIG"] == str(kubeconfig)
    argv, env = methods.command(methods.METHODS["3"], tmp_path, kubeconfig)
    assert argv[-1] == f"@{tmp_path / 'vars.json'}"


def test_render_writes_the_same_objects_for_ansible_and_kubectl(tmp_path):
    generated = objects.generate(12, "bench-test")
    methods.render(generated, tmp_path, tmp_path / "kubeconfig.yaml")
    extra_vars = json.loads((tmp_path / "vars.json").read_text())
    kinds = ("bench_gateways", "bench_virtual_services", "bench_destination_rules")
    assert [len(extra_vars[k]) for k in kinds] == [2, 8, 2]
    files = sorted((tmp_path / "manifests").iterdir())
    manifests = [o.manifest() for o in generated]
    assert [yaml.safe_load(f.read_text()) for f in files] == extra_vars["bench_manifests"] == manifests
    assert extra_vars["bench_manifests_dir"] == str(tmp_path / "manifests")  # method 1 reads what kubectl reads
    assert json.loads((tmp_path / "vars-src.json").read_text()) == {
        "bench_kubeconfig": str(tmp_path / "kubeconfig.yaml"), "bench_manifests_dir": str(tmp_path / "manifests")}
    # A second render (the changed run) replaces the files rather than adding to them.
    methods.render(generated[:5], tmp_path, tmp_path / "kubeconfig.yaml")
    assert len(list((tmp_path / "manifests").iterdir())) == 5
