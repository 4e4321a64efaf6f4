"""The upgrade scenario's verdicts and table (bench/istio_lab_bench/upgrade.py, issue 20), one lab and a class,
and which of them `bench/run --scenarios upgrade --labs ...` runs."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # bench/ is run from the repo root, not installed

from bench.istio_lab_bench import __main__ as bench  # noqa: E402
from bench.istio_lab_bench import upgrade  # noqa: E402


def phase(wall, cpu, writes=0, returncode=0):
    return {"wall_s": wall, "cpu_s": cpu, "returncode": returncode, "requests": {"writes": writes}}


def one_lab(noop=None, site=None):
    return {"upgrade": phase(40.0, 35.0, writes=60), "noop_upgrade": noop or phase(5.0, 4.0),
            "noop_site": site or phase(9.0, 8.0)}


def a_class(noop=None, classroom=None):
    return {"upgrade": phase(400.0, 500.0, writes=1800), "noop_upgrade": noop or phase(60.0, 90.0),
            "noop_classroom": classroom or phase(200.0, 250.0)}


def verdicts(phases, labs=1):
    return [t["held"] for t in upgrade.targets(phases, labs)]


def test_all_targets_held_for_one_lab_and_a_class():
    assert verdicts(one_lab()) == [True, True, True]
    assert verdicts(a_class(), 30) == [True, True, True]


def test_a_class_is_compared_with_the_no_op_classroom_yml_and_named_by_its_size():
    names = [t["target"] for t in upgrade.targets(a_class(), 30)]
    assert names == ["30 labs, nothing to upgrade: no write",
                     "30 labs, nothing to upgrade: CPU no more than the no-op classroom.yml",
                     "30 labs, nothing to upgrade: wall no more than the no-op classroom.yml"]
    assert upgrade.targets(one_lab())[1]["target"] == "1 lab, nothing to upgrade: CPU no more than the no-op site.yml"


def test_each_target_fails_on_its_own_figure():
    assert verdicts(a_class(noop=phase(60.0, 90.0, writes=1)), 30) == [False, True, True]
    assert verdicts(a_class(noop=phase(60.0, 251.0)), 30) == [True, False, True]
    assert verdicts(a_class(noop=phase(201.0, 90.0)), 30) == [True, True, False]
    assert verdicts(one_lab(site=phase(9.0, 3.9))) == [True, False, True]


def test_unmeasured_or_failed_runs_are_not_verdicts():
    assert upgrade.targets({"upgrade": phase(1.0, 1.0)}, 3) == []
    assert upgrade.targets(a_class(noop=phase(60.0, 90.0, returncode=2)), 30) == []


def test_table_has_a_row_per_phase_and_target_and_names_a_failed_class():
    results = [{"scenario": "upgrade", "labs": 1, "phases": one_lab(), "targets": upgrade.targets(one_lab())},
               {"scenario": "upgrade", "labs": 30, "phases": a_class(), "targets": upgrade.targets(a_class(), 30)},
               {"scenario": "upgrade", "labs": 3, "error": "building the 1.29.6 class failed"}]
    lines = upgrade.table(results).splitlines()
    assert len(lines) == 2 + 6 + 6 + 1
    assert "| 30 labs, noop_upgrade | 60.0 s | 90.0 s | 0 |" in lines
    assert "| 1 lab, upgrade | 40.0 s | 35.0 s | 60 |" in lines
    assert "| 3 labs: building the 1.29.6 class failed | | | |" in lines


def test_run_measures_one_lab_alone_and_a_class_on_its_doubles(monkeypatch):
    monkeypatch.setattr(upgrade, "one_lab", lambda: {"labs": 1})
    monkeypatch.setattr(upgrade, "classroom", lambda labs: {"labs": labs, "class": True})
    assert upgrade.run((1, 3)) == [{"labs": 1}, {"labs": 3, "class": True}]


def test_the_labs_option_sizes_the_upgrade_scenario_too(monkeypatch, tmp_path):
    sizes = []
    monkeypatch.setattr(upgrade, "run", lambda counts: sizes.extend(counts) or [{"labs": c} for c in counts])
    monkeypatch.setattr(bench, "machine", lambda: {})
    monkeypatch.setattr(bench, "print_report", lambda document, out: None)
    assert bench.main(["--scenarios", "upgrade", "--labs", "3", "--results-dir", str(tmp_path)]) == 0
    assert sizes == [3]
    assert bench.parse_args(["--scenarios", "upgrade"]).labs == bench.DEFAULT_LABS == (1, 30)
