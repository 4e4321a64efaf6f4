#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: istio_virtual_service
short_description: Manage Istio VirtualServices
version_added: "1.0.0"
author: istio-lab contributors (@istio-lab)
description:
  - Creates, updates and deletes Istio C(VirtualService) objects (C(networking.istio.io)) declaratively; the
    object ends up exactly as given (a field or route removed from the input is removed from the cluster
    object), and a repeated call with the same input sends no write request and returns RV(changed=false).
  - Istio's rules for VirtualServices are checked too (failing whatever O(validate) says), for example no
    negative destination weight (C(spec.http[0].route[1].weight)). Weights that do not sum to 100 (istiod scales
    them) are accepted with a warning.
  - Cross-object rules (relaxed to warnings by O(validate=warn) and in check mode) -- every gateway named in
    C(spec.gateways) or a match exists, in the definitions' cluster (C(mesh) is Istio's own and always valid;
    C(name) means the VirtualService's namespace, C(namespace/name) another), and every host is admitted by a
    server of one of those gateways, with Istio's wildcard (C(*), C(*.example.com)) and namespace
    (C(ns/host), C(./host), C(*/host)) matching.
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
  - istio_lab.lab.istio_resource
seealso:
  - module: istio_lab.lab.istio_gateway
  - module: istio_lab.lab.istio_destination_rule
  - module: istio_lab.lab.istio_route_info
  - name: Istio VirtualService reference
    description: The fields of C(spec).
    link: https://istio.io/latest/docs/reference/config/networking/virtual-service/
"""

EXAMPLES = r"""
- name: Route chapter 1's traffic to tomcat
  istio_lab.lab.istio_virtual_service:
    name: tomcat-virtualservice
    namespace: microservice
    spec:
      hosts: ["*"]
      gateways: [ingressgateway80]
      http:
        - route:
            - destination:
                host: tomcat.microservice.svc.cluster.local
                port: {number: 80}

- name: Publish Grafana, Kiali and Zipkin behind allgateway
  istio_lab.lab.istio_virtual_service:
    namespace: istio-system
    definitions:
      - name: grafana-istio
        spec:
          hosts: ["grafana-istio.kubernets.cn"]
          gateways: [allgateway]
          http: [{route: [{destination: {host: grafana, port: {number: 3000}}}]}]
      - name: kiali-istio
        spec:
          hosts: ["kiali-istio.kubernets.cn"]
          gateways: [allgateway]
          http: [{route: [{destination: {host: kiali, port: {number: 20001}}}]}]
      - name: zipkin-istio
        spec:
          hosts: ["zipkin-istio.kubernets.cn"]
          gateways: [allgateway]
          http: [{route: [{destination: {host: zipkin, port: {number: 9411}}}]}]

- name: Apply a VirtualService whose gateway a later task creates
  istio_lab.lab.istio_virtual_service:
    name: canary
    namespace: microservice
    validate: warn
    spec:
      hosts: ["canary.kubernets.cn"]
      gateways: [canary-gateway]
      http:
        - route:
            - destination: {host: tomcat, subset: v1}
              weight: 90
            - destination: {host: tomcat, subset: v2}
              weight: 10

- name: Remove the VirtualService of chapter 1
  istio_lab.lab.istio_virtual_service:
    name: tomcat-virtualservice
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
    kind: VirtualService
    metadata:
      name: tomcat-virtualservice
      namespace: microservice
      labels:
        app.kubernetes.io/managed-by: istio-lab
      resourceVersion: "1234"
    spec:
      hosts: ["*"]
      gateways: [ingressgateway80]
      http:
        - route:
            - destination:
                host: tomcat.microservice.svc.cluster.local
                port: {number: 80}
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

KIND = "VirtualService"


def main():
    run_resource_module(AnsibleModule, KIND)


if __name__ == "__main__":
    main()
