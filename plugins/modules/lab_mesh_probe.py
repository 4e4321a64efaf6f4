#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: lab_mesh_probe
short_description: Send the in-mesh requests from their client pods and read the egress gateway's log, in one task
version_added: "1.4.0"
author: istio-lab contributors (@istio-lab)
description:
  - Runs the in-mesh probes M(istio_lab.lab.lab_verify) plans (its RV(istio_lab.lab.lab_verify#module:mesh_plan));
    for each entry it finds a running pod of the client (label C(app)), sends the request from it through the pod's
    C(exec) subresource, and reads the log of the gateway the request must pass through (C(via)).
  - Everything through istio-lab's API client, in one process; the Kubernetes API's 429, 500, 502, 503, 504 and
    dropped connections are tried again as every istio-lab module does (the wait doubling from 0.2 s to 5 s,
    C(Retry-After) followed, 5 tries), the exec's websocket handshake included. A request that keeps failing, a
    pod that is missing or an exec the API refuses is reported in the entry (C(failed), C(msg)), not as a task
    failure; the filter C(istio_lab.lab.lab_verify_mesh_report) judges the entries.
  - Never changes anything in the cluster; runs in check mode too (the request sent from the pod is a read).
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
options:
  plan:
    description:
      - The in-mesh probes, as RV(istio_lab.lab.lab_verify#module:mesh_plan) returns them; each entry's C(url),
        C(client) (C(namespace), C(app), C(container)), C(exec_argv) and C(via) (C(namespace), C(selector),
        C(container); empty for no log to read) are used.
    type: list
    elements: dict
    required: true
  timeout:
    description: Seconds the request may take (the command is given 10 s more to end).
    type: float
    default: 10
  since_seconds:
    description: How far back the gateway's log is read, in seconds.
    type: int
    default: 300
requirements:
  - kubernetes (Python client) and websocket-client (the exec subresource)
notes:
  - The exec subresource is a websocket; the tests' API double does not serve it (404), so the request itself runs
    only on a real cluster. The pod look-ups, the log and the retries of every step are tested against the double.
"""

EXAMPLES = r"""
- name: Send the requests from inside the mesh
  istio_lab.lab.lab_mesh_probe:
    plan: "{{ lab_verify_result.mesh_plan }}"
  register: mesh

- name: Judge them
  ansible.builtin.set_fact:
    mesh_report: "{{ lab_verify_result.mesh_plan | istio_lab.lab.lab_verify_mesh_report(mesh.execs, mesh.logs) }}"
"""

RETURN = r"""
execs:
  description: One entry per plan entry, the request sent from the client pod.
  returned: success
  type: list
  elements: dict
  contains:
    item:
      description: "The plan entry's C(url) (C({url: ...}))."
      type: dict
    pod:
      description: "The client pod the request was sent from (absent when none runs)."
      type: str
    stdout:
      description: "The command's output (curl's status code)."
      type: str
    stderr:
      description: "The command's errors."
      type: str
    rc:
      description: "The command's exit code (null when it did not run)."
      type: int
    failed:
      description: "The request did not run or did not succeed."
      type: bool
    msg:
      description: "Why (empty when it succeeded)."
      type: str
    attempts:
      description: "The exec's tries (the handshake retried on 429/5xx or a dropped connection)."
      type: int
logs:
  description: One entry per plan entry with a C(via), the gateway's log.
  returned: success
  type: list
  elements: dict
  contains:
    item:
      description: "The plan entry's C(url) (C({url: ...}))."
      type: dict
    pod:
      description: "The gateway pod whose log was read."
      type: str
    log:
      description: "The log of the last O(since_seconds)."
      type: str
    failed:
      description: "The log could not be read."
      type: bool
    msg:
      description: "Why."
      type: str
api_requests:
  description: Requests sent to the API server by verb (C(exec) counts each try of the websocket).
  returned: always
  type: dict
"""

import copy

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import run_guarded
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import CONNECTION_ARGS
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.mesh_probe import mesh_probe

ARGUMENT_SPEC = {
    **copy.deepcopy(CONNECTION_ARGS),
    "plan": {"type": "list", "elements": "dict", "required": True},
    "timeout": {"type": "float", "default": 10},
    "since_seconds": {"type": "int", "default": 300},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_guarded(module, lambda client: mesh_probe(client, module.params["plan"], module.params["timeout"],
                                                  module.params["since_seconds"]))


if __name__ == "__main__":
    main()
