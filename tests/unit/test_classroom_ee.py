"""The execution environment definition (AWX / Automation Platform): ansible-builder
turns it into a build context whose collections and Python packages are the
project's own. Building the image needs podman/docker and a registry: that
step is out of reach here, the build context is checked up to it."""

import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
BUILDER = Path(sys.executable).parent / "ansible-builder"
DEFINITION = yaml.safe_load((REPO / "execution-environment.yml").read_text())


GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
TARBALL = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    if not BUILDER.exists() and not shutil.which("ansible-builder"):
        pytest.skip("ansible-builder is not installed (pip install 'ansible-builder>=3.1,<4')")
    # The EE installs the collection's tarball, built first as the definition's comment says.
    build = subprocess.run([str(Path(sys.executable).parent / "ansible-galaxy"), "collection", "build",
                            "--output-path", "build", "--force"], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    out = tmp_path_factory.mktemp("ee")
    proc = subprocess.run([str(BUILDER if BUILDER.exists() else "ansible-builder"), "create",
                           "-f", str(REPO / "execution-environment.yml"), "-c", str(out), "--output-filename",
                           "Containerfile"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_definition_is_ansible_builder_v3_with_a_pinned_core():
    assert DEFINITION["version"] == 3
    core = Requirement(DEFINITION["dependencies"]["ansible_core"]["package_pip"])
    import ansible.release

    assert core.specifier.contains(ansible.release.__version__), "the EE's ansible-core is not the one tested here"


def test_build_context_installs_the_projects_collections(context):
    assert (context / "_build" / "requirements.yml").read_text() == (REPO / "requirements.yml").read_text()
    containerfile = (context / "Containerfile").read_text()
    assert re.search(r'^ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"$', containerfile, re.M)
    assert "ansible-galaxy collection install" in containerfile


def test_build_context_installs_the_built_collection_not_a_copy_of_the_checkout(context):
    """istio_lab.lab goes in as the tarball `ansible-galaxy collection build` made, installed
    with ansible-galaxy after its dependencies; no file of the checkout is copied in."""
    tarball = context / "_build" / "collections" / TARBALL
    assert tarball.is_file()
    with tarfile.open(tarball) as archive:
        info = json.load(archive.extractfile("MANIFEST.json"))["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (GALAXY["namespace"], GALAXY["name"],
                                                                    GALAXY["version"])
    containerfile = (context / "Containerfile").read_text()
    install = re.search(r"^RUN ansible-galaxy collection install --offline /build/collections/istio_lab-lab-\*\.tar\.gz"
                        r" --collections-path /usr/share/ansible/collections$", containerfile, re.M)
    assert install, containerfile
    requirements = containerfile.index("-r requirements.yml --collections-path")
    assert requirements < install.start(), "the collection's dependencies are installed first"
    copied = {p.relative_to(context / "_build").parts[0] for p in (context / "_build").rglob("*")}
    assert copied <= {"requirements.txt", "requirements.yml", "bindep.txt", "scripts", "collections"}, copied
    assert not re.search(r"^(COPY|ADD) .*\b(roles|plugins|playbooks)\b", containerfile, re.M)
    assert 'ANSIBLE_INSTALL_REFS="ansible-core>=2.19,<2.20 ansible-runner>=2.4,<3"' in containerfile


def test_build_context_python_packages_match_the_projects_pins(context):
    in_ee = {Requirement(line).name.lower(): Requirement(line)
             for line in (context / "_build" / "requirements.txt").read_text().split("\n") if line.strip()}
    project = {Requirement(line).name.lower(): Requirement(line)
               for line in (REPO / "requirements.txt").read_text().split("\n")
               if line.strip() and not line.startswith("#")}
    assert set(in_ee) == {"kubernetes", "pyyaml", "jsonschema"}
    for name, requirement in in_ee.items():
        assert requirement.specifier == project[name].specifier, name
