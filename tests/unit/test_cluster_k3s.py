"""k3s role up to the boundary: check mode on localhost.

k3s cannot be downloaded or started here. The role runs in check mode (which
writes nothing) against a local stand-in for the release directory (file://),
and the test reads what the role would write from the diff: the server's and
the agent's /etc/rancher/k3s/config.yaml and the registry mirror file.
"""

import hashlib
import json

import pytest
import yaml

from tests.helpers import REPO, run_playbook

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python")}

PLAYBOOK = """\
- name: Build the k3s cluster
  hosts: kube_control_plane:kube_workers
  roles:
    - role: istio_lab.lab.k3s
"""


@pytest.fixture
def k3s_check(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    binary = b"#!/bin/sh\\necho stands in for the k3s binary\\n"
    (release / "k3s").write_bytes(binary)
    (release / "sha256sum-amd64.txt").write_text(f"{hashlib.sha256(binary).hexdigest()}  k3s\n")
    (release / "install.sh").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "k3s.yml").write_text(PLAYBOOK)

    def run(servers, agents, **group_vars):
        hosts = {**servers, **agents}
        inventory = {
            "all": {
                "vars": {
                    "k3s_release_url": f"file://{release}",
                    "k3s_install_script_url": f"file://{release}/install.sh",
                    "k3s_server_url": "https://127.0.0.11:6443",
                    **group_vars,
                },
                "children": {
                    "kube_control_plane": {"hosts": {name: dict(LOCAL, k3s_node_ip=hosts[name]) for name in servers}},
                    "kube_workers": {"hosts": {name: dict(LOCAL, k3s_node_ip=hosts[name]) for name in agents}},
                },
            }
        }
        (tmp_path / "inventory.yml").write_text(json.dumps(inventory))
        result = run_playbook(
            tmp_path / "k3s.yml",
            inventory=tmp_path / "inventory.yml",
            check=True,
            diff=True,
            env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
        )
        assert result.rc == 0, result
        return json.loads(result.stdout)

    return run


def task_results(output, task_name):
    """{host: result} of the task named task_name (last occurrence per host)."""
    results = {}
    for play in output["plays"]:
        for task in play["tasks"]:
            # The callback names role tasks "<role> : <task>".
            if task["task"]["name"].split(" : ", 1)[-1] == task_name:
                for host, result in task["hosts"].items():
                    if not result.get("skipped"):
                        results[host] = result
    return results


def written(result):
    diff = result["diff"]
    diff = diff[0] if isinstance(diff, list) else diff
    return diff["after"]


def test_server_and_agent_configuration(k3s_check):
    output = k3s_check({"s1": "127.0.0.11"}, {"a1": "127.0.0.12"})
    configs = task_results(output, "Render the k3s configuration")
    assert set(configs) == {"s1", "a1"}
    server = yaml.safe_load(written(configs["s1"]))
    assert server == {
        "node-ip": "127.0.0.11",
        "write-kubeconfig-mode": "0600",
        "cluster-cidr": "10.42.0.0/16",
        "service-cidr": "10.43.0.0/16",
        # MetalLB and Istio's ingress gateway take these jobs.
        "disable": ["servicelb", "traefik"],
        "tls-san": ["127.0.0.11"],
    }
    agent = yaml.safe_load(written(configs["a1"]))
    assert agent == {
        "node-ip": "127.0.0.12",
        "server": "https://127.0.0.11:6443",
        "token-file": "/etc/rancher/k3s/token",
    }
    # The token file is written censored, never shown.
    token = task_results(output, "Write the cluster token where k3s reads it")
    assert set(token) == {"a1"}
    assert token["a1"].get("censored")
    # Check mode writes nothing and starts nothing.
    assert not task_results(output, "Start k3s and enable it at boot")
    binary = task_results(output, "Download the k3s binary v1.35.5+k3s1")
    assert binary["s1"]["changed"] and binary["s1"]["dest"] == "/usr/local/bin/k3s"


def test_several_servers_use_embedded_etcd_and_a_mirror(k3s_check):
    output = k3s_check(
        {"s1": "127.0.0.11", "s2": "127.0.0.12"},
        {},
        k3s_token="classroom-secret",
        k3s_registry_mirror="127.0.0.1:5000/mirror",
        k3s_tls_san=["lab.example.test"],
    )
    configs = {
        host: yaml.safe_load(written(result))
        for host, result in task_results(output, "Render the k3s configuration").items()
    }
    assert configs["s1"]["cluster-init"] is True
    assert "server" not in configs["s1"]
    assert configs["s1"]["tls-san"] == ["127.0.0.11", "lab.example.test"]
    assert configs["s2"]["server"] == "https://127.0.0.11:6443"
    assert "cluster-init" not in configs["s2"]
    assert all(config["token-file"] == "/etc/rancher/k3s/token" for config in configs.values())
    assert "classroom-secret" not in json.dumps(output)
    mirrors = task_results(output, "Send k3s's image pulls through the registry mirror")
    registries = yaml.safe_load(written(mirrors["s1"]))
    assert registries == {"mirrors": {"*": {"endpoint": ["https://127.0.0.1:5000/v2/mirror"]}}}
