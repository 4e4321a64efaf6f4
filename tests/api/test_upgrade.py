"""playbooks/upgrade.yml (issue 20, "Done when"): a lab built by site.yml on
the previous releases (Istio 1.29.6, MetalLB 0.15.3, from ../shared) is
upgraded to the pins (1.30.3, 0.16.1): Istio by canary revision, then
MetalLB, then the addons, each step gated by the verification of every
enabled chapter; a failing gate rolls the step back; the precheck refuses,
before any write, what must not be upgraded.

Boundaries, as in tests/api/test_site.py: istioctl is tests/bin/istioctl
(linked into a release directory per version, so that each "release" claims
its own version, as an extracted release's bin/istioctl does); pods "run"
because the API double's controllers mark workloads ready, so sidecars are
not injected and their images are not checked (the Deployments' images are);
the route probes go to tests/verify_envoy.py. The failing gate is real
breakage of the stand-in: its Envoy stops routing once the ingress gateway
runs the new version's image."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import _make_double_target as make_double_target
from tests.helpers import OLD, changed_tasks, image, platform_vars, record, run_playbook, versioned_sources
from tests.verify_envoy import Answer, UpgradeEnvoy

pytestmark = pytest.mark.api

DOMAIN = "kubernets.cn"
ISTIO = "networking.istio.io/v1"
METALLB = "metallb.io/v1beta1"
POOL = "127.243.0.10-127.243.0.20"
INGRESS_IP = "127.243.0.10"
ENVOY_ADDRESS = "127.243.1.1"
EXTERNAL = "external.example"
CHAPTER_NAMESPACES = ("microservice", "egress", "istio-system")
ISTIO_KINDS = ("Gateway", "VirtualService", "DestinationRule", "ServiceEntry")


def lab_vars(shared_dir: Path, tmp_path: Path, envoy, chapters=("1", "2", "3", "4", "5", "6"), **overrides) -> dict:
    upstream = shared_dir / "upstream"
    return platform_vars(
        upstream, tmp_path, POOL, INGRESS_IP, cluster_provider="existing", **versioned_sources(upstream, tmp_path),
        istio_addons_grafana_admin_password="s3cret-grafana",
        lab_verify_report_dir=str(tmp_path / "artifacts"), lab_verify_retries=0,
        lab_verify_ingress_ip=envoy.address, lab_verify_http_port=envoy.port,
        lab_enabled_chapters=list(chapters), lab_egress_host=EXTERNAL, lab_verify_mesh_probes=False,
        lab_verify_split_samples=100, **overrides)


def build_old_lab(kube, values):
    result = run_playbook("site.yml", kube=kube, extra_vars={**values, **OLD})
    assert result.rc == 0 and result.failed == 0, str(result)
    return result


def upstream_image(path: Path, deployment: str) -> str:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "Deployment" and doc["metadata"]["name"] == deployment:
            return doc["spec"]["template"]["spec"]["containers"][0]["image"]
    raise AssertionError(f"{deployment} not in {path}")


def chapter_state(kube) -> dict:
    """The chapters' objects as the student sees them: Istio objects' specs, the apps' containers and Services."""
    state = {}
    for namespace in CHAPTER_NAMESPACES:
        for kind in ISTIO_KINDS:
            for obj in kube.list(ISTIO, kind, namespace, label_selector="istio-lab.io/chapter"):
                state[(kind, namespace, obj["metadata"]["name"])] = obj["spec"]
        for obj in kube.list("apps/v1", "Deployment", namespace, label_selector="istio-lab.io/chapter"):
            state[("Deployment", namespace, obj["metadata"]["name"])] = obj["spec"]["template"]["spec"]["containers"]
        for obj in kube.list("v1", "Service", namespace, label_selector="istio-lab.io/chapter"):
            state[("Service", namespace, obj["metadata"]["name"])] = obj["spec"]["ports"]
    return state


def mutating_webhooks(kube) -> set:
    return {w["metadata"]["name"] for w in kube.list("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")}


def test_upgrade_moves_a_lab_from_the_previous_releases_to_the_pins(kube, shared_dir, tmp_path):
    kube.require_double("builds MetalLB with a loopback pool and Istio through the istioctl test double")
    with UpgradeEnvoy(kube, address=ENVOY_ADDRESS, domain=DOMAIN) as envoy:
        values = lab_vars(shared_dir, tmp_path, envoy)
        build_old_lab(kube, values)
        assert image(kube, "istiod") == "docker.io/istio/pilot:1.29.6"
        old_record = record(kube)
        assert (old_record["istio_version"], old_record["metallb_version"], old_record["istio_revisions"]) == \
            ("1.29.6", "0.15.3", "default")
        chapters_before = chapter_state(kube)
        assert len(chapters_before) > 10
        grafana_secret = kube.get("v1", "Secret", "grafana-admin", "istio-system")["data"]
        pool_before = kube.list(METALLB, "IPAddressPool", "metallb-system")[0]["spec"]

        # site.yml with the new pins refuses before any write and says to run upgrade.yml
        mark = kube.mark()
        refused = run_playbook("site.yml", kube=kube, extra_vars=values)
        assert refused.rc != 0, str(refused)
        assert "Run playbooks/upgrade.yml to upgrade" in " ".join(refused.stdout.split()), str(refused)
        assert kube.writes(mark) == []

        upgraded = run_playbook("playbooks/upgrade.yml", kube=kube, extra_vars=values)
        assert upgraded.rc == 0 and upgraded.failed == 0, str(upgraded)

        data = record(kube)
        assert (data["istio_version"], data["metallb_version"], data["istio_revisions"]) == \
            ("1.30.3", "0.16.1", "1-30-3")
        assert data["addons"] == "prometheus,grafana,kiali,zipkin" and data["tooling"] == "istio-lab/1.0.0"
        history = json.loads(data["history"])
        assert [(h["step"], h["result"]) for h in history] == [("istio", "ok"), ("metallb", "ok"), ("addons", "ok")]
        assert history[0]["from"] == "1.29.6" and history[0]["to"] == "1.30.3"

        # the new revision runs, the old one is gone; the gateways moved with their Services kept
        assert image(kube, "istiod-1-30-3") == "docker.io/istio/pilot:1.30.3"
        assert kube.get("apps/v1", "Deployment", "istiod", "istio-system") is None
        assert mutating_webhooks(kube) == {"istio-sidecar-injector-1-30-3"}
        for gateway in ("istio-ingressgateway", "istio-egressgateway"):
            assert image(kube, gateway) == "docker.io/istio/proxyv2:1.30.3"
            deployment = kube.get("apps/v1", "Deployment", gateway, "istio-system")
            assert deployment["metadata"]["labels"]["istio.io/rev"] == "1-30-3"
        ingress = kube.get("v1", "Service", "istio-ingressgateway", "istio-system")
        assert ingress["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == INGRESS_IP
        assert ingress["status"]["loadBalancer"]["ingress"][0]["ip"] == INGRESS_IP
        # the chapters' namespaces moved to the new revision, their workloads restarted
        for namespace in ("microservice", "egress"):
            labels = kube.get("v1", "Namespace", namespace)["metadata"]["labels"]
            assert labels.get("istio.io/rev") == "1-30-3" and "istio-injection" not in labels, labels
        tomcat = kube.get("apps/v1", "Deployment", "tomcat", "microservice")
        assert "kubectl.kubernetes.io/restartedAt" in tomcat["spec"]["template"]["metadata"]["annotations"]
        # MetalLB and the addons run the new releases' images; pool, credentials and chapters unchanged
        upstream = shared_dir / "upstream"
        assert image(kube, "controller", "metallb-system") == \
            upstream_image(upstream / "metallb-0.16.1" / "metallb-native.yaml", "controller")
        assert image(kube, "controller", "metallb-system") != \
            upstream_image(upstream / "metallb-0.15.3" / "metallb-native.yaml", "controller")
        assert image(kube, "kiali") == upstream_image(upstream / "istio-1.30.3" / "addons" / "kiali.yaml", "kiali")
        assert kube.list(METALLB, "IPAddressPool", "metallb-system")[0]["spec"] == pool_before
        assert kube.get("v1", "Secret", "grafana-admin", "istio-system")["data"] == grafana_secret
        assert chapter_state(kube) == chapters_before
        report = json.loads((tmp_path / "artifacts" / "lab" / "verify.json").read_text())
        assert report["ok"] is True, report

        # nothing left to upgrade: no write; site.yml with the pins: nothing to change
        mark = kube.mark()
        again = run_playbook("playbooks/upgrade.yml", kube=kube, extra_vars=values)
        assert again.rc == 0 and again.changed == 0, str(again)
        assert "Nothing to upgrade" in again.stdout
        assert kube.writes(mark) == []
        site = run_playbook("site.yml", kube=kube, extra_vars=values)
        assert site.rc == 0 and site.failed == 0, str(site)
        assert kube.writes(mark) == []
        # only the local report may change: chapter 5's sampled counts come in another order
        assert changed_tasks(site.stdout) in ([], ["istio_lab.lab.lab_verify : Write the reports as JSON and Markdown"])


def test_a_failing_gate_after_the_istio_step_rolls_back_to_the_previous_release(kube, shared_dir, tmp_path):
    kube.require_double("builds MetalLB with a loopback pool and Istio through the istioctl test double")
    with UpgradeEnvoy(kube, broken_on="1.30.3", address=ENVOY_ADDRESS, domain=DOMAIN) as envoy:
        values = lab_vars(shared_dir, tmp_path, envoy, chapters=("1", "2", "3", "4"))
        build_old_lab(kube, values)
        chapters_before = chapter_state(kube)

        result = run_playbook("playbooks/upgrade.yml", kube=kube, extra_vars=values)
        assert result.rc != 0 and result.failed == 1, str(result)
        text = " ".join(result.stdout.split())
        assert "Upgrade step istio (1.29.6 -> 1.30.3) failed:" in text, text[-4000:]
        assert "the verification after the istio step failed" in text
        assert "Rolled back to 1.29.6, which verifies." in text

        # the previous release is back, the new revision gone, the namespaces back on the default revision
        assert image(kube, "istiod") == "docker.io/istio/pilot:1.29.6"
        assert kube.get("apps/v1", "Deployment", "istiod-1-30-3", "istio-system") is None
        assert mutating_webhooks(kube) == {"istio-sidecar-injector"}
        for gateway in ("istio-ingressgateway", "istio-egressgateway"):
            assert image(kube, gateway) == "docker.io/istio/proxyv2:1.29.6"
            deployment = kube.get("apps/v1", "Deployment", gateway, "istio-system")
            assert deployment["metadata"]["labels"]["istio.io/rev"] == "default"
        labels = kube.get("v1", "Namespace", "microservice")["metadata"]["labels"]
        assert labels.get("istio-injection") == "enabled" and "istio.io/rev" not in labels, labels
        assert image(kube, "controller", "metallb-system").endswith("v0.15.3")  # later steps never ran
        assert chapter_state(kube) == chapters_before
        report = json.loads((tmp_path / "artifacts" / "lab" / "verify.json").read_text())
        assert report["ok"] is True, report

        data = record(kube)
        assert (data["istio_version"], data["metallb_version"], data["istio_revisions"]) == \
            ("1.29.6", "0.15.3", "default")
        history = json.loads(data["history"])
        assert [h["step"] for h in history] == ["istio"]
        assert history[0]["result"].startswith("rolled back: ") and "verification after the istio step" in \
            history[0]["result"]


@pytest.fixture(scope="module")
def old_lab(tmp_path_factory, shared_dir):
    """One lab on the previous releases (chapters 1-3) shared by the precheck cases: each is refused before
    any write, so each leaves the lab as it found it (checked after every case; issue 29: one site.yml
    build instead of four). Its own double: the `kube` fixture is one test's."""
    if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
        pytest.skip("builds MetalLB with a loopback pool and Istio through the istioctl test double: API double only")
    workdir = tmp_path_factory.mktemp("old-lab")
    double, kube = make_double_target(tmp_path_factory.mktemp("old-lab-kube"), [shared_dir / "crds" /
                                                                              "istio-1.30.3-crds.yaml"])
    try:
        with UpgradeEnvoy(kube, address=ENVOY_ADDRESS, domain=DOMAIN) as envoy:
            values = lab_vars(shared_dir, workdir, envoy, chapters=("1", "2", "3"))
            build_old_lab(kube, values)
            yield kube, envoy, values
    finally:
        double.stop()


def resource_versions(kube) -> dict:
    """Every stored object's resourceVersion, by (group, resource, namespace, name)."""
    store = kube.double.store
    with store.lock:
        return {(*kind, *key): obj["metadata"].get("resourceVersion")
                for kind, bucket in store.objects.items() for key, obj in bucket.items()}


@pytest.mark.parametrize("case", ["downgrade", "three_minors", "unsupported_kubernetes", "failing_lab"])
def test_the_precheck_refuses_before_any_write(case, old_lab, monkeypatch):
    kube, envoy, values = old_lab
    found = resource_versions(kube)
    broken = {f"grafana-istio.{DOMAIN}": 503} if case == "failing_lab" else {}
    pins = {"downgrade": {"istio_version": "1.29.5"}, "three_minors": {"istio_version": "1.32.0"}}.get(case, {})
    if case == "unsupported_kubernetes":
        # the API server now says it is Kubernetes 1.31 (Istio 1.30 supports 1.32 to 1.36)
        from tests.kube_double import server
        monkeypatch.setitem(server.VERSION_INFO, "minor", "31")
        monkeypatch.setitem(server.VERSION_INFO, "gitVersion", "v1.31.4")
    for host, status in broken.items():
        monkeypatch.setitem(envoy.routes, host, [Answer(status, body="no healthy upstream")])
    mark = kube.mark()
    result = run_playbook("playbooks/upgrade.yml", kube=kube, extra_vars={**values, **pins})
    assert result.rc != 0 and result.failed == 1, str(result)
    text = " ".join(result.stdout.split())
    assert "Upgrade refused, nothing was written:" in text, text[-3000:]
    expected = {
        "downgrade": "Istio 1.29.5 is older than the recorded 1.29.6: a downgrade is refused unless "
                     "-e lab_upgrade_allow_downgrade=true",
        "three_minors": "Istio 1.29.6 to 1.32.0 skips 3 minor versions",
        "unsupported_kubernetes": "Kubernetes 1.31 is outside Istio 1.30's supported range 1.32-1.36",
        "failing_lab": f"the lab fails its verification before the upgrade (fix it first, playbooks/verify.yml): "
                       f"grafana-istio.{DOMAIN}:",
    }[case]
    assert expected in text, text[-3000:]
    assert kube.writes(mark) == []
    assert record(kube)["istio_version"] == "1.29.6"
    assert resource_versions(kube) == found  # the lab as this case found it, for the next one
