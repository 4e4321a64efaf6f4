#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: lab_http_probe
short_description: Probe every route of a lab through its gateway, as a student's curl would, in one task
version_added: "1.2.0"
author: istio-lab contributors (@istio-lab)
description:
  - Sends, for each probe, a GET to O(base_url) plus the probe's C(path) with the probe's C(host) as C(Host) header,
    over a fresh connection, and returns the status and the C(server) and C(location) headers.
  - A probe with C(expected_status) is retried O(retries) times, O(delay) seconds apart, while the answer is not the
    expected one (the gateway's Envoy may not have the newest route yet); then its last answer is returned as it is.
    Any status is an answer to judge, not a failure of the task.
  - A probe with C(split.header) (a weighted route, chapter 5's traffic shifting) is then requested O(samples) more
    times, counting the values of that response header (each destination names its subset in it), the statuses and
    the C(server) headers.
  - Every probe in one process, whatever their number and the samples (an Ansible loop costs a process per item).
  - Never changes anything; runs in check mode too. Proxies of the environment are not used.
options:
  base_url:
    description: The gateway's address, C(http://<ingress IP>:<port>).
    type: str
    required: true
  probes:
    description:
      - The probes, each a dict with C(path) (default C(/)), C(host) (the C(Host) header; empty for the bare address),
        optionally C(expected_status) (an integer) and C(split) (a dict whose C(header) names the response header to
        count). Other keys are kept as they are and returned in RV(results[].item), so the caller's judging can read
        them.
    type: list
    elements: dict
    required: true
  server:
    description: The C(server) header an expected answer carries (what Envoy sets); empty accepts any.
    type: str
    default: istio-envoy
  accept_redirects:
    description: Where 200 is expected, a redirect (3xx) also counts as the expected answer (Kiali redirects).
    type: bool
    default: true
  retries:
    description: How many times an unexpected answer is asked again.
    type: int
    default: 0
  delay:
    description: Seconds between two tries of one probe.
    type: float
    default: 1
  samples:
    description: Requests of each probe with C(split), counted.
    type: int
    default: 100
  timeout:
    description: Seconds each request may take.
    type: float
    default: 10
requirements: []
notes:
  - Supports check mode (it only reads).
seealso:
  - name: Istio traffic shifting
    description: The task chapter 5 follows.
    link: https://istio.io/latest/docs/tasks/traffic-management/traffic-shifting/
"""

EXAMPLES = r"""
- name: Probe the chapters' hosts through the ingress gateway
  istio_lab.lab.lab_http_probe:
    base_url: http://10.0.10.0:80
    probes:
      - {host: "", path: /, expected_status: 200}
      - {host: prometheus-istio.kubernets.cn, path: /, expected_status: 200}
      - {host: istio-lab-no-route.kubernets.cn, path: /, expected_status: 404}
    retries: 3
    delay: 2
  register: probes

- name: Count which tomcat version answers, 200 times
  istio_lab.lab.lab_http_probe:
    base_url: http://10.0.10.0:80
    probes:
      - {host: tomcat.kubernets.cn, expected_status: 200, split: {header: x-istio-lab-subset}}
    samples: 200
  register: shift
"""

RETURN = r"""
results:
  description: One entry per probe, in order.
  returned: always
  type: list
  elements: dict
  contains:
    item:
      description: The probe as given.
      type: dict
    url:
      description: The URL requested.
      type: str
    status:
      description: The status of the last answer; null when nothing answered.
      type: int
    server:
      description: Its C(server) header.
      type: str
    location:
      description: Its C(location) header (redirects).
      type: str
    msg:
      description: C(HTTP <status>), or C(Request failed) and the reason when nothing answered.
      type: str
    attempts:
      description: Requests sent before the answer was taken.
      type: int
    samples:
      description: Requests counted (probes with C(split) only).
      type: int
    values:
      description: How many counted answers carried each value of the C(split.header); empty string for none.
      type: dict
    statuses:
      description: How many counted answers had each status (as a string); C(error) for no answer.
      type: dict
    servers:
      description: How many counted answers had each C(server) header.
      type: dict
    errors:
      description: The first few errors of counted requests that got no answer.
      type: list
      elements: str
  sample:
    - item: {host: tomcat.kubernets.cn, path: /, expected_status: 200, split: {header: x-istio-lab-subset}}
      url: http://10.0.10.0:80/
      status: 200
      server: istio-envoy
      location: ""
      msg: HTTP 200
      attempts: 1
      samples: 200
      values: {v1: 181, v2: 19}
      statuses: {"200": 200}
      servers: {istio-envoy: 200}
      errors: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.probe import probe_all

ARGUMENT_SPEC = {
    "base_url": {"type": "str", "required": True},
    "probes": {"type": "list", "elements": "dict", "required": True},
    "server": {"type": "str", "default": "istio-envoy"},
    "accept_redirects": {"type": "bool", "default": True},
    "retries": {"type": "int", "default": 0},
    "delay": {"type": "float", "default": 1},
    "samples": {"type": "int", "default": 100},
    "timeout": {"type": "float", "default": 10},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if params["retries"] < 0 or params["samples"] < 0:
        module.fail_json(msg="retries and samples must not be negative")
    try:
        results = probe_all(params["base_url"], params["probes"], params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, results=results)


if __name__ == "__main__":
    main()
