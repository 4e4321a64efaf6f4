#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: istio_routes
short_description: Manage Istio ServiceEntries, Gateways, VirtualServices and DestinationRules in one task
version_added: "1.1.0"
author: istio-lab contributors (@istio-lab)
description:
  - Applies Istio C(ServiceEntry), C(Gateway), C(VirtualService) and C(DestinationRule) objects
    (C(networking.istio.io)) in one task and one process, declaratively, exactly as
    M(istio_lab.lab.istio_service_entry), M(istio_lab.lab.istio_gateway), M(istio_lab.lab.istio_virtual_service)
    and M(istio_lab.lab.istio_destination_rule) do with their O(istio_lab.lab.istio_gateway#module:definitions)
    option; a repeated call with the same input sends no write request and returns RV(changed=false).
  - The live objects are read with one LIST request per kind (for one namespace, or cluster-wide for several),
    never one GET per object. The Gateway LIST also serves the check of the VirtualServices' gateway references,
    so a no-op re-run sends one LIST request per kind given and nothing else.
  - Every object of every kind is validated before the first write; one invalid object fails the task naming
    kind, object and field path (for example C(spec.http[0].route[1].weight)) and nothing at all is written.
    A VirtualService may name a Gateway of the same task.
  - Writes go in dependency order. Creates and updates first, ServiceEntries (the external hosts the other kinds
    name), Gateways, then VirtualServices, then DestinationRules; then deletions (entries with state V(absent)) in
    reverse order, DestinationRules, VirtualServices, Gateways, ServiceEntries. So no VirtualService is written
    before the Gateway it names or the ServiceEntry of its external host, and none is left naming a Gateway
    already removed (make before break, also when one task moves routes to a new Gateway).
  - Every object carries the label C(app.kubernetes.io/managed-by=istio-lab). Objects without it are never touched
    (the task fails naming them) unless O(adopt=true).
  - Labels and annotations given are added or updated; keys others set on the live object are left alone.
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
options:
  src:
    description:
      - YAML files, or directories of them (C(*.yaml), C(*.yml), in name order), holding Istio objects of the four
        kinds as C(kubectl apply -f) takes them (C(apiVersion), C(kind), C(metadata.name), C(metadata.namespace),
        C(metadata.labels), C(metadata.annotations), C(spec); several documents per file). They are read by the
        module itself on the host it runs on and applied with the objects of the other options, exactly as if they
        had been given there (state V(present)).
      - For large object sets this is faster than passing them as options, which Ansible templates one by one.
    type: list
    elements: path
  check_services:
    description:
      - Before any write, read the Services the VirtualServices route to (one LIST of their namespaces) and refuse
        the task when a Service, or the port a route names, does not exist; nothing is written then. In check mode
        such destinations are only reported as a warning (an earlier task of the same dry run only pretended to
        create them).
      - Destinations outside the cluster (hosts a ServiceEntry declares) are not checked.
    type: bool
    default: false
  service_entries:
    description:
      - The ServiceEntries to apply (external hosts, as M(istio_lab.lab.istio_service_entry) takes them).
    type: list
    elements: dict
    suboptions: &definition
      name:
        description: Name of the object.
        type: str
        required: true
      namespace:
        description: Namespace of the object; defaults to O(namespace).
        type: str
      spec:
        description: The object's C(spec), as the Istio documentation writes it; required with state V(present).
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
  gateways:
    description:
      - The Gateways to apply.
    type: list
    elements: dict
    suboptions: *definition
  virtual_services:
    description:
      - The VirtualServices to apply; their gateway references see the task's own O(gateways) as the task
        leaves them.
    type: list
    elements: dict
    suboptions: *definition
  destination_rules:
    description:
      - The DestinationRules to apply.
    type: list
    elements: dict
    suboptions: *definition
  namespace:
    description:
      - The default namespace of the entries of O(service_entries), O(gateways), O(virtual_services) and
        O(destination_rules).
    type: str
  labels:
    description:
      - Labels every entry gets, besides C(app.kubernetes.io/managed-by=istio-lab) (an entry's own labels win).
    type: dict
  annotations:
    description:
      - Annotations every entry gets (an entry's own win).
    type: dict
  state:
    description:
      - The default state of the entries. V(present) creates or updates an object, V(absent) deletes it. Deleting
        an object that does not exist, or whose CRD is not installed, is not an error.
    type: str
    choices: [present, absent]
    default: present
  api_version:
    description:
      - API version of every kind; C(networking.istio.io/v1) is served by Istio 1.22 and later.
    type: str
    default: networking.istio.io/v1
  validate:
    description:
      - How validation failures of cross-object rules (a VirtualService's gateway references and the hosts its
        Gateways admit) are reported.
      - Validation always checks the schema of the CRD the cluster serves, with unknown (misspelt) fields as errors,
        and Istio's rules within one object; those always fail.
      - V(strict) fails on a cross-object problem; V(warn) reports it as a warning and applies anyway. In check
        mode cross-object problems are warnings, since earlier tasks of the same run only pretended to apply
        what they refer to.
      - When the credentials may not read the CRDs, the API server validates each write with a strict server-side
        dry run instead.
    type: str
    choices: [strict, warn]
    default: strict
  adopt:
    description:
      - Take over existing objects that istio-lab did not create (update and label them, or delete them). Without
        it such an object is never touched and the task fails naming it.
    type: bool
    default: false
  applyset:
    description:
      - "The owned set the task's objects form (docs/applysets.md, KEP-3659 ApplySet): parent ConfigMap
        C(istio-lab/applyset-<set>), members labelled C(applyset.kubernetes.io/part-of), as with
        M(istio_lab.lab.lab_manifests). With O(applyset_label), each object's set is C(<applyset>-<its value of that
        label>) (the chapters: C(chapter-1), C(chapter-2)...)."
      - The parents are read in one request; the members are found in the LISTs the task makes anyway (widened to
        the namespaces the parents record), one more LIST per kind a set records that the task no longer applies.
    type: str
  applyset_label:
    description:
      - A label key whose value names each object's set under O(applyset) (C(istio-lab.io/chapter)). An object
        without it is refused before any write.
    type: str
  prune:
    description:
      - Delete the members of the task's sets that the task no longer names, once every write succeeded, in reverse
        dependency order; only objects carrying a set's label. Check mode and diff mode report them (RV(pruned)).
      - Defaults to true when O(applyset) is set. Sets the task does not name are never touched, unless
        O(prune_other_sets).
    type: bool
  prune_other_sets:
    description:
      - "With O(applyset_label) and O(prune), also delete whole the sets C(<applyset>-<value>) on the cluster that no
        object of the task names (the chapters taken out of C(lab_enabled_chapters)): every member, in reverse
        dependency order, then the parent. Only objects carrying such a set's label; a ConfigMap of a parent's name
        that is another tool's or ID's is left alone. Reported in RV(pruned) and RV(applysets), in check mode too."
      - The parents are then read with one LIST of every parent in C(istio-lab) (instead of a GET or a LIST by ID).
    type: bool
    default: false
requirements:
  - kubernetes (Python client, for kubeconfig loading and HTTP)
  - jsonschema
notes:
  - Supports check mode (nothing is written; RV(changed) says whether something would be) and diff mode (before and
    after of each changed object).
  - Updates replace the object with the live C(resourceVersion); a 409 conflict re-reads it and retries. Throttling
    and transient server errors (429, 5xx) and connection failures are retried with exponential backoff.
  - Every write carries C(fieldValidation=Strict) as a last line of defence.
  - When a write is refused, the writes of later steps of the order are not attempted; run the task again once
    fixed.
  - "When Istio's CRDs are not installed the task fails with: install Istio first: playbooks/istio.yml."
seealso:
  - module: istio_lab.lab.istio_gateway
  - module: istio_lab.lab.istio_virtual_service
  - module: istio_lab.lab.istio_destination_rule
  - module: istio_lab.lab.istio_service_entry
  - module: istio_lab.lab.istio_route_info
  - name: Istio traffic management reference
    description: The fields of each kind's C(spec).
    link: https://istio.io/latest/docs/reference/config/networking/
"""

EXAMPLES = r"""
- name: Apply the routes of chapter 1
  istio_lab.lab.istio_routes:
    namespace: microservice
    labels:
      istio-lab.io/chapter: "1"
    gateways:
      - name: ingressgateway80
        spec:
          selector: {istio: ingressgateway}
          servers:
            - port: {number: 80, name: http, protocol: HTTP}
              hosts: ["*"]
    virtual_services:
      - name: tomcat-virtualservice
        spec:
          hosts: ["*"]
          gateways: [ingressgateway80]  # the Gateway above: valid although it does not exist yet
          http:
            - route:
                - destination:
                    host: tomcat.microservice.svc.cluster.local
                    port: {number: 80}
    destination_rules:
      - name: tomcat
        spec:
          host: tomcat
          subsets:
            - {name: v1, labels: {version: v1}}

- name: Send an external host through the egress gateway (Istio's Egress Gateways task)
  istio_lab.lab.istio_routes:
    namespace: egress
    service_entries:
      - name: external-http
        spec:
          hosts: [httpbin.org]
          ports: [{number: 80, name: http-port, protocol: HTTP}]
          resolution: DNS
    gateways:
      - name: istio-egressgateway
        spec:
          selector: {istio: egressgateway}
          servers:
            - port: {number: 80, name: http, protocol: HTTP}
              hosts: [httpbin.org]
    destination_rules:
      - name: egressgateway-for-external
        spec:
          host: istio-egressgateway.istio-system.svc.cluster.local
          subsets: [{name: external}]
    virtual_services:
      - name: external-through-egress-gateway
        spec:
          hosts: [httpbin.org]
          gateways: [istio-egressgateway, mesh]
          http:
            - match: [{gateways: [mesh], port: 80}]
              route:
                - destination:
                    host: istio-egressgateway.istio-system.svc.cluster.local
                    subset: external
                    port: {number: 80}
            - match: [{gateways: [istio-egressgateway], port: 80}]
              route:
                - destination:
                    host: httpbin.org
                    port: {number: 80}

- name: Remove the routes of chapter 1 (DestinationRules, VirtualServices, then Gateways)
  istio_lab.lab.istio_routes:
    namespace: microservice
    state: absent
    gateways: [{name: ingressgateway80}]
    virtual_services: [{name: tomcat-virtualservice}]
    destination_rules: [{name: tomcat}]
"""

RETURN = r"""
changed:
  description: Whether an object was (or in check mode would be) created, updated or deleted.
  returned: always
  type: bool
results:
  description:
    - One entry per object, ServiceEntries, Gateways, VirtualServices, then DestinationRules, each in input
      order. The objects themselves are left out; read them with RV(diff) in diff mode or C(kubernetes.core.k8s_info).
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: C(ServiceEntry), C(Gateway), C(VirtualService) or C(DestinationRule).
      type: str
    name:
      description: Name of the object.
      type: str
    namespace:
      description: Namespace of the object.
      type: str
    action:
      description: C(created), C(updated), C(deleted), C(unchanged) or C(absent).
      type: str
  sample: [{kind: Gateway, name: ingressgateway80, namespace: microservice, action: created}]
pruned:
  description: The members of the task's sets it deleted (in check mode, would delete).
  returned: when O(applyset) is set
  type: list
  elements: dict
  sample: [{kind: VirtualService, api_version: networking.istio.io/v1, namespace: istio-system, name: zipkin-istio,
            action: deleted, ref: VirtualService.networking.istio.io istio-system/zipkin-istio}]
applysets:
  description: Each set of the task after it (C(name), C(id), C(parent), C(action), C(contains_group_kinds),
    C(namespaces)), as M(istio_lab.lab.lab_manifests) returns RV(istio_lab.lab.lab_manifests#module:applyset).
  returned: when O(applyset) is set
  type: list
  elements: dict
diff:
  description: Before and after of each changed object, a list in the order of RV(results), then of each member
    pruned.
  returned: when diff mode is on
  type: list
  elements: dict
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
  sample: {list: 3}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import run_routes_module
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import (
    ROUTES_MODULE_KWARGS,
    routes_argument_spec,
)


def main():
    module = AnsibleModule(argument_spec=routes_argument_spec(), **ROUTES_MODULE_KWARGS)
    run_routes_module(module)


if __name__ == "__main__":
    main()
