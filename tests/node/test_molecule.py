"""Molecule node scenarios on locally built Debian systemd containers.

Each scenario runs `molecule test -s <scenario>` (create, converge,
idempotence, verify, destroy) on an image tests/node/build-image.sh builds once
with debootstrap and caches in the local Docker engine. Skipped, with the
reason, only when no Docker engine answers or debootstrap is missing.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_IMAGE = REPO / "tests" / "node" / "build-image.sh"

# scenario -> (Debian suite of its image, steps that must have succeeded)
SCENARIOS = {
    # converge, then idempotence (a second converge with no change), then testinfra
    "node_prep_bookworm": ("bookworm", ["converge", "idempotence", "verify"]),
    "node_prep_trixie": ("trixie", ["converge", "idempotence", "verify"]),
    # node_prep for real, the cluster play in check mode, the reset, testinfra
    "cluster_check": ("bookworm", ["prepare", "check", "side_effect", "verify"]),
}

pytestmark = [pytest.mark.node, pytest.mark.slow]


def _docker_problem():
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0:
        return f"no Docker engine answers (run scripts/start-dockerd as root): {info.stderr.strip()[:200]}"
    return None


def _image_present(suite):
    return (
        subprocess.run(["docker", "image", "inspect", f"istio-lab-node:{suite}"], capture_output=True).returncode == 0
    )


@pytest.fixture(scope="session")
def node_image():
    problem = _docker_problem()
    if problem:
        pytest.skip(problem)

    def build(suite):
        if _image_present(suite):
            return f"istio-lab-node:{suite}"
        if shutil.which("debootstrap") is None or os.geteuid() != 0:
            pytest.skip(
                f"istio-lab-node:{suite} is not built and building it needs root and debootstrap (scripts/setup)"
            )
        result = subprocess.run([str(BUILD_IMAGE), suite], capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"image build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        assert _image_present(suite)
        return f"istio-lab-node:{suite}"

    return build


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_molecule_scenario(scenario, node_image):
    suite, steps = SCENARIOS[scenario]
    node_image(suite)
    venv_bin = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=f"{venv_bin}:{os.environ.get('PATH', '')}", ANSIBLE_FORCE_COLOR="0", NO_COLOR="1")
    env.pop("ANSIBLE_CONFIG", None)  # molecule writes its own; paths come from molecule.yml
    result = subprocess.run(
        [str(Path(venv_bin) / "molecule"), "test", "-s", scenario],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"molecule test -s {scenario} failed:\n{output[-8000:]}"
    # Each step ran (molecule reports every action it executed) and succeeded.
    # (molecule writes "<scenario> ➜ <step>" in colour, "<scenario> > <step>" without)
    for step in steps:
        done = re.search(rf"^{scenario} (➜|>) {step}: Executed: Successful\s*$", output, re.MULTILINE)
        assert done, f"{step} did not run:\n{output[-4000:]}"
    assert "failed=1" not in output
