"""Filters of the lab_routes and lab_verify roles.

lab_routes turns the chapter catalogue (`lab_chapters`) into the
`definitions` lists of istio-lab's modules. The verification itself runs in
one module process (`istio_lab.lab.lab_verify`); its logic lives in
module_utils (istio_lab/verify.py) and is exposed here only where YAML
still needs it: the role's summary and report (`lab_verify_table`,
`lab_verify_hosts_line`), the in-mesh probes run on a real cluster
(`lab_verify_mesh_report`), and the chapter checks other roles share.
"""

from __future__ import annotations

import functools

from ansible.errors import AnsibleFilterError
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab import verify as _verify
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.verify import (  # noqa: F401 -- re-exported  # pylint: disable=unused-import
    _chapter_ids,
    lab_unknown_chapters,
    lab_verify_add_splits,
    lab_verify_answered,
    lab_verify_existing_objects,
    lab_verify_failed_destinations,
    lab_verify_hosts_line,
    lab_verify_ingress_routes,
    lab_verify_mesh_report,
    lab_verify_ready_endpoints,
    lab_verify_report,
    lab_verify_split_outcome,
    lab_verify_table,
)

ROUTE_KINDS = ("service_entries", "gateways", "virtual_services", "destination_rules")


def _filter_errors(function):
    """module_utils' VerifyError as a filter error (what Ansible reports for a filter)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except _verify.VerifyError as exc:
            raise AnsibleFilterError(str(exc)) from exc
    return wrapper


lab_verify_probes = _filter_errors(_verify.lab_verify_probes)
lab_verify_mesh_plan = _filter_errors(_verify.lab_verify_mesh_plan)


def lab_chapter_objects(catalogue, ids, kind, managed_labels, chapter_label, state="present"):
    """Definitions of one kind for the given chapters, ready for the modules'
    `definitions` option: each object keeps its own labels and gains the
    managed labels and `<chapter_label>: <chapter id>`."""
    if kind not in ROUTE_KINDS:
        raise AnsibleFilterError(f"lab_chapter_objects: kind must be one of {', '.join(ROUTE_KINDS)}, not {kind!r}")
    unknown = lab_unknown_chapters(catalogue, ids)
    if unknown:
        raise AnsibleFilterError(f"unknown chapter(s) {', '.join(unknown)}; known: {', '.join(map(str, catalogue))}")
    definitions = []
    for chapter in _chapter_ids(ids):
        for obj in catalogue[chapter].get(kind) or []:
            labels = {**dict(managed_labels), **dict(obj.get("labels") or {}), chapter_label: chapter}
            definition = {"name": obj["name"], "namespace": obj["namespace"], "labels": labels, "state": state}
            if state == "present":
                definition["spec"] = obj["spec"]
                if obj.get("annotations"):
                    definition["annotations"] = dict(obj["annotations"])
            definitions.append(definition)
    return definitions


class FilterModule:
    def filters(self):
        return {
            "lab_unknown_chapters": lab_unknown_chapters,
            "lab_chapter_objects": lab_chapter_objects,
            "lab_verify_probes": lab_verify_probes,
            "lab_verify_mesh_plan": lab_verify_mesh_plan,
            "lab_verify_mesh_report": lab_verify_mesh_report,
            "lab_verify_hosts_line": lab_verify_hosts_line,
            "lab_verify_table": lab_verify_table,
        }
