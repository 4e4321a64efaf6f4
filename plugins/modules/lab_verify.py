#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: lab_verify
short_description: Verify a lab's routes through its ingress gateway and explain each failure, in one task
version_added: "1.3.0"
author: istio-lab contributors (@istio-lab)
description:
  - Reads the route table (as M(istio_lab.lab.istio_route_info) does), keeps the routes the ingress gateway serves,
    finds the address students curl (O(ingress_ip), or the external IP of the ingress gateway Service), and decides
    what to probe - every probe of the O(chapters) in O(catalogue), every host the route table binds on
    O(gateway_port), and O(unrouted_host), which must answer 404 from Envoy.
  - Sends the probes as M(istio_lab.lab.lab_http_probe) does (retried while not answered as expected; a weighted
    route sampled O(split_samples) times and its shares judged against the weights within O(split_tolerance)
    points), judges each answer, and explains each failure link by link from what the cluster holds (the chapter's
    Gateway and VirtualService, the route table's problems, the destination Service, its ready endpoints).
  - The catalogue's in-mesh probes (C(mesh_probes), chapter 6) need a client pod's exec and the egress gateway's
    log; with O(mesh_run) false they are reported as not run, with the commands to run and what the route table
    says about their path; with O(mesh_run) true their plan is returned in RV(mesh_plan) for the caller to run.
  - Everything in one process (the route table, the probes, the explanations). Never changes anything; runs in
    check mode too. Proxies of the environment are not used for the probes.
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
options:
  catalogue:
    description: The chapter catalogue (C(lab_chapters)), chapter id to its objects, C(probes) and C(mesh_probes).
    type: dict
    required: true
  chapters:
    description: Chapter ids (keys of O(catalogue)) whose probes to run.
    type: list
    elements: str
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
    description: Labels of the ingress gateway's pods; a Gateway whose selector holds only these is served at the
      ingress IP (an egress Gateway's routes are not probed from outside).
    type: dict
    default: {app: istio-ingressgateway, istio: ingressgateway}
  http_port:
    description: The port the probes dial on the address.
    type: int
    default: 80
  gateway_port:
    description: The Gateway server port whose routes are probed.
    type: int
    default: 80
  unrouted_host:
    description: A host name no chapter uses; it must answer 404 from Envoy unless a wildcard route catches it.
      Empty leaves this probe out.
    type: str
    default: ""
  accept_redirects:
    description: Where 200 is expected, a redirect (3xx) also counts as a working route (Kiali redirects).
    type: bool
    default: true
  retries:
    description: How many times a probe that does not answer as expected is asked again.
    type: int
    default: 3
  delay:
    description: Seconds between two tries of one probe.
    type: float
    default: 2
  split_samples:
    description: Requests of each weighted route (a probe with C(split)), counted.
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
  mesh_run:
    description: The caller runs the in-mesh probes (running pods); false reports them as not run here.
    type: bool
    default: false
  api_version:
    description: API version of the Istio objects to read.
    type: str
    default: networking.istio.io/v1
requirements:
  - kubernetes (Python client)
notes:
  - Supports check mode (it only reads and sends GETs).
  - The role C(istio_lab.lab.lab_verify) calls it, writes the report and fails the play when a probe failed.
seealso:
  - module: istio_lab.lab.istio_route_info
  - module: istio_lab.lab.lab_http_probe
"""

EXAMPLES = r"""
- name: Verify chapters 1 to 3 at the ingress gateway's external IP
  istio_lab.lab.lab_verify:
    catalogue: "{{ lab_chapters }}"
    chapters: ["1", "2", "3"]
    unrouted_host: istio-lab-no-route.kubernets.cn
  register: verified

- name: Fail when a probe failed
  ansible.builtin.assert:
    that: verified.failed_probes == 0
    fail_msg: "{{ verified.report | rejectattr('ok') | map(attribute='explanation') | list }}"
"""

RETURN = r"""
report:
  description: One entry per probe, the ingress probes first, then the in-mesh probes not run here.
  returned: success
  type: list
  elements: dict
  contains:
    chapter:
      description: The chapter id of the probe (empty for the unrouted host).
      type: str
    host:
      description: The Host header sent (empty for the bare address).
      type: str
    url:
      description: The URL requested.
      type: str
    expected_status:
      description: What the probe must answer.
      type: int
    status:
      description: What it answered; null when nothing answered.
      type: int
    server:
      description: The answer's C(server) header.
      type: str
    ok:
      description: Whether the probe answered as expected (and its split followed the weights).
      type: bool
    explanation:
      description: Why it failed, link by link; empty when it did not.
      type: str
    split:
      description: A weighted route's outcome (C(ok), C(samples), C(expected), C(observed), C(counts), C(text)).
      type: dict
    mesh:
      description: True for an in-mesh probe.
      type: bool
    skipped:
      description: True for an in-mesh probe not run here.
      type: bool
  sample:
    - chapter: "2"
      host: prometheus-istio.kubernets.cn
      url: http://10.0.10.0/
      expected_status: 200
      status: 200
      server: istio-envoy
      ok: true
      explanation: ""
ingress_ip:
  description: The address probed.
  returned: success
  type: str
  sample: 10.0.10.0
failed_probes:
  description: How many entries of RV(report) failed.
  returned: success
  type: int
  sample: 0
mesh_plan:
  description: With O(mesh_run), the in-mesh probes to run (client, C(exec_command), C(via), C(log_pattern),
    C(kubectl), C(route_problems)); empty otherwise.
  returned: success
  type: list
  elements: dict
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
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.verify import verify

ARGUMENT_SPEC = {
    **copy.deepcopy(CONNECTION_ARGS),
    "catalogue": {"type": "dict", "required": True},
    "chapters": {"type": "list", "elements": "str", "required": True},
    "ingress_ip": {"type": "str", "default": ""},
    "ingress_namespace": {"type": "str", "default": "istio-system"},
    "ingress_service": {"type": "str", "default": "istio-ingressgateway"},
    "ingress_labels": {"type": "dict", "default": {"app": "istio-ingressgateway", "istio": "ingressgateway"}},
    "http_port": {"type": "int", "default": 80},
    "gateway_port": {"type": "int", "default": 80},
    "unrouted_host": {"type": "str", "default": ""},
    "accept_redirects": {"type": "bool", "default": True},
    "retries": {"type": "int", "default": 3},
    "delay": {"type": "float", "default": 2},
    "split_samples": {"type": "int", "default": 200},
    "split_tolerance": {"type": "float", "default": 10},
    "timeout": {"type": "float", "default": 10},
    "mesh_run": {"type": "bool", "default": False},
    "api_version": {"type": "str", "default": "networking.istio.io/v1"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if module.params["retries"] < 0 or module.params["split_samples"] < 0:
        module.fail_json(msg="retries and split_samples must not be negative")
    run_guarded(module, lambda client: verify(client, module.params))


if __name__ == "__main__":
    main()
