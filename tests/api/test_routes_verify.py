"""Chapter routes (playbooks/routes.yml) and their verification
(playbooks/verify.yml) against a Kubernetes API: the double, or a real
cluster when ISTIO_LAB_TEST_KUBECONFIG is set. Results are checked through
the API and the fixture's request counters.

The platform (Istio, the addons, tomcat) is other stages' work and cannot
run here, so each test creates what the routes point at through the API:
namespaces microservice and istio-system and the contract's Services.

No Envoy runs here either: the probes go to tests/verify_envoy.py, a local
server on a 127.0.0.x address that answers like the ingress gateway's Envoy
(200 + `server: istio-envoy` for a routed host, 404 for an unrouted one, 503
or another server where a test breaks a link). What a real Envoy answers is
the boundary of these tests.
"""

import json

import pytest
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.applyset import PART_OF, set_id

from tests.helpers import run_playbook
from tests.verify_envoy import Answer, EnvoyLikeServer

pytestmark = pytest.mark.api

ISTIO = "networking.istio.io/v1"
DOMAIN = "kubernets.cn"
CHAPTER_LABEL = "istio-lab.io/chapter"
MANAGED = ("app.kubernetes.io/managed-by", "istio-lab")
UNROUTED = f"istio-lab-no-route.{DOMAIN}"
# The contract's Services the routes point at: (namespace, name, port, targetPort).
SERVICES = [
    ("microservice", "tomcat", 80, 8080),
    ("istio-system", "prometheus", 9090, 9090),
    ("istio-system", "grafana", 3000, 3000),
    ("istio-system", "kiali", 20001, 20001),
    ("istio-system", "zipkin", 9411, 9411),
]

# The lab contract's chapter exercises, written out here (not read from the
# catalogue) so that a drift of the catalogue from the course fails a test.
GATEWAYS = {
    ("microservice", "ingressgateway80"): ("1", ["*"]),
    ("istio-system", "gateway"): ("2", [f"prometheus-istio.{DOMAIN}"]),
    ("istio-system", "allgateway"): ("3", ["*"]),
}
VIRTUAL_SERVICES = {
    ("microservice", "tomcat-virtualservice"): (
        "1",
        ["*"],
        ["ingressgateway80"],
        "tomcat.microservice.svc.cluster.local",
        80,
    ),
    ("istio-system", "prometheus-istio"): (
        "2",
        [f"prometheus-istio.{DOMAIN}"],
        ["gateway"],
        "prometheus.istio-system.svc.cluster.local",
        9090,
    ),
    ("istio-system", "grafana-istio"): ("3", [f"grafana-istio.{DOMAIN}"], ["allgateway"], "grafana", 3000),
    ("istio-system", "kiali-istio"): ("3", [f"kiali-istio.{DOMAIN}"], ["allgateway"], "kiali", 20001),
    ("istio-system", "zipkin-istio"): ("3", [f"zipkin-istio.{DOMAIN}"], ["allgateway"], "zipkin", 9411),
}
DESTINATION_RULES = {("microservice", "tomcat"): ("4", "tomcat.microservice.svc.cluster.local", ["v1", "v2"])}


def service(namespace, name, port, target_port):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port, "targetPort": target_port}]},
    }


def make_platform(kube, skip=()):
    """The namespaces and Services the chapters' routes point at (those named
    in `skip` left out)."""
    kube.ensure_namespace("istio-system")
    kube.ensure_namespace("microservice", {"istio-injection": "enabled"})
    for namespace, name, port, target in SERVICES:
        if name not in skip:
            kube.create(service(namespace, name, port, target))


def managed(kube, kind):
    """{(namespace, name): object} of istio-lab's objects of one Istio kind."""
    objects = kube.list(ISTIO, kind, label_selector=f"{MANAGED[0]}={MANAGED[1]}")
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}


def all_istio_objects(kube):
    return {kind: kube.list(ISTIO, kind) for kind in ("Gateway", "VirtualService", "DestinationRule")}


def routes(kube, chapters=None, **extra):
    extra_vars = dict(extra)
    if chapters is not None:
        extra_vars["lab_routes_chapters"] = chapters
    return run_playbook("playbooks/routes.yml", kube, extra_vars=extra_vars)


def verify(kube, envoy, tmp_path, **extra):
    extra_vars = {
        "lab_verify_ingress_ip": envoy.address if envoy else "127.0.0.1",
        "lab_verify_http_port": envoy.port if envoy else extra.pop("port"),
        "lab_verify_report_dir": str(tmp_path / "artifacts"),
        "lab_verify_retries": 0,
        **extra,
    }
    result = run_playbook("playbooks/verify.yml", kube, extra_vars=extra_vars)
    report_file = tmp_path / "artifacts" / "lab" / "verify.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else None
    return result, report


def flat(text):
    """Play output with the YAML callback's line wrapping undone."""
    return " ".join(text.split())


def by_host(report):
    return {p["host"]: p for p in report["probes"]}


# --- routes.yml ---------------------------------------------------------------


def test_routes_create_exactly_the_contract_objects(kube):
    make_platform(kube)
    mark = kube.mark()
    result = routes(kube)
    assert result.rc == 0, result
    assert result.changed == 1, result  # one task (istio_routes) for every kind

    gateways = managed(kube, "Gateway")
    assert set(gateways) == set(GATEWAYS)
    for key, (chapter, hosts) in GATEWAYS.items():
        gw = gateways[key]
        assert gw["metadata"]["labels"] == {MANAGED[0]: MANAGED[1], CHAPTER_LABEL: chapter,
                                        PART_OF: set_id(f"chapter-{chapter}")}
        assert gw["spec"]["selector"] == {"istio": "ingressgateway"}
        assert gw["spec"]["servers"] == [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": hosts}]

    virtual_services = managed(kube, "VirtualService")
    assert set(virtual_services) == set(VIRTUAL_SERVICES)
    for key, (chapter, hosts, bound, dest_host, dest_port) in VIRTUAL_SERVICES.items():
        vs = virtual_services[key]
        assert vs["metadata"]["labels"] == {MANAGED[0]: MANAGED[1], CHAPTER_LABEL: chapter,
                                        PART_OF: set_id(f"chapter-{chapter}")}
        assert vs["spec"]["hosts"] == hosts
        assert vs["spec"]["gateways"] == bound
        assert vs["spec"]["http"] == [{"route": [{"destination": {"host": dest_host, "port": {"number": dest_port}}}]}]

    rules = managed(kube, "DestinationRule")
    assert set(rules) == set(DESTINATION_RULES)
    for key, (chapter, host, subsets) in DESTINATION_RULES.items():
        assert rules[key]["metadata"]["labels"][CHAPTER_LABEL] == chapter
        assert rules[key]["spec"]["host"] == host
        assert [(s["name"], s["labels"]) for s in rules[key]["spec"]["subsets"]] == [
            (s, {"version": s}) for s in subsets
        ]
    # nothing but these: no stray object of any Istio kind
    assert {k: len(v) for k, v in all_istio_objects(kube).items()} == {
        "Gateway": 3,
        "VirtualService": 5,
        "DestinationRule": 1,
    }
    creates = [r for r in kube.writes(mark) if r["verb"] == "create"]
    assert len(creates) == 9

    mark = kube.mark()
    again = routes(kube)
    assert again.rc == 0 and again.changed == 0, again
    assert kube.writes(mark) == []


def test_routes_check_mode_on_an_empty_cluster_writes_nothing(kube):
    mark = kube.mark()
    result = run_playbook("playbooks/routes.yml", kube, check=True)
    assert result.rc == 0, result
    assert kube.writes(mark) == []
    assert all_istio_objects(kube) == {"Gateway": [], "VirtualService": [], "DestinationRule": []}
    # the missing Services are reported, not hidden, in check mode
    assert "A real run would refuse: VirtualService microservice/tomcat-virtualservice routes to Service " \
        "microservice/tomcat, which does not exist" in flat(result.stdout + result.stderr)


def test_unknown_chapter_is_refused_before_anything_is_written(kube):
    make_platform(kube)
    mark = kube.mark()
    result = routes(kube, ["1", "7"])
    assert result.rc != 0 and result.failed == 1, result
    assert "names chapter(s) 7, which lab_chapters does not define; known chapters: 1, 2, 3, 4" in flat(result.stdout)
    assert kube.writes(mark) == []
    assert kube.requests(mark) == []  # refused before the first API request


def test_route_to_a_missing_service_or_port_is_refused_before_anything_is_written(kube):
    make_platform(kube, skip=("zipkin", "kiali"))
    kube.create(service("istio-system", "kiali", 9090, 9090))  # kiali without its port 20001
    mark = kube.mark()
    result = routes(kube, ["1", "3"])
    assert result.rc != 0 and result.failed == 1, result
    assert "Nothing was written" in flat(result.stdout)
    assert (
        "VirtualService istio-system/kiali-istio routes to port 20001 of Service istio-system/kiali, "
        "which has no such port (ports: 9090)" in flat(result.stdout)
    )
    assert "VirtualService istio-system/zipkin-istio routes to Service istio-system/zipkin, which does not exist" in (
        flat(result.stdout)
    )
    assert kube.writes(mark) == []
    assert all_istio_objects(kube) == {"Gateway": [], "VirtualService": [], "DestinationRule": []}


def test_routes_absent_removes_only_that_chapters_routes(kube):
    make_platform(kube)
    assert routes(kube).rc == 0
    result = routes(kube, ["3"], lab_routes_state="absent")
    assert result.rc == 0 and result.changed == 1, result  # one task: VirtualServices, then the Gateway
    assert set(managed(kube, "Gateway")) == {("microservice", "ingressgateway80"), ("istio-system", "gateway")}
    assert set(managed(kube, "VirtualService")) == {
        ("microservice", "tomcat-virtualservice"),
        ("istio-system", "prometheus-istio"),
    }
    assert set(managed(kube, "DestinationRule")) == {("microservice", "tomcat")}
    again = routes(kube, ["3"], lab_routes_state="absent")
    assert again.rc == 0 and again.changed == 0, again


# --- verify.yml -------------------------------------------------------------------


def test_verify_passes_when_every_route_answers_like_envoy(kube, tmp_path):
    make_platform(kube)
    assert routes(kube).rc == 0
    answers = {
        "*": 200,  # chapter 1: tomcat answers every host and the bare IP
        f"prometheus-istio.{DOMAIN}": 200,
        f"grafana-istio.{DOMAIN}": [404, 200],  # the route reaches Envoy a moment late: retried
        f"kiali-istio.{DOMAIN}": Answer(302, location="/kiali/"),  # Kiali redirects / to /kiali/
        f"zipkin-istio.{DOMAIN}": 200,
    }
    with EnvoyLikeServer("127.0.0.1", 0, answers) as envoy:
        result, report = verify(kube, envoy, tmp_path, lab_verify_retries=2, lab_verify_delay=0)
        grafana_attempts = [r for r in envoy.requests if r[1] == f"grafana-istio.{DOMAIN}"]
        assert result.rc == 0, result
        hosts_sent = sorted({host for _, host, _ in envoy.requests})
        second, _ = verify(kube, envoy, tmp_path)
    assert second.rc == 0 and second.changed == 0, second
    assert len(grafana_attempts) == 2
    ip = envoy.address
    assert hosts_sent == sorted(
        [f"{ip}:{envoy.port}", UNROUTED, *(f"{n}-istio.{DOMAIN}" for n in ("prometheus", "grafana", "kiali", "zipkin"))]
    )
    assert report["ok"] is True
    probes = report["probes"]
    assert [(p["chapter"], p["host"], p["expected_status"], p["status"], p["ok"]) for p in probes] == [
        ("1", "", 200, 200, True),
        ("2", f"prometheus-istio.{DOMAIN}", 200, 200, True),
        ("3", f"grafana-istio.{DOMAIN}", 200, 200, True),
        ("3", f"kiali-istio.{DOMAIN}", 200, 302, True),
        ("3", f"zipkin-istio.{DOMAIN}", 200, 200, True),
        ("", UNROUTED, 200, 200, True),  # chapter 1's '*' VirtualService catches every host
    ]
    assert all(p["server"] == "istio-envoy" and p["explanation"] == "" for p in probes)
    assert probes[0]["url"] == f"http://{ip}:{envoy.port}/"
    assert report["hosts_line"] == (
        f"{ip} prometheus-istio.{DOMAIN} grafana-istio.{DOMAIN} kiali-istio.{DOMAIN} zipkin-istio.{DOMAIN}"
    )
    markdown = (tmp_path / "artifacts" / "lab" / "verify.md").read_text()
    assert "All 6 probes answered as expected." in markdown
    assert report["hosts_line"] in markdown
    assert f"| OK | 2 | prometheus-istio.{DOMAIN} | http://{ip}:{envoy.port}/ | 200 | 200 | istio-envoy |" in markdown
    # the summary an instructor reads in the play output
    assert "Students add to /etc/hosts:" in flat(result.stdout)
    assert report["hosts_line"] in flat(result.stdout)


def test_verify_explains_each_broken_link_and_fails_the_play(kube, tmp_path):
    make_platform(kube)
    assert routes(kube, ["2", "3"]).rc == 0
    # break the chain Gateway -> VirtualService -> Service -> endpoints, one link per host
    assert kube.delete(ISTIO, "Gateway", "gateway", "istio-system")  # prometheus: its Gateway is gone
    grafana = kube.get("v1", "Service", "grafana", "istio-system")
    grafana["spec"]["ports"] = [{"name": "http", "port": 3001, "targetPort": 3000}]
    kube.resource("v1", "Service").replace(body=grafana, namespace="istio-system")  # grafana: port 3000 is gone
    answers = {
        f"grafana-istio.{DOMAIN}": 503,
        f"kiali-istio.{DOMAIN}": {"status": 200, "server": "nginx/1.25"},  # not Envoy
        f"zipkin-istio.{DOMAIN}": 503,  # its Service has no pods, so no endpoints
    }
    with EnvoyLikeServer("127.0.0.3", 0, answers) as envoy:
        result, report = verify(kube, envoy, tmp_path, lab_verify_chapters=["2", "3"])
    assert result.rc != 0 and result.failed == 1, result
    assert report["ok"] is False
    probes = by_host(report)
    prometheus = probes[f"prometheus-istio.{DOMAIN}"]
    assert (prometheus["status"], prometheus["server"], prometheus["ok"]) == (404, "istio-envoy", False)
    assert prometheus["explanation"].startswith(
        "VirtualService istio-system/prometheus-istio: Gateway istio-system/gateway does not exist"
    )
    grafana = probes[f"grafana-istio.{DOMAIN}"]
    assert (grafana["status"], grafana["ok"]) == (503, False)
    assert (
        grafana["explanation"]
        == "Service istio-system/grafana has no port 3000 (VirtualService istio-system/grafana-istio)"
    )
    kiali = probes[f"kiali-istio.{DOMAIN}"]
    assert (kiali["status"], kiali["server"], kiali["ok"]) == (200, "nginx/1.25", False)
    assert "answered 200 with server 'nginx/1.25', not Envoy" in kiali["explanation"]
    zipkin = probes[f"zipkin-istio.{DOMAIN}"]
    assert zipkin["explanation"] == (
        "Service istio-system/zipkin has no ready endpoints: its pods are missing or not ready, "
        "or its selector matches no pod"
    )
    unrouted = probes[UNROUTED]
    assert (unrouted["expected_status"], unrouted["status"], unrouted["ok"]) == (404, 404, True)
    # the summary comes before the failure, and the failure says why
    assert flat(result.stdout).index("Students add to /etc/hosts:") < flat(result.stdout).index(
        f"4 of 5 probe(s) failed: prometheus-istio.{DOMAIN}: VirtualService istio-system/prometheus-istio: Gateway"
    )
    assert f"FAIL zipkin-istio.{DOMAIN}: Service istio-system/zipkin has no ready endpoints" in flat(result.stdout)
    markdown = (tmp_path / "artifacts" / "lab" / "verify.md").read_text()
    assert "4 of 5 probes failed." in markdown
    assert "## Why" in markdown


def test_verify_flags_a_host_answered_by_another_chapters_wildcard(kube, tmp_path):
    make_platform(kube)
    assert routes(kube, ["1", "3"]).rc == 0
    assert kube.delete(ISTIO, "VirtualService", "zipkin-istio", "istio-system")
    # Envoy now sends zipkin-istio's requests to tomcat through chapter 1's '*': a 200, but the wrong app
    with EnvoyLikeServer("127.0.0.4", 0, {"*": 200}) as envoy:
        mark = kube.mark()
        dry = run_playbook(
            "playbooks/verify.yml",
            kube,
            check=True,
            extra_vars={
                "lab_verify_ingress_ip": envoy.address,
                "lab_verify_http_port": envoy.port,
                "lab_verify_report_dir": str(tmp_path / "artifacts"),
                "lab_verify_chapters": ["1", "3"],
                "lab_verify_fail": False,
            },
        )
        assert dry.rc == 0, dry
        assert kube.writes(mark) == []
        assert not (tmp_path / "artifacts").exists()  # check mode probes (read-only GETs) but writes no report
        assert "Envoy answered 200 through VirtualService microservice/tomcat-virtualservice" in flat(dry.stdout)
        result, report = verify(kube, envoy, tmp_path, lab_verify_chapters=["1", "3"], lab_verify_fail=False)
    assert result.rc == 0, result  # lab_verify_fail: false reports without failing
    zipkin = by_host(report)[f"zipkin-istio.{DOMAIN}"]
    assert (zipkin["status"], zipkin["ok"]) == (200, False)
    assert zipkin["explanation"] == (
        "Envoy answered 200 through VirtualService microservice/tomcat-virtualservice (a wildcard host), "
        "not the chapter's own: VirtualService istio-system/zipkin-istio does not exist "
        "(apply the chapter: playbooks/routes.yml)"
    )
    assert [p["ok"] for p in report["probes"]].count(False) == 1


def test_verify_explains_when_nothing_answers(kube, tmp_path):
    make_platform(kube)
    assert routes(kube, ["2"]).rc == 0
    with EnvoyLikeServer("127.0.0.5", 0) as closed:  # take a free port, then close it
        port = closed.port
    result, report = verify(
        kube, None, tmp_path, port=port, lab_verify_chapters=["2"], lab_verify_ingress_ip="127.0.0.5"
    )
    assert result.rc != 0, result
    assert [(p["host"], p["status"], p["ok"]) for p in report["probes"]] == [
        (f"prometheus-istio.{DOMAIN}", None, False),
        (UNROUTED, None, False),
    ]
    assert report["probes"][0]["explanation"].startswith(f"nothing answered at 127.0.0.5:{port} (")
    assert "Connection refused" in report["probes"][0]["explanation"]


def test_verify_finds_the_ingress_ip_from_the_gateway_service(kube, tmp_path):
    double = kube.require_double("simulated MetalLB assigns a loopback ingress IP")
    assert double is not None
    kube.install_metallb_crds()
    make_platform(kube)
    assert routes(kube, ["2"]).rc == 0
    kube.ensure_namespace("metallb-system")
    kube.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "controller", "namespace": "metallb-system"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "metallb"}},
                "template": {
                    "metadata": {"labels": {"app": "metallb"}},
                    "spec": {"containers": [{"name": "controller", "image": "quay.io/metallb/controller:v0.16.1"}]},
                },
            },
        }
    )
    kube.create(
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "lab", "namespace": "metallb-system"},
            "spec": {"addresses": ["127.0.0.6-127.0.0.6"]},
        }
    )
    gateway = service("istio-system", "istio-ingressgateway", 80, 8080)
    gateway["spec"]["type"] = "LoadBalancer"
    gateway["spec"]["selector"] = {"istio": "ingressgateway"}
    kube.create(gateway)
    with EnvoyLikeServer("127.0.0.6", 0, {f"prometheus-istio.{DOMAIN}": 200}) as envoy:
        result, report = verify(kube, envoy, tmp_path, lab_verify_chapters=["2"], lab_verify_ingress_ip="")
    assert result.rc == 0, result
    assert report["ingress_ip"] == "127.0.0.6"
    assert report["hosts_line"] == f"127.0.0.6 prometheus-istio.{DOMAIN}"


def test_verify_says_when_the_ingress_gateway_has_no_ip(kube, tmp_path):
    make_platform(kube)
    result, report = verify(kube, None, tmp_path, port=80, lab_verify_ingress_ip="")
    assert result.rc != 0 and report is None, result
    assert "Service istio-system/istio-ingressgateway does not exist: install Istio first" in flat(result.stdout)
