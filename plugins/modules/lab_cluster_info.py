#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: lab_cluster_info
short_description: Check that a lab's cluster answers, and read what the stages need of it, in one request set
version_added: "1.2.0"
author: istio-lab contributors (@istio-lab)
description:
  - The preflight of every istio-lab run, in one process. Reads the C(kube-system) Namespace to prove the API
    server answers and accepts the credentials; when it does not, fails with a verdict an instructor can act on
    (C(The cluster is unreachable), C(The cluster refused the credentials of this context (401 Unauthorized)),
    C(The credentials of this context may not read namespaces (403 Forbidden))), naming the API server and context.
  - Reads kube-proxy's configuration (the C(kube-system/kube-proxy) ConfigMap kubeadm writes) and fails when
    kube-proxy runs in IPVS mode without C(strictARP), which MetalLB's layer-2 mode needs. A cluster without that
    ConfigMap (k3s) passes.
  - Lists the nodes and returns their C(InternalIP) and C(ExternalIP) addresses, which MetalLB's address pool
    must not cover, so that the MetalLB stage need not read them again.
  - Never changes anything.
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
options:
  kube_proxy:
    description: Read kube-proxy's configuration and refuse IPVS mode without C(strictARP).
    type: bool
    default: true
  nodes:
    description: List the nodes and return their addresses (RV(node_addresses)).
    type: bool
    default: true
requirements:
  - kubernetes (Python client)
notes:
  - Supports check mode (it only reads).
  - At most three requests, one GET of the C(kube-system) Namespace, one GET of the kube-proxy ConfigMap and one
    LIST of the nodes (RV(api_requests)).
seealso:
  - module: istio_lab.lab.lab_manifests
"""

EXAMPLES = r"""
- name: Check that the lab's cluster answers and read its nodes' addresses
  istio_lab.lab.lab_cluster_info:
  register: lab_cluster

- name: Show the addresses MetalLB's pool must leave out
  ansible.builtin.debug:
    msg: "{{ lab_cluster.node_addresses }}"
"""

RETURN = r"""
server:
  description: The API server's URL.
  returned: success
  type: str
  sample: https://10.0.10.10:6443
context:
  description: The kubeconfig context used.
  returned: success
  type: str
  sample: kubernetes-admin@kubernetes
kube_proxy:
  description: kube-proxy's configuration as far as MetalLB cares.
  returned: when O(kube_proxy=true)
  type: dict
  contains:
    found:
      description: Whether the C(kube-system/kube-proxy) ConfigMap exists.
      type: bool
    mode:
      description: kube-proxy's C(mode) (empty means iptables).
      type: str
    strict_arp:
      description: C(ipvs.strictARP).
      type: bool
  sample: {found: true, mode: "", strict_arp: false}
node_addresses:
  description: The nodes' C(InternalIP) and C(ExternalIP) addresses, each once.
  returned: when O(nodes=true)
  type: list
  elements: str
  sample: [10.0.10.10, 10.0.10.11]
api_requests:
  description: Requests sent, by verb.
  returned: always
  type: dict
  sample: {get: 2, list: 1}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import run_guarded
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import cluster_info_argument_spec
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.cluster_info import cluster_info


def main():
    module = AnsibleModule(argument_spec=cluster_info_argument_spec(), supports_check_mode=True)
    params = module.params
    run_guarded(module, lambda client: cluster_info(client, params["kube_proxy"], params["nodes"],
                                                    params["kubeconfig"]))


if __name__ == "__main__":
    main()
