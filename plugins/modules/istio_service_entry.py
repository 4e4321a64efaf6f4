#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: istio_service_entry
short_description: Manage Istio ServiceEntries
version_added: "1.2.0"
author: istio-lab contributors (@istio-lab)
description:
  - Creates, updates and deletes Istio C(ServiceEntry) objects (C(networking.istio.io)) declaratively; the object
    ends up exactly as given (a field, host or port removed from the input is removed from the cluster object), and
    a repeated call with the same input sends no write request and returns RV(changed=false).
  - A ServiceEntry adds a host outside the cluster (or a workload Kubernetes does not know) to the mesh's service
    registry, so that sidecars and gateways can route to it, for example through the egress gateway.
  - Istio's rules for ServiceEntries are checked too (failing whatever O(validate) says; a ServiceEntry has no
    cross-object rule of its own, O(validate) is kept so that every istio-lab module takes the same options) --
    the hosts (at least one, valid names, a wildcard only as the first label), the ports (numbers, unique names
    and numbers, known protocols, for example C(spec.ports[0].number)), the resolution (C(NONE), C(STATIC),
    C(DNS), C(DNS_ROUND_ROBIN)) and its endpoints (C(STATIC) needs endpoint addresses, C(NONE) takes no endpoints
    with hostnames), and a wildcard host with C(DNS) resolution is refused (Envoy cannot resolve it).
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
  - istio_lab.lab.istio_resource
options:
  spec:
    description:
      - The ServiceEntry's C(spec), as the Istio documentation writes it in YAML (C(hosts), C(ports),
        C(resolution), C(location), C(endpoints), ...). Required with O(state=present).
notes:
  - To apply a ServiceEntry together with the Gateway, VirtualService and DestinationRule that send traffic to it
    through the egress gateway, use M(istio_lab.lab.istio_routes) (ServiceEntries are written first).
seealso:
  - module: istio_lab.lab.istio_routes
  - module: istio_lab.lab.istio_gateway
  - module: istio_lab.lab.istio_virtual_service
  - module: istio_lab.lab.istio_destination_rule
  - module: istio_lab.lab.istio_route_info
  - name: Istio ServiceEntry reference
    description: The fields of C(spec).
    link: https://istio.io/latest/docs/reference/config/networking/service-entry/
"""

EXAMPLES = r"""
- name: Let the mesh reach an external HTTP host
  istio_lab.lab.istio_service_entry:
    name: external-http
    namespace: egress
    spec:
      hosts: [httpbin.org]
      ports:
        - {number: 80, name: http-port, protocol: HTTP}
        - {number: 443, name: https, protocol: HTTPS}
      resolution: DNS
      location: MESH_EXTERNAL

- name: Apply several ServiceEntries in one task, tagged with their chapter
  istio_lab.lab.istio_service_entry:
    namespace: egress
    labels:
      istio-lab.io/chapter: "6"
    definitions:
      - name: external-http
        spec:
          hosts: [httpbin.org]
          ports: [{number: 80, name: http-port, protocol: HTTP}]
          resolution: DNS
      - name: old-entry
        state: absent

- name: Show what would change, without writing
  istio_lab.lab.istio_service_entry:
    name: external-http
    namespace: egress
    spec:
      hosts: [httpbin.org]
      ports: [{number: 80, name: http-port, protocol: HTTP}]
      resolution: DNS
  check_mode: true
  diff: true

- name: Remove the ServiceEntry
  istio_lab.lab.istio_service_entry:
    name: external-http
    namespace: egress
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
    kind: ServiceEntry
    metadata:
      name: external-http
      namespace: egress
      labels:
        app.kubernetes.io/managed-by: istio-lab
      resourceVersion: "1234"
    spec:
      hosts: [httpbin.org]
      ports:
        - {number: 80, name: http-port, protocol: HTTP}
      resolution: DNS
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
  sample: [{kind: ServiceEntry, object: ServiceEntry egress/wildcard, field: "spec.resolution",
            message: "a wildcard host cannot be resolved with DNS: use resolution NONE or name the hosts"}]
api_requests:
  description: Number of API requests this call made, by verb (C(list), C(get), C(create), C(update), C(delete),
    C(create_dry_run), C(update_dry_run)); retried requests count each time.
  returned: always
  type: dict
  sample: {list: 1, get: 1, create: 2}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import run_resource_module

KIND = "ServiceEntry"


def main():
    run_resource_module(AnsibleModule, KIND)


if __name__ == "__main__":
    main()
