"""Lint gates: ansible-lint (production profile), yamllint, ruff, and a
--syntax-check of every playbook. Each runs the tool exactly as a developer
would from the repository root."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLAYBOOKS = sorted([REPO / "site.yml", *REPO.glob("playbooks/*.yml")])

pytestmark = pytest.mark.lint


def run(*cmd, timeout=600):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PATH=f"{BIN}:{os.environ['PATH']}")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def test_ruff():
    rc, out = run(str(BIN / "ruff"), "check", ".")
    assert rc == 0, out


def test_yamllint():
    rc, out = run(str(BIN / "yamllint"), "-c", ".yamllint", "-s", ".")
    assert rc == 0, out


def test_ansible_lint_production_profile():
    rc, out = run(str(BIN / "ansible-lint"), "--profile", "production", "--offline", "-q", timeout=900)
    assert rc == 0, out[-6000:]


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_playbook_syntax(playbook):
    rc, out = run(str(BIN / "ansible-playbook"), "--syntax-check", str(playbook.relative_to(REPO)))
    assert rc == 0, out
