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
  - One task applies one object (O(name), O(namespace), O(spec)) or a list (O(definitions)), reading the live objects
    with one LIST request per namespace scope, never one GET per object, and writing only objects that differ.
  - Every object carries the label C(app.kubernetes.io/managed-by=istio-lab). Objects without it are never touched
    (the task fails naming them) unless O(adopt=true).
  - Before any write the whole input is validated, and an invalid input fails naming the object and the field path
    (for example C(spec.http[0].route[1].weight)) and writes nothing.
  - Labels and annotations given are added or updated; keys others set on the live object are left alone.
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
options:
  name:
    description:
      - Name of the Gateway. Required unless O(definitions) is given; mutually exclusive with it.
    type: str
  namespace:
    description:
      - Namespace of the Gateway. Required with O(name); the default namespace of the entries of O(definitions).
    type: str
  spec:
    description:
      - The Gateway's C(spec), as the Istio documentation and the course write it in YAML. Required with
        O(state=present).
    type: dict
  labels:
    description:
      - Labels to set, besides C(app.kubernetes.io/managed-by=istio-lab). With O(definitions), every entry gets them
        (an entry's own O(definitions[].labels) win).
    type: dict
  annotations:
    description:
      - Annotations to set. With O(definitions), every entry gets them (an entry's own win).
    type: dict
  state:
    description:
      - V(present) creates or updates the object, V(absent) deletes it. Deleting an object that does not exist, or
        whose CRD is not installed, is not an error.
      - The default state of the entries of O(definitions).
    type: str
    choices: [present, absent]
    default: present
  api_version:
    description:
      - API version of the Gateway; C(networking.istio.io/v1) is served by Istio 1.22 and later.
    type: str
    default: networking.istio.io/v1
  validate:
    description:
      - How validation failures of cross-object rules are reported.
      - Validation always checks the schema of the CRD the cluster serves, with unknown (misspelt) fields as errors
        (the API server itself drops them silently), and Istio's rules within one object; those always fail.
      - Istio's rules for Gateways are checked too -- supported protocols, port names unique and agreeing with
        the protocol, servers on one port agreeing on the protocol, and TLS modes that terminate TLS (SIMPLE,
        MUTUAL, OPTIONAL_MUTUAL) having a credential.
      - V(strict) fails on a cross-object problem; V(warn) reports it as a warning and applies anyway (objects applied
        out of order). In check mode cross-object problems are warnings, since earlier tasks of the same run only
        pretended to apply what they refer to.
      - When the credentials may not read the CRD, the API server validates each write with a strict server-side
        dry run instead.
    type: str
    choices: [strict, warn]
    default: strict
  adopt:
    description:
      - Take over an existing Gateway that istio-lab did not create (update and label it, or delete it with
        O(state=absent)). Without it such an object is never touched and the task fails naming it.
    type: bool
    default: false
  definitions:
    description:
      - Several Gateways applied by one task, validated as a whole before the first write. Mutually
        exclusive with O(name).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the Gateway.
        type: str
        required: true
      namespace:
        description: Namespace of the Gateway; defaults to O(namespace).
        type: str
      spec:
        description: The Gateway's C(spec); required with state V(present).
        type: dict
      labels:
        description: Labels of this entry, merged over O(labels).
        type: dict
      annotations:
        description: Annotations of this entry, merged over O(annotations).
        type: dict
      state:
        description: V(present) or V(absent); defaults to O(state).
        type: str
        choices: [present, absent]
requirements:
  - kubernetes (Python client, for kubeconfig loading and HTTP)
  - jsonschema
notes:
  - Supports check mode (nothing is written; RV(changed) says whether something would be) and diff mode (before and
    after of each object).
  - Updates replace the object with the live C(resourceVersion); a 409 conflict re-reads it and retries. Throttling
    and transient server errors (429, 5xx) and connection failures are retried with exponential backoff.
  - Every write carries C(fieldValidation=Strict) as a last line of defence.
  - "When Istio's CRDs are not installed the task fails with: install Istio first: playbooks/istio.yml."
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
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import (
    RESOURCE_MODULE_KWARGS,
    resource_argument_spec,
)

KIND = "Gateway"


def main():
    module = AnsibleModule(argument_spec=resource_argument_spec(), **RESOURCE_MODULE_KWARGS)
    run_resource_module(module, KIND)


if __name__ == "__main__":
    main()
