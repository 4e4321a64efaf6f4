"""The `upgrade` scenario: playbooks/upgrade.yml between two terms.

One lab on its own API double (as the site scenario's): built by site.yml on
the previous releases (Istio 1.29.6, MetalLB 0.15.3, from ../shared; not
measured), then measured: the upgrade to the pins, the upgrade again (nothing
to upgrade) and a no-op site.yml for comparison. A class of N labs (the site
scenario's class, each lab on its own double, `class_of`): built by
classroom.yml on the previous releases (not measured), then measured:
`upgrade.yml -i <classroom inventory>` over the class, again (nothing to
upgrade), and the no-op classroom.yml (every stage, as the site scenario runs
it) for comparison. Figures per run as the site scenario's: wall, the
controller's CPU seconds, module processes, the requests (writes above all:
nothing to upgrade must write nothing and cost no more than the no-op).

Boundaries, as in tests/api/test_upgrade.py: istioctl is its test double,
linked into a release directory per version (tests/helpers.py,
versioned_sources).
"""

from __future__ import annotations

import sys

from .harness import REPO, run_measured
from .site import (
    RUN_TIMEOUT_S,
    ClassError,
    _playbook,
    _run_phases,
    _shared_dir,
    _tests,
    class_of,
    one_lab_on_a_double,
)

PHASES = ("upgrade", "noop_upgrade", "noop_site")
CLASS_PHASES = ("upgrade", "noop_upgrade", "noop_classroom")


def one_lab() -> dict:
    helpers = _tests()[0]
    with one_lab_on_a_double("istio-lab-upgrade-", versioned=True) as (workdir, target, values, env):
        built = run_measured(_playbook("site.yml", workdir, {**values, **helpers.OLD}), env, cwd=REPO,
                             timeout_s=RUN_TIMEOUT_S)
        if built.returncode:
            return {"scenario": "upgrade", "labs": 1, "error": "building the 1.29.6 lab failed",
                    "output_tail": built.stdout[-3000:]}
        runs = [(phase, _playbook(playbook, workdir, values))
                for phase, playbook in zip(PHASES, ("playbooks/upgrade.yml",) * 2 + ("site.yml",), strict=True)]
        phases = _run_phases(runs, env, {"lab": target}, "1 lab", workdir=workdir, scenario="upgrade")
    return {"scenario": "upgrade", "labs": 1, "playbook": "playbooks/upgrade.yml", "phases": phases,
            "targets": targets(phases, 1)}


def classroom(labs: int) -> dict:
    """A class of `labs` labs built by classroom.yml on the previous releases (not measured), then upgrade.yml
    over the class, again, and the no-op classroom.yml."""
    helpers = _tests()[0]
    try:
        with class_of(labs, prefix="istio-lab-upgrade-class-") as room:
            values = {**room.values, **helpers.versioned_sources(_shared_dir() / "upstream", room.workdir)}
            built = run_measured(_playbook("playbooks/classroom.yml", room.workdir, {**values, **helpers.OLD},
                                           room.inventory), room.env, cwd=REPO, timeout_s=RUN_TIMEOUT_S)
            if built.returncode:
                return {"scenario": "upgrade", "labs": labs, "error": "building the 1.29.6 class failed",
                        "output_tail": built.stdout[-3000:]}
            print(f"  upgrade {labs} labs: built on {helpers.OLD['istio_version']} in {built.wall_s:.1f}s "
                  "(not measured)", file=sys.stderr)
            playbooks = ("playbooks/upgrade.yml",) * 2 + ("playbooks/classroom.yml",)
            runs = [(phase, _playbook(playbook, room.workdir, values, room.inventory))
                    for phase, playbook in zip(CLASS_PHASES, playbooks, strict=True)]
            phases = _run_phases(runs, room.env, room.targets, f"{labs} labs", workdir=room.workdir,
                                 scenario="upgrade")
    except ClassError as exc:
        return {"scenario": "upgrade", "labs": labs, "error": "classroom inventory failed", "output_tail": str(exc)}
    return {"scenario": "upgrade", "labs": labs, "playbook": "playbooks/upgrade.yml", "phases": phases,
            "targets": targets(phases, labs)}


def targets(phases: dict, labs: int = 1) -> list[dict]:
    """Nothing to upgrade writes nothing and costs no more than the no-op site.yml (a class: classroom.yml)."""
    noop = phases.get("noop_upgrade")
    site = phases.get("noop_site") or phases.get("noop_classroom")
    if not noop or not site or noop.get("returncode") or site.get("returncode"):
        return []
    playbook = "site.yml" if "noop_site" in phases else "classroom.yml"
    who = "1 lab" if labs == 1 else f"{labs} labs"
    return [
        {"target": f"{who}, nothing to upgrade: no write", "held": noop["requests"]["writes"] == 0,
         "detail": f"{noop['requests']['writes']} writes"},
        {"target": f"{who}, nothing to upgrade: CPU no more than the no-op {playbook}",
         "held": noop["cpu_s"] <= site["cpu_s"], "detail": f"{noop['cpu_s']:.1f} vs {site['cpu_s']:.1f} CPU-s"},
        {"target": f"{who}, nothing to upgrade: wall no more than the no-op {playbook}",
         "held": noop["wall_s"] <= site["wall_s"], "detail": f"{noop['wall_s']:.1f} vs {site['wall_s']:.1f} s"},
    ]


def table(results: list[dict]) -> str:
    lines = ["| run | wall | controller CPU | writes |", "| --- | --- | --- | --- |"]
    for result in results:
        who = "1 lab" if result["labs"] == 1 else f"{result['labs']} labs"
        if result.get("error"):
            lines.append(f"| {who}: {result['error']} | | | |")
        for phase, figures in result.get("phases", {}).items():
            lines.append(f"| {who}, {phase} | {figures['wall_s']:.1f} s | {figures['cpu_s']:.1f} s | "
                         f"{figures['requests']['writes']} |")
        for target in result.get("targets", []):
            lines.append(f"| target: {target['target']} | {'held' if target['held'] else 'NOT HELD'} | "
                         f"{target['detail']} | |")
    return "\n".join(lines)


def run(lab_counts: tuple[int, ...] = (1,)) -> list[dict]:
    results = []
    for labs in lab_counts:
        print(f"upgrade scenario, {labs} lab(s)", file=sys.stderr)
        results.append(one_lab() if labs == 1 else classroom(labs))
    return results
