"""The exercise check (issue 28): a student's own manifests, written the way a student writes them (plain YAML, no
labels, applied through the API), checked by the engine of lab_exercise_check in-process against the `kube`
fixture; the catalogue of student mistakes, each failing with its explanation.

No Envoy runs here: tests/verify_envoy.py's ClusterEnvoy answers on a loopback address as the ingress gateway's
Envoy would, routing by the Gateways and VirtualServices the lab holds at each request. The platform (Istio, the
addons, the apps) is other stages' work: `lab` creates its Services and Deployments through the API (the double
runs their pods and endpoints)."""

import copy
import json

import pytest
import yaml
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import KubeClient
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.exercise import check
from jinja2.nativetypes import NativeEnvironment

from tests.helpers import REPO, run_playbook
from tests.verify_envoy import ClusterEnvoy

pytestmark = pytest.mark.api

DOMAIN = "kubernets.cn"
EGRESS_HOST = "edition.cnn.com"
CHAPTERS_FILE = REPO / "inventory/group_vars/all/chapters.yml"
# The contract's Services: (namespace, name, port, targetPort, pod labels)
PLATFORM = [
    ("microservice", "tomcat", 80, 8080, {"app": "tomcat", "version": "v1"}),
    ("istio-system", "prometheus", 9090, 9090, {"app": "prometheus"}),
    ("istio-system", "grafana", 3000, 3000, {"app": "grafana"}),
    ("istio-system", "kiali", 20001, 20001, {"app": "kiali"}),
    ("istio-system", "zipkin", 9411, 9411, {"app": "zipkin"}),
    ("istio-system", "istio-egressgateway", 80, 8080, {"app": "istio-egressgateway", "istio": "egressgateway"}),
]


NATIVE = NativeEnvironment()


def render(node, variables, env=NATIVE):
    """The catalogue as Ansible hands it to the module: every template rendered (natively: weights stay ints)."""
    if isinstance(node, dict):
        return {k: render(v, variables) for k, v in node.items()}
    if isinstance(node, list):
        return [render(v, variables) for v in node]
    if isinstance(node, str) and "{{" in node:
        return env.from_string(node).render(**variables)
    return node


def catalogue(step=(90, 10)):
    chapters = yaml.safe_load(CHAPTERS_FILE.read_text())["lab_chapters"]
    return render(chapters, {"lab_domain": DOMAIN, "lab_egress_host": EGRESS_HOST,
                             "lab_traffic_shift_weights": {"v1": step[0], "v2": step[1]}})


# What students write, as the course shows it (apiVersion networking.istio.io/v1, no labels).
STUDENT = {
    "1": """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: ingressgateway80
  namespace: microservice
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - '*'
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tomcat-virtualservice
  namespace: microservice
spec:
  hosts:
  - '*'
  gateways:
  - ingressgateway80
  http:
  - route:
    - destination:
        host: tomcat.microservice.svc.cluster.local
        port:
          number: 80
""",
    "2": """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gateway
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [prometheus-istio.kubernets.cn]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: prometheus-istio
  namespace: istio-system
spec:
  hosts: [prometheus-istio.kubernets.cn]
  gateways: [gateway]
  http:
  - route:
    - destination:
        host: prometheus.istio-system.svc.cluster.local
        port: {number: 9090}
""",
    "3": """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: allgateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: grafana-istio, namespace: istio-system}
spec:
  hosts: [grafana-istio.kubernets.cn]
  gateways: [allgateway]
  http:
  - route:
    - destination: {host: grafana, port: {number: 3000}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: kiali-istio, namespace: istio-system}
spec:
  hosts: [kiali-istio.kubernets.cn]
  gateways: [allgateway]
  http:
  - route:
    - destination: {host: kiali, port: {number: 20001}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: zipkin-istio, namespace: istio-system}
spec:
  hosts: [zipkin-istio.kubernets.cn]
  gateways: [allgateway]
  http:
  - route:
    - destination: {host: zipkin, port: {number: 9411}}
""",
    "4": """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tomcat, namespace: microservice}
spec:
  host: tomcat.microservice.svc.cluster.local
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
""",
    "5": """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tomcat-shift, namespace: microservice}
spec:
  hosts: [tomcat.kubernets.cn]
  gateways: [ingressgateway80]
  http:
  - route:
    - destination: {host: tomcat.microservice.svc.cluster.local, subset: v1, port: {number: 80}}
      weight: 90
      headers: {response: {set: {x-istio-lab-subset: v1}}}
    - destination: {host: tomcat.microservice.svc.cluster.local, subset: v2, port: {number: 80}}
      weight: 10
      headers: {response: {set: {x-istio-lab-subset: v2}}}
""",
    "6": """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn, namespace: egress}
spec:
  hosts: [edition.cnn.com]
  ports:
  - {number: 80, name: http-port, protocol: HTTP}
  - {number: 443, name: https, protocol: HTTPS}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: egress}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [edition.cnn.com]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-cnn, namespace: egress}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-cnn-through-egress-gateway, namespace: egress}
spec:
  hosts: [edition.cnn.com]
  gateways: [istio-egressgateway, mesh]
  http:
  - match:
    - gateways: [mesh]
      port: 80
    route:
    - destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: cnn, port: {number: 80}}
      weight: 100
  - match:
    - gateways: [istio-egressgateway]
      port: 80
    route:
    - destination: {host: edition.cnn.com, port: {number: 80}}
      weight: 100
""",
}
# What each chapter's exercise needs done first (the exercise start brings the rest up).
BEFORE = {"4": ["1"], "5": ["1", "4"]}


def deployment(namespace, name, labels):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": name, "image": "example/app:1"}]}}}}


def make_platform(kube):
    """The platform and the chapters' apps, as the exercise start leaves them (no Istio object of the student's)."""
    for namespace in ("istio-system", "microservice", "egress"):
        kube.ensure_namespace(namespace, {"istio-injection": "enabled"} if namespace != "istio-system" else None)
    for namespace, name, port, target, labels in PLATFORM:
        selector = {k: v for k, v in labels.items() if k != "version"}
        kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                     "spec": {"selector": selector, "ports": [{"name": "http", "port": port, "targetPort": target}]}})
        kube.create(deployment(namespace, name, labels))
    kube.create(deployment("microservice", "tomcat-v2", {"app": "tomcat", "version": "v2"}))


@pytest.fixture
def lab(kube):
    make_platform(kube)
    with ClusterEnvoy(kube, "127.0.0.1", 0) as envoy:
        yield kube, envoy


def apply_yaml(kube, text):
    for doc in yaml.safe_load_all(text):
        if doc:
            kube.apply(doc)


def run_check(kube, envoy, chapter, step=(90, 10)):
    client = KubeClient(kubeconfig=kube.kubeconfig, context=kube.context)
    options = {"catalogue": catalogue(step), "chapter": chapter, "ingress_ip": envoy.address,
               "ingress_namespace": "istio-system", "ingress_service": "istio-ingressgateway",
               "ingress_labels": {"app": "istio-ingressgateway", "istio": "ingressgateway"},
               "egress_labels": {"app": "istio-egressgateway", "istio": "egressgateway"},
               "http_port": envoy.port, "gateway_port": 80, "accept_redirects": True, "retries": 0, "delay": 0,
               "split_samples": 100, "split_tolerance": 10, "timeout": 5, "api_version": "networking.istio.io/v1"}
    return check(client, options)


@pytest.mark.parametrize("chapter", ["1", "2", "3", "4", "5", "6"])
def test_the_students_own_manifests_pass(lab, chapter):
    kube, envoy = lab
    for before in BEFORE.get(chapter, []):
        apply_yaml(kube, STUDENT[before])
    apply_yaml(kube, STUDENT[chapter])
    mark = kube.mark()
    result = run_check(kube, envoy, chapter)
    assert result["state"] == "done", result
    assert (result["reason"], result["explanation"], result["hint"]) == ("", [], None)
    requests = kube.requests(mark)
    assert kube.writes(mark) == []
    # one LIST per Istio kind and the Services; Pods of one namespace where a subset's labels are checked
    assert sorted(r["verb"] for r in requests) == ["list"] * (6 if chapter in "45" else 5), requests
    docs = [d for d in yaml.safe_load_all(STUDENT[chapter]) if d]
    assert sorted((o["kind"], o["namespace"], o["name"]) for o in result["student_objects"]) == sorted(
        (d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs)


@pytest.mark.parametrize("chapter,shown", [("1", "127.0.0.1"), ("2", f"prometheus-istio.{DOMAIN}"),
                                           ("5", f"tomcat.{DOMAIN}"),  # answered 200 by chapter 1's '*' meanwhile
                                           ("4", "DestinationRule for tomcat.microservice.svc.cluster.local"),
                                           ("6", f"route for {EGRESS_HOST}")])
def test_the_exercise_start_is_not_done_yet(lab, chapter, shown):
    kube, envoy = lab
    for before in BEFORE.get(chapter, []):
        apply_yaml(kube, STUDENT[before])
    result = run_check(kube, envoy, chapter)
    assert result["state"] == "not_yet"
    assert result["reason"] == f"no {'route for ' if chapter in '125' else ''}{shown} yet"
    assert result["student_objects"] == []
    assert "kubectl apply" in result["hint"]


def edit(chapter, *changes):
    """The chapter's manifests with the student's edits ((old, new) text replacements, each must apply)."""
    text = STUDENT[chapter]
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


# The catalogue of mistakes: (id, chapter, what the student applied, words the explanation must hold, reason).
MISTAKES = [
    ("gateway-selector", "1", edit("1", ("istio: ingressgateway", "istio: ingress")),
     ["Gateway microservice/ingressgateway80: spec.selector is {istio=ingress}, which the ingress gateway's pods "
      "do not carry"], "selector matches no ingress gateway pod"),
    ("gateway-name-misspelt", "1", edit("1", ("  - ingressgateway80\n", "  - ingressgateway\n")),
     ["VirtualService microservice/tomcat-virtualservice: spec.gateways[0] names 'ingressgateway' but the Gateway "
      "is 'ingressgateway80'"], "spec.gateways names 'ingressgateway', not 'ingressgateway80'"),
    ("gateways-missing", "1", edit("1", ("  gateways:\n  - ingressgateway80\n", "")),
     ["VirtualService microservice/tomcat-virtualservice: spec.gateways is missing", "'mesh'"],
     "is not bound to a Gateway"),
    ("mesh-only", "1", edit("1", ("  - ingressgateway80\n", "  - mesh\n")),
     ["spec.gateways lists only 'mesh'"], "is not bound to a Gateway"),
    ("container-port", "1", edit("1", ("          number: 80\n", "          number: 8080\n")),
     ["VirtualService microservice/tomcat-virtualservice: spec.http[0].route[0].destination.port.number is 8080, "
      "but Service microservice/tomcat has port(s) [80]"], "Service microservice/tomcat has no port 8080"),
    ("short-name-other-namespace", "1",
     edit("1", ("  name: tomcat-virtualservice\n  namespace: microservice", "  name: tomcat-virtualservice\n"
                "  namespace: default"), ("  - ingressgateway80\n", "  - microservice/ingressgateway80\n"),
          ("host: tomcat.microservice.svc.cluster.local", "host: tomcat")),
     ["VirtualService default/tomcat-virtualservice: spec.http[0].route[0].destination.host is the short name "
      "'tomcat'", "tomcat.default.svc.cluster.local", "write tomcat.microservice.svc.cluster.local"],
     "short host 'tomcat' means tomcat.default.svc.cluster.local"),
    ("gateway-other-namespace", "2",
     edit("2", ("  name: prometheus-istio\n  namespace: istio-system", "  name: prometheus-istio\n"
                "  namespace: microservice")),
     ["VirtualService microservice/prometheus-istio: spec.gateways[0] names 'gateway', which Istio looks for in "
      "the VirtualService's own namespace microservice", "write 'istio-system/gateway'"],
     "without its namespace (istio-system/gateway)"),
    ("forgot-the-gateway", "2", STUDENT["2"].split("---", 1)[1],
     ["VirtualService istio-system/prometheus-istio: spec.gateways[0] names 'gateway', but there is no Gateway "
      "istio-system/gateway: write the Gateway too"], "no Gateway istio-system/gateway yet"),
    ("gateway-host-not-admitted", "2",
     edit("2", ("    hosts: [prometheus-istio.kubernets.cn]", "    hosts: [prometheus-istio.kubernetes.cn]")),
     ["Gateway istio-system/gateway: spec.servers[].hosts are ['prometheus-istio.kubernetes.cn'], which do not "
      f"admit 'prometheus-istio.{DOMAIN}'"], f"does not admit prometheus-istio.{DOMAIN}"),
    ("virtual-service-host", "2",
     edit("2", ("  hosts: [prometheus-istio.kubernets.cn]\n  gateways", "  hosts: [prometheus.kubernets.cn]\n"
                "  gateways")),
     ["VirtualService istio-system/prometheus-istio: spec.hosts is ['prometheus.kubernets.cn'], which does not "
      f"cover prometheus-istio.{DOMAIN}"], "spec.hosts does not include"),
    ("forgot-one-virtual-service", "3", STUDENT["3"].rsplit("---", 1)[0],
     [f"No VirtualService in the lab has zipkin-istio.{DOMAIN} in its hosts", "istio-system/zipkin-istio"],
     f"no route for zipkin-istio.{DOMAIN} yet"),
    ("gateway-port", "3", edit("3", ("{number: 80, name: http", "{number: 8080, name: http")),
     ["Gateway istio-system/allgateway: spec.servers[].port.number is [8080], but the requests come to port 80"],
     "has no server on port 80"),
    ("short-name-kiali-namespace", "3",
     edit("3", ("{name: kiali-istio, namespace: istio-system}", "{name: kiali-istio, namespace: microservice}"),
          ("  hosts: [kiali-istio.kubernets.cn]\n  gateways: [allgateway]",
           "  hosts: [kiali-istio.kubernets.cn]\n  gateways: [istio-system/allgateway]")),
     ["spec.http[0].route[0].destination.host is the short name 'kiali'", "write kiali.istio-system.svc.cluster.local"],
     "short host 'kiali'"),
    ("subset-labels", "4", edit("4", ("labels: {version: v2}", "labels: {version: '2'}")),
     ["DestinationRule microservice/tomcat: spec.subsets[1].labels (v2) are {version=2}, which match no ready pod "
      "of Service microservice/tomcat (its pods carry version=v1, version=v2)"], "subset v2 matches no pod"),
    ("subset-missing", "4", edit("4", ("  - name: v2\n    labels: {version: v2}\n", "")),
     ["DestinationRule microservice/tomcat: spec.subsets defines ['v1'], not the subset 'v2'"], "no subset v2"),
    ("weights", "5", edit("5", ("weight: 90", "weight: 50"), ("weight: 10", "weight: 50")),
     ["VirtualService microservice/tomcat-shift: spec.http[0].route[].weight gives v1 50, v2 50, but the lesson's "
      "step wants v1 90, v2 10"], "weights differ from the lesson's split"),
    ("subset-undefined", "5", edit("5", ("subset: v2", "subset: version2")),
     ["spec.http[0].route[1].destination.subset is 'version2', but no DestinationRule for "
      "tomcat.microservice.svc.cluster.local defines it (they define v1, v2)"], "no DestinationRule defines subset"),
    ("no-service-entry", "6", STUDENT["6"].split("---", 1)[1],
     [f"No ServiceEntry declares {EGRESS_HOST}"], f"no ServiceEntry for {EGRESS_HOST}"),
    ("egress-without-mesh", "6",
     edit("6", ("gateways: [istio-egressgateway, mesh]", "gateways: [istio-egressgateway]")),
     ["VirtualService egress/direct-cnn-through-egress-gateway: spec.gateways is ['istio-egressgateway'], without "
      "'mesh'"], "missing its mesh leg"),
    ("egress-mesh-route-missing", "6",
     edit("6", ("""  - match:
    - gateways: [mesh]
      port: 80
    route:
    - destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: cnn, port: {number: 80}}
      weight: 100
""", "")),
     ["VirtualService egress/direct-cnn-through-egress-gateway: spec.http[] has no route for the sidecars (match "
      "gateways: [mesh]) that sends edition.cnn.com to istio-egressgateway.istio-system.svc.cluster.local"],
     "missing its mesh leg"),
    ("egress-selector", "6", edit("6", ("selector: {istio: egressgateway}", "selector: {istio: ingressgateway}")),
     ["Gateway egress/istio-egressgateway: spec.selector is {istio=ingressgateway}, which the egress gateway's pods "
      "do not carry"], "selector matches no egress gateway pod"),
]


@pytest.mark.parametrize("mistake,chapter,applied,words,reason", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_students_mistake_is_explained(lab, mistake, chapter, applied, words, reason):
    kube, envoy = lab
    for before in BEFORE.get(chapter, []):
        apply_yaml(kube, STUDENT[before])
    if chapter == "3":
        apply_yaml(kube, STUDENT["1"])  # chapter 1's '*' route answers every other host: a 200 that is not done
    apply_yaml(kube, applied)
    mark = kube.mark()
    result = run_check(kube, envoy, chapter)
    assert result["state"] == "not_yet", result
    text = " ".join(result["explanation"])
    for word in words:
        assert word in text, (mistake, result["explanation"])
    assert reason in result["reason"], result["reason"]
    assert kube.writes(mark) == []


def test_an_apiversion_typo_is_refused_and_the_check_says_so(lab):
    kube, envoy = lab
    docs = [d for d in yaml.safe_load_all(STUDENT["1"]) if d]
    typo = copy.deepcopy(docs[1])
    typo["apiVersion"] = "networking.istio.io/v1alpah3"
    kube.apply(docs[0])
    with pytest.raises(Exception, match="v1alpah3"):  # what kubectl apply prints: no such version of the kind
        kube.apply(typo)
    result = run_check(kube, envoy, "1")
    assert result["state"] == "not_yet"
    assert result["reason"] == f"no route for {envoy.address} yet"
    assert "apiVersion: networking.istio.io/v1" in result["hint"] and "kubectl apply" in result["hint"]
    assert [o["name"] for o in result["student_objects"]] == []


def answer_key_objects(entry):
    """The chapter's own objects, as chapter.yml applies them (labelled as istio-lab's)."""
    kinds = {"service_entries": "ServiceEntry", "gateways": "Gateway", "virtual_services": "VirtualService",
             "destination_rules": "DestinationRule"}
    return [{"apiVersion": "networking.istio.io/v1", "kind": kind,
             "metadata": {"name": d["name"], "namespace": d["namespace"],
                          "labels": {"app.kubernetes.io/managed-by": "istio-lab"}}, "spec": d["spec"]}
            for key, kind in kinds.items() for d in entry.get(key) or []]


@pytest.mark.parametrize("chapter", ["1", "2", "3", "4", "5", "6"])
def test_the_answer_key_passes(lab, chapter):
    kube, envoy = lab
    chapters = catalogue()
    for needed in [*BEFORE.get(chapter, []), chapter]:
        for obj in answer_key_objects(chapters[needed]):
            kube.apply(obj)
    result = run_check(kube, envoy, chapter)
    assert result["state"] == "done", result
    wanted = chapters[chapter]["exercise"]["student_objects"]
    assert sorted((o["kind"], o["namespace"], o["name"]) for o in result["student_objects"]) == sorted(
        (o["kind"], o["namespace"], o["name"]) for o in wanted)


def test_what_the_objects_cannot_show_is_explained_from_the_answer(lab):
    kube, envoy = lab
    apply_yaml(kube, STUDENT["1"])
    assert kube.delete("apps/v1", "Deployment", "tomcat", "microservice")  # tomcat v1 is gone: no ready endpoint...
    assert kube.delete("apps/v1", "Deployment", "tomcat-v2", "microservice")  # ...nor v2, behind the same Service
    result = run_check(kube, envoy, "1")
    assert result["state"] == "not_yet"
    assert result["explanation"][0] == (f"{envoy.address}: Service microservice/tomcat has no ready endpoints: its "
                                        "pods are missing or not ready, or its selector matches no pod")
    assert result["explanation"][1].endswith("answers 503 (server: istio-envoy).")
    assert [o["name"] for o in result["student_objects"]] == ["tomcat-virtualservice", "ingressgateway80"]


def test_a_gateway_without_its_virtual_service_is_the_students_and_not_done(lab):
    kube, envoy = lab
    apply_yaml(kube, STUDENT["2"].split("---", 1)[0].replace("name: gateway", "name: prometheus-gateway"))
    result = run_check(kube, envoy, "2")
    assert (result["state"], result["reason"]) == ("not_yet", f"no route for prometheus-istio.{DOMAIN} yet")
    assert [(o["kind"], o["namespace"], o["name"]) for o in result["student_objects"]] == [
        ("Gateway", "istio-system", "prometheus-gateway")]


def test_a_lab_built_by_chapter_yml_passes_check_yml(lab, tmp_path):
    """The wiring, one lab: chapter.yml applies the answer key (istio-lab's labelled objects), check.yml finds
    them by what they do and passes, reading only, and writes the lab's report."""
    kube, envoy = lab
    kube.create({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
                 "spec": {"selector": {"istio": "ingressgateway"},
                          "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}})
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"},
                 "data": {"mesh": "defaultConfig: {}\n"}})
    built = run_playbook("playbooks/chapter.yml", kube, extra_vars={"chapter": "2"})
    assert built.rc == 0, built
    mark = kube.mark()
    result = run_playbook("playbooks/check.yml", kube, cli_vars={"chapter": "2"}, extra_vars={
        "lab_verify_ingress_ip": envoy.address, "lab_verify_http_port": envoy.port, "lab_exercise_check_retries": 0,
        "lab_verify_report_dir": str(tmp_path / "artifacts")})
    assert result.rc == 0 and result.recap["lab"]["failed"] == 0, result
    assert kube.writes(mark) == []
    report = json.loads((tmp_path / "artifacts" / "lab" / "check-2.json").read_text())
    assert (report["state"], report["reason"], report["explanation"]) == ("done", "", [])
    assert "chapter 2: done" in result.stdout
