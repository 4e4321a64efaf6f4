#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: lab_exercise_start
short_description: Make room for a chapter's exercise, keeping the objects students wrote
version_added: "1.0.0"
author: istio-lab contributors (@istio-lab)
description:
  - Reads each Istio object the O(chapter) of O(catalogue) brings (one GET each) and sorts them by the chapter's
    C(exercise.student_objects), the objects its students write.
  - A student's object that istio-lab did not create (no C(app.kubernetes.io/managed-by=istio-lab) label) is kept
    as it is, never overwritten or adopted, and listed in RV(kept).
  - istio-lab's own copy of a student's object (an answer key built by C(playbooks/chapter.yml)) is deleted, so
    that the exercise starts from where the student starts; listed in RV(removed).
  - Refuses, before any write, when an object istio-lab must write for the exercise (one the students do not
    write) exists without istio-lab's label.
  - Check mode reads only and reports what would be deleted.
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
options:
  catalogue:
    description: The chapter catalogue (C(lab_chapters)); the chapter's C(exercise.student_objects) lists
      C({kind, namespace, name}) of its own Gateways, VirtualServices, DestinationRules and ServiceEntries.
    type: dict
    required: true
  chapter:
    description: The chapter id (a key of O(catalogue)) whose exercise starts.
    type: str
    required: true
  api_version:
    description: API version of the Istio objects.
    type: str
    default: networking.istio.io/v1
requirements:
  - kubernetes (Python client)
notes:
  - Supports check mode.
seealso:
  - module: istio_lab.lab.istio_routes
  - module: istio_lab.lab.lab_verify
"""

EXAMPLES = r"""
- name: Make room for chapter 1's exercise
  istio_lab.lab.lab_exercise_start:
    catalogue: "{{ lab_chapters }}"
    chapter: "1"
  register: lab_exercise_start_result

- name: List the objects students already wrote
  ansible.builtin.debug:
    msg: "{{ lab_exercise_start_result.kept }}"
"""

RETURN = r"""
student_objects:
  description: The chapter's objects its students write (C(kind), C(namespace), C(name)).
  returned: success
  type: list
  elements: dict
  sample: [{kind: Gateway, namespace: microservice, name: ingressgateway80}]
kept:
  description: The students' objects found on the lab without istio-lab's label, left as they are.
  returned: success
  type: list
  elements: dict
  sample: [{kind: VirtualService, namespace: microservice, name: tomcat-virtualservice}]
removed:
  description: istio-lab's copies of the students' objects, deleted (in check mode, would be deleted).
  returned: success
  type: list
  elements: dict
  sample: []
api_requests:
  description: Number of API requests this call made, by verb.
  returned: always
  type: dict
  sample: {get: 2}
"""

import copy

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import run_guarded
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import CONNECTION_ARGS
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.exercise_start import start

ARGUMENT_SPEC = {
    **copy.deepcopy(CONNECTION_ARGS),
    "catalogue": {"type": "dict", "required": True},
    "chapter": {"type": "str", "required": True},
    "api_version": {"type": "str", "default": "networking.istio.io/v1"},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_guarded(module, lambda client: start(client, module.params, module.check_mode))


if __name__ == "__main__":
    main()
