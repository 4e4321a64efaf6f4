"""kubeadm role up to the boundary of a real cluster.

kubeadm cannot run here (no packages from pkgs.k8s.io, no kubelet, no
images), so the role's init and join task files run on localhost against a
recorder standing in for the kubeadm binary: it prints what kubeadm prints
(`token create --print-join-command`, `init phase upload-certs`) and keeps the
configuration files the role hands to `kubeadm init/join --config`. The tests
check those files against the kubeadm v1beta4 API (kinds, apiVersions,
required and known fields) and the command lines the role ran.
"""

import json
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, run_playbook

TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "a" * 64
CERT_KEY = "b" * 64

# Fields of the kubeadm v1beta4 types the role writes (k8s.io/kubernetes
# cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go): kubeadm decodes strictly
# and rejects unknown fields, so every key must be one of these.
V1BETA4 = {
    "InitConfiguration": {
        "required": ["nodeRegistration"],
        "fields": {
            "apiVersion",
            "kind",
            "bootstrapTokens",
            "dryRun",
            "nodeRegistration",
            "localAPIEndpoint",
            "certificateKey",
            "skipPhases",
            "patches",
            "timeouts",
        },
    },
    "ClusterConfiguration": {
        "required": ["kubernetesVersion", "networking"],
        "fields": {
            "apiVersion",
            "kind",
            "etcd",
            "networking",
            "kubernetesVersion",
            "controlPlaneEndpoint",
            "apiServer",
            "controllerManager",
            "scheduler",
            "dns",
            "proxy",
            "certificatesDir",
            "imageRepository",
            "featureGates",
            "clusterName",
            "encryptionAlgorithm",
            "certificateValidityPeriod",
            "caCertificateValidityPeriod",
        },
    },
    "JoinConfiguration": {
        "required": ["discovery"],
        "fields": {
            "apiVersion",
            "kind",
            "dryRun",
            "nodeRegistration",
            "caCertPath",
            "discovery",
            "controlPlane",
            "skipPhases",
            "patches",
            "timeouts",
        },
    },
}
NODE_REGISTRATION_FIELDS = {
    "name",
    "criSocket",
    "taints",
    "kubeletExtraArgs",
    "ignorePreflightErrors",
    "imagePullPolicy",
    "imagePullSerial",
}
NETWORKING_FIELDS = {"serviceSubnet", "podSubnet", "dnsDomain"}
API_ENDPOINT_FIELDS = {"advertiseAddress", "bindPort"}
BOOTSTRAP_TOKEN_DISCOVERY_FIELDS = {"token", "apiServerEndpoint", "caCertHashes", "unsafeSkipCAVerification"}
API_VERSIONS = {
    "InitConfiguration": "kubeadm.k8s.io/v1beta4",
    "ClusterConfiguration": "kubeadm.k8s.io/v1beta4",
    "JoinConfiguration": "kubeadm.k8s.io/v1beta4",
    "KubeletConfiguration": "kubelet.config.k8s.io/v1beta1",
    "KubeProxyConfiguration": "kubeproxy.config.k8s.io/v1alpha1",
}

LOCALHOST = {"ansible_connection": "local", "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python")}

FAKE_KUBEADM = f"""\
#!/bin/bash
# Records the call, answers like kubeadm does, keeps --config files.
echo "$*" >> "$KUBEADM_RECORD/calls.log"
case "$1 $2" in
  "init --config") cp "$3" "$KUBEADM_RECORD/init-config.yaml"; stat -c %a "$3" > "$KUBEADM_RECORD/init-config.mode" ;;
  "token create") echo "kubeadm join 127.0.0.11:6443 --token {TOKEN} --discovery-token-ca-cert-hash {CA_HASH} " ;;
  "init phase")
    echo '[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace'
    echo '[upload-certs] Using certificate key:'
    echo '{CERT_KEY}' ;;
  "join --config")
    n=$(ls "$KUBEADM_RECORD" | grep -c '^join-.*yaml$')
    cp "$3" "$KUBEADM_RECORD/join-$n.yaml"; stat -c %a "$3" > "$KUBEADM_RECORD/join-$n.mode" ;;
  *) echo "unexpected kubeadm call: $*" >&2; exit 3 ;;
esac
"""

PLAYBOOK = """\
- name: Initialise the cluster and join its nodes (the kubeadm role without its package installation)
  hosts: kube_control_plane:kube_workers
  tasks:
    - name: Run the kubeadm role's bootstrap entry point
      ansible.builtin.import_role:
        name: istio_lab.lab.kubeadm
        tasks_from: bootstrap.yml
"""


def validate_kubeadm_document(document):
    kind = document.get("kind")
    assert kind in API_VERSIONS, f"unexpected kind {kind}"
    assert document["apiVersion"] == API_VERSIONS[kind]
    spec = V1BETA4.get(kind)
    if spec:
        unknown = set(document) - spec["fields"]
        assert not unknown, f"{kind}: fields kubeadm v1beta4 does not know: {unknown}"
        for field in spec["required"]:
            assert document.get(field), f"{kind}: {field} missing"
        if "nodeRegistration" in document:
            assert set(document["nodeRegistration"]) <= NODE_REGISTRATION_FIELDS
            assert document["nodeRegistration"]["criSocket"] == "unix:///run/containerd/containerd.sock"
    if kind == "ClusterConfiguration":
        assert set(document["networking"]) <= NETWORKING_FIELDS
        assert document["kubernetesVersion"].startswith("v")
    if kind == "JoinConfiguration":
        discovery = document["discovery"]["bootstrapToken"]
        assert set(discovery) <= BOOTSTRAP_TOKEN_DISCOVERY_FIELDS
        for field in ("token", "apiServerEndpoint", "caCertHashes"):
            assert discovery[field], field
        if "controlPlane" in document:
            assert set(document["controlPlane"]) <= {"localAPIEndpoint", "certificateKey"}
            assert set(document["controlPlane"]["localAPIEndpoint"]) <= API_ENDPOINT_FIELDS


def by_kind(path):
    documents = [doc for doc in yaml.safe_load_all(Path(path).read_text()) if doc]
    for document in documents:
        validate_kubeadm_document(document)
    kinds = [doc["kind"] for doc in documents]
    assert len(kinds) == len(set(kinds)), kinds
    return {doc["kind"]: doc for doc in documents}


@pytest.fixture
def kubeadm_lab(tmp_path):
    """An inventory of local hosts, the kubeadm recorder on PATH, a local Calico manifest."""
    record = tmp_path / "record"
    record.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubeadm"
    fake.write_text(FAKE_KUBEADM)
    fake.chmod(0o755)
    calico = tmp_path / "calico.yaml"
    calico.write_text("# stands in for the Calico release manifest\n")
    config_dir = tmp_path / "kubeadm"
    config_dir.mkdir(mode=0o700)
    playbook = tmp_path / "kubeadm.yml"
    playbook.write_text(PLAYBOOK)

    def write_inventory(control_plane, workers, **group_vars):
        hosts = {}
        for name, address in {**control_plane, **workers}.items():
            # All "nodes" share this machine's disk: each gets its own directory.
            (config_dir / name).mkdir(mode=0o700, exist_ok=True)
            hosts[name] = dict(LOCALHOST, kubeadm_advertise_address=address, kubeadm_config_dir=str(config_dir / name))
        inventory = {
            "all": {
                "vars": {
                    "kubeadm_calico_manifest_url": f"file://{calico}",
                    "kubeadm_control_plane_endpoint": "127.0.0.11:6443",
                    **group_vars,
                },
                "children": {
                    "kube_control_plane": {"hosts": {name: hosts[name] for name in control_plane}},
                    "kube_workers": {"hosts": {name: hosts[name] for name in workers}},
                },
            }
        }
        path = tmp_path / "inventory.yml"
        path.write_text(json.dumps(inventory))
        return path

    def run(control_plane, workers, **group_vars):
        inventory = write_inventory(control_plane, workers, **group_vars)
        env = {
            "PATH": f"{bin_dir}:{REPO / '.venv' / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
            "KUBEADM_RECORD": str(record),
        }
        return run_playbook(playbook, inventory=inventory, env=env)

    return {"run": run, "record": record, "config_dir": config_dir}


def test_init_and_joins(kubeadm_lab):
    result = kubeadm_lab["run"]({"cp1": "127.0.0.11", "cp2": "127.0.0.12"}, {"w1": "127.0.0.13"})
    assert result.rc == 0, result
    record = kubeadm_lab["record"]

    calls = (record / "calls.log").read_text().splitlines()
    config_dir = kubeadm_lab["config_dir"]
    # init, then the control-plane node's whole join (fresh token, certificate
    # upload, join) before the worker's (fresh token, join).
    assert calls == [
        f"init --config {config_dir}/cp1/kubeadm-config.yaml --upload-certs",
        "token create --ttl 1h --print-join-command",
        "init phase upload-certs --upload-certs",
        f"join --config {config_dir}/cp2/kubeadm-join.yaml",
        "token create --ttl 1h --print-join-command",
        f"join --config {config_dir}/w1/kubeadm-join.yaml",
    ]

    init = by_kind(record / "init-config.yaml")
    assert set(init) == {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"}
    assert (record / "init-config.mode").read_text().strip() == "600"
    assert init["InitConfiguration"]["localAPIEndpoint"] == {"advertiseAddress": "127.0.0.11", "bindPort": 6443}
    # Workers exist: the control plane keeps kubeadm's default taint.
    assert "taints" not in init["InitConfiguration"]["nodeRegistration"]
    cluster = init["ClusterConfiguration"]
    assert cluster["kubernetesVersion"] == "v1.35.5"
    assert cluster["controlPlaneEndpoint"] == "127.0.0.11:6443"
    assert cluster["networking"] == {
        "podSubnet": "10.244.0.0/16",
        "serviceSubnet": "10.96.0.0/12",
        "dnsDomain": "cluster.local",
    }
    assert init["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    assert init["KubeProxyConfiguration"]["mode"] == "ipvs"
    assert init["KubeProxyConfiguration"]["ipvs"] == {"strictARP": True}

    joins = [by_kind(record / f"join-{n}.yaml")["JoinConfiguration"] for n in range(2)]
    assert all((record / f"join-{n}.mode").read_text().strip() == "600" for n in range(2))
    for join in joins:
        assert join["discovery"]["bootstrapToken"] == {
            "apiServerEndpoint": "127.0.0.11:6443",
            "token": TOKEN,
            "caCertHashes": [CA_HASH],
        }
    assert "controlPlane" not in joins[1]
    assert joins[0]["controlPlane"] == {
        "localAPIEndpoint": {"advertiseAddress": "127.0.0.12", "bindPort": 6443},
        "certificateKey": CERT_KEY,
    }

    # The token never reaches the log, and its file is gone after the join.
    assert TOKEN not in result.stdout and CERT_KEY not in result.stdout
    assert not list(config_dir.glob("*/kubeadm-join.yaml"))
    assert (config_dir / "cp1" / "calico-v3.31.3.yaml").read_text().startswith("# stands in for the Calico")


def test_single_node_lab_untainted_iptables(kubeadm_lab):
    result = kubeadm_lab["run"](
        {"cp1": "127.0.0.11"},
        {},
        kubeadm_kube_proxy_mode="iptables",
        kubeadm_apiserver_cert_sans=["lab.example.test", "127.0.0.11"],
    )
    assert result.rc == 0, result
    record = kubeadm_lab["record"]
    calls = (record / "calls.log").read_text().splitlines()
    # Nobody to join: no token is created.
    assert calls == [f"init --config {kubeadm_lab['config_dir']}/cp1/kubeadm-config.yaml --upload-certs"]
    init = by_kind(record / "init-config.yaml")
    assert init["InitConfiguration"]["nodeRegistration"]["taints"] == []
    assert init["KubeProxyConfiguration"]["mode"] == "iptables"
    assert "ipvs" not in init["KubeProxyConfiguration"]
    assert init["ClusterConfiguration"]["apiServer"] == {"certSANs": ["lab.example.test", "127.0.0.11"]}


def test_package_sources_per_os_family(tmp_path):
    """The pkgs.k8s.io repositories and pinned package names each OS family's vars produce."""
    out = tmp_path / "package-settings.json"
    playbook = tmp_path / "vars.yml"
    playbook.write_text(
        PACKAGE_SETTINGS_PLAYBOOK.replace("@ROLE@", str(REPO / "roles" / "kubeadm")).replace("@OUT@", str(out))
    )
    result = run_playbook(
        playbook,
        inventory="localhost,",
        extra_vars=LOCALHOST,
    )
    assert result.rc == 0, result
    data = json.loads(out.read_text())
    debian, redhat = data["Debian"], data["RedHat"]
    assert debian["kubeadm_apt_repository"] == (
        "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.asc] https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /"
    )
    assert debian["kubeadm_packages"] == ["kubelet=1.35.5-*", "kubeadm=1.35.5-*", "kubectl=1.35.5-*"]
    assert data["key_url_Debian"] == "https://pkgs.k8s.io/core:/stable:/v1.35/deb/Release.key"
    assert redhat["kubeadm_packages"] == ["kubelet-1.35.5", "kubeadm-1.35.5", "kubectl-1.35.5"]
    assert data["key_url_RedHat"] == "https://pkgs.k8s.io/core:/stable:/v1.35/rpm/repodata/repomd.xml.key"


PACKAGE_SETTINGS_PLAYBOOK = """\
- name: Write the kubeadm package settings of each OS family
  hosts: localhost
  gather_facts: false
  vars_files:
    - "@ROLE@/defaults/main.yml"
  tasks:
    - name: Load Debian
      ansible.builtin.include_vars:
        file: "@ROLE@/vars/Debian.yml"
    - name: Keep Debian's
      ansible.builtin.set_fact:
        debian: {kubeadm_apt_repository: "{{ kubeadm_apt_repository }}", kubeadm_packages: "{{ kubeadm_packages }}",
                 key_url: "{{ kubeadm_repo_key_url }}"}
    - name: Load RedHat
      ansible.builtin.include_vars:
        file: "@ROLE@/vars/RedHat.yml"
    - name: Write both
      ansible.builtin.copy:
        dest: "@OUT@"
        mode: "0600"
        content: >-
          {{ {'Debian': debian, 'RedHat': {'kubeadm_packages': kubeadm_packages},
              'key_url_Debian': debian.key_url, 'key_url_RedHat': kubeadm_repo_key_url} | to_json }}
"""
