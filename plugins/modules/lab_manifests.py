#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: lab_manifests
short_description: Apply Kubernetes manifests of any kind in one task, writing only what differs
version_added: "1.2.0"
author: istio-lab contributors (@istio-lab)
description:
  - Applies a set of Kubernetes objects of any kinds (cluster- or namespace-scoped, custom resources included) in one
    task and one process, the way istio-lab applies a stage of the lab (MetalLB's native manifest, the Istio addons,
    the chapters' namespaces and apps). A repeated call with the same input sends no write request and returns
    RV(changed=false).
  - "Discovery: one GET per group-version the objects use (C(/api/v1), C(/apis/<group>/<version>))."
  - "The live objects: one LIST per kind and namespace scope, narrowed to istio-lab's objects with the labels of
    O(managed_labels). An object that lost those labels counts as missing and is applied again."
  - "Each object (but a Secret) is stamped with annotation C(istio-lab.io/applied-hash), the sha256 of the manifest as
    applied. An object is written when it is missing, when its hash differs (the manifest changed, removed fields
    included) or when it drifted: a value the manifest sets is no longer in the live object. A null, empty or zero
    value of the manifest matches a field the live object lacks (the API server does not store them)."
  - "Secrets (O(secrets), or Secrets in O(manifests)) carry no hash, which would expose short values such as
    passwords: the comparison alone decides. Their values are never returned nor shown in diffs."
  - "Writes are server-side applies (field manager C(istio-lab), C(force=true)) of the objects that differ, sent as
    UTF-8 JSON, a few at a time."
  - "Order: the objects of O(read) are read; CustomResourceDefinitions are applied first and waited for until
    Established; then Namespaces (one still being deleted is waited for until gone, then created again); then the
    other objects of O(manifests) and O(secrets), workloads (Deployments, DaemonSets, StatefulSets, Jobs...) and
    admission webhook configurations after what they use; then the waits (O(wait), O(wait_for)); then the objects
    of O(after_wait)."
  - "Owned sets (O(applyset), docs/applysets.md): the objects of the call are one named set in the ApplySet form of
    KEP-3659, so that C(kubectl) and other tools see it. Its parent is ConfigMap C(istio-lab/applyset-<set>) (namespace
    C(istio-lab) created when missing) with label C(applyset.kubernetes.io/id) (kubectl's ID of that parent) and
    annotations C(applyset.kubernetes.io/tooling: istio-lab/<version>), C(applyset.kubernetes.io/contains-group-kinds)
    and C(applyset.kubernetes.io/additional-namespaces); every member carries C(applyset.kubernetes.io/part-of). The
    parent is read once (a GET) and written only when what it records changes; before new kinds or namespaces are
    applied it records them (a call failing half-way leaves no member unrecorded)."
  - "Pruning (O(prune), on with O(applyset)): once every apply and wait of the call succeeded, the members the call
    no longer applies are deleted: only objects carrying the set's label (and O(managed_labels)), admission webhook
    configurations first, namespaces last, never a CustomResourceDefinition unless O(prune_crds). They are found in
    the LISTs the call makes anyway (widened to the namespaces the parent records), plus one LIST per kind the parent
    records that the call no longer applies. Objects already being deleted are left to finish. Check mode and diff
    mode report them (RV(pruned)) without deleting."
  - "An object of the call that carries O(managed_labels) but not the set's label yet (a lab built before the sets)
    is adopted: applied with the label, which writes nothing else."
  - "A write refused by an admission webhook that does not answer yet (C(failed calling webhook), as MetalLB's right
    after its install) is retried every O(retry_delay) seconds for up to O(wait_timeout) seconds. Any other refusal
    fails the task naming the object; the other writes of the same step are still attempted."
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
options:
  src:
    description:
      - YAML files of objects to apply with O(manifests), or directories of C(.yaml) and C(.yml) files (read in name
        order), on the host the module runs on. Every non-empty document must be a complete manifest.
      - The module opens them itself, so that large upstream manifests (MetalLB's, the Istio addons') never pass
        through Ansible's variables. O(image_mirror) and O(env_from_secret) adjust these objects only.
    type: list
    elements: path
    default: []
  image_mirror:
    description:
      - "Pull every container image of the objects of O(src) through this registry mirror (C(host[:port][/path])):
        the registry host is replaced and the repository path kept; Docker Hub short names gain C(library/)."
      - Empty, the images are left as they are.
    type: str
    default: ""
  env_from_secret:
    description:
      - Container variables of workloads of O(src) to read from a Secret instead of the literal value the file has
        (for example the upstream Grafana addon's admin password).
    type: list
    elements: dict
    default: []
    suboptions:
      kind:
        description: Kind of the workload (C(Deployment), C(StatefulSet)...).
        type: str
        required: true
      name:
        description: Name of the workload.
        type: str
        required: true
      env:
        description: Name of the variable, in every container of the workload's pod template.
        type: str
        required: true
      secret:
        description: Name of the Secret, in the workload's namespace.
        type: str
        required: true
      key:
        description: Key of the Secret.
        type: str
        required: true
  manifests:
    description:
      - The objects to apply, each a complete manifest (C(apiVersion), C(kind), C(metadata.name)).
      - A namespaced object without C(metadata.namespace) goes to O(namespace).
    type: list
    elements: dict
    default: []
  secrets:
    description:
      - Secrets to apply with O(manifests), without exposing their values (they are C(no_log) options).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the Secret.
        type: str
        required: true
      namespace:
        description: Namespace of the Secret; defaults to O(namespace).
        type: str
      type:
        description: The Secret's C(type).
        type: str
        default: Opaque
      labels:
        description: Labels of the Secret, besides O(managed_labels).
        type: dict
      data:
        description: Keys and base64-encoded values.
        type: dict
      string_data:
        description: Keys and plain values (encoded by the module, stored in C(data)).
        type: dict
  after_wait:
    description:
      - Objects applied once the waits of O(wait) and O(wait_for) have passed, for example custom resources that an
        admission webhook of O(manifests) validates.
    type: list
    elements: dict
    default: []
  namespace:
    description:
      - Namespace of the namespaced objects whose manifest names none.
    type: str
    default: default
  managed_labels:
    description:
      - Labels added to every object; the LIST requests select on them.
    type: dict
    default:
      app.kubernetes.io/managed-by: istio-lab
  wait:
    description:
      - Wait until every Deployment, DaemonSet and StatefulSet of O(manifests) is rolled out (its current spec
        updated and available on every replica).
    type: bool
    default: false
  wait_for:
    description:
      - Objects to wait for after O(manifests), in order, by kind. A Deployment, DaemonSet or StatefulSet until
        rolled out; a CustomResourceDefinition until Established; Endpoints until they hold a ready address; a
        Service until its load balancer has an address (RV(waited[].addresses)); any other kind until it exists.
    type: list
    elements: dict
    default: []
    suboptions:
      kind:
        description: Kind of the object.
        type: str
        required: true
      name:
        description: Name of the object.
        type: str
        required: true
      namespace:
        description: Namespace of the object; defaults to O(namespace).
        type: str
      api_version:
        description: API version; defaults to C(apps/v1) for workloads, C(apiextensions.k8s.io/v1) for CRDs, C(v1)
          otherwise.
        type: str
  read:
    description:
      - Objects to read (one GET each) before anything is written, returned in RV(read); for a decision the next
        tasks make (whether an installer must run). A Secret's values are hidden.
    type: list
    elements: dict
    default: []
    suboptions:
      kind:
        description: Kind of the object.
        type: str
        required: true
      name:
        description: Name of the object.
        type: str
        required: true
      namespace:
        description: Namespace of the object; defaults to O(namespace).
        type: str
      api_version:
        description: API version; defaults as in O(wait_for).
        type: str
  applyset:
    description:
      - Name of the owned set the objects of the call form (C(metallb), C(istio), C(addons), C(apps),
        C(chapter-<id>)); its parent is ConfigMap C(istio-lab/applyset-<name>).
      - A ConfigMap of that name that another tool's tooling annotation or another ApplySet ID marks is refused.
    type: str
  prune:
    description:
      - Delete the members of O(applyset) that the call no longer applies, after every apply and wait succeeded.
      - Defaults to true when O(applyset) is set. False adds to the set and deletes nothing (the parent keeps
        recording what it recorded).
    type: bool
  prune_crds:
    description:
      - Also prune CustomResourceDefinitions that left the set (their deletion deletes every custom object of their
        kind). Refused, before any deletion, while objects without O(managed_labels) use them.
      - Without it, such CRDs are kept, reported in RV(pruned) as C(kept), and stay recorded in the set.
    type: bool
    default: false
  remove_foreign:
    description:
      - Prune a namespace of the set even when it holds objects istio-lab did not create (a user's, of any
        namespaced kind the cluster serves; not what Kubernetes, its controllers, istioctl or istiod make there).
      - Without it, such a namespace is kept, stays a member, is annotated C(istio-lab.io/kept-for) and reported in
        RV(pruned) with those objects; a later call that finds the same objects reports nothing.
    type: bool
    default: false
  state:
    description:
      - C(absent) deletes every member of O(applyset) (found from its parent) and then the parent; give no objects.
        A set without a parent has nothing to delete.
    type: str
    choices: [present, absent]
    default: present
  refuse_crds_in_use:
    description:
      - "API group suffixes (C(istio.io), C(metallb.io)) whose CRDs are checked before anything else: the call fails,
        writing nothing, while any object of their kinds lacks O(managed_labels). For a removal that deletes CRDs."
    type: list
    elements: str
    default: []
  stop_if_changed:
    description:
      - Decide only. When any object of O(src), O(manifests), O(secrets) or O(after_wait) would be written, or an
        object of O(wait_for) does not exist, write nothing, wait for nothing and return RV(stopped=true). Otherwise
        wait as O(wait) and O(wait_for) say (nothing needs writing).
      - For an install made by another tool whose record is one of O(manifests) - the Istio role records istioctl's
        install in a ConfigMap - one call checks the record and the Deployments and waits for them; the tool runs,
        and the record is applied, only when the call stopped.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for each CRD, each object of O(wait) and O(wait_for), and for a webhook to stop refusing.
    type: int
    default: 300
  retry_delay:
    description:
      - Seconds between two looks at an object waited for (each a GET), and between two tries of a write an
        admission webhook refused.
    type: float
    default: 5.0
  budget:
    description:
      - Seconds the whole call may spend on the API, C(0) for no bound. Retries stop, and each request's connect and
        read timeouts are cut, so that an API that is down, blackholed or too slow fails the call within it (a
        status probe, which must answer in seconds). Unlike O(wait_timeout), no request starts past it.
    type: int
    default: 0
requirements:
  - kubernetes (Python client, for kubeconfig loading and HTTP)
notes:
  - Supports check mode and diff mode. Check mode writes nothing; the objects to write are sent with C(dryRun=All),
    and those of a namespace or a kind the call would only create are reported as created. The waits are skipped in
    check mode when something would be written.
  - Without O(applyset), objects istio-lab applied but no longer lists are left alone (nothing is deleted).
  - Throttling and transient server errors (429, 5xx) and connection failures are retried with exponential backoff.
seealso:
  - module: istio_lab.lab.istio_routes
  - module: kubernetes.core.k8s
"""

EXAMPLES = r"""
- name: Install MetalLB and its address pool
  istio_lab.lab.lab_manifests:
    src: [/opt/metallb/metallb-native.yaml]
    image_mirror: registry.lab:5000/proxy
    wait_for:
      - {kind: Deployment, namespace: metallb-system, name: controller}
      - {kind: Endpoints, namespace: metallb-system, name: metallb-webhook-service}
    after_wait:
      - apiVersion: metallb.io/v1beta1
        kind: IPAddressPool
        metadata: {name: lab-pool, namespace: metallb-system}
        spec: {addresses: [192.168.1.240-192.168.1.250]}
    wait_timeout: 300
    retry_delay: 5

- name: Deploy an app and wait for it
  istio_lab.lab.lab_manifests:
    namespace: microservice
    manifests:
      - {apiVersion: v1, kind: Namespace, metadata: {name: microservice}}
      - apiVersion: apps/v1
        kind: Deployment
        metadata: {name: tomcat}
        spec:
          selector: {matchLabels: {app: tomcat}}
          template:
            metadata: {labels: {app: tomcat}}
            spec: {containers: [{name: tomcat, image: tomcat:latest}]}
    wait: true

- name: Install Grafana with its admin password read from a Secret
  istio_lab.lab.lab_manifests:
    src: [/opt/istio/samples/addons/grafana.yaml]
    env_from_secret:
      - {kind: Deployment, name: grafana, env: GF_SECURITY_ADMIN_PASSWORD, secret: grafana-admin, key: password}
    secrets:
      - name: grafana-admin
        namespace: istio-system
        string_data: {password: "{{ grafana_password }}"}

- name: Apply the addons as the owned set "addons", pruning those taken out
  istio_lab.lab.lab_manifests:
    src: [/opt/istio/samples/addons/prometheus.yaml, /opt/istio/samples/addons/kiali.yaml]
    applyset: addons

- name: Remove the set "addons" (every member, then its parent)
  istio_lab.lab.lab_manifests:
    applyset: addons
    state: absent

- name: Wait for the ingress gateway's address
  istio_lab.lab.lab_manifests:
    wait_for: [{kind: Service, namespace: istio-system, name: istio-ingressgateway}]
  register: ingress

- name: Show it
  ansible.builtin.debug:
    msg: "{{ ingress.waited[0].addresses[0] }}"
"""

RETURN = r"""
changed:
  description: Whether an object was (or in check mode would be) written.
  returned: always
  type: bool
results:
  description: One entry per object, in the order of O(manifests), O(secrets), then O(after_wait).
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: Kind of the object.
      type: str
    api_version:
      description: API version of the object.
      type: str
    namespace:
      description: Namespace of the object (empty for a cluster-scoped one).
      type: str
    name:
      description: Name of the object.
      type: str
    action:
      description: C(created), C(updated) or C(unchanged) (in check mode, and when RV(stopped), what would be done).
      type: str
    reason:
      description: Why it was written, C(missing), C(changed) (its manifest changed) or C(drifted) (a value it sets
        was edited); empty when unchanged.
      type: str
  sample: [{kind: Deployment, api_version: apps/v1, namespace: microservice, name: tomcat, action: updated,
            reason: changed}]
waited:
  description: The objects waited for (O(wait), then O(wait_for)), each once ready; empty in check mode when
    something would be written.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: Kind of the object.
      type: str
    namespace:
      description: Namespace of the object.
      type: str
    name:
      description: Name of the object.
      type: str
    ready:
      description: Always true (a timeout fails the task).
      type: bool
    addresses:
      description: Endpoints, their ready addresses; a Service, its load balancer's addresses.
      type: list
      elements: str
      returned: for Endpoints and Services
  sample: [{kind: Service, namespace: istio-system, name: istio-ingressgateway, ready: true,
            addresses: [192.168.1.240]}]
read:
  description: The objects of O(read), in order, each as read (C(null) when it does not exist).
  returned: always
  type: list
  elements: dict
pruned:
  description: The members of O(applyset) the call deleted (in check mode, would delete), in deletion order, then the
    CRDs it kept (O(prune_crds) off).
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: Kind of the object.
      type: str
    api_version:
      description: API version of the object.
      type: str
    namespace:
      description: Namespace of the object (empty for a cluster-scoped one).
      type: str
    name:
      description: Name of the object.
      type: str
    action:
      description: >-
        C(deleted), C(kept) (a CRD), or C(kept: holds objects istio-lab did not create: ...) (a namespace).
      type: str
    ref:
      description: The object as C(Kind.group namespace/name).
      type: str
    foreign:
      description: For a kept namespace, the objects that kept it (apiVersion, kind, namespace, name).
      type: list
      elements: dict
      returned: for a kept namespace
  sample: [{kind: Deployment, api_version: apps/v1, namespace: istio-system, name: zipkin, action: deleted,
            ref: Deployment.apps istio-system/zipkin}]
applyset:
  description: The owned set after the call.
  returned: when O(applyset) is set
  type: dict
  contains:
    name:
      description: The set's name.
      type: str
    id:
      description: Its ApplySet ID (the parent's C(applyset.kubernetes.io/id), the members' C(part-of)).
      type: str
    parent:
      description: C(istio-lab/applyset-<name>).
      type: str
    action:
      description: What became of the parent, C(created), C(updated), C(deleted) or C(unchanged).
      type: str
    contains_group_kinds:
      description: The kinds the parent records (C(Kind.group), C(Kind) for the core group).
      type: list
      elements: str
    namespaces:
      description: The members' namespaces the parent records.
      type: list
      elements: str
stopped:
  description: With O(stop_if_changed), true when an object would have been written or an object of O(wait_for)
    does not exist; nothing was then written or waited for. Otherwise false.
  returned: always
  type: bool
  sample: false
webhook_retries:
  description: How many writes were tried again because an admission webhook refused them.
  returned: always
  type: int
diff:
  description: Before and after of each object written (Secrets' values hidden), in the order of RV(results), then
    of each member pruned (after empty).
  returned: when diff mode is on
  type: list
  elements: dict
problems:
  description: On failure, the objects refused, each with C(kind), C(object), C(field) and C(message).
  returned: failure
  type: list
  elements: dict
api_requests:
  description: Number of API requests this call made, by verb (C(discovery), C(list), C(get), C(patch),
    C(patch_dry_run)); retried requests count each time.
  returned: always
  type: dict
  sample: {discovery: 5, list: 14}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.manifests import (
    manifests_argument_spec,
    run_manifests_module,
)


def main():
    module = AnsibleModule(argument_spec=manifests_argument_spec(), supports_check_mode=True)
    run_manifests_module(module)


if __name__ == "__main__":
    main()
