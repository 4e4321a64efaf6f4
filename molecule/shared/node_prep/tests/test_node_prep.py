"""What node_prep leaves on a Debian node (testinfra, molecule verify step).

The container shares the host's kernel: modules and live sysctls belong to the
host, so these checks read what the role persisted (modules-load.d, sysctl.d,
fstab) and the services systemd manages inside the container.
"""

import os

import testinfra.utils.ansible_runner

# The cluster nodes only: the inventory may also hold the (local) lab host.
testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts(
    "kube_control_plane:kube_workers"
)


def test_packages_installed(host):
    for name in ("containerd", "runc", "chrony", "conntrack", "socat", "ipset", "ipvsadm", "kmod", "procps"):
        assert host.package(name).is_installed, name


def test_kernel_modules_persisted(host):
    modules_file = host.file("/etc/modules-load.d/istio-lab-kubernetes.conf")
    assert modules_file.mode == 0o644
    listed = [line for line in modules_file.content_string.splitlines() if line and not line.startswith("#")]
    assert listed[:2] == ["overlay", "br_netfilter"]
    assert {"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"} <= set(listed)


def test_sysctls_persisted(host):
    settings = {}
    for line in host.file("/etc/sysctl.d/99-istio-lab-kubernetes.conf").content_string.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key.strip()] = value.strip()
    assert settings == {
        "net.bridge.bridge-nf-call-iptables": "1",
        "net.bridge.bridge-nf-call-ip6tables": "1",
        "net.ipv4.ip_forward": "1",
    }


def test_swap_off_in_fstab(host):
    fstab = host.file("/etc/fstab").content_string.splitlines()
    swap_lines = [line for line in fstab if "/swapfile" in line]
    assert swap_lines, "prepare.yml added a swap line the role must keep (commented)"
    assert all(line.lstrip().startswith("#") for line in swap_lines)
    assert host.run("swapon --show --noheadings").stdout.strip() == ""


def test_containerd_systemd_cgroup_driver(host):
    config = host.file("/etc/containerd/config.toml")
    assert config.exists and config.user == "root"
    text = config.content_string
    assert "SystemdCgroup = true" in text
    assert 'config_path = "/etc/containerd/certs.d"' in text
    # containerd itself must accept the file: `config dump` parses it and
    # shows the merged result.
    dump = host.run("containerd config dump")
    assert dump.rc == 0, dump.stderr
    assert "SystemdCgroup = true" in dump.stdout
    assert "disabled_plugins = []" in dump.stdout


def test_containerd_running(host):
    service = host.service("containerd")
    assert service.is_enabled
    assert service.is_running
    assert host.socket("unix:///run/containerd/containerd.sock").is_listening


def test_registry_mirror_config(host):
    for registry, server in (("_default", None), ("docker.io", "https://registry-1.docker.io")):
        text = host.file(f"/etc/containerd/certs.d/{registry}/hosts.toml").content_string
        assert '[host."https://127.0.0.1:5000/v2/mirror"]' in text
        assert "override_path = true" in text
        assert 'capabilities = ["pull", "resolve"]' in text
        if server:
            assert f'server = "{server}"' in text
        else:
            assert "server =" not in text


def test_time_sync(host):
    chrony = host.service("chrony")
    assert chrony.is_enabled
    sources = host.file("/etc/chrony/sources.d/istio-lab.sources").content_string
    assert "server 127.0.0.1 iburst" in sources
    assert host.file("/etc/chrony/chrony.conf").contains("^sourcedir /etc/chrony/sources.d")
