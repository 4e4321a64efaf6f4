"""The example inventories (inventory/examples/) as playbooks/cluster.yml reads them.

Only controller-side tasks run (the membership step sets facts and groups);
no machine is contacted: ansible_host is forced to loopback in case anything
tried.
"""

import json

import pytest

from tests.helpers import REPO, run_playbook

PLAYBOOK = """\
- name: Work out each node's cluster as playbooks/cluster.yml does
  hosts: kube_control_plane:kube_workers
  gather_facts: false
  tasks:
    - name: Work out each node's cluster
      ansible.builtin.include_role:
        name: istio_lab.lab.cluster_preflight
        tasks_from: membership.yml
    - name: Show it
      ansible.builtin.debug:
        msg: "{{ {'lab': cluster_lab_host, 'nodes': cluster_nodes, 'control_plane': cluster_control_plane_nodes,
                  'provider': cluster_node_provider, 'kubeconfig': hostvars[cluster_lab_host].lab_kubeconfig,
                  'lab_domain': lab_domain, 'groups': group_names} }}"
"""


@pytest.mark.parametrize(
    "example, provider, nodes, control_plane, kubeconfig",
    [
        ("k3s-one-vm.yml", "k3s", ["lab-vm"], ["lab-vm"], "~/.kube/istio-lab-k3s.yaml"),
        (
            "kubeadm-three-node.yml",
            "kubeadm",
            ["k8s-cp1", "k8s-w1", "k8s-w2"],
            ["k8s-cp1"],
            "~/.kube/istio-lab-kubeadm.yaml",
        ),
    ],
)
def test_example_inventory(tmp_path, example, provider, nodes, control_plane, kubeconfig):
    (tmp_path / "membership.yml").write_text(PLAYBOOK)
    result = run_playbook(
        tmp_path / "membership.yml",
        inventory=REPO / "inventory" / "examples" / example,
        extra_vars={"ansible_host": "127.0.0.1"},
        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
    )
    assert result.rc == 0, result
    output = json.loads(result.stdout[result.stdout.index("{") :])
    shown = next(task for task in output["plays"][0]["tasks"] if task["task"]["name"] == "Show it")["hosts"]
    assert sorted(shown) == sorted(nodes)
    for _host, result_of_host in shown.items():
        facts = result_of_host["msg"]
        assert facts["lab"] == "lab"
        assert facts["nodes"] == nodes
        assert facts["control_plane"] == control_plane
        # The lab decides the provider; the nodes group by it.
        assert facts["provider"] == provider
        assert f"cluster_provider_{provider}" in facts["groups"]
        assert facts["kubeconfig"] == kubeconfig
        # The shared settings reach the example through its group_vars link.
        assert facts["lab_domain"] == "kubernets.cn"
