"""Canonical form and the desired-vs-live comparison of the apply engine,
the definitions' inheritance, and the modules' documentation against their
argument spec."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import object_definitions  # noqa: E402
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.args import (  # noqa: E402
    resource_argument_spec,
    route_info_argument_spec,
    routes_argument_spec,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.normalize import (  # noqa: E402
    canonical,
    desired_object,
    diff_view,
    differs,
    is_managed,
    merged_object,
)

from tests.helpers import documented_options  # noqa: E402

SPEC = {
    "hosts": ["*"],
    "gateways": ["ingressgateway80"],
    "http": [{"route": [{"destination": {"host": "tomcat", "port": {"number": 80}}}]}],
}


def live_copy(desired, **meta):
    """What the API server returns for a stored `desired`."""
    live = canonical(desired)
    live["metadata"].update(resourceVersion="42", uid="u-1", generation=1, managedFields=[{"manager": "x"}], **meta)
    live["status"] = {}
    return live


def test_canonical_ignores_number_types_key_order_and_nulls():
    assert canonical({"b": 80.0, "a": [1.5, None, {"x": None}]}) == {"a": [1.5, None, {}], "b": 80}
    assert canonical({"port": {"number": 80.0}}) == canonical({"port": {"number": 80}})


def test_desired_object_carries_the_managed_by_label():
    desired = desired_object("VirtualService", "networking.istio.io/v1", "vs", "ns", SPEC, {"chapter": 1})
    assert desired["metadata"]["labels"] == {"chapter": "1", "app.kubernetes.io/managed-by": "istio-lab"}
    assert is_managed(desired)


def test_an_unchanged_object_does_not_differ():
    desired = desired_object("VirtualService", "networking.istio.io/v1", "vs", "ns", SPEC)
    live = live_copy(desired)
    live["metadata"]["labels"]["team"] = "someone-else"  # others' labels are left alone
    live["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    assert not differs(live, desired)


def test_a_removed_field_or_route_is_a_difference():
    desired = desired_object("VirtualService", "networking.istio.io/v1", "vs", "ns", SPEC)
    live = live_copy(desired)
    live["spec"]["http"][0]["timeout"] = "5s"  # present live, absent from the input
    assert differs(live, desired)
    live = live_copy(desired)
    live["spec"]["http"].append({"route": [{"destination": {"host": "old"}}]})
    assert differs(live, desired)


def test_a_changed_label_or_annotation_of_ours_is_a_difference():
    desired = desired_object("Gateway", "networking.istio.io/v1", "gw", "ns", {"servers": []}, {"a": "1"}, {"n": "x"})
    live = live_copy(desired)
    live["metadata"]["annotations"]["n"] = "y"
    assert differs(live, desired)
    live = live_copy(desired)
    del live["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    assert differs(live, desired)


def test_merged_object_keeps_identity_and_others_labels_and_replaces_the_spec():
    desired = desired_object("VirtualService", "networking.istio.io/v1", "vs", "ns", SPEC, {"mine": "1"})
    live = live_copy(desired)
    live["metadata"]["labels"] = {"theirs": "x", "mine": "0"}
    live["spec"]["http"][0]["timeout"] = "5s"
    merged = merged_object(live, desired)
    assert merged["metadata"]["resourceVersion"] == "42"
    assert merged["metadata"]["labels"] == {"theirs": "x", "mine": "1", "app.kubernetes.io/managed-by": "istio-lab"}
    assert "managedFields" not in merged["metadata"] and "status" not in merged
    assert merged["spec"] == SPEC
    assert live["spec"]["http"][0]["timeout"] == "5s"  # the live copy is not modified


def test_diff_view_shows_identity_labels_and_spec_only():
    desired = desired_object("VirtualService", "networking.istio.io/v1", "vs", "ns", SPEC)
    shown = diff_view(live_copy(desired))
    assert set(shown["metadata"]) == {"name", "namespace", "labels"}
    assert shown["spec"] == SPEC
    assert diff_view(None) == {}


def test_definitions_inherit_the_task_options():
    params = {
        "namespace": "istio-system",
        "state": "present",
        "labels": {"chapter": "3"},
        "annotations": None,
        "definitions": [
            {"name": "a", "spec": {}, "namespace": None, "state": None, "labels": None},
            {"name": "b", "namespace": "other", "state": "absent", "labels": {"chapter": "9"}, "spec": None},
        ],
    }
    a, b = object_definitions(params)
    assert (a["namespace"], a["state"], a["labels"]) == ("istio-system", "present", {"chapter": "3"})
    assert (b["namespace"], b["state"], b["labels"]) == ("other", "absent", {"chapter": "9"})
    single = object_definitions(
        {"name": "x", "namespace": "ns", "spec": {"a": 1}, "state": "present", "labels": None, "annotations": None}
    )
    assert single == [
        {"name": "x", "namespace": "ns", "spec": {"a": 1}, "state": "present", "labels": None, "annotations": None}
    ]


def compare(options, spec, where):
    assert set(options) == set(spec), where
    for name, doc in options.items():
        arg = spec[name]
        for field in ("type", "choices", "default", "aliases", "elements"):
            assert doc.get(field) == arg.get(field), f"{where}.{name}.{field}"
        assert bool(doc.get("required")) == bool(arg.get("required")), f"{where}.{name}.required"
        if "suboptions" in doc or "options" in arg:
            compare(doc["suboptions"], arg["options"], f"{where}.{name}")


@pytest.mark.parametrize("module", ["istio_gateway", "istio_virtual_service", "istio_destination_rule",
                                    "istio_service_entry"])
def test_resource_module_documents_exactly_its_arguments(module):
    compare(documented_options(module), resource_argument_spec(), module)


def test_route_info_documents_exactly_its_arguments():
    compare(documented_options("istio_route_info"), route_info_argument_spec(), "istio_route_info")


def test_routes_documents_exactly_its_arguments():
    compare(documented_options("istio_routes"), routes_argument_spec(), "istio_routes")


def test_routes_with_empty_lists_is_a_no_op_without_requests():
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import apply_routes

    # no client at all: any request would fail
    assert apply_routes(None, {"gateways": [], "virtual_services": None}, want_diff=True) == {
        "changed": False,
        "warnings": [],
        "results": [],
        "diff": [],
    }


def test_an_empty_definitions_list_is_a_no_op_without_requests():
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import apply

    # no client at all: any request would fail
    assert apply(None, "Gateway", {"definitions": []}, want_diff=True) == {
        "changed": False,
        "warnings": [],
        "results": [],
        "diff": [],
    }
