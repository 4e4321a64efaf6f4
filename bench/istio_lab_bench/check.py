"""The `check` scenario: playbooks/check.yml, the check of the students' work (issue 28).

One lab on its own API double (as the site scenario's), or a class of N labs (the site scenario's class, each lab
on its own double, `class_of`), built by site.yml / classroom.yml with chapters 1-4 (not measured; chapter 1's
answer key is there, so every lab is done), then measured: `check.yml -e chapter=1` (over the class: `-i <classroom
inventory>`), the same again (the re-check of an unchanged class: its reports are not rewritten) and the no-op
verify.yml for comparison. Figures per run as the site scenario's: wall, the
controller's CPU seconds, module processes, the requests (reads, and writes: the check must send none).

Issue 28's cost target: check.yml costs no more than a no-op verify.yml, one module process per lab, reads only.
The first check also writes each lab's report files on the controller (file and copy: module processes of their
own, no API request), as the build's verify.yml wrote verify.json: the re-check is the like-for-like comparison
with the no-op verify.yml.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .harness import REPO, run_measured
from .site import (
    RUN_TIMEOUT_S,
    ClassError,
    _playbook,
    _run_phases,
    class_of,
    one_lab_on_a_double,
)

PHASES = ("check", "recheck", "noop_verify")
PLAYBOOKS = ("playbooks/check.yml", "playbooks/check.yml", "playbooks/verify.yml")
CHAPTER = "1"


def one_lab() -> dict:
    with one_lab_on_a_double("istio-lab-check-") as (workdir, target, values, env):
        built = run_measured(_playbook("site.yml", workdir, values), env, cwd=REPO, timeout_s=RUN_TIMEOUT_S)
        if built.returncode:
            return {"scenario": "check", "labs": 1, "error": "building the lab failed",
                    "output_tail": built.stdout[-3000:]}
        phases = _run_phases(phase_runs(workdir, values), env, {"lab": target}, "1 lab", workdir=workdir,
                             scenario="check")
    return {"scenario": "check", "labs": 1, "playbook": PLAYBOOKS[0], "phases": phases, "targets": targets(phases, 1)}


def phase_runs(workdir: Path, values: dict, inventory: Path | None = None) -> list[tuple[str, list[str]]]:
    """(phase, argv): check.yml of chapter 1, again, then the no-op verify.yml, with the build's extra vars."""
    values = {**values, "chapter": CHAPTER}
    return [(phase, _playbook(playbook, workdir, values, inventory))
            for phase, playbook in zip(PHASES, PLAYBOOKS, strict=True)]


def classroom(labs: int) -> dict:
    """A class of `labs` labs built by classroom.yml (not measured), then check.yml and the no-op verify.yml
    over the class."""
    try:
        with class_of(labs, prefix="istio-lab-check-class-") as room:
            built = run_measured(_playbook("playbooks/classroom.yml", room.workdir, room.values, room.inventory),
                                 room.env, cwd=REPO, timeout_s=RUN_TIMEOUT_S)
            if built.returncode:
                return {"scenario": "check", "labs": labs, "error": "building the class failed",
                        "output_tail": built.stdout[-3000:]}
            print(f"  check {labs} labs: built in {built.wall_s:.1f}s (not measured)", file=sys.stderr)
            phases = _run_phases(phase_runs(room.workdir, room.values, room.inventory), room.env, room.targets,
                                 f"{labs} labs", workdir=room.workdir, scenario="check")
    except ClassError as exc:
        return {"scenario": "check", "labs": labs, "error": "classroom inventory failed", "output_tail": str(exc)}
    return {"scenario": "check", "labs": labs, "playbook": PLAYBOOKS[0], "phases": phases,
            "targets": targets(phases, labs)}


def targets(phases: dict, labs: int = 1) -> list[dict]:
    """check.yml writes nothing to any lab; the re-check of an unchanged class starts one module process per lab
    and costs no more than the no-op verify.yml."""
    check, recheck, verify = (phases.get(phase) for phase in PHASES)
    if any(not p or p.get("returncode") for p in (check, recheck, verify)):
        return []
    who = "1 lab" if labs == 1 else f"{labs} labs"
    writes = check["requests"]["writes"] + recheck["requests"]["writes"]
    return [
        {"target": f"{who}, check.yml: no write", "held": writes == 0, "detail": f"{writes} writes"},
        {"target": f"{who}, re-check: one module process per lab", "held": recheck["module_processes"] <= labs,
         "detail": f"{recheck['module_processes']} module processes"},
        {"target": f"{who}, re-check: CPU no more than the no-op verify.yml",
         "held": recheck["cpu_s"] <= verify["cpu_s"],
         "detail": f"{recheck['cpu_s']:.1f} vs {verify['cpu_s']:.1f} CPU-s"},
        {"target": f"{who}, re-check: wall no more than the no-op verify.yml",
         "held": recheck["wall_s"] <= verify["wall_s"],
         "detail": f"{recheck['wall_s']:.1f} vs {verify['wall_s']:.1f} s"},
    ]


def table(results: list[dict]) -> str:
    lines = ["| run | wall | controller CPU | module processes | reads | writes |",
             "| --- | --- | --- | --- | --- | --- |"]
    for result in results:
        who = "1 lab" if result["labs"] == 1 else f"{result['labs']} labs"
        if result.get("error"):
            lines.append(f"| {who}: {result['error']} | | | | | |")
        for phase, figures in result.get("phases", {}).items():
            requests = figures.get("requests") or {}
            lines.append(f"| {who}, {phase} | {figures['wall_s']:.1f} s | {figures['cpu_s']:.1f} s | "
                         f"{figures.get('module_processes', 0)} | {requests.get('reads', '-')} | "
                         f"{requests.get('writes', '-')} |")
        for target in result.get("targets", []):
            lines.append(f"| target: {target['target']} | {'held' if target['held'] else 'NOT HELD'} | "
                         f"{target['detail']} | | | |")
    return "\n".join(lines)


def run(lab_counts: tuple[int, ...] = (1,)) -> list[dict]:
    results = []
    for labs in lab_counts:
        print(f"check scenario, {labs} lab(s)", file=sys.stderr)
        results.append(one_lab() if labs == 1 else classroom(labs))
    return results
