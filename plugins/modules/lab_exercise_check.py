#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: lab_exercise_check
short_description: Check a student's own Istio objects for one chapter's exercise and explain the first broken link
version_added: "1.4.0"
author: istio-lab contributors (@istio-lab)
description:
  - Checks whether the exercise of chapter O(chapter) of O(catalogue) is done in a lab, whatever names, namespaces and
    labels the student used. Students add no labels, so the objects are found by what they do - any Gateway,
    VirtualService, DestinationRule or ServiceEntry of the lab that serves the chapter's hosts (the C(hosts) of the
    chapter's own VirtualServices, the host of its DestinationRule, its in-mesh probe's external host).
  - Sends the chapter's C(probes) through the ingress gateway as the student's C(curl) would (as
    M(istio_lab.lab.lab_verify) does, weighted routes sampled and judged against the lesson's weights).
  - Walks the links a request follows - VirtualService C(hosts), its C(gateways) entry, the Gateway's selector and
    servers, each destination's Service, namespace and port, the subset's DestinationRule and pods, the weights;
    for chapter 6 the ServiceEntry, the egress Gateway and the VirtualService's C(mesh) and egress legs - and, when
    the exercise is not done, explains the first broken one in the student's words, naming their object and field
    (for example that C(spec.gateways[0]) of VirtualService C(microservice/my-vs) names C(ingressgateway) but the
    Gateway is C(ingressgateway80)), with a hint for the common mistakes. What the objects cannot show (no ready
    endpoints, nothing answering, another server than Envoy) is explained from the probes' answers, as lab_verify
    does.
  - A manifest with a typo in C(apiVersion) or C(kind) (C(networking.istio.io/v1alpah3)) is refused by the API server
    when the student applies it, so it never exists in the cluster and no check can read it. The check sees only
    that the object is missing; its explanation (C(no route for <host> yet)) therefore says that an apply which
    printed an error is the likely cause, to read C(kubectl apply)'s error, and that the apiVersion must be
    C(networking.istio.io/v1).
  - The chapter's in-mesh probes (chapter 6) need a client pod's exec, which would cost more processes per lab; the
    check judges their path from the route table only and lists the commands to run.
  - One process per lab, reads only (LISTs of the four Istio kinds and Services, Pods of one namespace when a
    subset is checked, EndpointSlices only to explain a failed probe the objects do not explain). Never changes
    anything; runs in check mode too. Proxies of the environment are not used for the probes.
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
options:
  catalogue:
    description:
      - The chapter catalogue (C(lab_chapters)). The checked chapter must have C(exercise.student_objects), a list of
        C({kind, name, namespace}) naming which of its objects are the student's to write; their definitions in the
        chapter are the answer key the explanations quote.
    type: dict
    required: true
  chapter:
    description: The chapter id (a key of O(catalogue)) whose exercise to check.
    type: str
    required: true
  ingress_ip:
    description: The address to probe; empty reads C(status.loadBalancer.ingress[0].ip) of the ingress gateway Service.
    type: str
    default: ""
  ingress_namespace:
    description: Namespace of the ingress gateway Service.
    type: str
    default: istio-system
  ingress_service:
    description: Name of the ingress gateway Service.
    type: str
    default: istio-ingressgateway
  ingress_labels:
    description: Labels of the ingress gateway's pods; a student's Gateway must select only these.
    type: dict
    default: {app: istio-ingressgateway, istio: ingressgateway}
  egress_labels:
    description: Labels of the egress gateway's pods; chapter 6's Gateway must select only these.
    type: dict
    default: {app: istio-egressgateway, istio: egressgateway}
  http_port:
    description: The port the probes dial on the address.
    type: int
    default: 80
  gateway_port:
    description: The Gateway server port the routes must be on.
    type: int
    default: 80
  accept_redirects:
    description: Where 200 is expected, a redirect (3xx) also counts as a working route (Kiali redirects).
    type: bool
    default: true
  retries:
    description: How many times a probe that does not answer as expected is asked again (Istio pushes a new route
      within seconds).
    type: int
    default: 1
  delay:
    description: Seconds between two tries of one probe.
    type: float
    default: 2
  split_samples:
    description: Requests of each weighted route (chapter 5), counted.
    type: int
    default: 200
  split_tolerance:
    description: Percentage points a subset's share may stray from its weight.
    type: float
    default: 10
  timeout:
    description: Seconds each request may take.
    type: float
    default: 10
  api_version:
    description: API version of the Istio objects to read.
    type: str
    default: networking.istio.io/v1
requirements:
  - kubernetes (Python client)
notes:
  - Supports check mode (it only reads and sends GETs).
  - The role C(istio_lab.lab.lab_exercise_check) (playbook C(playbooks/check.yml)) calls it once per lab and writes
    C(artifacts/<lab>/check-<chapter>.json) and C(.md).
seealso:
  - module: istio_lab.lab.lab_verify
  - module: istio_lab.lab.istio_route_info
"""

EXAMPLES = r"""
- name: Check chapter 1's exercise
  istio_lab.lab.lab_exercise_check:
    catalogue: "{{ lab_chapters }}"
    chapter: "1"
  register: checked

- name: Say why it is not done yet
  ansible.builtin.debug:
    msg: "{{ checked.explanation + ([checked.hint] if checked.hint else []) }}"
  when: checked.state != 'done'
"""

RETURN = r"""
state:
  description: C(done) (every probe answered as the finished exercise does, every link holds) or C(not_yet).
  returned: success
  type: str
  sample: not_yet
reason:
  description: One short line for the class page; empty when done.
  returned: success
  type: str
  sample: no route for grafana-istio.kubernets.cn yet
explanation:
  description: The first broken link in the student's words, naming their object and field, then what their curl
    answers.
  returned: success
  type: list
  elements: str
  sample:
    - "VirtualService microservice/my-vs: spec.gateways[0] names 'ingressgateway' but the Gateway is 'ingressgateway80'"
    - "curl -i http://10.0.10.0/ answers 404 (server: istio-envoy)."
hint:
  description: A hint for the mistake, or null.
  returned: success
  type: str
chapter:
  description: The chapter checked.
  returned: success
  type: str
title:
  description: The chapter's title.
  returned: success
  type: str
ingress_ip:
  description: The address probed.
  returned: success
  type: str
probes:
  description: One entry per probe, as the report of M(istio_lab.lab.lab_verify) (chapter, host, url,
    expected_status, status, server, ok, explanation, split, mesh, skipped).
  returned: success
  type: list
  elements: dict
student_objects:
  description: The objects the check attributed to this exercise (found by what they do, of the kinds the exercise
    asks for), as C({apiVersion, kind, namespace, name}).
  returned: success
  type: list
  elements: dict
  sample: [{apiVersion: networking.istio.io/v1, kind: VirtualService, namespace: microservice, name: my-vs}]
checked_at:
  description: When the check ran (ISO 8601, UTC).
  returned: success
  type: str
api_requests:
  description: Number of API requests this call made, by verb.
  returned: always
  type: dict
  sample: {list: 5}
"""

import copy

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import run_guarded
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import CONNECTION_ARGS
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.exercise import check

ARGUMENT_SPEC = {
    **copy.deepcopy(CONNECTION_ARGS),
    "catalogue": {"type": "dict", "required": True},
    "chapter": {"type": "str", "required": True},
    "ingress_ip": {"type": "str", "default": ""},
    "ingress_namespace": {"type": "str", "default": "istio-system"},
    "ingress_service": {"type": "str", "default": "istio-ingressgateway"},
    "ingress_labels": {"type": "dict", "default": {"app": "istio-ingressgateway", "istio": "ingressgateway"}},
    "egress_labels": {"type": "dict", "default": {"app": "istio-egressgateway", "istio": "egressgateway"}},
    "http_port": {"type": "int", "default": 80},
    "gateway_port": {"type": "int", "default": 80},
    "accept_redirects": {"type": "bool", "default": True},
    "retries": {"type": "int", "default": 1},
    "delay": {"type": "float", "default": 2},
    "split_samples": {"type": "int", "default": 200},
    "split_tolerance": {"type": "float", "default": 10},
    "timeout": {"type": "float", "default": 10},
    "api_version": {"type": "str", "default": "networking.istio.io/v1"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if module.params["retries"] < 0 or module.params["split_samples"] < 0:
        module.fail_json(msg="retries and split_samples must not be negative")
    run_guarded(module, lambda client: check(client, module.params))


if __name__ == "__main__":
    main()
