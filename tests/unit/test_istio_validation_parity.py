"""Validation parity with istiod (issue 13), driven from data:
tests/fixtures/validation/invalid.yml (objects istiod refuses, each with the
rule it breaks and the field path the problem must name) and valid.yml
(objects istiod accepts, corner cases of Istio's own tests among them).
Also checks that the catalogue of rules, the data and the audit in
docs/validation.md agree. Cases of WARNING_RULES are what istiod stores with
a warning: found the same way, the modules warn instead of refusing."""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate import (  # noqa: E402
    POLICY_RULES,
    RULES,
    WARNING_RULES,
    SchemaValidator,
    object_problems,
)

DATA = REPO / "tests/fixtures/validation"
# An input too large to write into the data file: a directResponse body over 100 kB.
GENERATED = [{
    "id": "vs-warn-direct-response-large", "rule": "vs-direct-response-size-warn",
    "field": "spec.http[0].directResponse.body", "kind": "VirtualService",
    "spec": {"hosts": ["reviews"], "http": [{"directResponse": {"status": 200, "body": {"string": "x" * 200_000}}}]},
}]
INVALID = yaml.safe_load((DATA / "invalid.yml").read_text()) + GENERATED
VALID = yaml.safe_load((DATA / "valid.yml").read_text())
DOCS = (REPO / "docs/validation.md").read_text()
KINDS = ("Gateway", "VirtualService", "DestinationRule", "ServiceEntry")


def as_object(case):
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": case["kind"],
        "metadata": {"name": case.get("name", case["id"]), "namespace": case.get("namespace", "validation"),
                     **({"annotations": case["annotations"]} if "annotations" in case else {})},
        "spec": case["spec"],
    }


def ids(cases):
    return [c["id"] for c in cases]


@pytest.fixture(scope="module")
def crd_schemas():
    import os

    path = Path(os.environ.get("ISTIO_LAB_SHARED") or REPO / ".." / "shared") / "crds/istio-1.30.3-crds.yaml"
    if not path.exists():
        pytest.skip(f"the upstream Istio CRDs are not at {path} (set ISTIO_LAB_SHARED)")
    schemas = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for doc in yaml.load_all(path.read_text(), Loader=loader):
        if doc and doc["spec"]["group"] == "networking.istio.io" and doc["spec"]["names"]["kind"] in KINDS:
            for version in doc["spec"]["versions"]:
                if version["name"] == "v1":
                    schemas[doc["spec"]["names"]["kind"]] = SchemaValidator(version["schema"]["openAPIV3Schema"])
    return schemas


# ---------------------------------------------------------------- the data itself


def test_case_ids_are_unique_and_usable_as_object_names():
    all_ids = ids(INVALID) + ids(VALID)
    assert len(all_ids) == len(set(all_ids))
    for case in INVALID + VALID:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", case["id"]), case["id"]
        assert case["kind"] in KINDS


def test_every_rule_has_a_refusing_case_and_every_case_a_known_rule():
    assert {c["rule"] for c in INVALID} == set(RULES)
    assert all(c["policy"] in POLICY_RULES for c in VALID if "policy" in c)
    assert all(c["warning"] in WARNING_RULES for c in VALID if "warning" in c)


def test_the_twelve_inputs_of_the_issue_are_cases():
    issue = [c for c in INVALID if c.get("issue")]
    assert len(issue) == 12
    assert {c["kind"] for c in issue} == {"Gateway", "VirtualService", "DestinationRule"}


# ---------------------------------------------------------------- refused


@pytest.mark.parametrize("case", INVALID, ids=ids(INVALID))
def test_istiod_refuses_so_do_the_istio_rules(case):
    obj = as_object(case)
    problems = object_problems(obj)
    matching = [p for p in problems if p.rule == case["rule"] and p.field == case["field"]]
    assert matching, f"expected {case['rule']} at {case['field']}, got {[(p.rule, p.field) for p in problems]}"
    problem = matching[0]
    # today's form: kind, object, field path, what is wrong (and what would be right)
    name = f"{obj['kind']} {obj['metadata']['namespace']}/{obj['metadata']['name']}"
    assert str(problem).startswith(f"{name}: {case['field']}: ")
    assert len(problem.message) > 15
    assert problem.as_dict() == {"kind": obj["kind"], "object": name, "field": case["field"],
                                 "message": problem.message, "rule": case["rule"]}
    assert all(p.rule in RULES for p in problems)


@pytest.mark.parametrize("case", INVALID, ids=ids(INVALID))
def test_the_crd_schema_refuses_only_where_the_data_says(crd_schemas, case):
    """The modules check the CRD schema first; `schema_field` marks the
    inputs it already refuses (the Istio rule is then the second net)."""
    obj = as_object(case)
    fields = [p.field for p in crd_schemas[obj["kind"]].problems(obj)]
    if "schema_field" in case:
        assert case["schema_field"] in fields
    else:
        assert fields == []


# ---------------------------------------------------------------- accepted


@pytest.mark.parametrize("case", VALID, ids=ids(VALID))
def test_istiod_accepts_so_do_the_istio_rules(case):
    problems = object_problems(as_object(case))
    if "policy" in case or "warning" in case:  # istio-lab's policy, or istiod's warning: a warning, no refusal
        assert [(p.rule, p.field) for p in problems] == [(case.get("policy") or case["warning"], case["field"])]
    else:
        assert [str(p) for p in problems] == []


@pytest.mark.parametrize("case", VALID, ids=ids(VALID))
def test_istiod_accepts_so_does_the_crd_schema(crd_schemas, case):
    obj = as_object(case)
    assert [str(p) for p in crd_schemas[obj["kind"]].problems(obj)] == []


def test_the_three_inputs_of_issue_30_two_of_which_istiod_accepts():
    refused = [c for c in INVALID if c.get("issue30")]
    accepted = [c for c in VALID if c.get("issue30")]
    assert [c["rule"] for c in refused] == ["vs-regex"]
    assert len(accepted) == 2


# ---------------------------------------------------------------- the audit in docs/validation.md


def table_rows():
    """rule id -> cells (kind, severity, istiod's check and message, what
    istio-lab says, proving cases) of the rule table in docs/validation.md."""
    rows = {}
    for line in DOCS.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z0-9-]+)`", cells[0]) if line.startswith("| `") else None
        if match and match.group(1) in RULES:
            rows[match.group(1)] = cells[1:]
    return rows


def test_the_docs_table_lists_every_rule_with_the_cases_that_prove_it():
    rows = table_rows()
    assert set(rows) == set(RULES)
    refusing = {}
    for case in INVALID:
        refusing.setdefault(case["rule"], set()).add(case["id"])
    for rule_id, cells in rows.items():
        proof = cells[-1]
        named = set(re.findall(r"`([a-z0-9-]+)`", proof))
        assert named, f"{rule_id}: no case named"
        assert named <= refusing[rule_id], f"{rule_id}: {named - refusing[rule_id]} do not break this rule"
