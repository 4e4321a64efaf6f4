"""playbooks/upgrade.yml's rollbacks (issue 20: "a gate after each step ... when it fails, the upgrade puts
the previous version back, verifies that, and fails saying which step broke what"), each made to fail for
real, on one lab built by site.yml on the previous releases (Istio 1.29.6, MetalLB 0.15.3):

1. `istio_upgrade_strategy: in_place`: the ingress gateway on the new image stops routing; istioctl of the
   previous release installs 1.29.6 in place again;
2. that fixed, MetalLB 0.16.1 no longer serves the ingress address (the stand-in closes every connection
   while the controller runs v0.16.1): the Istio step (in place) is kept and recorded, MetalLB 0.15.3 is
   applied again, what 0.16.1 added is pruned, the pool and the pinned ingress IP kept;
3. that fixed, the new release's Kiali (v2.26) answers 503: the previous addons come back, Grafana's
   credentials kept; the addons step, never reached in run 2, is planned from the record (addons_version),
   and site.yml refuses to put the new addons in without a gate;
4. that fixed, the upgrade completes, and a re-run writes nothing.

Each run starts from the lab the previous rollback left, so each rollback is also checked to leave a lab that
upgrades. Boundaries as in test_upgrade.py (istioctl's stand-in, the API double's ready workloads, the Envoy
stand-in of tests/verify_envoy.py, whose breakage follows the Deployments' images)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.api.test_upgrade import (
    DOMAIN,
    ENVOY_ADDRESS,
    INGRESS_IP,
    METALLB,
    build_old_lab,
    chapter_state,
    lab_vars,
    mutating_webhooks,
    upstream_image,
)
from tests.helpers import image, record, run_playbook
from tests.verify_envoy import UpgradeEnvoy

pytestmark = pytest.mark.api

# Not in 0.15.3's manifest: the rollback's applyset prunes it (the real releases ship the same object set).
ADDED_IN_NEW_METALLB = {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "metallb-added-in-0-16-1", "namespace": "metallb-system"},
                        "data": {"note": "an object the new release adds"}}


def metallb_sources(upstream: Path, workdir: Path) -> str:
    """metallb-<version>/metallb-native.yaml under workdir: 0.15.3 as released, 0.16.1 plus one object."""
    for version in ("0.15.3", "0.16.1"):
        text = (upstream / f"metallb-{version}" / "metallb-native.yaml").read_text()
        if version == "0.16.1":
            text += "\n---\n" + yaml.safe_dump(ADDED_IN_NEW_METALLB)
        (workdir / f"metallb-{version}").mkdir()
        (workdir / f"metallb-{version}" / "metallb-native.yaml").write_text(text)
    return f"{workdir}/metallb-{{{{ metallb_version }}}}/metallb-native.yaml"


def upgrade(kube, values, workdir):
    result = run_playbook("playbooks/upgrade.yml", kube=kube, extra_vars=values,
                          env={"ISTIOCTL_DOUBLE_LOG": str(workdir / "istioctl.log")})
    return result, " ".join(result.stdout.split())


def history(kube) -> list:
    return [(h["step"], h["from"], h["to"], h["result"]) for h in json.loads(record(kube)["history"])]


def verified(workdir: Path) -> bool:
    return json.loads((workdir / "artifacts" / "lab" / "verify.json").read_text())["ok"] is True


def istioctl_calls(workdir: Path) -> list:
    lines = (workdir / "istioctl.log").read_text().splitlines() if (workdir / "istioctl.log").exists() else []
    return [json.loads(line)["argv"] for line in lines]


def test_each_step_s_failing_gate_rolls_back_and_a_later_run_completes(kube, shared_dir, tmp_path):
    kube.require_double("builds MetalLB with a loopback pool and Istio through the istioctl test double")
    upstream = shared_dir / "upstream"
    old_kiali = upstream_image(upstream / "istio-1.29.6" / "addons" / "kiali.yaml", "kiali")
    new_kiali = upstream_image(upstream / "istio-1.30.3" / "addons" / "kiali.yaml", "kiali")
    assert old_kiali != new_kiali
    with UpgradeEnvoy(kube, address=ENVOY_ADDRESS, domain=DOMAIN) as envoy:
        values = {**lab_vars(shared_dir, tmp_path, envoy, chapters=("1", "2", "3", "4"),
                             istio_upgrade_strategy="in_place"),
                  "metallb_manifest_src": metallb_sources(upstream, tmp_path)}
        build_old_lab(kube, values)
        chapters_before = chapter_state(kube)
        pool_before = kube.list(METALLB, "IPAddressPool", "metallb-system")[0]["spec"]
        grafana_secret = kube.get("v1", "Secret", "grafana-admin", "istio-system")["data"]

        # 1. in place: the gateway on 1.30.3 does not route
        envoy.break_on("1.30.3")
        result, text = upgrade(kube, values, tmp_path)
        assert result.rc != 0 and result.failed == 1, str(result)
        assert "Upgrade step istio (1.29.6 -> 1.30.3) failed:" in text, text[-4000:]
        assert "the verification after the istio step failed" in text
        assert "Rolled back to 1.29.6, which verifies." in text
        assert [call[0] for call in istioctl_calls(tmp_path) if call[0] in ("install", "upgrade")] == \
            ["upgrade", "install"]  # istioctl upgrade, then the previous release's install over it
        assert image(kube, "istiod") == "docker.io/istio/pilot:1.29.6"
        for gateway in ("istio-ingressgateway", "istio-egressgateway"):
            assert image(kube, gateway) == "docker.io/istio/proxyv2:1.29.6"
        assert mutating_webhooks(kube) == {"istio-sidecar-injector"}
        assert kube.get("v1", "ConfigMap", "istio-lab-install", "istio-system")["data"]["version"] == "1.29.6"
        # the workloads restarted onto it, their namespaces still on the default revision
        tomcat = kube.get("apps/v1", "Deployment", "tomcat", "microservice")
        assert "kubectl.kubernetes.io/restartedAt" in tomcat["spec"]["template"]["metadata"]["annotations"]
        assert kube.get("v1", "Namespace", "microservice")["metadata"]["labels"].get("istio-injection") == "enabled"
        assert image(kube, "controller", "metallb-system").endswith(":v0.15.3")  # later steps never ran
        assert image(kube, "kiali") == old_kiali
        assert chapter_state(kube) == chapters_before and verified(tmp_path)
        data = record(kube)
        assert (data["istio_version"], data["metallb_version"], data["addons_version"]) == \
            ("1.29.6", "0.15.3", "1.29.6")
        steps = history(kube)
        assert [s[:3] for s in steps] == [("istio", "1.29.6", "1.30.3")]
        assert steps[0][3].startswith("rolled back: ") and "verification after the istio step" in steps[0][3]

        # 2. MetalLB 0.16.1 no longer serves the ingress address
        envoy.break_on("v0.16.1", deployment="metallb-system/controller", answer=None)
        result, text = upgrade(kube, values, tmp_path)
        assert result.rc != 0 and result.failed == 1, str(result)
        assert "Upgrade step metallb (0.15.3 -> 0.16.1) failed:" in text, text[-4000:]
        assert "the verification after the metallb step failed" in text
        assert "Rolled back to 0.15.3, which verifies." in text
        upstream_controller = upstream_image(upstream / "metallb-0.15.3" / "metallb-native.yaml", "controller")
        assert image(kube, "controller", "metallb-system") == upstream_controller
        speaker = kube.get("apps/v1", "DaemonSet", "speaker", "metallb-system")
        assert speaker["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v0.15.3")
        assert kube.get("v1", "ConfigMap", "metallb-added-in-0-16-1", "metallb-system") is None
        assert kube.list(METALLB, "IPAddressPool", "metallb-system")[0]["spec"] == pool_before
        ingress = kube.get("v1", "Service", "istio-ingressgateway", "istio-system")
        assert ingress["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == INGRESS_IP
        assert ingress["status"]["loadBalancer"]["ingress"][0]["ip"] == INGRESS_IP
        # the Istio step passed and is kept; the addons step was never reached
        assert image(kube, "istiod") == "docker.io/istio/pilot:1.30.3"
        assert image(kube, "istio-ingressgateway") == "docker.io/istio/proxyv2:1.30.3"
        assert image(kube, "kiali") == old_kiali
        assert chapter_state(kube) == chapters_before and verified(tmp_path)
        data = record(kube)
        assert (data["istio_version"], data["istio_revisions"], data["metallb_version"], data["addons_version"]) == \
            ("1.30.3", "default", "0.15.3", "1.29.6")
        steps = history(kube)
        assert [s[:3] for s in steps[1:]] == [("istio", "1.29.6", "1.30.3"), ("metallb", "0.15.3", "0.16.1")]
        assert steps[1][3] == "ok"
        assert steps[2][3].startswith("rolled back: ") and "verification after the metallb step" in steps[2][3]

        # 3. the new release's Kiali does not serve
        kiali_host = f"kiali-istio.{DOMAIN}"
        envoy.break_on(new_kiali.rsplit(":", 1)[1], deployment="istio-system/kiali", hosts=[kiali_host])
        result, text = upgrade(kube, values, tmp_path)
        assert result.rc != 0 and result.failed == 1, str(result)
        assert "Upgrade step addons (1.29.6 -> 1.30.3) failed:" in text, text[-4000:]
        assert f"the verification after the addons step failed: {kiali_host}" in text
        assert "Rolled back to 1.29.6, which verifies." in text
        assert image(kube, "kiali") == old_kiali
        assert image(kube, "prometheus") == upstream_image(upstream / "istio-1.29.6" / "addons" / "prometheus.yaml",
                                                           "prometheus")
        assert kube.get("v1", "Secret", "grafana-admin", "istio-system")["data"] == grafana_secret
        assert image(kube, "controller", "metallb-system") == \
            upstream_image(upstream / "metallb-0.16.1" / "metallb-native.yaml", "controller")
        assert chapter_state(kube) == chapters_before and verified(tmp_path)
        data = record(kube)
        assert (data["istio_version"], data["metallb_version"], data["addons_version"]) == \
            ("1.30.3", "0.16.1", "1.29.6")
        steps = history(kube)
        assert [s[:3] for s in steps[3:]] == [("metallb", "0.15.3", "0.16.1"), ("addons", "1.29.6", "1.30.3")]
        assert steps[3][3] == "ok"
        assert steps[4][3].startswith("rolled back: ") and "verification after the addons step" in steps[4][3]

        # Istio and MetalLB are as pinned, the addons are not: site.yml refuses to install them without a gate
        mark = kube.mark()
        refused = run_playbook("site.yml", kube=kube, extra_vars=values)
        refusal = " ".join(refused.stdout.split())
        assert refused.rc != 0 and "the addons of Istio 1.29.6" in refusal, refusal[-3000:]
        assert "Run playbooks/upgrade.yml to upgrade" in refusal and kube.writes(mark) == []

        # 4. fixed: the upgrade completes, then nothing is left to do
        envoy.fix()
        result, text = upgrade(kube, values, tmp_path)
        assert result.rc == 0 and result.failed == 0, str(result)
        assert image(kube, "kiali") == new_kiali
        assert kube.get("v1", "Secret", "grafana-admin", "istio-system")["data"] == grafana_secret
        data = record(kube)
        assert (data["istio_version"], data["metallb_version"], data["addons_version"]) == \
            ("1.30.3", "0.16.1", "1.30.3")
        assert [(s[0], s[3]) for s in history(kube)[5:]] == [("addons", "ok")]
        assert chapter_state(kube) == chapters_before and verified(tmp_path)
        mark = kube.mark()
        again, text = upgrade(kube, values, tmp_path)
        assert again.rc == 0 and again.changed == 0 and "Nothing to upgrade" in text, str(again)
        assert kube.writes(mark) == []
