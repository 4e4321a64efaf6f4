"""site.yml with chapters 5 and 6 enabled (issue 16, "Done when"): one run
builds the lab with tomcat v1 and v2, chapter 5's weighted route and chapter
6's egress objects, and verifies it against the Kubernetes API double: the
weighted route sampled through the stand-in for the ingress gateway's Envoy
(tests/verify_envoy.py, answering per subset by weight), chapter 6's path
through the route table. A rerun reports changed=0. A verify.yml run whose
split is off fails and says which subset answered how often.

Boundary: pods do not run here, so chapter 6's request from the client pod
and the egress gateway's access log are not exercised: the run reports the
exact commands (lab_verify_mesh_probes: false) and the test checks them. On
a real cluster lab_verify_mesh_probes (default true) runs them with
kubernetes.core.k8s_exec and k8s_log. The external host is never dialled."""

from __future__ import annotations

import json

import pytest

from tests.helpers import platform_vars, run_playbook
from tests.verify_envoy import Answer, EnvoyLikeServer, chapter_answers

pytestmark = pytest.mark.api

DOMAIN = "kubernets.cn"
ISTIO = "networking.istio.io/v1"
POOL = "127.242.0.10-127.242.0.20"
INGRESS_IP = "127.242.0.10"
ENVOY_ADDRESS = "127.242.1.2"
EXTERNAL = "external.example"
CHAPTERS = ["1", "2", "3", "4", "5", "6"]


def envoy_stand_in(split=None) -> EnvoyLikeServer:
    return EnvoyLikeServer(ENVOY_ADDRESS, 0, {**chapter_answers(DOMAIN),
                                              f"tomcat.{DOMAIN}": Answer(split=split or {"v1": 90, "v2": 10})})


def site_vars(shared_dir, workdir, envoy) -> dict:
    return platform_vars(shared_dir / "upstream", workdir, POOL, INGRESS_IP, cluster_provider="existing",
                         lab_verify_report_dir=str(workdir / "artifacts"), lab_verify_retries=0,
                         lab_verify_ingress_ip=envoy.address, lab_verify_http_port=envoy.port,
                         lab_enabled_chapters=CHAPTERS, lab_egress_host=EXTERNAL, lab_verify_mesh_probes=False,
                         lab_verify_split_samples=100)


def test_site_with_chapters_5_and_6_builds_verifies_and_reruns_unchanged(kube, shared_dir, tmp_path):
    kube.require_double("builds MetalLB with a loopback pool and Istio through the istioctl test double")
    with envoy_stand_in() as envoy:
        values = site_vars(shared_dir, tmp_path, envoy)
        env = {"ISTIOCTL_DOUBLE_LOG": str(tmp_path / "istioctl.log")}
        first = run_playbook("site.yml", kube=kube, extra_vars=values, env=env)
        assert first.rc == 0 and first.failed == 0, first

        # tomcat v1 and v2 behind the one Service; the objects of chapters 5 and 6
        assert kube.get("apps/v1", "Deployment", "tomcat", "microservice")["metadata"]["labels"]["version"] == "v1"
        assert kube.get("apps/v1", "Deployment", "tomcat-v2", "microservice")["metadata"]["labels"]["version"] == "v2"
        assert kube.get("v1", "Service", "tomcat", "microservice")["spec"]["selector"] == {"app": "tomcat"}
        shift = kube.get(ISTIO, "VirtualService", "tomcat-shift", "microservice")
        assert [d["weight"] for d in shift["spec"]["http"][0]["route"]] == [90, 10]
        for kind, name in (("ServiceEntry", "external-http"), ("Gateway", "istio-egressgateway"),
                           ("VirtualService", "external-through-egress-gateway"),
                           ("DestinationRule", "egressgateway-for-external")):
            assert kube.get(ISTIO, kind, name, "egress") is not None, (kind, name)
        assert kube.get("apps/v1", "Deployment", "curl", "egress") is not None

        report = json.loads((tmp_path / "artifacts" / "lab" / "verify.json").read_text())
        assert report["ok"] is True, report
        by_host = {(p["chapter"], p["host"]): p for p in report["probes"]}
        weighted = by_host[("5", f"tomcat.{DOMAIN}")]
        assert weighted["ok"] and weighted["split"]["counts"] == {"v1": 90, "v2": 10}
        assert weighted["split"]["expected"] == {"v1": 90, "v2": 10} and weighted["split"]["tolerance"] == 10
        mesh = by_host[("6", EXTERNAL)]
        assert mesh["mesh"] and mesh["skipped"] and mesh["ok"]
        assert mesh["commands"] == [
            f"kubectl exec -n egress deploy/curl -c curl -- curl -sS -o /dev/null -w '%{{http_code}}' "
            f"--max-time 10 http://{EXTERNAL}/",
            f"kubectl logs -n istio-system -l istio=egressgateway -c istio-proxy --tail=100 | grep '{EXTERNAL}'"]
        assert "on a real cluster run" in mesh["explanation"]
        # the egress Gateway's host is not probed through the ingress IP, nor offered to students' /etc/hosts
        assert EXTERNAL not in report["hosts_line"]
        assert all(host != EXTERNAL for _, host, _ in envoy.requests)
        assert [h for _, h, _ in envoy.requests].count(f"tomcat.{DOMAIN}") == 101  # the probe + 100 samples
        summary = " ".join(first.stdout.split())
        assert f"SPLIT tomcat.{DOMAIN}: v1 90/100 (90%, expected 90%), v2 10/100 (10%, expected 10%)" in summary
        assert "SKIP" in summary

        second = run_playbook("site.yml", kube=kube, extra_vars=values, env=env)
        assert second.rc == 0, second
        assert second.recap and all(host["changed"] == 0 for host in second.recap.values()), second

    # A split that does not follow the lesson's weights fails the verification and says so.
    with envoy_stand_in(split={"v1": 50, "v2": 50}) as wrong:
        values = {**site_vars(shared_dir, tmp_path, wrong), "lab_verify_chapters": ["1", "4", "5"]}
        result = run_playbook("playbooks/verify.yml", kube=kube, extra_vars=values)
        assert result.rc != 0 and result.failed == 1, result
        text = " ".join(result.stdout.split())
        assert "subset v1 answered 50 of 100 (50%), expected 90% ± 10" in text, text[-3000:]
        assert "subset v2 answered 50 of 100 (50%), expected 10% ± 10" in text

        # With lab_verify_mesh_probes (a real cluster's default) the tasks find the client's pod and exec the
        # request in it: the double runs no container, so the exec fails and the entry says so (not SKIP).
        values = {**values, "lab_verify_chapters": ["6"], "lab_verify_mesh_probes": True, "lab_verify_fail": False}
        result = run_playbook("playbooks/verify.yml", kube=kube, extra_vars=values)
        assert result.rc == 0, result
        text = " ".join(result.stdout.split())
        assert "TASK [istio_lab.lab.lab_verify : Send each request from its client pod and read the egress " \
               "gateway's log]" in result.stdout
        assert f"FAIL {EXTERNAL}: the client pod's request failed: exec in egress/curl-" in text, text[-3000:]
        assert "the API answered 404" in text
        assert "SKIP" not in text
