"""The check scenario's verdicts, runs and table (bench/istio_lab_bench/check.py, issue 28), one lab and a class,
and which of them `bench/run --scenarios check --labs ...` runs."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # bench/ is run from the repo root, not installed

from bench.istio_lab_bench import __main__ as bench  # noqa: E402
from bench.istio_lab_bench import check  # noqa: E402


def phase(wall, cpu, writes=0, processes=1, returncode=0, reads=12):
    return {"wall_s": wall, "cpu_s": cpu, "returncode": returncode, "module_processes": processes,
            "requests": {"writes": writes, "reads": reads}}


def phases(recheck=None, verify=None, labs=1, check_phase=None):
    return {"check": check_phase or phase(9.0, 8.0, processes=4 * labs),  # the first check writes its reports
            "recheck": recheck or phase(5.0, 4.0, processes=labs),
            "noop_verify": verify or phase(6.0, 5.0, processes=labs)}


def verdicts(measured, labs=1):
    return [t["held"] for t in check.targets(measured, labs)]


def test_all_targets_held_for_one_lab_and_a_class():
    assert verdicts(phases()) == [True, True, True, True]
    assert verdicts(phases(labs=30), 30) == [True, True, True, True]
    assert [t["target"] for t in check.targets(phases(labs=30), 30)] == [
        "30 labs, check.yml: no write", "30 labs, re-check: one module process per lab",
        "30 labs, re-check: CPU no more than the no-op verify.yml",
        "30 labs, re-check: wall no more than the no-op verify.yml"]


def test_each_target_fails_on_its_own_figure():
    assert verdicts(phases(phase(5.0, 4.0, writes=1))) == [False, True, True, True]
    assert verdicts(phases(check_phase=phase(9.0, 8.0, writes=2))) == [False, True, True, True]
    assert verdicts(phases(phase(5.0, 4.0, processes=31), labs=30), 30) == [True, False, True, True]
    assert verdicts(phases(phase(5.0, 5.1))) == [True, True, False, True]
    assert verdicts(phases(phase(6.1, 4.0))) == [True, True, True, False]


def test_unmeasured_or_failed_runs_are_not_verdicts():
    assert check.targets({"check": phase(1.0, 1.0), "recheck": phase(1.0, 1.0)}) == []
    assert check.targets(phases(phase(1.0, 1.0, returncode=2))) == []
    assert check.targets(phases(check_phase=phase(1.0, 1.0, returncode=2))) == []


def test_the_runs_are_check_yml_of_chapter_1_then_verify_yml_with_the_builds_vars(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(check, "_playbook", lambda playbook, workdir, values, inventory=None:
                        written.append(values) or [playbook, str(inventory)])
    runs = check.phase_runs(tmp_path, {"lab_verify_retries": 0}, tmp_path / "inventory")
    assert runs == [("check", ["playbooks/check.yml", str(tmp_path / "inventory")]),
                    ("recheck", ["playbooks/check.yml", str(tmp_path / "inventory")]),
                    ("noop_verify", ["playbooks/verify.yml", str(tmp_path / "inventory")])]
    assert written == [{"lab_verify_retries": 0, "chapter": "1"}] * 3


def test_table_has_a_row_per_phase_and_target_and_names_a_failed_class():
    results = [{"scenario": "check", "labs": 1, "phases": phases(), "targets": check.targets(phases())},
               {"scenario": "check", "labs": 3, "error": "building the class failed"}]
    lines = check.table(results).splitlines()
    assert len(lines) == 2 + 3 + 4 + 1
    assert "| 1 lab, recheck | 5.0 s | 4.0 s | 1 | 12 | 0 |" in lines
    assert "| 3 labs: building the class failed | | | | | |" in lines


def test_run_measures_one_lab_alone_and_a_class_on_its_doubles(monkeypatch):
    monkeypatch.setattr(check, "one_lab", lambda: {"labs": 1})
    monkeypatch.setattr(check, "classroom", lambda labs: {"labs": labs, "class": True})
    assert check.run((1, 3)) == [{"labs": 1}, {"labs": 3, "class": True}]


def test_the_labs_option_sizes_the_check_scenario(monkeypatch, tmp_path):
    sizes = []
    monkeypatch.setattr(check, "run", lambda counts: sizes.extend(counts) or [{"labs": c} for c in counts])
    monkeypatch.setattr(bench, "machine", lambda: {})
    monkeypatch.setattr(bench, "print_report", lambda document, out: None)
    assert bench.main(["--scenarios", "check", "--labs", "1,3", "--results-dir", str(tmp_path)]) == 0
    assert sizes == [1, 3]
