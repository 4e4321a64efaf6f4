# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The start of an exercise (playbooks/exercise.yml): which of a chapter's
objects are the students' to write (`lab_chapters[<id>].exercise.
student_objects`), the catalogue the start builds (the chapter without them,
each probe expecting what a student's curl answers before their work: 404
from Envoy), and the one read of the lab that keeps the students' own
objects and removes istio-lab's copies of them (an answer key built by
chapter.yml).

Pure logic first, then the requests (`start`), which the module
lab_exercise_start runs in one process.
"""

from __future__ import annotations

import copy

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import KubeError
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.normalize import is_managed
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.resource import (
    DEFAULT_API_VERSION,
    IstioResource,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.verify import (
    _chapter_ids,
    _host_matches,
    lab_unknown_chapters,
)

# kind -> the chapter catalogue's key, in the order objects are created (deletions go in reverse).
KIND_KEYS = {"ServiceEntry": "service_entries", "Gateway": "gateways", "VirtualService": "virtual_services",
             "DestinationRule": "destination_rules"}


class ExerciseError(KubeError):
    """The exercise cannot start (unknown chapter, no exercise, a student's object the chapter does not bring, a
    student's object where istio-lab must write one of its own): nothing was written."""


def _ref(obj):
    return f"{obj['kind']} {obj['namespace']}/{obj['name']}"


def _chapter(catalogue, chapter):
    unknown = lab_unknown_chapters(catalogue, chapter)
    if unknown:
        raise ExerciseError(f"unknown chapter {unknown[0]!r}: say -e chapter=<id>, one of "
                            f"{', '.join(map(str, catalogue))}")
    return str(chapter), catalogue[str(chapter)]


def chapter_objects(entry):
    """Every Istio object the chapter brings, as [{kind, namespace, name}] in creation order."""
    return [{"kind": kind, "namespace": obj["namespace"], "name": obj["name"]}
            for kind, key in KIND_KEYS.items() for obj in entry.get(key) or []]


def student_objects(catalogue, chapter):
    """The chapter's objects its students write, [{kind, namespace, name}], checked against what the chapter
    brings (a typo in the catalogue would otherwise leave istio-lab building the answer)."""
    chapter, entry = _chapter(catalogue, chapter)
    listed = ((entry.get("exercise") or {}).get("student_objects")) or []
    if not listed:
        raise ExerciseError(f"chapter {chapter} has no exercise: lab_chapters['{chapter}'].exercise.student_objects "
                            "names none of its objects")
    own = {(o["kind"], o["namespace"], o["name"]) for o in chapter_objects(entry)}
    found = []
    for obj in listed:
        item = {"kind": str(obj.get("kind")), "namespace": str(obj.get("namespace")), "name": str(obj.get("name"))}
        if (item["kind"], item["namespace"], item["name"]) not in own:
            raise ExerciseError(f"lab_chapters['{chapter}'].exercise.student_objects names {_ref(item)}, which "
                                f"chapter {chapter} does not bring (its objects: "
                                f"{', '.join(sorted(_ref(o) for o in chapter_objects(entry)))})")
        found.append(item)
    return found


def _required_chapters(catalogue, chapter, seen=None):
    """The chapters `chapter` builds on, transitively."""
    seen = set() if seen is None else seen
    for required in _chapter_ids((catalogue[chapter].get("requires") or {}).get("chapters") or []):
        if required not in seen and required in catalogue:
            seen.add(required)
            _required_chapters(catalogue, required, seen)
    return seen


def start_status(host, virtual_services):
    """What a student's curl of `host` answers at the exercise's start: 200 when a VirtualService that is
    already there (a chapter this one builds on: chapter 1's '*' before chapter 5) binds it, else 404."""
    for vs in virtual_services:
        for pattern in (vs.get("spec") or {}).get("hosts") or []:
            if _host_matches(pattern, host or "*"):
                return 200
    return 404


def lab_exercise_start_catalogue(catalogue, chapter):
    """The catalogue the exercise's start builds and probes: the chapter without its students' objects, each
    probe expecting its start status (no split: the lesson's weights are the student's work), no in-mesh
    probes (the path out is the student's work). Other chapters are unchanged."""
    chapter, entry = _chapter(catalogue, chapter)
    theirs = {(o["kind"], o["namespace"], o["name"]) for o in student_objects(catalogue, chapter)}
    start = dict(catalogue)
    entry = copy.deepcopy(entry)
    for kind, key in KIND_KEYS.items():
        entry[key] = [obj for obj in entry.get(key) or [] if (kind, obj["namespace"], obj["name"]) not in theirs]
    there = list(entry["virtual_services"])
    for required in sorted(_required_chapters(catalogue, chapter)):
        there += catalogue[required].get("virtual_services") or []
    probes = []
    for probe in entry.get("probes") or []:
        probe = {key: value for key, value in probe.items() if key != "split"}
        probe["status"] = start_status(probe.get("host") or "", there)
        probes.append(probe)
    entry["probes"] = probes
    entry["mesh_probes"] = []
    start[chapter] = entry
    return start


def plan_start(student, chapter_objs, live):
    """What the start does with each of the chapter's objects, from `live` ({(kind, ns, name): object or None}):
    {kept: the students' own (not istio-lab's: never overwritten, never adopted), remove: istio-lab's copies of
    the students' objects (in deletion order), refused: objects istio-lab must write where a student's of the
    same kind and name stands}."""
    theirs = {(o["kind"], o["namespace"], o["name"]) for o in student}
    kept, remove, refused = [], [], []
    for obj in chapter_objs:
        key = (obj["kind"], obj["namespace"], obj["name"])
        current = live.get(key)
        if current is None:
            continue
        if key in theirs:
            (remove if is_managed(current) else kept).append(obj)
        elif not is_managed(current):
            refused.append(obj)
    order = list(KIND_KEYS)
    remove.sort(key=lambda o: -order.index(o["kind"]))
    return {"kept": kept, "remove": remove, "refused": refused}


def start(client, options, check_mode=False):
    """Read the chapter's objects (one GET each), refuse before any write where istio-lab would have to
    overwrite a student's object, delete istio-lab's copies of the students' objects. The module's result."""
    catalogue, chapter = options["catalogue"], str(options["chapter"])
    student = student_objects(catalogue, chapter)
    objs = chapter_objects(catalogue[chapter])
    api_version = options.get("api_version") or DEFAULT_API_VERSION
    resources = {kind: IstioResource(client, kind, api_version) for kind in KIND_KEYS}
    live = {(o["kind"], o["namespace"], o["name"]): resources[o["kind"]].get(o["namespace"], o["name"])
            for o in objs}
    plan = plan_start(student, objs, live)
    if plan["refused"]:
        raise ExerciseError(
            f"{', '.join(_ref(o) for o in plan['refused'])} exist(s) but istio-lab did not create them (no "
            "app.kubernetes.io/managed-by=istio-lab label), and chapter "
            f"{chapter}'s exercise start must write them: istio-lab never overwrites a student's object. Delete "
            "them, or name them in exercise.student_objects. Nothing was written.")
    for obj in plan["remove"]:
        if not check_mode:
            resources[obj["kind"]].delete(obj["namespace"], obj["name"])
    return {"changed": bool(plan["remove"]), "student_objects": student, "kept": plan["kept"],
            "removed": plan["remove"]}
