"""The istio role's IstioOperator and the istioctl test double that checks it.

tests/bin/istioctl stands in for the real binary in the API tests; these
tests make sure it is a real check: it refuses what istioctl would refuse, and
the operator the role renders (here with a registry mirror and no pinned
ingress IP, the other variant is covered by tests/api/test_platform.py)
passes it."""

import copy
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ISTIOCTL = REPO / "tests" / "bin" / "istioctl"

_loader = importlib.machinery.SourceFileLoader("istioctl_double", str(ISTIOCTL))
_spec = importlib.util.spec_from_loader("istioctl_double", _loader)
D = importlib.util.module_from_spec(_spec)
_loader.exec_module(D)


def render_operator(**variables) -> dict:
    """The role's template rendered by Ansible itself, with the shared settings and the role's defaults."""
    shared = yaml.safe_load((REPO / "inventory/group_vars/all/lab.yml").read_text())  # istio_version, lab_ingress_ip
    defaults = yaml.safe_load((REPO / "roles/istio/defaults/main.yml").read_text())
    values = {**shared, **defaults, "lab_registry_mirror": "", "inventory_hostname": "lab", **variables}
    template = REPO / "roles/istio/templates/istio-operator.yaml.j2"
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    command = [str(Path(sys.executable).parent / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
               "-m", "ansible.builtin.debug", "-a", f"msg={{{{ lookup('ansible.builtin.template', '{template}') }}}}",
               "-e", json.dumps(values)]
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    output = json.loads(completed.stdout)
    return yaml.safe_load(output["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"])


@pytest.fixture(scope="module")
def mirrored():
    return render_operator(lab_registry_mirror="harbor.school.example/mirror", lab_ingress_ip="")


def test_rendered_operator_passes_the_double(mirrored):
    spec = D.validate_operator(mirrored)
    assert spec["profile"] == "demo"
    assert spec["hub"] == "harbor.school.example/mirror/istio"
    assert spec["tag"] == "1.30.3"
    ingress = spec["components"]["ingressGateways"][0]
    assert ingress["name"] == "istio-ingressgateway" and ingress["enabled"] is True
    assert "serviceAnnotations" not in ingress["k8s"]  # no pinned IP: MetalLB picks one
    assert ingress["k8s"]["service"]["type"] == "LoadBalancer"
    egress = spec["components"]["egressGateways"][0]
    assert (egress["name"], egress["k8s"]["service"]["type"]) == ("istio-egressgateway", "ClusterIP")
    assert spec["meshConfig"]["defaultProviders"] == {"tracing": ["zipkin"]}


def test_double_builds_the_contract_objects_from_it(mirrored):
    objects, pruned = D.demo_objects(D.validate_operator(mirrored))
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    assert pruned == []
    istiod = by_name[("Deployment", "istiod")]
    assert istiod["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "harbor.school.example/mirror/istio/pilot:1.30.3"
    gateway = by_name[("Deployment", "istio-ingressgateway")]
    assert gateway["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "harbor.school.example/mirror/istio/proxyv2:1.30.3"
    assert by_name[("Service", "istio-ingressgateway")]["spec"]["selector"] == \
        {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    mesh = yaml.safe_load(by_name[("ConfigMap", "istio")]["data"]["mesh"])
    assert mesh["extensionProviders"][0]["zipkin"]["port"] == 9411


def _broken(operator, path, value):
    broken = copy.deepcopy(operator)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return broken


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("kind",), "IstioOperatorList", "expected apiVersion install.istio.io/v1alpha1, kind IstioOperator"),
        (("spec", "profil"), "demo", "unknown field(s) profil in spec"),
        (("spec", "profile"), "demos", "unknown profile 'demos'"),
        (("spec", "hub"), "harbor.example/", "must be a non-empty string without a trailing '/'"),
        (("spec", "components", "ingressGateway"), [], "unknown field(s) ingressGateway in spec.components"),
        (("spec", "components", "ingressGateways", 0, "k8s", "service", "type"), "Loadbalancer",
         "is not one of"),
        (("spec", "components", "ingressGateways", 0, "k8s", "service", "ports", 1, "port"), "80",
         "port '80' is not a port number"),
        (("spec", "components", "ingressGateways", 0, "k8s", "service", "ports", 1, "name"), "status-port",
         "port names must be set and unique"),
        (("spec", "components", "ingressGateways", 0, "label"), {"istio": True}, "must map strings to strings"),
        (("spec", "meshConfig", "defaultProviders"), {"tracing": ["jaeger"]}, "names 'jaeger'"),
        (("spec", "meshConfig", "extensionProviders", 0, "zipkin", "port"), "9411", "needs service and a numeric"),
    ],
)
def test_double_refuses_what_istioctl_would(mirrored, path, value, message):
    with pytest.raises(D.Refused) as caught:
        D.validate_operator(_broken(mirrored, path, value))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["install", "-f", "x.yaml"],  # would wait for a confirmation
        ["install", "-y"],  # no operator file
        ["install", "-y", "-f", "x.yaml", "--set", "profile=demo"],  # the role never sets values inline
        ["install", "-y", "-f", "x.yaml", "--readiness-timeout", "soon"],
        ["version"],
        ["manifest", "generate"],
    ],
)
def test_double_refuses_command_lines_the_role_does_not_produce(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        D.main(argv)
    assert caught.value.code == 2
    assert capsys.readouterr().err.startswith("Error: istioctl test double:")


def test_double_reports_its_version():
    completed = subprocess.run([str(ISTIOCTL), "version", "--remote=false", "-o", "json"], capture_output=True,
                               text=True, timeout=60, check=True)
    assert json.loads(completed.stdout)["clientVersion"]["tag"] == "1.30.3"
