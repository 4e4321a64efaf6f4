#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: lab_http_split
short_description: Send the same HTTP request many times and count which subset answered
version_added: "1.2.0"
author: istio-lab contributors
description:
  - Sends O(samples) GET requests to O(url), with the C(Host) header O(host), one after the other over fresh
    connections (so that the gateway's load balancing picks a destination for each), and counts the values of the
    response header O(header), the statuses and the C(server) headers.
  - lab_verify uses it to check a weighted route (chapter 5, traffic shifting), whose destinations each set a
    response header naming their subset; the judging against the weights is done by the
    C(lab_verify_split_outcome) filter.
  - One task, one process, whatever the number of samples (an Ansible loop would cost a process per request).
  - Never changes anything; runs in check mode too.
options:
  url:
    description: The URL to request (the ingress gateway's address), C(http://) only.
    type: str
    required: true
  host:
    description: The C(Host) header; empty keeps the URL's host.
    type: str
    default: ""
  header:
    description: The response header whose values are counted (case-insensitive).
    type: str
    required: true
  samples:
    description: How many requests to send.
    type: int
    default: 100
  timeout:
    description: Seconds each request may take.
    type: float
    default: 10
requirements: []
notes:
  - Supports check mode (it only reads).
  - Proxies from the environment are not used.
seealso:
  - name: Istio traffic shifting
    description: The task chapter 5 follows.
    link: https://istio.io/latest/docs/tasks/traffic-management/traffic-shifting/
"""

EXAMPLES = r"""
- name: Count which tomcat version answers, 200 times
  lab_http_split:
    url: http://10.0.10.0/
    host: tomcat.kubernets.cn
    header: x-istio-lab-subset
    samples: 200
  register: shift

- name: Show the split
  ansible.builtin.debug:
    msg: "{{ shift.values }}"
"""

RETURN = r"""
samples:
  description: The number of requests sent.
  returned: always
  type: int
  sample: 200
values:
  description: How many answers carried each value of O(header); answers without it count under the empty string.
  returned: always
  type: dict
  sample: {v1: 181, v2: 19}
statuses:
  description: How many answers had each status (as a string); C(error) counts requests that got no answer.
  returned: always
  type: dict
  sample: {"200": 200}
servers:
  description: How many answers had each C(server) header.
  returned: always
  type: dict
  sample: {istio-envoy: 200}
errors:
  description: The first few errors of requests that got no answer.
  returned: always
  type: list
  elements: str
  sample: []
"""

import http.client
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule


def sample(url, host, header, samples, timeout):
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are probed, not {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    result = {"samples": samples, "values": {}, "statuses": {}, "servers": {}, "errors": []}
    for _ in range(samples):
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": host} if host else {})
            response = conn.getresponse()
            response.read()
            status, server, value = str(response.status), response.getheader("server") or "", \
                response.getheader(header) or ""
        except (OSError, http.client.HTTPException) as exc:
            result["statuses"]["error"] = result["statuses"].get("error", 0) + 1
            if len(result["errors"]) < 5:
                result["errors"].append(str(exc))
            continue
        finally:
            conn.close()
        result["statuses"][status] = result["statuses"].get(status, 0) + 1
        result["servers"][server] = result["servers"].get(server, 0) + 1
        result["values"][value] = result["values"].get(value, 0) + 1
    return result


ARGUMENT_SPEC = {
    "url": {"type": "str", "required": True},
    "host": {"type": "str", "default": ""},
    "header": {"type": "str", "required": True},
    "samples": {"type": "int", "default": 100},
    "timeout": {"type": "float", "default": 10},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if params["samples"] < 1:
        module.fail_json(msg="samples must be at least 1")
    try:
        result = sample(params["url"], params["host"], params["header"], params["samples"], params["timeout"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
