"""The exercise check's report filters (plugins/filter/lab_exercise.py): the module's result as the shared JSON
object, an unreachable lab's report, and the re-check that keeps the file's checked_at (so nothing is rewritten)."""

import json

from ansible_collections.istio_lab.lab.plugins.filter.lab_exercise import lab_exercise_markdown, lab_exercise_report

FIELDS = ["lab", "chapter", "title", "state", "reason", "explanation", "hint", "ingress_ip", "probes",
          "student_objects", "checked_at"]
RESULT = {"changed": False, "state": "not_yet", "reason": "no route for 10.0.10.0 yet", "hint": "read kubectl's error",
          "explanation": ["No VirtualService in the lab has 10.0.10.0 in its hosts"], "ingress_ip": "10.0.10.0",
          "probes": [{"host": "", "url": "http://10.0.10.0/", "expected_status": 200, "status": 404,
                      "server": "istio-envoy", "ok": False}],
          "student_objects": [], "checked_at": "2026-12-04T16:00:00+00:00", "api_requests": {"list": 5}}


def test_the_report_has_the_interfaces_fields_in_order():
    report = lab_exercise_report(RESULT, "student01", 1, "Publish a service through a Gateway")
    assert list(report) == FIELDS
    assert (report["lab"], report["chapter"], report["state"]) == ("student01", "1", "not_yet")
    markdown = lab_exercise_markdown(report)
    assert markdown.startswith("# Chapter 1: Publish a service through a Gateway - student01\n\n"
                               "**not yet**: no route for 10.0.10.0 yet\n")
    assert "| **FAIL** | (ingress IP) | http://10.0.10.0/ | 200 | 404 | istio-envoy |" in markdown
    assert "Hint: read kubectl's error" in markdown


def test_an_unanswered_api_makes_the_lab_unreachable_and_other_refusals_not_yet():
    down = lab_exercise_report({"failed": True, "msg": "cannot reach the Kubernetes API at https://127.0.0.1:9 "
                                "(context x): refused. Is the cluster up?"}, "student02", "2", "Expose Prometheus")
    assert down["state"] == "unreachable"
    assert down["reason"] == "cannot reach the Kubernetes API at https://127.0.0.1:9 (context x): refused"
    assert (down["probes"], down["student_objects"]) == ([], [])
    assert down["checked_at"], "the time the check was tried"
    refused = lab_exercise_report({"failed": True, "msg": "Service istio-system/istio-ingressgateway does not exist: "
                                   "install Istio first (playbooks/istio.yml)."}, "student03", "2", "Expose Prometheus")
    assert (refused["state"], refused["hint"]) == ("not_yet", None)


def test_a_recheck_that_found_the_same_keeps_checked_at(tmp_path):
    first = lab_exercise_report(RESULT, "student01", "1", "t", tmp_path)
    (tmp_path / "check-1.json").write_text(json.dumps(first))
    later = lab_exercise_report({**RESULT, "checked_at": "2026-12-04T17:00:00+00:00"}, "student01", "1", "t", tmp_path)
    assert later == first
    done = lab_exercise_report({**RESULT, "state": "done", "checked_at": "2026-12-04T17:00:00+00:00"}, "student01",
                               "1", "t", tmp_path)
    assert done["checked_at"] == "2026-12-04T17:00:00+00:00"


def test_lab_exercise_check_documents_exactly_its_arguments():
    from plugins.modules import lab_exercise_check
    from tests.helpers import documented_options

    documented = documented_options("lab_exercise_check")
    assert set(documented) == set(lab_exercise_check.ARGUMENT_SPEC)
    for name, arg in lab_exercise_check.ARGUMENT_SPEC.items():
        for field in ("type", "default", "elements"):
            assert documented[name].get(field) == arg.get(field), (name, field)
        assert bool(documented[name].get("required")) == bool(arg.get("required")), name
