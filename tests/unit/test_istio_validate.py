"""Validation of Istio objects before any write: the real CRD schemas with
unknown fields as errors, host matching, and Istio's own rules."""

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate import (  # noqa: E402
    SchemaValidator,
    gateway_index,
    gateway_problems,
    object_problems,
    to_json_schema,
    virtual_service_problems,
    virtual_service_reference_problems,
)

COURSE = yaml.safe_load((REPO / "tests/fixtures/course_objects.yml").read_text())
KINDS = {"gateways": "Gateway", "virtual_services": "VirtualService", "destination_rules": "DestinationRule"}


def shared_dir():
    import os

    return Path(os.environ.get("ISTIO_LAB_SHARED") or REPO / ".." / "shared")


def as_object(group, item):
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": KINDS[group],
        "metadata": {"name": item["name"], "namespace": item["namespace"]},
        "spec": copy.deepcopy(item["spec"]),
    }


def course(group, name):
    return as_object(group, next(i for i in COURSE[group] if i["name"] == name))


@pytest.fixture(scope="module")
def crd_schemas():
    path = shared_dir() / "crds/istio-1.30.3-crds.yaml"
    if not path.exists():
        pytest.skip(f"the upstream Istio CRDs are not at {path} (set ISTIO_LAB_SHARED)")
    schemas = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the CRD file is large
    for doc in yaml.load_all(path.read_text(), Loader=loader):
        if doc and doc["spec"]["group"] == "networking.istio.io":
            for version in doc["spec"]["versions"]:
                if version["name"] == "v1":
                    schemas[doc["spec"]["names"]["kind"]] = SchemaValidator(version["schema"]["openAPIV3Schema"])
    return schemas


def fields(problems):
    return [p.field for p in problems]


# ---------------------------------------------------------------- schema


@pytest.mark.parametrize("group", KINDS)
def test_every_course_object_passes_the_real_crd_schema(crd_schemas, group):
    for item in COURSE[group]:
        obj = as_object(group, item)
        assert crd_schemas[obj["kind"]].problems(obj) == []
        assert object_problems(obj) == []


def test_a_misspelt_top_level_field_is_an_error_with_a_hint(crd_schemas):
    vs = course("virtual_services", "tomcat-virtualservice")
    vs["spec"]["hostz"] = ["x"]
    problems = crd_schemas["VirtualService"].problems(vs)
    assert fields(problems) == ["spec.hostz"]
    assert "VirtualService microservice/tomcat-virtualservice" in str(problems[0])
    assert "did you mean 'hosts'" in problems[0].message


def test_a_misspelt_nested_field_is_named_by_its_full_path(crd_schemas):
    vs = course("virtual_services", "tomcat-virtualservice")
    vs["spec"]["http"][0]["route"].append({"destination": {"host": "tomcat", "prot": {"number": 80}}, "weight": 0})
    problems = crd_schemas["VirtualService"].problems(vs)
    assert fields(problems) == ["spec.http[0].route[1].destination.prot"]


def test_a_wrong_type_is_named_by_its_path(crd_schemas):
    vs = course("virtual_services", "tomcat-virtualservice")
    vs["spec"]["http"][0]["route"][0]["weight"] = "fifty"
    assert fields(crd_schemas["VirtualService"].problems(vs)) == ["spec.http[0].route[0].weight"]
    vs = course("virtual_services", "tomcat-virtualservice")
    vs["spec"]["hosts"] = "tomcat"
    assert fields(crd_schemas["VirtualService"].problems(vs)) == ["spec.hosts"]


def test_maps_and_int_or_string_fields_take_what_the_server_takes(crd_schemas):
    gw = course("gateways", "ingressgateway80")
    gw["spec"]["selector"]["any-label-key"] = "value"  # a map: any key is fine
    assert crd_schemas["Gateway"].problems(gw) == []
    dr = course("destination_rules", "tomcat")
    dr["spec"]["trafficPolicy"] = {"connectionPool": {"tcp": {"maxConnections": 10}}}
    assert crd_schemas["DestinationRule"].problems(dr) == []
    dr["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["maxConection"] = 10
    assert fields(crd_schemas["DestinationRule"].problems(dr)) == ["spec.trafficPolicy.connectionPool.tcp.maxConection"]


def test_schema_conversion_rules():
    structural = {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "opt": {"type": "string", "nullable": True},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    converted = to_json_schema(structural)
    assert converted["additionalProperties"] is False
    assert converted["properties"]["port"]["type"] == ["integer", "string"]
    assert converted["properties"]["opt"]["type"] == ["string", "null"]
    assert "additionalProperties" not in converted["properties"]["free"]
    assert converted["properties"]["labels"]["additionalProperties"] == {"type": "string"}


# ---------------------------------------------------------------- hosts
# The host rules (overlap, subset, what a Gateway server admits) are tests/unit/plugins/module_utils/istio_lab/
# test_mu_hosts.py, which ansible-test units also runs.


# ---------------------------------------------------------------- Istio rules


def gateway_with(*servers):
    gw = course("gateways", "allgateway")
    gw["spec"]["servers"] = list(servers)
    return gw


def test_gateway_port_rules():
    http = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
    assert gateway_problems(gateway_with(http)) == []
    bad_protocol = {"port": {"number": 81, "name": "web", "protocol": "HTTPX"}, "hosts": ["*"]}
    assert fields(gateway_problems(gateway_with(http, bad_protocol))) == ["spec.servers[1].port.protocol"]
    duplicate_name = {"port": {"number": 8080, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
    assert fields(gateway_problems(gateway_with(http, duplicate_name))) == ["spec.servers[1].port.name"]
    misnamed = {"port": {"number": 8080, "name": "https-alt", "protocol": "HTTP"}, "hosts": ["*"]}
    assert fields(gateway_problems(gateway_with(misnamed))) == ["spec.servers[0].port.name"]
    tcp_on_80 = {"port": {"number": 80, "name": "tcp", "protocol": "TCP"}, "hosts": ["*"]}
    problems = gateway_problems(gateway_with(http, tcp_on_80))
    assert fields(problems) == ["spec.servers[1].port.protocol"]
    assert "servers on one port must agree" in problems[0].message


def test_gateway_tls_needs_a_credential():
    https = {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*"]}
    assert fields(gateway_problems(gateway_with(https))) == ["spec.servers[0].tls"]
    https["tls"] = {"mode": "SIMPLE"}
    assert fields(gateway_problems(gateway_with(https))) == ["spec.servers[0].tls.credentialName"]
    https["tls"] = {"mode": "SIMPLE", "credentialName": "lab-cert"}
    assert gateway_problems(gateway_with(https)) == []
    https["tls"] = {"mode": "MUTUAL", "serverCertificate": "/c.pem", "privateKey": "/k.pem"}
    assert fields(gateway_problems(gateway_with(https))) == ["spec.servers[0].tls.caCertificates"]
    https["tls"] = {"mode": "PASSTHROUGH"}
    assert gateway_problems(gateway_with(https)) == []


def weighted(*weights):
    vs = course("virtual_services", "tomcat-virtualservice")
    vs["spec"]["http"][0]["route"] = [
        {"destination": {"host": "tomcat", "subset": f"v{i}"}, **({"weight": w} if w is not None else {})}
        for i, w in enumerate(weights, 1)
    ]
    return vs


def test_route_weights_sum_to_100():
    assert virtual_service_problems(weighted(None)) == []
    assert virtual_service_problems(weighted(90, 10)) == []
    problems = virtual_service_problems(weighted(80, 10))
    assert fields(problems) == ["spec.http[0].route[1].weight"]
    assert "sum to 90 (80 + 10)" in problems[0].message
    assert fields(virtual_service_problems(weighted(None, None))) == ["spec.http[0].route[1].weight"]
    assert fields(virtual_service_problems(weighted(50))) == ["spec.http[0].route[0].weight"]


def test_destination_rule_rules():
    dr = course("destination_rules", "tomcat")
    dr["spec"]["subsets"].append({"name": "v1", "labels": {"version": "v3"}})
    assert fields(object_problems(dr)) == ["spec.subsets[2].name"]
    dr = course("destination_rules", "tomcat")
    dr["spec"]["trafficPolicy"] = {"tls": {"mode": "MUTUAL"}}
    assert fields(object_problems(dr)) == ["spec.trafficPolicy.tls.credentialName"]
    dr["spec"]["trafficPolicy"] = {"tls": {"mode": "ISTIO_MUTUAL"}}
    assert object_problems(dr) == []


def test_names_the_server_would_refuse():
    vs = course("virtual_services", "tomcat-virtualservice")
    vs["metadata"]["name"] = "Tomcat_VS"
    assert fields(object_problems(vs)) == ["metadata.name"]


# ---------------------------------------------------------------- cross-object


def test_course_virtual_services_are_admitted_by_their_gateways():
    index = gateway_index(as_object("gateways", g) for g in COURSE["gateways"])
    for item in COURSE["virtual_services"]:
        assert virtual_service_reference_problems(as_object("virtual_services", item), index) == []


def test_missing_gateway_and_unadmitted_host():
    index = gateway_index(as_object("gateways", g) for g in COURSE["gateways"])
    vs = course("virtual_services", "prometheus-istio")
    vs["spec"]["gateways"] = ["gatway"]
    problems = virtual_service_reference_problems(vs, index)
    assert fields(problems) == ["spec.gateways[0]"]
    assert "Gateway istio-system/gatway does not exist" in problems[0].message
    vs["spec"]["gateways"] = ["gateway"]
    vs["spec"]["hosts"] = ["grafana-istio.kubernets.cn"]  # gateway only admits prometheus-istio
    assert fields(virtual_service_reference_problems(vs, index)) == ["spec.hosts[0]"]
    vs["spec"]["gateways"] = ["gateway", "mesh"]  # the mesh takes any host
    assert virtual_service_reference_problems(vs, index) == []


def test_gateway_reference_across_namespaces():
    index = gateway_index(as_object("gateways", g) for g in COURSE["gateways"])
    vs = course("virtual_services", "tomcat-virtualservice")
    vs["spec"]["gateways"] = ["istio-system/allgateway"]
    assert virtual_service_reference_problems(vs, index) == []
    vs["spec"]["http"][0]["match"] = [{"gateways": ["istio-system/nogateway"]}]
    assert fields(virtual_service_reference_problems(vs, index)) == ["spec.http[0].match[0].gateways[0]"]


def test_oneof_rules_of_the_schema(crd_schemas):
    # the recorded 422 of ../shared/apiserver-recordings/33: simple and consistentHash are exclusive
    dr = course("destination_rules", "tomcat")
    dr["spec"]["trafficPolicy"] = {"loadBalancer": {"simple": "ROUND_ROBIN", "consistentHash": {"httpHeaderName": "x"}}}
    assert fields(crd_schemas["DestinationRule"].problems(dr)) == ["spec.trafficPolicy.loadBalancer"]


@pytest.mark.parametrize(
    "timeout, valid",
    [("5s", True), ("1m30s", True), ("1ms", True), ("0s", False), ("500us", False), ("5 s", False), ("soon", False)],
)
def test_cel_duration_rules(crd_schemas, timeout, valid):
    vs = course("virtual_services", "tomcat-virtualservice")
    vs["spec"]["http"][0]["timeout"] = timeout
    problems = crd_schemas["VirtualService"].problems(vs)
    assert fields(problems) == ([] if valid else ["spec.http[0].timeout"])
    if not valid:
        assert problems[0].message == "must be a valid duration greater than 1ms"


def test_cel_at_most_one_credential_rule(crd_schemas):
    gw = gateway_with(
        {
            "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
            "hosts": ["*"],
            "tls": {"mode": "SIMPLE", "credentialName": "a", "credentialNames": ["b"]},
        }
    )
    problems = crd_schemas["Gateway"].problems(gw)
    assert [(p.field, p.message) for p in problems] == [
        ("spec.servers[0].tls", "only one of credentialName or credentialNames can be set")
    ]
