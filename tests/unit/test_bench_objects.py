"""The benchmark's workload generator (bench/istio_lab_bench/objects.py): exact counts in classroom
proportions, one namespace per student, edits of the changed run, and objects a real Istio accepts."""

import os
import sys
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # bench/ is run from the repo root, not installed

from bench.istio_lab_bench import objects  # noqa: E402

SHARED = Path(os.environ.get("ISTIO_LAB_SHARED", REPO / ".." / "shared"))
ISTIO_CRDS = SHARED / "crds" / "istio-1.30.3-crds.yaml"


@pytest.mark.parametrize(
    ("total", "expected"),
    [(7, [1, 5, 1]), (12, [2, 8, 2]), (120, [17, 86, 17]), (360, [52, 257, 51]), (0, [0, 0, 0])],
)
def test_apportion_gives_the_closest_integer_split(total, expected):
    counts = objects.apportion(total, [1, 5, 1])
    assert counts == expected
    assert sum(counts) == total
    for count, weight in zip(counts, [1, 5, 1], strict=True):
        assert abs(count - total * weight / 7) < 1


def test_apportion_refuses_nonsense():
    with pytest.raises(ValueError):
        objects.apportion(5, [1, 0])


@pytest.mark.parametrize("total", [1, 12, 120, 360])
def test_generate_gives_exactly_n_distinct_objects(total):
    generated = objects.generate(total, "bench-test")
    assert len(generated) == total
    assert len({obj.key for obj in generated}) == total
    counts = objects.counts_by_kind(generated)
    assert [counts[k.kind] for k in objects.KINDS] == objects.apportion(total, [1, 5, 1])


def test_one_namespace_per_student_each_with_its_gateway():
    generated = objects.generate(360, "bench-test")
    gateways = {(o.namespace, o.name) for o in generated if o.kind == "Gateway"}
    namespaces = {o.namespace for o in generated}
    assert len(namespaces) == len(gateways) == 52
    assert all(ns.startswith("bench-test-student") for ns in namespaces)
    per_namespace = Counter((o.namespace, o.kind) for o in generated)
    assert {per_namespace[(ns, "Gateway")] for ns in namespaces} == {1}
    # VirtualServices are spread evenly: 257 over 52 students is 4 or 5 each.
    assert {per_namespace[(ns, "VirtualService")] for ns in namespaces} <= {4, 5}
    for vs in (o for o in generated if o.kind == "VirtualService"):
        (gateway,) = vs.spec["gateways"]
        assert (vs.namespace, gateway) in gateways


def test_namespace_cap_shares_namespaces_without_name_clashes():
    generated = objects.generate(120, "bench-test", namespaces=3)
    assert {o.namespace for o in generated} == {"bench-test-ns01", "bench-test-ns02", "bench-test-ns03"}
    assert len({o.key for o in generated}) == 120
    assert len(objects.scopes(generated)) == 9  # 3 kinds x 3 namespaces


def test_objects_carry_the_managed_and_scope_labels():
    manifest = objects.generate(12, "bench-m1-n12")[0].manifest()
    assert manifest["apiVersion"] == "networking.istio.io/v1"
    expected = {"app.kubernetes.io/managed-by": "istio-lab", "istio-lab.io/bench": "bench-m1-n12"}
    assert manifest["metadata"]["labels"] == expected


@pytest.mark.parametrize(("total", "changed"), [(12, 1), (120, 12), (360, 36), (5, 1)])
def test_changed_run_edits_ten_percent_spread_over_kinds(total, changed):
    generated = objects.generate(total, "bench-test")
    edited, keys = objects.with_changes(generated)
    assert len(keys) == changed == len(objects.changed_indices(total))
    for before, after in zip(generated, edited, strict=True):
        assert before.key == after.key
        assert (before.spec != after.spec) == (before.key in keys)
    if total >= 120:
        assert {key[0] for key in keys} == {"Gateway", "VirtualService", "DestinationRule"}


def _spec_schemas():
    if not ISTIO_CRDS.exists():
        pytest.skip(f"Istio CRDs not found at {ISTIO_CRDS} (set ISTIO_LAB_SHARED)")
    schemas = {}
    for crd in yaml.load_all(ISTIO_CRDS.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        if crd and crd["spec"]["group"] == "networking.istio.io":
            for version in crd["spec"]["versions"]:
                if version["name"] == "v1":
                    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
                    schemas[crd["spec"]["names"]["kind"]] = jsonschema.Draft7Validator(spec)
    return schemas


def test_generated_and_edited_objects_match_the_istio_crd_schemas():
    schemas = _spec_schemas()
    generated = objects.generate(120, "bench-test")
    edited, _ = objects.with_changes(generated)
    for obj in generated + edited:
        schemas[obj.kind].validate(obj.spec)
    # The schema is strict enough to catch a wrong type.
    with pytest.raises(jsonschema.ValidationError):
        schemas["VirtualService"].validate({"hosts": "not-a-list"})
