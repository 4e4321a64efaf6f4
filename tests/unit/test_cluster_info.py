"""lab_cluster_info's pure parts: the nodes' addresses MetalLB's pool must leave
out, the kube-proxy verdict, and its documentation matching its arguments.
The requests and the failure verdicts are tested through the preflight
(tests/api/test_platform.py, test_preflight_*)."""

from __future__ import annotations

import json
import subprocess

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import cluster_info_argument_spec  # noqa: I001 -- on sys.path by conftest
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.cluster_info import (
    kube_proxy_problem,
    node_addresses,
)

from tests.conftest import REPO
from tests.helpers import VENV_BIN, documented_options
from tests.unit.test_istio_normalize import compare


def test_node_addresses_are_internal_and_external_once_each_in_order():
    nodes = [
        {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.10.10"},
                                  {"type": "Hostname", "address": "cp1"},
                                  {"type": "ExternalIP", "address": "192.0.2.10"}]}},
        {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.10.11"},
                                  {"type": "InternalIP", "address": "10.0.10.10"}]}},
        {"status": {}},
        {},
    ]
    assert node_addresses(nodes) == ["10.0.10.10", "192.0.2.10", "10.0.10.11"]


def test_only_ipvs_without_strict_arp_is_refused():
    assert "IPVS mode without strictARP" in kube_proxy_problem({"found": True, "mode": "ipvs", "strict_arp": False})
    assert kube_proxy_problem({"found": True, "mode": "ipvs", "strict_arp": True}) == ""
    assert kube_proxy_problem({"found": True, "mode": "", "strict_arp": False}) == ""
    assert kube_proxy_problem({"found": False, "mode": "", "strict_arp": False}) == ""


def test_the_module_documents_exactly_its_arguments():
    compare(documented_options("lab_cluster_info"), cluster_info_argument_spec(), "lab_cluster_info")


def test_ansible_doc_renders_every_module():
    modules = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if not p.stem.startswith("_"))
    completed = subprocess.run([str(VENV_BIN / "ansible-doc"), "--json", *(f"istio_lab.lab.{m}" for m in modules)],
                               cwd=REPO, capture_output=True, text=True, check=False,
                               env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})
    assert completed.returncode == 0, completed.stderr
    docs = json.loads(completed.stdout)
    assert sorted(docs) == [f"istio_lab.lab.{m}" for m in modules]
    for name, doc in docs.items():
        assert doc["doc"]["short_description"], name
        assert doc["examples"].strip() and doc["return"], name
