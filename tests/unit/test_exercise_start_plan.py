"""The start of an exercise (module_utils istio_lab/exercise_start.py, playbooks/exercise.yml): which objects
are the students', the catalogue the start builds and probes, and what it does with what a lab already holds.
Run on the real chapter catalogue."""

from pathlib import Path

import pytest
import yaml

# conftest.py puts collections/ on sys.path (the checkout as the collection)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.exercise_start import (
    ExerciseError,
    chapter_objects,
    lab_exercise_start_catalogue,
    plan_start,
    student_objects,
)

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "kubernets.cn"
MANAGED = {"app.kubernetes.io/managed-by": "istio-lab", "istio-lab.io/chapter": "1"}


@pytest.fixture(scope="module")
def catalogue():
    text = (REPO / "inventory/group_vars/all/chapters.yml").read_text()
    return yaml.safe_load(text.replace("{{ lab_domain }}", DOMAIN))["lab_chapters"]


def keys(objects):
    return [(o["kind"], o["namespace"], o["name"]) for o in objects]


def test_every_chapter_has_an_exercise_of_its_own_objects(catalogue):
    for chapter in catalogue:
        assert student_objects(catalogue, chapter), chapter
    assert keys(student_objects(catalogue, 1)) == [("Gateway", "microservice", "ingressgateway80"),
                                                   ("VirtualService", "microservice", "tomcat-virtualservice")]


def test_a_student_object_the_chapter_does_not_bring_is_refused(catalogue):
    broken = {**catalogue, "1": {**catalogue["1"], "exercise": {"student_objects": [
        {"kind": "VirtualService", "namespace": "microservice", "name": "tomcat-vs"}]}}}
    with pytest.raises(ExerciseError, match="names VirtualService microservice/tomcat-vs, which chapter 1 does not"):
        student_objects(broken, "1")
    with pytest.raises(ExerciseError, match="chapter 1 has no exercise"):
        student_objects({**catalogue, "1": {**catalogue["1"], "exercise": {}}}, "1")
    with pytest.raises(ExerciseError, match="unknown chapter '9'"):
        student_objects(catalogue, "9")


def test_the_start_catalogue_leaves_out_the_students_objects_and_expects_404(catalogue):
    start = lab_exercise_start_catalogue(catalogue, "1")
    assert start["1"]["gateways"] == [] and start["1"]["virtual_services"] == []
    assert start["1"]["apps"] == ["tomcat"] and start["1"]["namespaces"] == ["microservice"]
    assert start["1"]["probes"] == [{"host": "", "path": "/", "status": 404}]
    # Other chapters, and the catalogue given, are untouched.
    assert start["2"] is catalogue["2"] and catalogue["1"]["probes"][0]["status"] == 200
    three = lab_exercise_start_catalogue(catalogue, "3")["3"]
    assert [p["status"] for p in three["probes"]] == [404, 404, 404]


def test_chapter_5_starts_on_chapter_1s_wildcard_route_without_the_split(catalogue):
    five = lab_exercise_start_catalogue(catalogue, "5")["5"]
    assert five["virtual_services"] == []
    # Chapter 1's '*' VirtualService (required) answers tomcat.<domain> before the student's split exists.
    assert five["probes"] == [{"host": f"tomcat.{DOMAIN}", "path": "/", "status": 200}]


def test_chapter_6_keeps_what_the_students_do_not_write_and_drops_the_in_mesh_probe(catalogue):
    six = lab_exercise_start_catalogue(catalogue, "6")["6"]
    theirs = set(keys(student_objects(catalogue, "6")))
    assert set(keys(chapter_objects(six))) == set(keys(chapter_objects(catalogue["6"]))) - theirs
    assert six["mesh_probes"] == [] and six["apps"] == ["curl"] and six["namespaces"] == ["egress"]


def live(name, kind, labels=None, namespace="microservice"):
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, "labels": labels or {}}}


def test_the_plan_keeps_students_objects_removes_istio_labs_copies_and_refuses_clashes(catalogue):
    student = student_objects(catalogue, "1")
    objs = chapter_objects(catalogue["1"])
    gateway, vs = ("Gateway", "microservice", "ingressgateway80"), ("VirtualService", "microservice",
                                                                    "tomcat-virtualservice")
    # A student's VirtualService (no labels) stays; istio-lab's Gateway (the answer key) goes.
    plan = plan_start(student, objs, {gateway: live("ingressgateway80", "Gateway", MANAGED),
                                      vs: live("tomcat-virtualservice", "VirtualService")})
    assert keys(plan["kept"]) == [vs] and keys(plan["remove"]) == [gateway] and plan["refused"] == []
    # The answer key: VirtualService deleted before the Gateway it is bound to.
    plan = plan_start(student, objs, {gateway: live("ingressgateway80", "Gateway", MANAGED),
                                      vs: live("tomcat-virtualservice", "VirtualService", MANAGED)})
    assert keys(plan["remove"]) == [vs, gateway]
    assert plan_start(student, objs, {}) == {"kept": [], "remove": [], "refused": []}
    # An object istio-lab writes for the exercise (chapter 6's, were its DestinationRule not the students'):
    # a student's one of that name is refused, not overwritten.
    rule = ("DestinationRule", "egress", "egressgateway-for-external")
    six = [o for o in student_objects(catalogue, "6") if (o["kind"], o["namespace"], o["name"]) != rule]
    plan = plan_start(six, chapter_objects(catalogue["6"]), {rule: live(rule[2], rule[0], namespace="egress")})
    assert keys(plan["refused"]) == [rule]


def test_lab_exercise_start_documents_exactly_its_arguments():
    from plugins.modules import lab_exercise_start
    from tests.helpers import documented_options

    documented = documented_options("lab_exercise_start")
    assert set(documented) == set(lab_exercise_start.ARGUMENT_SPEC)
    for name, arg in lab_exercise_start.ARGUMENT_SPEC.items():
        for field in ("type", "default", "elements"):
            assert documented[name].get(field) == arg.get(field), (name, field)
        assert bool(documented[name].get("required")) == bool(arg.get("required")), name
