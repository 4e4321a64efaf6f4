# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find, delete, save or restore the objects of an istio-lab chapter."""

DOCUMENTATION = r"""
module: lab_chapter_objects
short_description: Find, delete, save or restore the objects of an istio-lab chapter
description:
  - Finds every object of a chapter by label (the chapter label and istio-lab's managed-by label),
    across all namespaces and the kinds a chapter may create (Istio routes and security policies,
    Deployments, StatefulSets, DaemonSets, Services, ConfigMaps, Secrets, ServiceAccounts,
    PersistentVolumeClaims, Roles, RoleBindings, and the namespaces the chapter created), with one
    list request per kind. Kinds the cluster does not serve (Istio CRDs absent) are skipped.
  - C(state=absent) deletes them in dependency order (routes, then apps, then namespaces) and waits
    until they are gone. A namespace the chapter created is kept while another chapter's objects live in it,
    or while it holds objects istio-lab did not create (a student's own, of any namespaced kind the cluster
    serves; not what Kubernetes, its controllers or Istio make there), unless O(remove_foreign). A kept
    namespace is listed with those objects and annotated C(istio-lab.io/kept-for); a re-run that finds the
    same objects and nothing else to delete says nothing.
  - C(state=saved) writes them to O(path), stripped of server-set fields, with C(manifest.yml)
    (chapter, cluster identity, sha256 per file). Files are mode 0600 (a save may hold Secrets).
  - C(state=verified) only checks a save as a restore would (reads one namespace of the cluster, writes nothing);
    a restore of several chapters verifies them all before restoring the first.
  - C(state=restored) verifies the save (checksums, chapter, labels, cluster identity unless O(force))
    and refuses a corrupt or foreign save before any write, then creates what is missing and replaces
    what differs; identical objects are not written.
  - Check mode reads only and reports what would be deleted, saved or written.
extends_documentation_fragment:
  - istio_lab.lab.istio_lab_auth
options:
  chapter:
    description: The chapter id (a key of C(lab_chapters)), or C(all) for every chapter (states listed and absent).
    type: str
    required: true
  state:
    description: What to do with the chapter's objects.
    type: str
    choices: [listed, absent, saved, verified, restored]
    default: listed
  chapter_label:
    description: The label whose value is the chapter id.
    type: str
    default: istio-lab.io/chapter
  match_labels:
    description: Labels every chapter object carries besides the chapter label (istio-lab's managed-by label).
    type: dict
    default: {app.kubernetes.io/managed-by: istio-lab}
  path:
    description: The save directory of one cluster's chapter (states saved, verified and restored).
    type: path
  cluster:
    description: The cluster's name, recorded in a save and checked on restore (the inventory host).
    type: str
  force:
    description: Restore a save taken on another cluster (name or kube-system uid differ).
    type: bool
    default: false
  wait:
    description: Wait until deleted objects are gone (state absent).
    type: bool
    default: true
  remove_foreign:
    description: Delete the chapter's namespaces even when they hold objects istio-lab did not create (state absent).
    type: bool
    default: false
  student_objects:
    description:
      - Objects a check attributed to the chapter's exercise (C(check-<chapter>.json), C(student_objects)), deleted
        first, exactly these (state absent). Those not on the cluster are skipped.
    type: list
    elements: dict
    default: []
    suboptions:
      apiVersion:
        description: The object's apiVersion.
        type: str
        required: true
      kind:
        description: The object's kind.
        type: str
        required: true
      namespace:
        description: The object's namespace.
        type: str
        required: true
      name:
        description: The object's name.
        type: str
        required: true
  wait_timeout:
    description:
      - Seconds to wait for deleted objects to go (state absent; a deleted namespace stays Terminating
        until the cluster has emptied it), and for a namespace of the save that is still terminating
        to be gone before it is restored (state restored).
    type: int
    default: 300
author: istio-lab contributors (@istio-lab)
"""

EXAMPLES = r"""
- name: Reset chapter 1
  istio_lab.lab.lab_chapter_objects:
    chapter: "1"
    state: absent

- name: Reset chapter 1 with the objects the last check attributed to the student
  istio_lab.lab.lab_chapter_objects:
    chapter: "1"
    state: absent
    student_objects: "{{ (lookup('file', 'artifacts/lab/check-1.json') | from_json).student_objects }}"

- name: Save chapter 3
  istio_lab.lab.lab_chapter_objects:
    chapter: "3"
    state: saved
    path: saves/lab/3
    cluster: lab
"""

RETURN = r"""
objects:
  description: One row per object, in the order handled.
  returned: always
  type: list
  elements: dict
  sample: [{chapter: "1", kind: VirtualService, namespace: microservice, name: tomcat-virtualservice, action: deleted}]
table:
  description: The rows as a short aligned table (CHAPTER KIND NAMESPACE NAME ACTION), one line each.
  returned: always
  type: list
  elements: str
unserved_kinds:
  description: Kinds skipped because the cluster does not serve them (their CRD is not installed).
  returned: always
  type: list
  elements: str
api_requests:
  description: API requests made, by verb.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import CONNECTION_ARGS
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.chapter_objects import (
    ALL_CHAPTERS,
    HAS_YAML,
    YAML_IMPORT_ERROR,
    Api,
    Chapters,
    row,
    table,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    KubeError,
    client_from_params,
)

ARGUMENT_SPEC = {
    "chapter": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["listed", "absent", "saved", "verified", "restored"], "default": "listed"},
    "chapter_label": {"type": "str", "default": "istio-lab.io/chapter"},
    "match_labels": {"type": "dict", "default": {"app.kubernetes.io/managed-by": "istio-lab"}},
    "path": {"type": "path"},
    "cluster": {"type": "str"},
    "force": {"type": "bool", "default": False},
    "wait": {"type": "bool", "default": True},
    "remove_foreign": {"type": "bool", "default": False},
    "student_objects": {"type": "list", "elements": "dict", "default": [], "options": {
        "apiVersion": {"type": "str", "required": True},
        "kind": {"type": "str", "required": True},
        "namespace": {"type": "str", "required": True},
        "name": {"type": "str", "required": True},
    }},
    "wait_timeout": {"type": "int", "default": 300},
    **CONNECTION_ARGS,
}


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("state", state, ["path", "cluster"]) for state in ("saved", "verified", "restored")],
        supports_check_mode=True,
    )
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR))
    if not HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(YAML_IMPORT_ERROR))
    params = module.params
    chapter, state = str(params["chapter"]), params["state"]
    if chapter == ALL_CHAPTERS and state not in ("listed", "absent"):
        module.fail_json(msg=f"state {state} takes one chapter id, not {ALL_CHAPTERS}")
    result = {"changed": False, "objects": [], "table": [], "unserved_kinds": [], "api_requests": {}}
    client = None
    try:
        client = client_from_params(params, light_imports=True)
        chapters = Chapters(Api(client), params["chapter_label"], params["match_labels"], module.check_mode)
        if state == "listed":
            changed, rows = chapters.list(chapter)
        elif state == "absent":
            changed, rows = chapters.delete(chapter, params["wait"], params["wait_timeout"],
                                            remove_foreign=params["remove_foreign"],
                                            student_objects=params["student_objects"])
        elif state == "saved":
            changed, rows = chapters.save(chapter, params["path"], params["cluster"])
        elif state == "verified":
            saved = chapters.verify(chapter, params["path"], params["cluster"], params["force"])
            changed, rows = False, [row(obj, "verified", chapter) for obj in saved]
        else:
            changed, rows = chapters.restore(chapter, params["path"], params["cluster"], params["force"],
                                             params["wait_timeout"])
        result.update(changed=changed, objects=rows, table=table(rows), unserved_kinds=chapters.unserved_kinds)
    except (KubeError, OSError) as exc:
        result["api_requests"] = client.counts if client else {}
        module.fail_json(msg=str(exc), **result)
    result["api_requests"] = client.counts
    module.exit_json(**result)


if __name__ == "__main__":
    main()
