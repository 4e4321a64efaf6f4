"""The benchmark's pure maths (bench/istio_lab_bench/report.py): request classification, speedups,
the table and the verdict on each of issue 6's targets."""

import copy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # bench/ is run from the repo root, not installed

from bench.istio_lab_bench import report  # noqa: E402

VS = "/apis/networking.istio.io/v1/namespaces/s1/virtualservices"


@pytest.mark.parametrize(
    ("path", "discovery"),
    [
        ("/api", True),
        ("/api/v1", True),
        ("/apis", True),
        ("/apis/networking.istio.io", True),
        ("/apis/networking.istio.io/v1?timeout=32s", True),
        ("/openapi/v3/apis/networking.istio.io/v1", True),
        ("/version", True),
        ("/api/v1/namespaces", False),
        ("/apis/networking.istio.io/v1/gateways", False),
        (f"{VS}/a", False),
    ],
)
def test_discovery_paths(path, discovery):
    assert report.is_discovery(path) is discovery


def test_summarize_counts_each_class_of_request():
    records = [
        {"method": "GET", "path": "/apis", "verb": "get", "status": 200},
        {"method": "GET", "path": VS, "verb": "list", "status": 200},
        {"method": "GET", "path": f"{VS}/a", "verb": "get", "status": 404},
        {"method": "POST", "path": VS, "verb": "create", "status": 201},
        {"method": "PATCH", "path": f"{VS}/b?dryRun=All", "verb": "patch", "dry_run": True, "status": 200},
        {"method": "PATCH", "path": f"{VS}/b", "verb": "patch", "status": 200},
    ]
    summary = report.summarize_requests(records)
    assert summary["total"] == 6
    assert (summary["discovery"], summary["lists"], summary["object_gets"]) == (1, 1, 1)
    assert (summary["reads"], summary["writes"], summary["dry_run_writes"], summary["errors"]) == (3, 2, 1, 1)
    assert summary["by_verb"] == {"create": 1, "get": 2, "list": 1, "patch": 1, "patch (dry-run)": 1}
    # A create addresses the collection, so which object it wrote is unknown (None).
    assert summary["written"] == [None, ["VirtualService", "s1", "b"]]


def test_summarize_without_server_verbs_tells_gets_from_lists_by_path():
    summary = report.summarize_requests([{"method": "GET", "path": VS}, {"method": "GET", "path": f"{VS}/a"}])
    assert (summary["lists"], summary["object_gets"]) == (1, 1)


def _phase(wall, reads=3, writes=0, dry=0, written=(), object_gets=0, lists=3):
    return {
        "wall_s": wall,
        "peak_rss_mib": 100.0,
        "requests": {
            "reads": reads,
            "writes": writes,
            "dry_run_writes": dry,
            "object_gets": object_gets,
            "lists": lists,
            "discovery": 0,
            "written": [list(w) for w in written],
        },
    }


CHANGED = [["VirtualService", "s1", "b"]]


def _results(noop_m1=1.0, first_m1=2.0, changed_written=(("VirtualService", "s1", "b"),), noop_writes=0):
    def result(method, first, noop, changed, **noop_requests):
        return {
            "method": method,
            "n": 360,
            "scopes": 3,
            "changed_keys": CHANGED,
            "phases": {
                "first": _phase(first, writes=360),
                "noop": _phase(noop, **noop_requests),
                "changed": _phase(changed, written=changed_written if method == "1" else ()),
            },
        }

    return [
        result("1", first_m1, noop_m1, 1.5, writes=noop_writes),
        result("2", 190.0, 191.0, 190.0, reads=360, writes=720),
        result("3", 4.1, 4.2, 4.0),
        result("4", 5.5, 8.1, 6.0),
        result("5", 4.8, 4.3, 4.4),
    ]


def test_ratios_are_speedups_against_method_2():
    results = _results()
    report.add_ratios(results)
    noop = {r["method"]: r["phases"]["noop"]["speedup_vs_m2"] for r in results}
    assert noop["2"] == 1.0
    assert noop["1"] == pytest.approx(191.0)
    assert noop["5"] == pytest.approx(191.0 / 4.3)


def test_targets_hold_when_every_condition_is_met():
    targets = report.evaluate_targets(_results())
    assert [t["held"] for t in targets] == [True, True, True, True]


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"noop_m1": 5.0}, 0),  # slower than method 5's 4.3 s (and only 38x method 2)
        ({"noop_writes": 2}, 1),  # a no-op that writes
        ({"first_m1": 5.0}, 2),  # first run slower than method 5's 4.8 s
        ({"changed_written": (("VirtualService", "s1", "b"), ("Gateway", "s1", "g"))}, 3),  # wrote an unchanged object
    ],
)
def test_each_target_fails_on_its_own_condition(change, failing):
    held = [t["held"] for t in report.evaluate_targets(_results(**change))]
    assert held[failing] is False
    assert held[:failing] + held[failing + 1 :] == [True, True, True]


def test_target_fails_when_lists_exceed_the_scopes():
    results = _results()
    results[0]["phases"]["noop"]["requests"]["lists"] = 360
    assert report.evaluate_targets(results)[1]["held"] is False


def test_targets_not_measured_without_the_methods():
    results = [r for r in _results() if r["method"] != "2"]
    held = [t["held"] for t in report.evaluate_targets(results)]
    assert held[0] is None
    assert "NOT MEASURED" in report.format_targets(report.evaluate_targets([]))


def test_table_shows_times_ratios_requests_and_errors():
    results = _results()
    report.add_ratios(results)
    failed = copy.deepcopy(results[0])
    failed.update(n=12, error="first run failed (rc 2)")
    text = report.table(results + [failed])
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["N", "method"]
    assert len(lines) == 2 + 6
    row_m1 = next(line for line in lines if line.startswith("360") and "istio-lab modules" in line)
    assert "1.00 (191.0x)" in row_m1
    assert "3r/0w" in row_m1
    row_m2 = next(line for line in lines if "task per object" in line)
    assert "191.00 (1.0x)" in row_m2 and "360r/720w" in row_m2
    assert any("error: first run failed" in line for line in lines)
    # Peak memory: the sampled tree, or the largest single process when the samples missed the peak.
    assert row_m1.split()[-1] == "100"
    results[0]["phases"]["noop"]["max_rss_mib"] = 150.0
    assert next(line for line in report.table(results).splitlines() if "modules" in line).split()[-1] == "150"


def test_an_interrupted_method_counts_for_the_runs_it_finished():
    results = _results()
    interrupted = next(r for r in results if r["method"] == "2")
    interrupted["running"] = True
    del interrupted["phases"]["changed"]
    report.add_ratios(results)
    row = next(line for line in report.table(results).splitlines() if "(interrupted)" in line)
    assert row.split()[-7:] == ["191.00", "(1.0x)", "-", "3r/360w", "360r/720w", "-", "100"]
    assert report.evaluate_targets(results)[0]["held"] is True  # its no-op run finished
    del interrupted["phases"]["noop"]
    assert report.evaluate_targets(results)[0]["held"] is None


def test_methods_faster_than_ansibles_floor_are_named_in_the_verdict():
    floors = {"360": {"wall_s": 4.5, "runs_s": [4.5, 4.7, 4.6]}}
    no_op, _, first, _ = report.evaluate_targets(_results(noop_m1=5.0, first_m1=5.0), floors)
    assert no_op["held"] is False and first["held"] is False
    assert "method(s) 3 (4.20s), 5 (4.30s) finished below Ansible's floor of 4.50s" in no_op["detail"]
    assert "method(s) 5 (4.80s)" not in first["detail"]  # 4.8 s is above the 4.5 s floor
    assert report.format_floors(floors).endswith("N=360 4.50s")


def test_no_floor_note_without_a_floor_or_above_it():
    assert "floor" not in report.evaluate_targets(_results(noop_m1=5.0))[0]["detail"]
    floors = {"360": {"wall_s": 1.0}}
    assert "floor" not in report.evaluate_targets(_results(noop_m1=5.0), floors)[0]["detail"]
    assert report.format_floors({"12": {"error": "floor run failed (rc 2)"}}) == ""
