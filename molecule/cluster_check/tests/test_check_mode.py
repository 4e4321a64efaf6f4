"""After check mode of the cluster play and the reset (side_effect.yml)."""

import os

import testinfra.utils.ansible_runner

# The cluster nodes only: the inventory may also hold the (local) lab host.
testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts(
    "kube_control_plane:kube_workers"
)


def test_check_mode_wrote_nothing(host):
    for path in (
        "/etc/apt/keyrings/kubernetes-apt-keyring.asc",
        "/etc/apt/sources.list.d/kubernetes.list",
        "/usr/bin/kubeadm",
    ):
        assert not host.file(path).exists, path
    assert not host.package("kubeadm").is_installed
    assert not host.package("kubelet").is_installed


def test_node_prep_still_in_place(host):
    # prepare ran node_prep for real; check mode left it as it was.
    assert host.service("containerd").is_running
    assert host.file("/etc/containerd/config.toml").contains("SystemdCgroup = true")


def test_reset_ran_kubeadm_reset(host):
    calls = host.file("/var/log/kubeadm-calls.log").content_string.splitlines()
    assert calls == ["reset --force --cri-socket unix:///run/containerd/containerd.sock"]
    assert not host.file("/etc/kubernetes/kubelet.conf").exists


def test_reset_cleared_cni_and_iptables(host):
    assert not host.file("/etc/cni/net.d").exists
    assert not host.file("/etc/kubernetes/istio-lab").exists
    chains = host.check_output("iptables -t nat -S")
    assert "KUBE-SERVICES" not in chains
