#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Delete namespaces istio-lab created, keeping those that hold objects it did not create."""

DOCUMENTATION = r"""
---
module: lab_namespaces
short_description: Delete namespaces istio-lab created, keeping those that hold objects it did not create
version_added: "1.2.0"
author: istio-lab contributors (@istio-lab)
description:
  - Deletes each namespace of O(names) that holds nothing foreign and waits until it is gone. Foreign is any
    object of any namespaced kind the cluster serves (found by discovery, one LIST per kind) without
    O(managed_labels), except what Kubernetes makes in every namespace (ServiceAccount C(default), ConfigMap
    C(kube-root-ca.crt), Events), what controllers derive from other objects that are not foreign (through
    C(ownerReferences), Endpoints and EndpointSlices of their Service), what istioctl, istiod and MetalLB make,
    and what is already being deleted.
  - A namespace holding foreign objects is kept, annotated C(istio-lab.io/kept-for) with them, and listed in
    RV(namespaces). A later call that finds the same objects reports nothing and writes nothing.
  - With O(remove_foreign), every namespace of O(names) is deleted.
  - Namespaces that do not exist are not errors. Check mode reads only.
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
options:
  names:
    description: The namespaces to delete.
    type: list
    elements: str
    required: true
  managed_labels:
    description: The labels of istio-lab's objects (never foreign).
    type: dict
    default: {app.kubernetes.io/managed-by: istio-lab}
  remove_foreign:
    description: Delete the namespaces even when they hold objects istio-lab did not create.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for the deleted namespaces to be gone.
    type: int
    default: 300
requirements:
  - kubernetes (Python client)
notes:
  - Supports check mode (it only reads, and reports what would be deleted or kept).
seealso:
  - module: istio_lab.lab.lab_manifests
  - module: istio_lab.lab.lab_chapter_objects
"""

EXAMPLES = r"""
- name: Delete the namespaces of Istio and of the records, unless a user's objects are left in them
  istio_lab.lab.lab_namespaces:
    names: [istio-system, istio-lab]
"""

RETURN = r"""
namespaces:
  description: One row per namespace deleted (would be deleted) or kept; nothing for one kept already, unchanged.
  returned: always
  type: list
  elements: dict
  sample: [{name: istio-system, action: "kept: holds objects istio-lab did not create: ConfigMap/my-notes",
            foreign: [{apiVersion: v1, kind: ConfigMap, namespace: istio-system, name: my-notes}]}]
api_requests:
  description: API requests made, by verb.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import CONNECTION_ARGS
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    KubeError,
    client_from_params,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.foreign import remove_namespaces

ARGUMENT_SPEC = {
    "names": {"type": "list", "elements": "str", "required": True},
    "managed_labels": {"type": "dict", "default": {"app.kubernetes.io/managed-by": "istio-lab"}},
    "remove_foreign": {"type": "bool", "default": False},
    "wait_timeout": {"type": "int", "default": 300},
    **CONNECTION_ARGS,
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))
    params = module.params
    client = None
    try:
        client = client_from_params(params, light_imports=True)
        managed = {str(k): str(v) for k, v in (params["managed_labels"] or {}).items()}
        changed, rows = remove_namespaces(client, params["names"], managed, params["remove_foreign"],
                                          module.check_mode, params["wait_timeout"])
    except KubeError as exc:
        module.fail_json(msg=str(exc), namespaces=[], api_requests=client.counts if client else {})
    module.exit_json(changed=changed, namespaces=rows, api_requests=client.counts)


if __name__ == "__main__":
    main()
