"""playbooks/reset-cluster.yml asks before destroying anything.

Run on local inventory entries: without `-e reset_confirm=yes` and without an
answer (stdin is not a terminal) the play stops before the reset play, and it
refuses clusters istio-lab did not build. The reset itself runs on containers
in the molecule scenario cluster_check (side_effect.yml).
"""

import json
import os
import subprocess

from tests.helpers import REPO, VENV_BIN, parse_recap

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": str(VENV_BIN / "python")}


def run_reset(tmp_path, provider, *extra):
    inventory = {
        "all": {
            "children": {
                "labs": {"hosts": {"lab": dict(LOCAL, cluster_provider=provider)}},
                "kube_control_plane": {"hosts": {"cp1": LOCAL}},
                "kube_workers": {"hosts": {"w1": LOCAL}},
            }
        }
    }
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    command = [str(VENV_BIN / "ansible-playbook"), "playbooks/reset-cluster.yml", "-i", str(tmp_path / "inventory.yml")]
    completed = subprocess.run(
        [*command, *extra],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,  # nobody answers the prompt
        capture_output=True,
        text=True,
        timeout=300,
    )
    return completed, parse_recap(completed.stdout)


def test_reset_needs_confirmation(tmp_path):
    completed, recap = run_reset(tmp_path, "kubeadm")
    assert completed.returncode != 0
    assert "Reset not confirmed; nothing was changed" in completed.stdout
    # The reset play never started: no host reached it, nothing changed.
    assert "PLAY [Reset the cluster nodes]" not in completed.stdout
    assert sum(host["changed"] for host in recap.values()) == 0


def test_reset_refuses_a_cluster_it_did_not_build(tmp_path):
    completed, recap = run_reset(tmp_path, "existing", "-e", "reset_confirm=yes")
    assert completed.returncode != 0
    assert "has cluster_provider existing" in completed.stdout
    assert "istio-lab only resets the kubeadm and k3s clusters it builds" in completed.stdout
    assert recap["cp1"]["failed"] == 1 and recap["w1"]["failed"] == 1
    assert sum(host["changed"] for host in recap.values()) == 0
