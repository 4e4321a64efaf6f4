"""The installed Galaxy collections satisfy requirements.yml.

requirements.yml is the manifest users install from Galaxy; here the `ansible`
package from PyPI brings the collections, so check that what it brought is
inside the declared ranges (a bump of `ansible` that leaves a range fails here).
"""

import json
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
    declared = {entry["name"] for entry in yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]}
    used = set()
    for path in list(REPO.glob("roles/**/*.yml")) + list(REPO.glob("playbooks/*.yml")) + [REPO / "site.yml"]:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stripped = line.strip().lstrip("- ").split(":", 1)[0]
            parts = stripped.split(".")
            if len(parts) == 3 and all(p.isidentifier() for p in parts) and parts[0] != "ansible":
                used.add(f"{parts[0]}.{parts[1]}")
    # ansible.posix is the one ansible.* collection outside ansible-core.
    for path in REPO.glob("roles/**/*.yml"):
        if "ansible.posix." in path.read_text():
            used.add("ansible.posix")
    missing = sorted(used - declared)
    assert not missing, f"collections used but not in requirements.yml: {missing}"
