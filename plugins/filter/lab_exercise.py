# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exercise check's report (artifacts/<lab>/check-<chapter>.json and .md), from lab_exercise_check's result;
an unreachable lab's report from the module's failure; a re-check that found the same keeps the file's
`checked_at`, so that nothing is rewritten (lab_changed_files)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

UNREACHABLE = ("cannot reach the Kubernetes API", "kubeconfig")
FIELDS = ("lab", "chapter", "title", "state", "reason", "explanation", "hint", "ingress_ip", "probes",
          "student_objects", "checked_at")


def _previous(directory, chapter):
    path = os.path.join(os.path.expanduser(str(directory)), f"check-{chapter}.json")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def _now():
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def lab_exercise_report(result, lab, chapter, title, directory=None):
    """The report of one lab's check (the JSON object of the shared interface). `result`: the module's registered
    result; one without `state` (the module failed) gives state `unreachable` when the API did not answer, else
    `not_yet`, with the failure's first sentence as the reason."""
    result = dict(result or {})
    if result.get("state"):
        report = {field: result.get(field) for field in FIELDS}
    else:
        message = " ".join(str(result.get("msg") or "the check could not run").split())
        # The API did not answer (or the kubeconfig is not usable): the lab is unreachable. Anything else the
        # module refused (no ingress gateway yet) is the lab's, and said as its reason.
        unreachable = any(words in message for words in UNREACHABLE)
        reason = message.split(". ", maxsplit=1)[0][:200]
        report = {"state": "unreachable" if unreachable else "not_yet", "reason": reason,
                  "explanation": [message],
                  "hint": "Check that the lab's cluster is up and its kubeconfig is the lab's, then check again."
                  if unreachable else None,
                  "ingress_ip": "", "probes": [], "student_objects": [],
                  # The module gave no time (it did not run): the check was tried now.
                  "checked_at": result.get("checked_at") or _now()}
    report.update(lab=str(lab), chapter=str(chapter), title=str(title))
    report = {field: report.get(field) for field in FIELDS}
    previous = _previous(directory, chapter) if directory else {}
    same = previous and all(previous.get(f) == report.get(f) for f in FIELDS if f != "checked_at")
    if same or not report["checked_at"]:
        report["checked_at"] = previous.get("checked_at") or report["checked_at"]
    return report


def lab_exercise_markdown(report):
    """The report for people: the state, the explanation and hint, the probes, the objects attributed."""
    state = {"done": "done", "not_yet": "not yet", "unreachable": "unreachable"}.get(report["state"], report["state"])
    lines = [f"# Chapter {report['chapter']}: {report['title']} - {report['lab']}", "",
             f"**{state}**" + (f": {report['reason']}" if report.get("reason") else ""), ""]
    if report.get("explanation"):
        lines += ["## Why", ""] + [f"- {line}" for line in report["explanation"]] + [""]
    if report.get("hint"):
        lines += [f"Hint: {report['hint']}", ""]
    if report.get("probes"):
        lines += ["| result | host | URL | expected | status | server |", "| --- | --- | --- | --- | --- | --- |"]
        for probe in report["probes"]:
            result = ("SKIP" if probe.get("skipped") else "OK") if probe.get("ok") else "**FAIL**"
            status = "-" if probe.get("status") is None else probe["status"]
            lines.append(f"| {result} | {probe.get('host') or '(ingress IP)'} | {probe.get('url')} | "
                         f"{probe.get('expected_status')} | {status} | {probe.get('server') or '-'} |")
        lines.append("")
    if report.get("student_objects"):
        lines += ["Objects of this exercise: " + ", ".join(
            f"{o['kind']} {o['namespace']}/{o['name']}" for o in report["student_objects"]), ""]
    lines.append(f"Checked at {report.get('checked_at') or '-'}.")
    return "\n".join(lines) + "\n"


class FilterModule:
    """lab_exercise_report, lab_exercise_markdown."""

    def filters(self):
        return {"lab_exercise_report": lab_exercise_report, "lab_exercise_markdown": lab_exercise_markdown}
