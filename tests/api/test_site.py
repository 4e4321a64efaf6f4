"""site.yml end to end (issue 3, "Done when"): with `cluster_provider:
existing`, one `ansible-playbook site.yml` runs every API-facing stage
(preflight, MetalLB, Istio, addons, apps, routes, verification) against one
Kubernetes API double and leaves exactly the lab contract's objects
(../shared/lab-contract.md); a rerun reports changed=0 and writes nothing;
`--check` on an empty cluster writes nothing and does not fail.

Every download source points at ../shared/upstream (the real MetalLB and Istio
addon manifests). Boundaries, as in tests/api/test_platform.py and
tests/api/test_routes_verify.py: Istio is installed by tests/bin/istioctl, a
test double of istioctl; pods "run" because the API double's controllers mark
workloads ready; and the route probes go to tests/verify_envoy.py, a local
stand-in for the ingress gateway's Envoy, because nothing listens on the
LoadBalancer IP the double hands out. The built lab therefore needs the API
double (a 127.x MetalLB pool on a real cluster would be wrong)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.applyset import PART_OF, set_id

from tests.conftest import WRITE_VERBS
from tests.helpers import changed_tasks, platform_vars, run_playbook
from tests.verify_envoy import EnvoyLikeServer, chapter_answers

pytestmark = pytest.mark.api

DOMAIN = "kubernets.cn"
ISTIO = "networking.istio.io/v1"
METALLB = "metallb.io/v1beta1"
MANAGED = {"app.kubernetes.io/managed-by": "istio-lab"}
CHAPTER_LABEL = "istio-lab.io/chapter"
# Loopback only, and not 127.0.0.1: that is the double's node address, which
# MetalLB's range must not overlap.
POOL = "127.242.0.10-127.242.0.20"
INGRESS_IP = "127.242.0.10"
ENVOY_ADDRESS = "127.242.1.1"


def site_vars(shared_dir: Path, workdir: Path, envoy: EnvoyLikeServer | None) -> dict:
    """What an instructor sets, with every source pointed at ../shared/upstream."""
    values = platform_vars(shared_dir / "upstream", workdir, POOL, INGRESS_IP, cluster_provider="existing",
                           lab_verify_report_dir=str(workdir / "artifacts"), lab_verify_retries=0)
    if envoy is not None:
        # The double gives the ingress Service INGRESS_IP, but nothing listens
        # there: the probes go to a local stand-in for Envoy instead.
        values.update(lab_verify_ingress_ip=envoy.address, lab_verify_http_port=envoy.port)
    return values


def site(kube, shared_dir: Path, workdir: Path, envoy: EnvoyLikeServer | None, check=False):
    return run_playbook("site.yml", kube=kube, extra_vars=site_vars(shared_dir, workdir, envoy), check=check,
                        env={"ISTIOCTL_DOUBLE_LOG": str(workdir / "istioctl.log")})


def envoy_stand_in() -> EnvoyLikeServer:
    """Answers like the ingress gateway's Envoy once the chapters' routes exist:
    chapter 1's '*' route (tomcat) catches the bare IP and every other host."""
    return EnvoyLikeServer(ENVOY_ADDRESS, 0, chapter_answers(DOMAIN))


def ports(service: dict) -> list[tuple]:
    return [(p.get("name"), p["port"], p.get("targetPort")) for p in service["spec"]["ports"]]


def get(kube, api_version, kind, name, namespace=None) -> dict:
    obj = kube.get(api_version, kind, name, namespace)
    assert obj is not None, f"{kind} {namespace or ''}/{name} missing"
    return obj


def resource_versions(kube) -> dict:
    """resourceVersion of every object in the namespaces the lab builds."""
    versions = {}
    for namespace in ("metallb-system", "istio-system", "microservice"):
        for api_version, kind in (("v1", "Service"), ("v1", "ConfigMap"), ("apps/v1", "Deployment"),
                                  ("apps/v1", "DaemonSet"), (ISTIO, "Gateway"), (ISTIO, "VirtualService"),
                                  (ISTIO, "DestinationRule")):
            for obj in kube.list(api_version, kind, namespace):
                versions[(kind, namespace, obj["metadata"]["name"])] = obj["metadata"]["resourceVersion"]
    return versions


def stored_revision(kube) -> str:
    """The API server's current revision (a list's resourceVersion): moves with every stored write."""
    return kube.resource("v1", "Namespace").get().metadata.resourceVersion


# ------------------------------------------------------------------ the contract, as the course shows it


def assert_platform(kube):
    ingress = get(kube, "v1", "Service", "istio-ingressgateway", "istio-system")
    assert ingress["spec"]["type"] == "LoadBalancer"
    assert {"app": "istio-ingressgateway", "istio": "ingressgateway"}.items() <= ingress["metadata"]["labels"].items()
    assert ports(ingress) == [("status-port", 15021, 15021), ("http2", 80, 8080), ("https", 443, 8443),
                              ("tcp", 31400, 31400), ("tls", 15443, 15443)]
    assert ingress["metadata"]["annotations"]["metallb.io/loadBalancerIPs"] == INGRESS_IP
    assert ingress["status"]["loadBalancer"]["ingress"][0]["ip"] == INGRESS_IP

    egress = get(kube, "v1", "Service", "istio-egressgateway", "istio-system")
    assert egress["spec"]["type"] == "ClusterIP"
    assert egress["metadata"]["labels"]["istio"] == "egressgateway"
    assert [(p["port"], p["targetPort"]) for p in egress["spec"]["ports"]] == [(80, 8080), (443, 8443)]

    istiod = get(kube, "apps/v1", "Deployment", "istiod", "istio-system")
    assert istiod["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.30.3")
    assert istiod["status"]["availableReplicas"] == 1

    for name, port in (("prometheus", 9090), ("grafana", 3000), ("kiali", 20001), ("zipkin", 9411)):
        service = get(kube, "v1", "Service", name, "istio-system")
        assert port in [p["port"] for p in service["spec"]["ports"]], name
    tracing = get(kube, "v1", "Service", "tracing", "istio-system")
    assert [(p["port"], p["targetPort"]) for p in tracing["spec"]["ports"]] == [(80, 9411)]

    running = {p["metadata"]["name"].rsplit("-", 2)[0] for p in kube.list("v1", "Pod", "istio-system")
               if p["status"]["phase"] == "Running"}
    assert running >= {"istiod", "istio-ingressgateway", "istio-egressgateway", "grafana", "kiali", "prometheus",
                       "zipkin"}

    assert get(kube, "apps/v1", "Deployment", "controller", "metallb-system")["status"]["availableReplicas"] == 1
    get(kube, "apps/v1", "DaemonSet", "speaker", "metallb-system")
    pools = kube.list(METALLB, "IPAddressPool", "metallb-system")
    assert [p["spec"]["addresses"] for p in pools] == [[POOL]]
    adverts = kube.list(METALLB, "L2Advertisement", "metallb-system")
    assert [a["spec"]["ipAddressPools"] for a in adverts] == [[pools[0]["metadata"]["name"]]]


def assert_chapter_objects(kube):
    # Chapter 1: tomcat in microservice, published through ingressgateway80.
    namespace = get(kube, "v1", "Namespace", "microservice")
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"
    deployment = get(kube, "apps/v1", "Deployment", "tomcat", "microservice")
    assert deployment["metadata"]["labels"]["app"] == "tomcat"
    assert deployment["spec"]["replicas"] == 1
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "hub.c.163.com/library/tomcat:latest"
    assert [p["containerPort"] for p in container["ports"]] == [8080]
    tomcat = get(kube, "v1", "Service", "tomcat", "microservice")
    assert tomcat["spec"]["type"] == "ClusterIP"
    assert tomcat["spec"]["selector"] == {"app": "tomcat"}
    assert [(p["port"], p["targetPort"]) for p in tomcat["spec"]["ports"]] == [(80, 8080)]

    def gateway(namespace, name, chapter, hosts):
        obj = get(kube, ISTIO, "Gateway", name, namespace)
        assert obj["metadata"]["labels"] == {**MANAGED, CHAPTER_LABEL: chapter,
                                             PART_OF: set_id(f"chapter-{chapter}")}, name
        assert obj["spec"]["selector"] == {"istio": "ingressgateway"}, name
        assert obj["spec"]["servers"] == [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                                           "hosts": hosts}], name

    def virtual_service(namespace, name, chapter, hosts, gateways, host, port):
        obj = get(kube, ISTIO, "VirtualService", name, namespace)
        assert obj["metadata"]["labels"] == {**MANAGED, CHAPTER_LABEL: chapter,
                                             PART_OF: set_id(f"chapter-{chapter}")}, name
        assert (obj["spec"]["hosts"], obj["spec"]["gateways"]) == (hosts, gateways), name
        assert obj["spec"]["http"] == [{"route": [{"destination": {"host": host, "port": {"number": port}}}]}], name

    gateway("microservice", "ingressgateway80", "1", ["*"])
    virtual_service("microservice", "tomcat-virtualservice", "1", ["*"], ["ingressgateway80"],
                    "tomcat.microservice.svc.cluster.local", 80)
    # Chapter 2: Prometheus.
    gateway("istio-system", "gateway", "2", [f"prometheus-istio.{DOMAIN}"])
    virtual_service("istio-system", "prometheus-istio", "2", [f"prometheus-istio.{DOMAIN}"], ["gateway"],
                    "prometheus.istio-system.svc.cluster.local", 9090)
    # Chapter 3: several services behind allgateway.
    gateway("istio-system", "allgateway", "3", ["*"])
    for name, port in (("grafana", 3000), ("kiali", 20001), ("zipkin", 9411)):
        virtual_service("istio-system", f"{name}-istio", "3", [f"{name}-istio.{DOMAIN}"], ["allgateway"], name, port)
    # Chapter 4: the DestinationRule preview, subsets by version.
    rule = get(kube, ISTIO, "DestinationRule", "tomcat", "microservice")
    assert rule["metadata"]["labels"][CHAPTER_LABEL] == "4"
    assert rule["spec"]["host"] == "tomcat.microservice.svc.cluster.local"
    assert [(s["name"], s["labels"]) for s in rule["spec"]["subsets"]] == \
        [("v1", {"version": "v1"}), ("v2", {"version": "v2"})]
    # Nothing else of the Istio kinds.
    assert {kind: sorted(o["metadata"]["name"] for o in kube.list(ISTIO, kind))
            for kind in ("Gateway", "VirtualService", "DestinationRule")} == {
        "Gateway": ["allgateway", "gateway", "ingressgateway80"],
        "VirtualService": ["grafana-istio", "kiali-istio", "prometheus-istio", "tomcat-virtualservice",
                           "zipkin-istio"],
        "DestinationRule": ["tomcat"],
    }


# ------------------------------------------------------------------ the tests


def test_site_builds_the_contract_lab_and_a_rerun_changes_nothing(kube, shared_dir, tmp_path):
    kube.require_double("builds MetalLB with a loopback pool and Istio through the istioctl test double")
    with envoy_stand_in() as envoy:
        first = site(kube, shared_dir, tmp_path, envoy)
        assert first.rc == 0 and first.failed == 0, first
        assert first.changed > 0, first
        assert_platform(kube)
        assert_chapter_objects(kube)

        versions = resource_versions(kube)
        stored = stored_revision(kube)
        mark = kube.mark()
        second = site(kube, shared_dir, tmp_path, envoy)
        assert second.rc == 0, second
        assert second.recap and all(host["changed"] == 0 for host in second.recap.values()), \
            f"changed on the rerun: {changed_tasks(second.stdout)}\n{second}"
        writes = kube.writes(mark)
        # Nothing was stored: the API's revision counter did not move, no object's resourceVersion either.
        assert stored_revision(kube) == stored
        assert resource_versions(kube) == versions
        # No stage sends a write request on a rerun (dry runs included), also for the upstream
        # objects the API server stores in another form than their manifest (issue 11).
        assert writes == [], writes
        assert [r for r in kube.requests(mark) if r.get("verb") in WRITE_VERBS] == []  # no dry run either
        # The owned sets (issue 20) cost one read of each parent on a rerun, and no LIST of their own:
        # the parents of MetalLB, the addons and the apps by GET, the chapters' by one LIST; and the
        # platform record (namespace istio-lab too) is read once, where the pins are checked against it.
        parent_reads = sorted((r["verb"], r.get("name") or "") for r in kube.requests(mark)
                              if r.get("namespace") == "istio-lab")
        assert parent_reads == [("get", "applyset-addons"), ("get", "applyset-apps"), ("get", "applyset-metallb"),
                                ("get", "istio-lab-record"), ("list", "")], parent_reads

    # The verification stage probed every chapter's route through the stand-in and wrote its report.
    report = json.loads((tmp_path / "artifacts" / "lab" / "verify.json").read_text())
    assert report["ok"] is True
    assert [(p["chapter"], p["host"]) for p in report["probes"]] == [
        ("1", ""), ("2", f"prometheus-istio.{DOMAIN}"), ("3", f"grafana-istio.{DOMAIN}"),
        ("3", f"kiali-istio.{DOMAIN}"), ("3", f"zipkin-istio.{DOMAIN}"), ("", f"istio-lab-no-route.{DOMAIN}")]
    # istioctl installed once: the rerun found Istio as it left it.
    calls = [json.loads(line) for line in (tmp_path / "istioctl.log").read_text().splitlines()]
    assert [c["argv"][0] for c in calls].count("install") == 1


def test_site_check_mode_on_an_empty_cluster_writes_nothing(kube, shared_dir, tmp_path):
    kube.require_double("an empty cluster")
    mark = kube.mark()
    # An empty cluster has no ingress gateway: the probes go to a loopback port nobody listens on.
    with EnvoyLikeServer(ENVOY_ADDRESS, 0) as closed:
        port = closed.port
    values = {**site_vars(shared_dir, tmp_path, None), "lab_verify_ingress_ip": ENVOY_ADDRESS,
              "lab_verify_http_port": port}
    result = run_playbook("site.yml", kube=kube, extra_vars=values, check=True,
                          env={"ISTIOCTL_DOUBLE_LOG": str(tmp_path / "istioctl.log")})
    assert result.rc == 0 and result.failed == 0, result
    assert kube.writes(mark) == []
    for namespace in ("metallb-system", "istio-system", "microservice"):
        assert kube.get("v1", "Namespace", namespace) is None
    # istioctl was only asked its version; the verification still probed and
    # said what it found, but check mode wrote no report.
    calls = [json.loads(line)["argv"][0] for line in (tmp_path / "istioctl.log").read_text().splitlines()]
    assert set(calls) == {"version"}
    assert f"nothing answered at {ENVOY_ADDRESS}:{port}" in " ".join(result.stdout.split())
    assert not (tmp_path / "artifacts").exists()


def test_site_stops_at_the_preflight_when_no_kubeconfig(tmp_path):
    """A short run (it fails in its second play): the preflight names what is
    missing before any stage starts."""
    missing = tmp_path / "no-such-kubeconfig"
    result = run_playbook("site.yml", extra_vars={"lab_kubeconfig": str(missing), "metallb_address_range": POOL})
    assert result.rc != 0 and result.failed == 1, result
    assert f"No kubeconfig at {missing}" in " ".join(result.stdout.split())
    assert "PLAY [Check that the lab's cluster answers]" in result.stdout
    assert "PLAY [Install MetalLB and the lab's address pool]" not in result.stdout
