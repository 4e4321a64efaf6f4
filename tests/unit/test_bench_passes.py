"""bench/run on a real cluster (issue 23): every timed run talks to the API server with the cluster's own
kubeconfig, nothing in between; the requests are counted in a separate, untimed pass through the counting
proxy, over namespaces of its own. On the double one pass does both (it counts in-process)."""

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # bench/ is run from the repo root, not installed

from bench.istio_lab_bench import __main__ as bench  # noqa: E402
from bench.istio_lab_bench import cluster, harness  # noqa: E402

REAL_SERVER = "https://127.0.0.1:6443"  # nothing needs to listen: no request reaches it here


def real_kubeconfig(path: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "real",
        "clusters": [{"name": "real", "cluster": {"server": REAL_SERVER, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "real", "user": {"token": "real-token"}}],
        "contexts": [{"name": "real", "context": {"cluster": "real", "user": "real"}}]}))
    return path


def server_of(kubeconfig: str) -> str:
    return yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"]


def test_no_timed_run_goes_through_the_proxy(tmp_path, monkeypatch):
    monkeypatch.setenv("ISTIO_LAB_TEST_KUBECONFIG", str(real_kubeconfig(tmp_path / "real.yaml")))
    runs = []

    def run_measured(argv, env, **_kwargs):
        kubeconfig = argv[argv.index("--kubeconfig") + 1] if "--kubeconfig" in argv else env["K8S_AUTH_KUBECONFIG"]
        server = server_of(kubeconfig)
        runs.append(server)
        direct = server == REAL_SERVER
        return harness.Measured(argv, 0, 1.0 if direct else 99.0, 1.0, 1.0, 0.0, "", "")

    counted = [{"method": "PATCH", "verb": "patch", "path": "/apis/networking.istio.io/v1/x", "status": 200}]
    monkeypatch.setattr(bench, "run_measured", run_measured)
    monkeypatch.setattr(bench, "mismatches", lambda *_args: [])
    monkeypatch.setattr(bench, "serves_openapi", lambda _api: True)
    monkeypatch.setattr(bench, "kubectl_path", lambda: "/usr/bin/kubectl")
    monkeypatch.setattr(harness.Api, "create_namespaces", lambda self, names: None)
    monkeypatch.setattr(harness.Api, "delete_namespaces", lambda self, names: None)
    monkeypatch.setattr(cluster.ProxyCounts, "records", lambda self: list(counted))
    args = bench.parse_args(["--sizes", "12", "--methods", "1,5"])
    args.run_id = "test"
    for method in ("1", "5"):
        runs.clear()
        result = bench.run_one(method, 12, args)
        assert "error" not in result, result
        assert result["requests_source"] == cluster.ClusterTarget.requests_source
        # Two passes of three runs: the timed one straight at the server, the counting one through the proxy.
        assert runs[:3] == [REAL_SERVER] * 3 and all(server != REAL_SERVER for server in runs[3:]) and len(runs) == 6
        for phase in ("first", "noop", "changed"):
            data = result["phases"][phase]
            assert data["wall_s"] == 1.0  # never the proxied pass's 99.0
            assert data["counting_pass_wall_s"] == 99.0
            assert data["requests"]["writes"] == 1  # the counting pass's records


def test_the_double_times_and_counts_in_one_pass(tmp_path):
    target = harness.DoubleTarget.__new__(harness.DoubleTarget)
    target.kubeconfig = tmp_path / "kubeconfig.yaml"
    [only] = target.passes()
    assert only.timed and only.counts is target and only.kubeconfig == target.kubeconfig


def test_write_cost_model_is_gone():
    """Its modelled figures ranked the tools unlike the real server (issue 23): bench/run no longer offers it."""
    import pytest

    with pytest.raises(SystemExit):
        bench.parse_args(["--write-cost-ms", "9"])
