"""The site scenario's verdicts (bench/istio_lab_bench/report.py, issue 11's targets) and its table."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # bench/ is run from the repo root, not installed

from bench.istio_lab_bench import report  # noqa: E402


def phase(wall, cpu, writes=0, returncode=0):
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": 100.0, "returncode": returncode, "module_processes": 12,
            "requests": {"total": 10 + writes, "reads": 10, "writes": writes, "dry_run_writes": 0, "lists": 5,
                         "object_gets": 0, "discovery": 5}}


def site(one_noop=None, one_first=None, before_first=None, class_noop=None):
    one_noop, one_first = one_noop or phase(8.0, 7.5), one_first or phase(30.0, 28.0)
    before_first, class_noop = before_first or phase(50.0, 51.0), class_noop or phase(200.0, 250.0)
    return [
        {"scenario": "site", "labs": 1, "ref": "e6ada6d", "phases": {"first": before_first, "noop": phase(45, 46)}},
        {"scenario": "site", "labs": 1, "phases": {"first": one_first, "noop": one_noop}},
        {"scenario": "site", "labs": 30, "playbook": "playbooks/classroom.yml",
         "phases": {"first": phase(600.0, 700.0), "noop": class_noop}},
    ]


def verdicts(results):
    return [t["held"] for t in report.evaluate_site_targets(results)]


def test_all_site_targets_held():
    assert verdicts(site()) == [True, True, True]


def test_each_site_target_fails_on_its_own_figure():
    assert verdicts(site(one_noop=phase(8.0, 10.5))) == [False, True, True]  # CPU over 10 s
    assert verdicts(site(one_noop=phase(8.0, 7.0, writes=1))) == [False, True, True]  # a write on a no-op
    assert verdicts(site(one_first=phase(51.0, 20.0))) == [True, False, True]  # slower than the baseline
    assert verdicts(site(class_noop=phase(200.0, 301.0))) == [True, True, False]
    assert verdicts(site(class_noop=phase(241.0, 200.0))) == [True, True, False]


def test_unmeasured_or_failed_runs_are_not_verdicts():
    assert verdicts([]) == [None, None, None]
    failed = site(one_noop=phase(5.0, 5.0, returncode=2))
    assert verdicts(failed)[0] is None
    assert verdicts([r for r in site() if not r.get("ref")])[1] is None


def test_site_table_has_a_row_per_run_with_cpu_per_lab():
    text = report.site_table(site())
    lines = text.splitlines()
    assert len(lines) == 2 + 6
    assert "1 lab at e6ada6d (site.yml)" in text
    row = next(line for line in lines if line.startswith("30 labs") and "no-op" in line)
    assert row.split()[-6:] == ["250.0", "8.3", "12", "10r/0w", "0", "100"]


def test_module_processes_are_counted_by_name_from_the_wrapper_log(tmp_path):
    from bench.istio_lab_bench import site as scenario

    wrapper = scenario._module_log_interpreter(tmp_path)
    import subprocess

    for module in ("lab_verify", "lab_manifests", "lab_manifests"):
        subprocess.run([str(wrapper), "-c", "pass", f"/tmp/ansible-tmp-1/AnsiballZ_{module}.py"], check=True)
    # the wrapper passes the arguments on: `-c pass` ran, and its first argument was logged
    assert scenario.module_processes(tmp_path / scenario.MODULE_LOG) == {"-c": 3}
    (tmp_path / scenario.MODULE_LOG).write_text("/tmp/a/AnsiballZ_lab_verify.py\n/tmp/b/AnsiballZ_lab_manifests.py\n"
                                                "/tmp/c/AnsiballZ_lab_manifests.py\n")
    assert scenario.module_processes(tmp_path / scenario.MODULE_LOG) == {"lab_manifests": 2, "lab_verify": 1}
