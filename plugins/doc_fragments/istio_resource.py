# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options, requirements and notes shared by the single-kind Istio modules (istio_gateway,
istio_virtual_service, istio_destination_rule, istio_service_entry), as kubernetes.core's k8s modules share
theirs; each module names its kind, its own validation rules and its examples. A module may override an
option's description (ansible-doc merges an option's fields, the module's winning)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  name:
    description:
      - Name of the object (of the module's kind). Required unless O(definitions) is given; mutually exclusive
        with it.
    type: str
  namespace:
    description:
      - Namespace of the object. Required with O(name); the default namespace of the entries of O(definitions).
    type: str
  spec:
    description:
      - The object's C(spec), as the Istio documentation and the course write it in YAML. Required with
        O(state=present).
    type: dict
  labels:
    description:
      - Labels to set, besides C(app.kubernetes.io/managed-by=istio-lab). With O(definitions), every entry gets them
        (an entry's own O(definitions[].labels) win).
    type: dict
  annotations:
    description:
      - Annotations to set. With O(definitions), every entry gets them (an entry's own win).
    type: dict
  state:
    description:
      - V(present) creates or updates the object, V(absent) deletes it. Deleting an object that does not exist, or
        whose CRD is not installed, is not an error.
      - The default state of the entries of O(definitions).
    type: str
    choices: [present, absent]
    default: present
  api_version:
    description:
      - API version of the object; C(networking.istio.io/v1) is served by Istio 1.22 and later.
    type: str
    default: networking.istio.io/v1
  validate:
    description:
      - How validation failures of cross-object rules are reported.
      - Validation always checks the schema of the CRD the cluster serves, with unknown (misspelt) fields as errors
        (the API server itself drops them silently), and Istio's rules within one object; those always fail.
        The module's description names the Istio rules it checks for its kind.
      - V(strict) fails on a cross-object problem; V(warn) reports it as a warning and applies anyway (objects applied
        out of order). In check mode cross-object problems are warnings, since earlier tasks of the same run only
        pretended to apply what they refer to.
      - When the credentials may not read the CRD, the API server validates each write with a strict server-side
        dry run instead.
    type: str
    choices: [strict, warn]
    default: strict
  adopt:
    description:
      - Take over an existing object that istio-lab did not create (update and label it, or delete it with
        O(state=absent)). Without it such an object is never touched and the task fails naming it.
    type: bool
    default: false
  definitions:
    description:
      - Several objects of the module's kind applied by one task, validated as a whole before the first write.
        Mutually exclusive with O(name).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the object.
        type: str
        required: true
      namespace:
        description: Namespace of the object; defaults to O(namespace).
        type: str
      spec:
        description: The object's C(spec); required with state V(present).
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
requirements:
  - kubernetes (Python client, for kubeconfig loading and HTTP)
  - jsonschema
notes:
  - One task applies one object (O(name), O(namespace), O(spec)) or a list (O(definitions)), reading the live objects
    with one LIST request per namespace scope, never one GET per object, and writing only objects that differ.
  - Every object carries the label C(app.kubernetes.io/managed-by=istio-lab). Objects without it are never touched
    (the task fails naming them) unless O(adopt=true).
  - Before any write the whole input is validated, and an invalid input fails naming the object and the field path
    (for example C(spec.http[0].route[1].weight)) and writes nothing.
  - Labels and annotations given are added or updated; keys others set on the live object are left alone.
  - Supports check mode (nothing is written; RV(changed) says whether something would be) and diff mode (before and
    after of each object).
  - Updates replace the object with the live C(resourceVersion); a 409 conflict re-reads it and retries. Throttling
    and transient server errors (429, 5xx) and connection failures are retried with exponential backoff.
  - Every write carries C(fieldValidation=Strict) as a last line of defence.
  - "When Istio's CRDs are not installed the task fails with: install Istio first: playbooks/istio.yml."
"""
