"""The installed Galaxy collections satisfy requirements.yml.

requirements.yml is the manifest users install from Galaxy; here the `ansible`
package from PyPI brings the collections, so check that what it brought is
inside the declared ranges (a bump of `ansible` that leaves a range fails here).
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
GALAXY = Path(sys.executable).with_name("ansible-galaxy")


def installed_collections():
    out = subprocess.run(
        [str(GALAXY), "collection", "list", "--format", "json"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = {}
    # One entry per collections path; the first path that holds a collection wins,
    # as it does for ansible's own loader.
    for collections in json.loads(out).values():
        for name, info in collections.items():
            found.setdefault(name, info["version"])
    return found


def test_requirements_yml_is_satisfied_by_installed_collections():
    required = yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]
    installed = installed_collections()
    problems = []
    for entry in required:
        name, spec = entry["name"], SpecifierSet(entry["version"])
        version = installed.get(name)
        if version is None:
            problems.append(f"{name}: not installed")
        elif Version(version) not in spec:
            problems.append(f"{name}: installed {version}, requirements.yml asks {spec}")
    assert not problems, "; ".join(problems)


def test_every_collection_used_by_the_code_is_declared():
    """Any installed collection the roles, playbooks or molecule scenarios call
    (`namespace.collection.plugin`) must be declared for Galaxy users."""
    declared = {entry["name"] for entry in yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]}
    # ansible.builtin ships with ansible-core; istio_lab.lab is this repository
    # (galaxy.yml); everything else comes from Galaxy.
    candidates = set(installed_collections()) - {"ansible.builtin", "istio_lab.lab"}
    sources = [REPO / "site.yml", *REPO.glob("playbooks/**/*.yml"), *REPO.glob("roles/**/*.yml"),
               *REPO.glob("molecule/**/*.yml")]
    text = "\n".join(path.read_text() for path in sources if path.is_file())
    used = {name for name in candidates if re.search(rf"(?<![\w.]){re.escape(name)}\.\w+", text)}
    missing = sorted(used - declared)
    assert not missing, f"collections used but not in requirements.yml: {missing}"
