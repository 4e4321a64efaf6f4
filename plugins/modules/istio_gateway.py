#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: istio_gateway
short_description: Manage Istio Gateways
version_added: "1.0.0"
author: istio-lab contributors (@istio-lab)
description:
  - Creates, updates and deletes Istio C(Gateway) objects (C(networking.istio.io)) declaratively; the
    object ends up exactly as given (a field or route removed from the input is removed from the cluster
    object), and a repeated call with the same input sends no write request and returns RV(changed=false).
  - Istio's rules for Gateways are checked too (failing whatever O(validate) says) -- supported protocols, port
    names unique and agreeing with the protocol, servers on one port agreeing on the protocol, and TLS modes that
    terminate TLS (SIMPLE, MUTUAL, OPTIONAL_MUTUAL) having a credential.
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
  - istio_lab.lab.istio_resource
seealso:
  - module: istio_lab.lab.istio_virtual_service
  - module: istio_lab.lab.istio_destination_rule
  - module: istio_lab.lab.istio_route_info
  - name: Istio Gateway reference
    description: The fields of C(spec).
    link: https://istio.io/latest/docs/reference/config/networking/gateway/
"""

EXAMPLES = r"""
- name: Create the Gateway of chapter 1
  istio_lab.lab.istio_gateway:
    name: ingressgateway80
    namespace: microservice
    spec:
      selector:
        istio: ingressgateway
      servers:
        - port: {number: 80, name: http, protocol: HTTP}
          hosts: ["*"]

- name: Apply the gateways of chapters 2 and 3 in one request per kind
  istio_lab.lab.istio_gateway:
    namespace: istio-system
    labels:
      istio-lab.io/chapter: "3"
    definitions:
      - name: gateway
        spec:
          selector: {istio: ingressgateway}
          servers:
            - port: {number: 80, name: http, protocol: HTTP}
              hosts: ["prometheus-istio.kubernets.cn"]
      - name: allgateway
        spec:
          selector: {istio: ingressgateway}
          servers:
            - port: {number: 80, name: http, protocol: HTTP}
              hosts: ["*"]

- name: Remove the Gateway of chapter 1
  istio_lab.lab.istio_gateway:
    name: ingressgateway80
    namespace: microservice
    state: absent
"""

RETURN = r"""
changed:
  description: Whether an object was (or in check mode would be) created, updated or deleted.
  returned: always
  type: bool
operation:
  description:
    - What happened to the object, C(created), C(updated), C(deleted), C(unchanged) or C(absent).
    - Named C(operation) because Ansible itself sets C(action) (the module name) in every task result.
  returned: when O(name) is given
  type: str
  sample: created
result:
  description: The object as stored (as it would be stored, in check mode), without C(managedFields); empty when
    absent or deleted.
  returned: when O(name) is given
  type: dict
  sample:
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata:
      name: ingressgateway80
      namespace: microservice
      labels:
        app.kubernetes.io/managed-by: istio-lab
      resourceVersion: "1234"
    spec:
      selector: {istio: ingressgateway}
      servers:
        - port: {number: 80, name: http, protocol: HTTP}
          hosts: ["*"]
results:
  description:
    - One entry per item of O(definitions), in order. The objects themselves are left out (a classroom's list
      would make a large result); read them with RV(diff) in diff mode or C(kubernetes.core.k8s_info).
  returned: when O(definitions) is given
  type: list
  elements: dict
  contains:
    name:
      description: Name of the object.
      type: str
    namespace:
      description: Namespace of the object.
      type: str
    action:
      description: C(created), C(updated), C(deleted), C(unchanged) or C(absent).
      type: str
diff:
  description: Before and after of the object (with O(definitions), a list with one entry per changed object).
  returned: when diff mode is on
  type: raw
problems:
  description: On failure, every validation problem found, each with C(kind), C(object), C(field) and C(message).
  returned: failure
  type: list
  elements: dict
  sample: [{kind: VirtualService, object: VirtualService microservice/canary, field: "spec.http[0].route[1].weight",
            message: "weight -10 is negative: weights are 0..100"}]
api_requests:
  description: Number of API requests this call made, by verb (C(list), C(get), C(create), C(update), C(delete),
    C(create_dry_run), C(update_dry_run)); retried requests count each time.
  returned: always
  type: dict
  sample: {list: 1, get: 1, create: 2}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import run_resource_module

KIND = "Gateway"


def main():
    run_resource_module(AnsibleModule, KIND)


if __name__ == "__main__":
    main()
