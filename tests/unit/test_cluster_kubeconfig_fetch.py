"""roles/cluster_kubeconfig writes only the node's current context (its cluster
and user, credentials embedded, server rewritten), mode 0600, and refuses a
kubeconfig naming files of the node. Run on localhost against stand-in node
kubeconfigs (no cluster is built here)."""

from __future__ import annotations

import json
import stat

import yaml

from tests.handout_kubeconfigs import b64, write_kubeconfig
from tests.helpers import REPO, run_playbook

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": str(REPO / ".venv" / "bin" / "python")}
PLAYBOOK = """\
- name: Fetch the kubeconfig
  hosts: kube_control_plane
  gather_facts: false
  roles:
    - role: istio_lab.lab.cluster_kubeconfig
"""


def k3s_yaml(extra_context: bool, files: bool = False) -> dict:
    user = ({"client-certificate": "/var/lib/rancher/k3s/server/tls/client-admin.crt",
             "client-key": "/var/lib/rancher/k3s/server/tls/client-admin.key"} if files else
            {"client-certificate-data": b64(b"k3s-admin-cert"), "client-key-data": b64(b"k3s-admin-key-secret")})
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": "default",
        "clusters": [{"name": "default", "cluster": {"server": "https://127.0.0.1:6443",
                                                     "certificate-authority-data": b64(b"k3s-ca")}}],
        "users": [{"name": "default", "user": user}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
    }
    if extra_context:
        config["clusters"].append({"name": "other", "cluster": {"server": "https://127.0.0.99:6443"}})
        config["users"].append({"name": "other", "user": {"token": "someone-elses-token"}})
        config["contexts"].append({"name": "other", "context": {"cluster": "other", "user": "other"}})
    return config


def test_only_the_current_context_is_fetched_and_a_node_file_path_is_refused(tmp_path):
    (tmp_path / "fetch.yml").write_text(PLAYBOOK)
    hosts = {}
    for node, config in (("cp1", k3s_yaml(True)), ("cp2", k3s_yaml(False, files=True))):
        src = write_kubeconfig(tmp_path / node / "k3s.yaml", config)
        hosts[node] = dict(LOCAL, cluster_kubeconfig_provider="k3s", cluster_kubeconfig_src=str(src),
                           cluster_kubeconfig_server="https://127.0.0.11:6443",
                           cluster_kubeconfig_dest=str(tmp_path / "out" / node / "kubeconfig"))
    (tmp_path / "inventory.yml").write_text(json.dumps({"all": {"children": {"kube_control_plane": {"hosts": hosts}}}}))

    def run():
        return run_playbook(tmp_path / "fetch.yml", inventory=tmp_path / "inventory.yml",
                            env={"TMPDIR": str(tmp_path)})

    first = run()
    assert first.recap["cp1"]["failed"] == 0 and first.recap["cp2"]["failed"] == 1, first
    written = tmp_path / "out" / "cp1" / "kubeconfig"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert yaml.safe_load(written.read_text()) == {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "default", "cluster": {"server": "https://127.0.0.11:6443",
                                                     "certificate-authority-data": b64(b"k3s-ca")}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "current-context": "default",
        "users": [{"name": "default", "user": {"client-certificate-data": b64(b"k3s-admin-cert"),
                                               "client-key-data": b64(b"k3s-admin-key-secret")}}],
    }
    output = " ".join(first.stdout.split())
    assert "the kubeconfig of cp2 (" in output and "names a file (client-certificate: " in output
    assert not (tmp_path / "out" / "cp2" / "kubeconfig").exists()
    for secret in (b64(b"k3s-admin-key-secret"), "someone-elses-token"):
        assert secret not in first.stdout + first.stderr
    second = run()
    assert second.recap["cp1"]["changed"] == 0, second
    assert list(written.parent.iterdir()) == [written]  # nothing changed: no backup either
