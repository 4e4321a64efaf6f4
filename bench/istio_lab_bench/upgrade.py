"""The `upgrade` scenario: playbooks/upgrade.yml between two terms.

One lab on its own API double (as the site scenario's): built by site.yml on
the previous releases (Istio 1.29.6, MetalLB 0.15.3, from ../shared; not
measured), then measured: the upgrade to the pins, the upgrade again (nothing
to upgrade) and a no-op site.yml for comparison. Figures per run as the site
scenario's: wall, the controller's CPU seconds, the requests (writes above
all: nothing to upgrade must write nothing and cost no more than the no-op
site.yml). A class is `playbooks/upgrade.yml -i <classroom inventory>` over
the same steps; this scenario measures one lab (the class's cost is that of
its labs run in parallel, docs/bench.md).

Boundaries, as in tests/api/test_upgrade.py: istioctl is its test double,
linked into a release directory per version.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .harness import REPO, DoubleTarget, run_measured
from .site import (
    ENVOY_ADDRESS,
    ONE_LAB_INGRESS_IP,
    ONE_LAB_POOL,
    RUN_TIMEOUT_S,
    _environment,
    _phase,
    _playbook,
    _shared_dir,
    _tests,
)

OLD = {"istio_version": "1.29.6", "metallb_version": "0.15.3"}
PHASES = ("upgrade", "noop_upgrade", "noop_site")


def _releases(workdir: Path) -> Path:
    for version in ("1.29.6", "1.30.3"):
        binary = workdir / "releases" / f"istio-{version}" / "bin" / "istioctl"
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.symlink_to(REPO / "tests" / "bin" / "istioctl")
    return workdir / "releases"


def one_lab() -> dict:
    helpers, verify_envoy = _tests()
    with tempfile.TemporaryDirectory(prefix="istio-lab-upgrade-") as tmp:
        workdir = Path(tmp)
        target = DoubleTarget(workdir)
        phases: dict = {}
        try:
            with verify_envoy.EnvoyLikeServer(ENVOY_ADDRESS, 0, verify_envoy.chapter_answers("kubernets.cn")) as envoy:
                upstream = _shared_dir() / "upstream"
                values = helpers.platform_vars(
                    upstream, workdir, ONE_LAB_POOL, ONE_LAB_INGRESS_IP,
                    cluster_provider="existing", lab_kubeconfig=str(target.kubeconfig), istio_istioctl_path="",
                    istio_release_src=f"{_releases(workdir)}/istio-{{{{ istio_version }}}}",
                    istio_addons_src=f"{upstream}/istio-{{{{ istio_version }}}}/addons",
                    metallb_manifest_src=f"{upstream}/metallb-{{{{ metallb_version }}}}/metallb-native.yaml",
                    lab_verify_report_dir=str(workdir / "artifacts"), lab_verify_retries=0,
                    lab_verify_ingress_ip=envoy.address, lab_verify_http_port=envoy.port)
                env = _environment(workdir)
                built = run_measured(_playbook("site.yml", workdir, {**values, **OLD}), env, cwd=REPO,
                                     timeout_s=RUN_TIMEOUT_S)
                if built.returncode:
                    return {"scenario": "upgrade", "labs": 1, "error": "building the 1.29.6 lab failed",
                            "output_tail": built.stdout[-3000:]}
                for phase, playbook in zip(PHASES, ("playbooks/upgrade.yml", "playbooks/upgrade.yml", "site.yml"),
                                           strict=True):
                    target.reset()
                    measured = run_measured(_playbook(playbook, workdir, values), env, cwd=REPO,
                                            timeout_s=RUN_TIMEOUT_S)
                    phases[phase] = _phase(measured, {"lab": target.records()})
                    print(f"  upgrade 1 lab {phase}: {measured.wall_s:.1f}s wall, {measured.cpu_s:.1f} CPU-s, "
                          f"{phases[phase]['requests']['writes']} writes (rc {measured.returncode})", file=sys.stderr)
                    if measured.returncode:
                        phases[phase]["output_tail"] = measured.stdout[-3000:] + measured.stderr[-2000:]
                        break
        finally:
            target.close()
    return {"scenario": "upgrade", "labs": 1, "playbook": "playbooks/upgrade.yml", "phases": phases,
            "targets": targets(phases)}


def targets(phases: dict) -> list[dict]:
    """Nothing to upgrade writes nothing and costs no more than the no-op site.yml."""
    noop, site = phases.get("noop_upgrade"), phases.get("noop_site")
    if not noop or not site:
        return []
    return [
        {"target": "nothing to upgrade: no write", "held": noop["requests"]["writes"] == 0,
         "detail": f"{noop['requests']['writes']} writes"},
        {"target": "nothing to upgrade: CPU no more than the no-op site.yml", "held": noop["cpu_s"] <= site["cpu_s"],
         "detail": f"{noop['cpu_s']:.1f} vs {site['cpu_s']:.1f} CPU-s"},
        {"target": "nothing to upgrade: wall no more than the no-op site.yml",
         "held": noop["wall_s"] <= site["wall_s"], "detail": f"{noop['wall_s']:.1f} vs {site['wall_s']:.1f} s"},
    ]


def table(results: list[dict]) -> str:
    lines = ["| run | wall | controller CPU | writes |", "| --- | --- | --- | --- |"]
    for result in results:
        for phase, figures in result.get("phases", {}).items():
            lines.append(f"| {result['labs']} lab, {phase} | {figures['wall_s']:.1f} s | {figures['cpu_s']:.1f} s | "
                         f"{figures['requests']['writes']} |")
        for target in result.get("targets", []):
            lines.append(f"| target: {target['target']} | {'held' if target['held'] else 'NOT HELD'} | "
                         f"{target['detail']} | |")
    return "\n".join(lines)


def run() -> list[dict]:
    print("upgrade scenario, 1 lab", file=sys.stderr)
    return [one_lab()]
