"""Preflight logic of cluster_preflight (plugins/filter/cluster_preflight.py).

Facts are shaped like ansible_facts as setup gathers them on the supported
distributions; each test breaks one thing and checks the actionable message.
"""

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from tests.helpers import run_playbook

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "cluster_preflight", REPO / "plugins" / "filter" / "cluster_preflight.py"
)
cluster_preflight = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cluster_preflight)
problems_of = cluster_preflight.cluster_preflight_problems

SUPPORTED = {"Debian": ["12", "13"], "Ubuntu": ["22.04", "24.04"], "Rocky": ["9"], "AlmaLinux": ["9"]}


def node(name, address, mac, uuid, distribution="Debian", version="12.8", major="12", cpus=2, memory=4096):
    return {
        "nodename": name,
        "distribution": distribution,
        "distribution_version": version,
        "distribution_major_version": major,
        "processor_vcpus": cpus,
        "memtotal_mb": memory,
        "product_uuid": uuid,
        "interfaces": ["lo", "eth0"],
        "lo": {"ipv4": {"address": "127.0.0.1", "netmask": "255.0.0.0"}, "macaddress": "00:00:00:00:00:00"},
        "eth0": {"ipv4": {"address": address, "netmask": "255.255.255.0"}, "macaddress": mac},
        "default_ipv4": {"address": address, "netmask": "255.255.255.0", "macaddress": mac},
    }


@pytest.fixture
def lab():
    return {
        "cp1": node("cp1", "127.0.10.11", "52:54:00:00:00:01", "UUID-1"),
        "w1": node("w1", "127.0.10.12", "52:54:00:00:00:02", "UUID-2", "Ubuntu", "24.04", "24", cpus=1, memory=2048),
        "w2": node("w2", "127.0.10.13", "52:54:00:00:00:03", "UUID-3", "Rocky", "9.5", "9"),
    }


def check(facts, **overrides):
    settings = dict(
        control_plane=["cp1"],
        pod_cidr="10.244.0.0/16",
        service_cidr="10.96.0.0/12",
        supported_os=SUPPORTED,
    )
    settings.update(overrides)
    return problems_of(facts, **settings)


def test_fit_nodes_pass(lab):
    assert check(lab) == []


def test_control_plane_needs_two_cpus_and_1700_mb(lab):
    lab["cp1"]["processor_vcpus"] = 1
    lab["cp1"]["memtotal_mb"] = 1024
    assert check(lab) == [
        "cp1: a control-plane node needs at least 2 CPUs, it has 1; add vCPUs",
        "cp1: a control-plane node needs at least 1700 MB of memory, it has 1024 MB; add memory to the VM",
    ]


def test_worker_thresholds_are_separate(lab):
    # w1 has 1 CPU: fine for a worker, not for a control plane.
    assert check(lab) == []
    assert check(lab, control_plane=["cp1", "w1"]) == [
        "w1: a control-plane node needs at least 2 CPUs, it has 1; add vCPUs"
    ]
    lab["w2"]["memtotal_mb"] = 512
    assert check(lab) == ["w2: a worker needs at least 1024 MB of memory, it has 512 MB; add memory to the VM"]


def test_duplicate_hostnames_are_case_insensitive(lab):
    lab["w2"]["nodename"] = "W1"
    result = check(lab)
    assert len(result) == 1
    assert result[0].startswith("hosts w1, w2 share the host name 'w1'")
    assert "hostnamectl set-hostname" in result[0]


def test_duplicate_mac_of_cloned_vm(lab):
    lab["w2"]["eth0"]["macaddress"] = "52:54:00:00:00:02"
    assert check(lab) == ["hosts w1, w2 share the MAC address 52:54:00:00:00:02; cloned VMs need new MAC addresses"]


def test_duplicate_product_uuid(lab):
    lab["cp1"]["product_uuid"] = "uuid-3"
    result = check(lab)
    assert result == [
        "hosts cp1, w2 share the product_uuid uuid-3; cloned VMs need a new UUID (regenerate it in the hypervisor)"
    ]
    # Containers share the host's DMI: the check can be left out explicitly.
    assert check(lab, skip=["product_uuid"]) == []


def test_unknown_product_uuid_is_not_a_duplicate(lab):
    for host in lab.values():
        host["product_uuid"] = "NA"
    assert check(lab) == []


def test_pod_cidr_overlapping_node_network(lab):
    result = check(lab, pod_cidr="127.0.0.0/8")
    expected = "cp1: the pod CIDR 127.0.0.0/8 overlaps the node network 127.0.10.0/24; choose another pod CIDR"
    assert f"{expected} in the inventory" in result
    assert {line.split(":")[0] for line in result} == {"cp1", "w1", "w2"}
    # The loopback interface is never a node network.
    assert not any("127.0.0.0/8 overlaps the node network 127.0.0.0/8" in line for line in result)


def test_service_cidr_overlapping_pod_cidr():
    facts = {"cp1": node("cp1", "127.0.10.11", "52:54:00:00:00:01", "u1")}
    assert check(facts, pod_cidr="10.96.0.0/16") == [
        "the pod CIDR 10.96.0.0/16 overlaps the service CIDR 10.96.0.0/12; choose disjoint ranges"
    ]


def test_invalid_cidr_is_reported_not_raised():
    facts = {"cp1": node("cp1", "127.0.10.11", "52:54:00:00:00:01", "u1")}
    result = check(facts, pod_cidr="10.244.0.1/16")
    assert len(result) == 1 and result[0].startswith("the pod CIDR '10.244.0.1/16' is not a network in CIDR notation")


def test_rerun_on_built_cluster_ignores_kubernetes_interfaces(lab):
    # kube-ipvs0 holds every ClusterIP and the CNI's interfaces hold pod
    # addresses: on a rerun they must not count as node networks.
    built = copy.deepcopy(lab)
    for facts in built.values():
        facts["interfaces"] += ["kube-ipvs0", "cali1234", "tunl0", "vxlan.calico"]
        facts["kube_ipvs0"] = {
            "ipv4": {"address": "10.96.0.1", "netmask": "255.255.255.255"},
            "macaddress": "aa:aa:aa:aa:aa:aa",
        }
        facts["cali1234"] = {
            "ipv4": {"address": "10.244.1.1", "netmask": "255.255.255.255"},
            "macaddress": "ee:ee:ee:ee:ee:ee",
        }
        facts["tunl0"] = {"ipv4": {"address": "10.244.2.0", "netmask": "255.255.255.255"}}
        facts["vxlan_calico"] = {
            "ipv4": {"address": "10.244.3.0", "netmask": "255.255.255.255"},
            "macaddress": "66:66:66:66:66:66",
        }
    assert check(built) == []


@pytest.mark.parametrize(
    "distribution, version, major, supported",
    [
        ("Debian", "12.8", "12", True),
        ("Debian", "13.1", "13", True),
        ("Debian", "11.11", "11", False),
        ("Ubuntu", "22.04", "22", True),
        ("Ubuntu", "24.04", "24", True),
        ("Ubuntu", "23.10", "23", False),
        ("Rocky", "9.5", "9", True),
        ("AlmaLinux", "9.4", "9", True),
        ("Rocky", "8.10", "8", False),
        ("CentOS", "7.9", "7", False),
    ],
)
def test_supported_os(distribution, version, major, supported):
    facts = {"n1": node("n1", "127.0.10.11", "52:54:00:00:00:01", "u1", distribution, version, major)}
    result = check(facts, control_plane=["n1"])
    if supported:
        assert result == []
    else:
        assert result == [
            f"n1: {distribution} {version} is not supported (supported: Debian 12/13, Ubuntu 22.04/24.04, Rocky 9, "
            "AlmaLinux 9); reinstall the machine or remove it from kube_control_plane/kube_workers"
        ]


def test_every_problem_is_reported_at_once(lab):
    lab["cp1"]["processor_vcpus"] = 1
    lab["w2"]["nodename"] = "w1"
    lab["w1"]["distribution"] = "Fedora"
    result = check(lab, pod_cidr="127.0.10.0/24")
    assert len(result) == 1 + 1 + 1 + 3


ROLE_PLAYBOOK = """\
- name: Check the cluster nodes
  hosts: kube_control_plane:kube_workers
  roles:
    - role: istio_lab.lab.cluster_preflight
"""


def run_role(tmp_path, **group_vars):
    """The role on two inventory entries for this one machine (a cloned VM twice)."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python")}
    inventory = {
        "all": {
            # Benchmark-only ranges: no machine running the tests is on them.
            "vars": {
                "cluster_preflight_pod_cidr": "198.18.0.0/16",
                "cluster_preflight_service_cidr": "198.19.0.0/16",
                **group_vars,
            },
            "children": {
                "kube_control_plane": {"hosts": {"cp1": local}},
                "kube_workers": {"hosts": {"w1": local}},
            },
        }
    }
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory))
    (tmp_path / "preflight.yml").write_text(ROLE_PLAYBOOK)
    return run_playbook(tmp_path / "preflight.yml", inventory=tmp_path / "inventory.yml")


def test_role_refuses_the_same_machine_twice(tmp_path):
    result = run_role(tmp_path)
    assert result.rc != 0
    assert result.recap["cp1"]["failed"] == 1
    assert "Cluster preflight found problems to fix first:" in result.stdout
    assert "hosts cp1, w1 share the host name" in result.stdout
    assert "hostnamectl set-hostname" in result.stdout


def test_role_passes_fit_nodes(tmp_path):
    result = run_role(tmp_path, cluster_preflight_skip=["hostname", "mac", "product_uuid"])
    assert result.rc == 0, result
    assert "2 node(s) passed the cluster preflight" in result.stdout
    assert result.changed == 0


def test_role_rejects_a_bad_skip_name(tmp_path):
    # argument_specs guards the inputs.
    result = run_role(tmp_path, cluster_preflight_skip=["uuid"])
    assert result.rc != 0
    assert "cluster_preflight_skip" in result.stdout and "uuid" in result.stdout


def test_a_cluster_needs_a_control_plane_node(lab):
    assert check(lab, control_plane=[]) == [
        "none of cp1, w1, w2 is in kube_control_plane: put the machine that initialises the cluster there"
    ]


def test_membership_one_cluster_per_lab():
    # The classroom inventory's shape: per-student machines name their lab.
    groups = {
        "labs": ["student03", "student04"],
        "kube_control_plane": ["student03-cp", "student04-cp", "student04-cp2"],
        "kube_workers": ["student03-w1", "spare-w"],
    }
    hostvars = {
        "student03-cp": {"cluster_lab": "student03"},
        "student04-cp": {"cluster_lab": "student04"},
        "student04-cp2": {"cluster_lab": "student04"},
        "student03-w1": {"cluster_lab": "student03"},
        "spare-w": {},
    }
    membership = cluster_preflight.cluster_membership
    assert membership(groups, hostvars, "student03-w1") == {
        "lab": "student03",
        # A node without cluster_lab belongs to the first lab's cluster.
        "nodes": ["student03-cp", "student03-w1", "spare-w"],
        "control_plane": ["student03-cp"],
    }
    assert membership(groups, hostvars, "student04-cp2") == {
        "lab": "student04",
        "nodes": ["student04-cp", "student04-cp2"],
        "control_plane": ["student04-cp", "student04-cp2"],
    }


def test_membership_single_cluster_default():
    groups = {"labs": ["lab"], "kube_control_plane": ["cp1"], "kube_workers": ["w1", "w2"]}
    hostvars = {"cp1": {}, "w1": {}, "w2": {}}
    assert cluster_preflight.cluster_membership(groups, hostvars, "w2") == {
        "lab": "lab",
        "nodes": ["cp1", "w1", "w2"],
        "control_plane": ["cp1"],
    }
