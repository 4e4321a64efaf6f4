"""The platform stages (playbooks/metallb.yml, istio.yml, addons.yml, apps.yml)
against a Kubernetes API: they build exactly the lab contract's platform
objects from the real upstream manifests (../shared/upstream), a rerun changes
nothing, --check on an empty cluster writes nothing, and bad input is refused
with a clear message before anything is written.

Boundaries: Istio is installed by tests/bin/istioctl, a test double of
istioctl (no release download, no live cluster here); it validates the
IstioOperator the role renders and creates the objects the demo profile
creates that the contract names. Pods "run" because the API double's
controllers mark workloads ready; no image is pulled. The built platform
(loopback MetalLB pool, the istioctl double) therefore needs the API double;
the check-mode and bad-input tests run unchanged on a real cluster."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import tarfile
import threading
from pathlib import Path

import pytest
import yaml
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.applyset import PART_OF, set_id

from tests.conftest import WRITE_VERBS, _make_double_target, shared_path
from tests.helpers import ISTIOCTL_DOUBLE, platform_vars, run_playbook

pytestmark = pytest.mark.api

REPO = Path(__file__).resolve().parents[2]
MANAGED = {"app.kubernetes.io/managed-by": "istio-lab"}
POOL = "127.240.0.10-127.240.0.20"
INGRESS_IP = "127.240.0.10"
STAGES = ("metallb", "istio", "addons", "apps")


def stage_vars(workdir: Path, **overrides) -> dict:
    return platform_vars(shared_path() / "upstream", workdir, POOL, INGRESS_IP, **overrides)


def stage(name: str, kube, workdir: Path, check=False, env=None, **overrides):
    env = {"ISTIOCTL_DOUBLE_LOG": str(workdir / "istioctl.log"), **(env or {})}
    return run_playbook(f"playbooks/{name}.yml", kube=kube, extra_vars=stage_vars(workdir, **overrides),
                        check=check, env=env)


def istioctl_calls(workdir: Path) -> list[dict]:
    log = workdir / "istioctl.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def ports(service: dict) -> list[tuple]:
    return [(p.get("name"), p["port"], p.get("targetPort"), p.get("protocol", "TCP")) for p in service["spec"]["ports"]]


# ------------------------------------------------------------------ the built platform


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """A fresh cluster (no CRDs), MetalLB's webhook refusing its first two
    writes; the four stages run once, then once more."""
    if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
        pytest.skip("builds MetalLB with a loopback pool and Istio through the istioctl test double: API double only")
    if not (shared_path() / "upstream").is_dir():
        pytest.skip(f"shared upstream manifests not found under {shared_path()} (set ISTIO_LAB_SHARED)")
    workdir = tmp_path_factory.mktemp("platform")
    double, kube = _make_double_target(workdir, [], webhook_warmup_failures=2)
    try:
        first, first_requests = {}, {}
        for name in STAGES:
            stage_mark = kube.mark()
            first[name] = stage(name, kube, workdir)
            first_requests[name] = kube.requests(stage_mark)
        versions = resource_versions(kube)
        mark = kube.mark()
        second, second_requests = {}, {}
        for name in STAGES:
            stage_mark = kube.mark()
            second[name] = stage(name, kube, workdir)
            second_requests[name] = kube.requests(stage_mark)
        yield {"kube": kube, "workdir": workdir, "first": first, "second": second, "versions": versions,
               "first_requests": first_requests, "second_mark": mark, "second_requests": second_requests}
    finally:
        double.stop()


def contract_objects(kube) -> list[dict]:
    wanted = [
        ("apps/v1", "Deployment", "controller", "metallb-system"),
        ("apps/v1", "DaemonSet", "speaker", "metallb-system"),
        ("metallb.io/v1beta1", "IPAddressPool", "istio-lab-pool", "metallb-system"),
        ("metallb.io/v1beta1", "L2Advertisement", "istio-lab-pool", "metallb-system"),
        ("apps/v1", "Deployment", "istiod", "istio-system"),
        ("v1", "Service", "istio-ingressgateway", "istio-system"),
        ("v1", "Service", "istio-egressgateway", "istio-system"),
        ("v1", "Service", "prometheus", "istio-system"),
        ("v1", "Service", "grafana", "istio-system"),
        ("v1", "Service", "kiali", "istio-system"),
        ("v1", "Service", "zipkin", "istio-system"),
        ("v1", "Service", "tracing", "istio-system"),
        ("v1", "ConfigMap", "istio-services-grafana-dashboards", "istio-system"),
        ("v1", "Namespace", "microservice", None),
        ("apps/v1", "Deployment", "tomcat", "microservice"),
        ("v1", "Service", "tomcat", "microservice"),
    ]
    objects = []
    for api_version, kind, name, namespace in wanted:
        obj = kube.get(api_version, kind, name, namespace)
        assert obj is not None, f"{kind} {namespace}/{name} missing"
        objects.append(obj)
    return objects


def resource_versions(kube) -> dict:
    return {(o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"] for o in contract_objects(kube)}


def test_first_run_builds_every_stage(platform):
    for name, result in platform["first"].items():
        assert result.rc == 0 and result.failed == 0, f"{name}: {result}"
        assert result.changed > 0, f"{name} changed nothing on an empty cluster"


def test_metallb_webhook_refusals_are_retried(platform):
    """The webhook refuses its first two calls (warm-up): lab_manifests tries
    the pool again, in the same task, after the controller and the webhook's
    endpoints were waited for."""
    requests = platform["first_requests"]["metallb"]
    pool_writes = [r for r in requests if r.get("resource") in ("ipaddresspools", "l2advertisements")
                   and r.get("verb") in WRITE_VERBS]
    refused = [r for r in pool_writes if r.get("status") == 500]
    assert len(refused) == 2, pool_writes
    assert {(r["resource"], r["name"]) for r in pool_writes if r.get("status") in (200, 201)} == \
        {("ipaddresspools", "istio-lab-pool"), ("l2advertisements", "istio-lab-pool")}
    endpoints_read = max(i for i, r in enumerate(requests) if r.get("resource") == "endpoints")
    assert all(requests.index(r) > endpoints_read for r in pool_writes)
    assert "Apply MetalLB, wait for its controller and webhook, then apply the address pool" in \
        platform["first"]["metallb"].stdout


def test_second_run_changes_nothing(platform):
    kube = platform["kube"]
    for name, result in platform["second"].items():
        assert result.rc == 0 and result.changed == 0, f"{name}: {result}"
    assert resource_versions(kube) == platform["versions"]
    # istioctl ran once: the rerun found its record (version + operator checksum) unchanged.
    installs = [c for c in istioctl_calls(platform["workdir"]) if c["argv"][0] == "install"]
    assert len(installs) == 1
    # Not even a server-side apply the API server would find identical.
    assert kube.writes(platform["second_mark"]) == []


def write_requests(requests: list[dict]) -> list[dict]:
    """Every write request (POST, PUT, PATCH, DELETE), dry-runs included."""
    return [r for r in requests if r.get("verb") in WRITE_VERBS]


def written(requests: list[dict]) -> set[tuple]:
    return {(r["resource"], r.get("namespace"), r["name"]) for r in write_requests(requests)}


# GETs a re-run still makes besides the preflight's: the waits for what the
# stage did not write itself (MetalLB's webhook Endpoints; Istio's record,
# its control plane and the ingress Service's address), and the parent of
# the stage's owned set (issue 20, docs/applysets.md). Every stage run alone
# also reads the platform record and Istio's install record (docs/upgrade.md):
# the pins checked against it, the namespaces' injection label from it.
RECORD_GETS = {("configmaps", "istio-lab-record"), ("configmaps", "istio-lab-install")}
STAGE_GETS = {
    "metallb": {("endpoints", "metallb-webhook-service"), ("deployments", "controller"),
                ("configmaps", "applyset-metallb")},
    "istio": {("configmaps", "istio-lab-install"), ("deployments", "istiod"),
              ("deployments", "istio-ingressgateway"), ("deployments", "istio-egressgateway"),
              ("services", "istio-ingressgateway")},
    "addons": {("configmaps", "applyset-addons")},
    "apps": {("configmaps", "applyset-apps")},
}


@pytest.mark.parametrize("name", STAGES)
def test_a_rerun_sends_no_write(platform, name):
    """Where nothing differs a re-run only reads: no server-side apply, no
    replace, not even a dry-run."""
    assert write_requests(platform["second_requests"][name]) == [], name
    # The live objects are read with lists per kind and namespace, and the
    # rollouts of what they list from the same lists: the only GETs left are
    # the preflight's and the waits for objects the stage does not list.
    requests = platform["second_requests"][name]
    gets = {(r["resource"], r["name"]) for r in requests if r.get("verb") == "get" and not r.get("discovery")}
    assert [r for r in requests if r.get("verb") == "list"], name
    assert gets <= {("namespaces", "kube-system"), ("configmaps", "kube-proxy"), ("nodes", None)} | RECORD_GETS \
        | STAGE_GETS[name], \
        (name, gets)


def test_metallb_objects(platform):
    kube = platform["kube"]
    assert kube.get("v1", "Namespace", "metallb-system")["metadata"]["labels"]["app.kubernetes.io/managed-by"] == \
        "istio-lab"
    controller = kube.get("apps/v1", "Deployment", "controller", "metallb-system")
    assert controller["status"]["availableReplicas"] == 1
    assert controller["spec"]["template"]["spec"]["containers"][0]["image"] == "quay.io/metallb/controller:v0.16.1"
    speaker = kube.get("apps/v1", "DaemonSet", "speaker", "metallb-system")
    # Server-side apply keeps both memberlist ports (same number, TCP and UDP).
    assert [(p["containerPort"], p.get("protocol", "TCP")) for p in
            speaker["spec"]["template"]["spec"]["containers"][0]["ports"]] == \
        [(9120, "TCP"), (7946, "TCP"), (7946, "UDP")]
    pool = kube.get("metallb.io/v1beta1", "IPAddressPool", "istio-lab-pool", "metallb-system")
    assert pool["spec"]["addresses"] == [POOL]
    assert pool["metadata"]["labels"] == {**MANAGED, PART_OF: set_id("metallb")}
    advert = kube.get("metallb.io/v1beta1", "L2Advertisement", "istio-lab-pool", "metallb-system")
    assert advert["spec"]["ipAddressPools"] == ["istio-lab-pool"]


def test_ingress_gateway_service(platform):
    service = platform["kube"].get("v1", "Service", "istio-ingressgateway", "istio-system")
    assert service["spec"]["type"] == "LoadBalancer"
    assert {"app": "istio-ingressgateway", "istio": "ingressgateway"}.items() <= service["metadata"]["labels"].items()
    assert service["spec"]["selector"] == {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    assert ports(service) == [("status-port", 15021, 15021, "TCP"), ("http2", 80, 8080, "TCP"),
                              ("https", 443, 8443, "TCP"), ("tcp", 31400, 31400, "TCP"), ("tls", 15443, 15443, "TCP")]
    assert service["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == INGRESS_IP
    assert service["status"]["loadBalancer"]["ingress"][0]["ip"] == INGRESS_IP


def test_egress_gateway_service(platform):
    service = platform["kube"].get("v1", "Service", "istio-egressgateway", "istio-system")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["metadata"]["labels"]["istio"] == "egressgateway"
    assert ports(service) == [("http2", 80, 8080, "TCP"), ("https", 443, 8443, "TCP")]


def test_istiod_and_mesh_config(platform):
    kube = platform["kube"]
    istiod = kube.get("apps/v1", "Deployment", "istiod", "istio-system")
    assert istiod["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/istio/pilot:1.30.3"
    mesh = yaml.safe_load(kube.get("v1", "ConfigMap", "istio", "istio-system")["data"]["mesh"])
    assert mesh["defaultProviders"] == {"tracing": ["zipkin"]}
    assert mesh["extensionProviders"] == [
        {"name": "zipkin", "zipkin": {"service": "zipkin.istio-system.svc.cluster.local", "port": 9411}}]
    record = kube.get("v1", "ConfigMap", "istio-lab-install", "istio-system")
    assert record["metadata"]["labels"] == MANAGED
    assert record["data"]["version"] == "1.30.3"


def test_istioctl_command_line_and_operator(platform):
    kube, workdir = platform["kube"], platform["workdir"]
    calls = istioctl_calls(workdir)
    install = next(c for c in calls if c["argv"][0] == "install")
    operator_file = str(workdir / "cache" / "istio-1.30.3" / "lab-istio-operator.yaml")
    assert install["argv"] == ["install", "-y", "-f", operator_file, "--kubeconfig", kube.kubeconfig,
                               "--context", "double", "--readiness-timeout", "60s"]
    assert yaml.safe_load(Path(operator_file).read_text()) == install["operator"]
    spec = install["operator"]["spec"]
    assert (spec["profile"], spec["hub"], spec["tag"]) == ("demo", "docker.io/istio", "1.30.3")
    assert ["version", "--remote=false", "-o", "json"] in [c["argv"] for c in calls]


def test_addon_services(platform):
    kube = platform["kube"]
    expected = {"prometheus": [9090], "grafana": [3000], "kiali": [20001, 9090], "zipkin": [9411]}
    for name, numbers in expected.items():
        service = kube.get("v1", "Service", name, "istio-system")
        assert [p["port"] for p in service["spec"]["ports"]] == numbers, name
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
        assert service["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "istio-lab"
    tracing = kube.get("v1", "Service", "tracing", "istio-system")
    assert [(p["port"], p["targetPort"]) for p in tracing["spec"]["ports"]] == [(80, 9411)]
    grafana = kube.get("apps/v1", "Deployment", "grafana", "istio-system")
    assert [(p["containerPort"], p.get("protocol", "TCP")) for p in
            grafana["spec"]["template"]["spec"]["containers"][0]["ports"]] == \
        [(3000, "TCP"), (9094, "TCP"), (9094, "UDP"), (6060, "TCP")]
    # Applied server-side as UTF-8 JSON (\\u surrogate escapes would defeat the YAML apply decoder), and intact.
    dashboards = kube.get("v1", "ConfigMap", "istio-services-grafana-dashboards", "istio-system")
    assert "\U0001F510mTLS" in "".join(dashboards["data"].values())


def test_istio_system_pods_run(platform):
    pods = platform["kube"].list("v1", "Pod", "istio-system")
    running = {p["metadata"]["name"].rsplit("-", 2)[0] for p in pods if p["status"]["phase"] == "Running"}
    assert running >= {"istiod", "istio-ingressgateway", "istio-egressgateway", "grafana", "kiali", "prometheus",
                       "zipkin"}


def test_tomcat_in_microservice(platform):
    kube = platform["kube"]
    namespace = kube.get("v1", "Namespace", "microservice")
    assert namespace["metadata"]["labels"].items() >= \
        {**MANAGED, "istio-lab.io/chapter": "1", "istio-injection": "enabled"}.items()
    deployment = kube.get("apps/v1", "Deployment", "tomcat", "microservice")
    assert deployment["metadata"]["labels"] == {**MANAGED, "istio-lab.io/chapter": "1", "app": "tomcat",
                                                "version": "v1", PART_OF: set_id("apps")}
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "tomcat", "version": "v1"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "hub.c.163.com/library/tomcat:latest"
    assert [p["containerPort"] for p in container["ports"]] == [8080]
    service = kube.get("v1", "Service", "tomcat", "microservice")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {"app": "tomcat"}
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, 8080)]
    assert service["metadata"]["labels"]["istio-lab.io/chapter"] == "1"
    endpoints = kube.get("v1", "Endpoints", "tomcat", "microservice")
    assert endpoints["subsets"][0]["addresses"], "tomcat's Service selects no ready pod"


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        self.server.paths.append(self.path)


def release_istioctl(path):
    """The istioctl of a release: here a wrapper of the test double (which finds ../shared from its own place)."""
    path.write_text(f'#!/bin/sh\nexec "{ISTIOCTL_DOUBLE}" "$@"\n')
    path.chmod(0o755)


def test_istioctl_from_release_tarball_is_downloaded_once(platform, tmp_path):
    """The release route: a tarball served over HTTP on loopback (standing in
    for the GitHub release), downloaded and extracted once, then reused."""
    kube, workdir = platform["kube"], platform["workdir"]
    release = tmp_path / "release"
    (release / "istio-1.30.3" / "bin").mkdir(parents=True)
    release_istioctl(release / "istio-1.30.3" / "bin" / "istioctl")
    with tarfile.open(tmp_path / "istio-1.30.3-linux-amd64.tar.gz", "w:gz") as tar:
        tar.add(release / "istio-1.30.3", arcname="istio-1.30.3")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_CountingHandler, directory=str(tmp_path)))
    server.paths = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    installs_before = len([c for c in istioctl_calls(workdir) if c["argv"][0] == "install"])
    forget_the_install(kube)  # istioctl is obtained only when Istio must be installed
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/istio-1.30.3-linux-amd64.tar.gz"
        cache = tmp_path / "cache"
        runs = [stage("istio", kube, workdir, istio_istioctl_path="", istio_release_src=url, lab_cache_dir=str(cache),
                      istio_operator_file=str(workdir / "cache" / "istio-1.30.3" / "lab-istio-operator.yaml"))
                for _ in range(2)]
    finally:
        server.shutdown()
    assert all(r.rc == 0 for r in runs), runs[-1]
    assert server.paths == ["/istio-1.30.3-linux-amd64.tar.gz"]
    assert (cache / "istio-1.30.3" / "bin" / "istioctl").is_file()
    assert runs[1].changed == 0, runs[1]
    # Same version and operator file the second time: the cluster is left alone.
    assert len([c for c in istioctl_calls(workdir) if c["argv"][0] == "install"]) == installs_before + 1


def test_istioctl_from_an_extracted_release_directory(platform, tmp_path):
    kube, workdir = platform["kube"], platform["workdir"]
    (tmp_path / "istio-1.30.3" / "bin").mkdir(parents=True)
    release_istioctl(tmp_path / "istio-1.30.3" / "bin" / "istioctl")
    result = stage("istio", kube, workdir, istio_istioctl_path="", istio_release_src=str(tmp_path / "istio-1.30.3"))
    assert result.rc == 0 and result.changed == 0, result


def forget_the_install(kube):
    """Remove istio-lab's record of its last install: the next Istio stage must install."""
    kube.resource("v1", "ConfigMap").delete(name="istio-lab-install", namespace="istio-system")


def test_istioctl_of_another_version_is_refused(platform):
    kube, workdir = platform["kube"], platform["workdir"]
    # Istio as istio-lab installed it: no install, so istioctl is neither obtained nor asked its version.
    unchanged = stage("istio", kube, workdir, env={"ISTIOCTL_DOUBLE_VERSION": "1.29.0"})
    assert unchanged.rc == 0 and unchanged.changed == 0, unchanged
    forget_the_install(kube)
    result = stage("istio", kube, workdir, env={"ISTIOCTL_DOUBLE_VERSION": "1.29.0"})
    assert result.rc != 0
    assert "is istioctl 1.29.0, not istio_version 1.30.3" in result.stdout
    assert stage("istio", kube, workdir).rc == 0  # installed and recorded again, for the tests after this one


def edit(kube, change: dict) -> None:
    """Change live fields istio-lab sets. A ConfigMap is edited as `kubectl
    edit` would, with a merge patch (another field manager).
    Server-side applied objects are edited by applying the whole live object,
    changed, as field manager istio-lab: the API double does not honour
    `force=True` (the Python client's spelling; it expects "true"), so a field
    another manager took over could not be taken back there."""
    resource = kube.resource(change["apiVersion"], change["kind"])
    name, namespace = change["metadata"]["name"], change["metadata"].get("namespace")
    if change["kind"] == "ConfigMap":
        resource.patch(body=change, name=name, namespace=namespace, content_type="application/merge-patch+json")
        return
    live = kube.get(change["apiVersion"], change["kind"], name, namespace)
    live.pop("status", None)
    for field in ("uid", "resourceVersion", "managedFields", "creationTimestamp", "generation"):
        live["metadata"].pop(field, None)
    for key, value in change.get("spec", {}).items():
        live["spec"][key] = {**live["spec"][key], **value} if isinstance(value, dict) else value
    resource.server_side_apply(body=live, name=name, namespace=namespace, field_manager="istio-lab")


def test_drift_is_repaired_and_only_the_drifted_objects_are_written(platform):
    """Someone edits fields istio-lab sets: the next run of each stage applies
    exactly those objects again (server-side apply) and writes nothing else."""
    kube, workdir = platform["kube"], platform["workdir"]
    dashboards = kube.get("v1", "ConfigMap", "istio-services-grafana-dashboards", "istio-system")
    dashboard_key = sorted(dashboards["data"])[0]
    edits = {
        "metallb": [{"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                     "metadata": {"name": "istio-lab-pool", "namespace": "metallb-system"},
                     "spec": {"addresses": ["127.240.0.30-127.240.0.40"]}}],
        "addons": [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "grafana", "namespace": "istio-system"},
                    "spec": {"selector": {"app.kubernetes.io/name": "not-grafana"}}},
                   {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "istio-services-grafana-dashboards", "namespace": "istio-system"},
                    "data": {dashboard_key: "{}"}}],
        "apps": [{"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "tomcat", "namespace": "microservice"}, "spec": {"replicas": 3}}],
    }
    expected = {
        "metallb": {("ipaddresspools", "metallb-system", "istio-lab-pool")},
        "addons": {("services", "istio-system", "grafana"),
                   ("configmaps", "istio-system", "istio-services-grafana-dashboards")},
        "apps": {("deployments", "microservice", "tomcat")},
    }
    for name, objects in edits.items():
        for obj in objects:
            edit(kube, obj)
        mark = kube.mark()
        result = stage(name, kube, workdir)
        assert result.rc == 0 and result.changed > 0, f"{name}: {result}"
        assert written(kube.requests(mark)) == expected[name], name
    assert kube.get("metallb.io/v1beta1", "IPAddressPool", "istio-lab-pool", "metallb-system")["spec"]["addresses"] == \
        [POOL]
    assert kube.get("v1", "Service", "grafana", "istio-system")["spec"]["selector"]["app.kubernetes.io/name"] == \
        "grafana"
    assert kube.get("v1", "ConfigMap", "istio-services-grafana-dashboards", "istio-system")["data"] == \
        dashboards["data"]
    assert kube.get("apps/v1", "Deployment", "tomcat", "microservice")["spec"]["replicas"] == 1


def test_a_changed_manifest_is_applied(platform):
    """A changed setting reaches the cluster on the next run (only the object
    it changes is written), and going back is applied too."""
    kube, workdir = platform["kube"], platform["workdir"]
    image = "hub.c.163.com/library/tomcat:9"
    # tomcat-v2 (chapter 4) runs the same image unless told otherwise
    tomcats = {("deployments", "microservice", d["metadata"]["name"]) for d in
               kube.list("apps/v1", "Deployment", "microservice") if d["metadata"]["name"] in ("tomcat", "tomcat-v2")}
    for overrides, wanted in (({"lab_apps_tomcat_image": image}, image), ({}, "hub.c.163.com/library/tomcat:latest")):
        mark = kube.mark()
        result = stage("apps", kube, workdir, **overrides)
        assert result.rc == 0 and result.changed > 0, result
        assert written(kube.requests(mark)) == tomcats
        deployment = kube.get("apps/v1", "Deployment", "tomcat", "microservice")
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == wanted


# ------------------------------------------------------------------ check mode


def test_check_mode_on_an_empty_cluster_writes_nothing(kube, tmp_path):
    if not (shared_path() / "upstream").is_dir():
        pytest.skip("shared upstream manifests not found")
    mark = kube.mark()
    for name in STAGES:
        result = stage(name, kube, tmp_path, check=True)
        assert result.rc == 0, f"{name}: {result}"
    assert kube.writes(mark) == []
    assert istioctl_calls(tmp_path) and all(c["argv"][0] == "version" for c in istioctl_calls(tmp_path))
    assert not (tmp_path / "cache" / "istio-1.30.3" / "lab-istio-operator.yaml").exists()
    assert kube.get("v1", "Namespace", "microservice") is None


# ------------------------------------------------------------------ bad input


def _node_address(kube) -> str:
    for node in kube.list("v1", "Node"):
        for address in node["status"].get("addresses", []):
            if address["type"] == "InternalIP" and ":" not in address["address"]:
                return address["address"]
    pytest.skip("no IPv4 node address to overlap")


@pytest.mark.parametrize(
    ("playbook", "overrides", "message"),
    [
        ("metallb", {"metallb_address_range": "127.240.0.20-127.240.0.10"}, "is reversed"),
        ("metallb", {"lab_ingress_ip": "127.240.0.30"}, "lab_ingress_ip '127.240.0.30' is outside"),
        ("metallb", {"metallb_address_range": "NODE"}, "includes node or reserved address(es)"),
        ("addons", {"istio_addons_enabled": ["prometheus", "jaeger", "zipkin"]}, "lists both zipkin and jaeger"),
        ("apps", {"lab_apps_chapters": ["1", "9"]}, "Unknown chapter(s) 9 in lab_apps_chapters"),
    ],
    ids=["reversed", "ingress-outside", "node-overlap", "jaeger-and-zipkin", "unknown-chapter"],
)
def test_bad_input_is_refused_before_writing(kube, tmp_path, playbook, overrides, message):
    """Every syntax error of a range is covered by tests/unit/test_platform_addresses.py."""
    if overrides.get("metallb_address_range") == "NODE":
        node = _node_address(kube)
        overrides = {"metallb_address_range": f"{node}-{node}", "lab_ingress_ip": node}
    mark = kube.mark()
    result = stage(playbook, kube, tmp_path, **overrides)
    assert result.rc != 0 and result.failed == 1, result
    assert message in result.stdout, result
    assert kube.writes(mark) == []


# ------------------------------------------------------------------ preflight


def test_preflight_names_a_missing_kubeconfig(tmp_path):
    result = run_playbook("playbooks/apps.yml", extra_vars={"lab_kubeconfig": str(tmp_path / "nope")})
    assert result.rc != 0
    assert f"No kubeconfig at {tmp_path / 'nope'}" in result.stdout


def test_preflight_names_an_unknown_context(kube):
    result = run_playbook("playbooks/apps.yml", kube=kube, extra_vars={"lab_kube_context": "classroom"})
    assert result.rc != 0
    assert f"Context classroom is not in kubeconfig {kube.kubeconfig} (its contexts: {kube.context})" in \
        " ".join(result.stdout.split())


def test_preflight_says_when_nothing_answers(tmp_path):
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "lab", "user": {"token": "x"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}]}))
    result = run_playbook("playbooks/apps.yml", extra_vars={"lab_kubeconfig": str(kubeconfig)})
    assert result.rc != 0
    text = " ".join(result.stdout.split())
    assert f"The cluster is unreachable: nothing answered at its API server (API server http://127.0.0.1:{port}," \
           f" context lab, kubeconfig {kubeconfig})" in text


def test_preflight_says_when_credentials_are_refused(kube, tmp_path):
    kube.require_double("a kubeconfig with a wrong token for the same server")
    config = yaml.safe_load(Path(kube.kubeconfig).read_text())
    config["users"][0]["user"]["token"] = "not-the-token"
    kubeconfig = tmp_path / "bad-token"
    kubeconfig.write_text(yaml.safe_dump(config))
    result = run_playbook("playbooks/apps.yml", extra_vars={"lab_kubeconfig": str(kubeconfig),
                                                             "lab_kube_context": kube.context})
    assert result.rc != 0
    assert "The cluster refused the credentials of this context (401 Unauthorized)" in " ".join(result.stdout.split())


def test_preflight_refuses_ipvs_without_strict_arp(kube, tmp_path):
    kube.require_double("rewrites kube-system/kube-proxy")
    proxy = kube.get("v1", "ConfigMap", "kube-proxy", "kube-system")
    config = yaml.safe_load(proxy["data"]["config.conf"])
    config.update(mode="ipvs", ipvs={"strictARP": False})
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
                "data": {"config.conf": yaml.safe_dump(config)}})
    mark = kube.mark()
    result = stage("metallb", kube, tmp_path)
    assert result.rc != 0
    assert "kube-proxy runs in IPVS mode without strictARP" in " ".join(result.stdout.split())
    assert kube.writes(mark) == []
    # With strictARP the preflight passes: the next refusal is the (deliberately) malformed range.
    config["ipvs"]["strictARP"] = True
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
                "data": {"config.conf": yaml.safe_dump(config)}})
    result = stage("metallb", kube, tmp_path, metallb_address_range="pool")
    assert "metallb_address_range 'pool' is malformed" in result.stdout
    assert "layer-2 announcements would not work" not in result.stdout


# ------------------------------------------------------------------ registry mirror


def test_registry_mirror_and_addons_from_a_url(kube, tmp_path):
    """Addons downloaded from a release layout served on loopback (standing in
    for raw.githubusercontent.com), images moved to a registry mirror."""
    addons = shared_path() / "upstream" / "istio-1.30.3" / "addons"
    if not addons.is_dir():
        pytest.skip(f"shared addons not found at {addons}")
    served = tmp_path / "www" / "samples" / "addons"
    (served / "extras").mkdir(parents=True)
    for name in ("prometheus", "grafana", "kiali"):
        shutil.copy(addons / f"{name}.yaml", served / f"{name}.yaml")
    shutil.copy(addons / "zipkin.yaml", served / "extras" / "zipkin.yaml")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_CountingHandler, directory=str(tmp_path / "www")))
    server.paths = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kube.ensure_namespace("istio-system")
    mirror = {"lab_registry_mirror": "harbor.school.example/mirror",
              "istio_addons_src": f"http://127.0.0.1:{server.server_address[1]}/samples/addons"}
    try:
        for name in ("addons", "apps"):
            result = stage(name, kube, tmp_path, **mirror)
            assert result.rc == 0, f"{name}: {result}"
    finally:
        server.shutdown()
    assert sorted(server.paths) == ["/samples/addons/extras/zipkin.yaml", "/samples/addons/grafana.yaml",
                                    "/samples/addons/kiali.yaml", "/samples/addons/prometheus.yaml"]
    images = {d["metadata"]["name"]: [c["image"] for c in d["spec"]["template"]["spec"]["containers"]]
              for namespace in ("istio-system", "microservice") for d in kube.list("apps/v1", "Deployment", namespace)}
    assert images["tomcat"] == ["harbor.school.example/mirror/library/tomcat:latest"]
    assert images["kiali"] == ["harbor.school.example/mirror/kiali/kiali:v2.26"]
    assert images["zipkin"] == ["harbor.school.example/mirror/openzipkin/zipkin-slim:3.4.0"]
    assert "harbor.school.example/mirror/prom/prometheus:v3.10.0" in images["prometheus"]


# ------------------------------------------------------------------ a classroom's Grafana password


def test_grafana_reads_a_classroom_password_from_a_secret_never_printed(kube, tmp_path):
    """A classroom hands each student a Grafana password: the addons stage keeps
    it in a Secret that Grafana reads, prints it nowhere, and a rerun changes nothing."""
    password = "Student07-grafana-pass"
    kube.ensure_namespace("istio-system")
    # Chapter 1 alone: the plan refuses to leave out the addons chapters 2 and 3 route to.
    overrides = {"istio_addons_enabled": ["grafana"], "istio_addons_grafana_admin_password": password,
                 "lab_enabled_chapters": ["1"]}
    first = stage("addons", kube, tmp_path, **overrides)
    assert first.rc == 0, first.stdout[-3000:]
    secret = kube.get("v1", "Secret", "grafana-admin", "istio-system")
    assert secret is not None
    assert base64.b64decode(secret["data"]["password"]).decode() == password
    deployment = kube.get("apps/v1", "Deployment", "grafana", "istio-system")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == {
        "name": "GF_SECURITY_ADMIN_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "grafana-admin", "key": "password"}},
    }
    second = stage("addons", kube, tmp_path, **overrides)
    assert second.rc == 0 and second.changed == 0, second.stdout[-3000:]
    for result in (first, second):
        assert password not in result.stdout + result.stderr
        assert base64.b64encode(password.encode()).decode() not in result.stdout + result.stderr


def test_the_metallb_role_alone_reads_the_node_addresses_itself(kube, tmp_path):
    """Without the stage playbook's preflight (a user's own play), the role asks lab_cluster_info for the nodes'
    addresses and still refuses a pool that covers one."""
    node = _node_address(kube)
    playbook = tmp_path / "metallb-alone.yml"
    playbook.write_text(yaml.safe_dump([{"name": "MetalLB alone", "hosts": "labs", "gather_facts": False,
                                         "environment": "{{ lab_k8s_auth_env }}", "roles": ["istio_lab.lab.metallb"]}]))
    mark = kube.mark()
    result = run_playbook(playbook, kube=kube, extra_vars=stage_vars(tmp_path, metallb_address_range=f"{node}-{node}",
                                                                      lab_ingress_ip=node))
    assert result.rc != 0 and "includes node or reserved address(es)" in result.stdout, result
    assert "Read the nodes' addresses" in result.stdout
    assert kube.writes(mark) == []
