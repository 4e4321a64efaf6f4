"""istio-lab as the Ansible collection istio_lab.lab (issue 15), the way a user
takes it: `ansible-galaxy collection build` from the repository, the tarball
installed alone into an empty directory, then, from a directory outside the
repository and without its ansible.cfg, playbooks that call the modules, roles
and playbooks by FQCN against the `kube` fixture's API (the double, or the
real cluster of ISTIO_LAB_TEST_KUBECONFIG), `ansible-doc` of every module, and
`ansible-test sanity` and `ansible-test units` on the installed tree."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab import applyset
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.helpers import REPO, VENV_BIN, parse_recap
from tests.unit.test_requirements import installed_collections

GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
TARBALL = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
MODULES = sorted(p.stem for p in (REPO / "plugins/modules").glob("*.py") if not p.stem.startswith("_"))
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
PLAYBOOKS = sorted(p.stem for p in (REPO / "playbooks").glob("*.yml") if "-" not in p.stem)
MANAGED = ("app.kubernetes.io/managed-by", "istio-lab")
ISTIO = "networking.istio.io/v1"


def clean_environment(collections: Path | None = None, **extra) -> dict:
    """The caller's environment without anything of istio-lab's checkout: no
    ANSIBLE_* setting (ANSIBLE_CONFIG above all), the venv's tools on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "K8S_AUTH_", "KUBECONFIG"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_RETRY_FILES_ENABLED"] = "0"
    if collections is not None:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    env.update(extra)
    return env


def run(command, cwd, env, timeout=600):
    completed = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                               timeout=timeout, check=False)
    return completed


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A working directory outside the repository, with no ansible.cfg."""
    path = tmp_path_factory.mktemp("user-project")
    assert REPO not in path.resolve().parents
    return path


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    completed = run([VENV_BIN / "ansible-galaxy", "collection", "build", "--output-path", out], REPO,
                    clean_environment())
    assert completed.returncode == 0, completed.stdout + completed.stderr
    path = out / TARBALL
    assert path.is_file(), completed.stdout
    return path


@pytest.fixture(scope="module")
def collections(tarball, tmp_path_factory, outside) -> Path:
    """The tarball installed alone into an empty directory. Galaxy is not asked:
    the dependencies are the collections the `ansible` package bundles."""
    destination = tmp_path_factory.mktemp("collections")
    completed = run([VENV_BIN / "ansible-galaxy", "collection", "install", "--offline", tarball, "-p", destination],
                    outside, clean_environment())
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"{FQCN}:{GALAXY['version']} was installed successfully" in completed.stdout
    return destination


@pytest.fixture(scope="module")
def installed(collections) -> Path:
    return collections / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]


# ---------------------------------------------------------------- the collection's definition


def test_galaxy_yml_follows_galaxys_rules():
    assert re.fullmatch(r"[a-z][a-z0-9_]*", GALAXY["namespace"]) and "__" not in GALAXY["namespace"]
    assert re.fullmatch(r"[a-z][a-z0-9_]*", GALAXY["name"]) and "__" not in GALAXY["name"]
    assert Version(GALAXY["version"]) >= Version("1.0.0")
    assert GALAXY["license"] and GALAXY["readme"] == "README.md"
    runtime = yaml.safe_load((REPO / "meta/runtime.yml").read_text())
    import ansible.release

    assert Version(ansible.release.__version__) in SpecifierSet(runtime["requires_ansible"])


def test_every_collection_the_content_calls_is_a_declared_and_satisfied_dependency():
    declared = GALAXY["dependencies"]
    installed = installed_collections()
    sources = [*REPO.glob("playbooks/**/*.yml"), *REPO.glob("roles/**/*.yml"), *REPO.glob("roles/**/*.j2"),
               *REPO.glob("plugins/**/*.py")]
    text = "\n".join(path.read_text() for path in sources if path.is_file())
    candidates = set(installed) - {"ansible.builtin", FQCN}
    used = {name for name in candidates if re.search(rf"(?<![\w.]){re.escape(name)}\.\w+", text)}
    assert sorted(used - set(declared)) == [], "collections the content calls but galaxy.yml does not declare"
    for name, spec in declared.items():
        assert name in installed, f"{name}: declared in galaxy.yml, not installed"
        assert Version(installed[name]) in SpecifierSet(spec), f"{name} {installed[name]} not in {spec}"
    # requirements.yml (for the checkout) asks at least what the collection needs
    required = {e["name"]: e["version"] for e in yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]}
    for name, spec in declared.items():
        assert required.get(name) == spec, f"{name}: galaxy.yml and requirements.yml disagree"


def test_the_changelog_is_kept_with_fragments():
    config = yaml.safe_load((REPO / "changelogs/config.yaml").read_text())
    changelog = yaml.safe_load((REPO / "changelogs/changelog.yaml").read_text())
    assert config["notesdir"] == "fragments" and "releases" in changelog
    sections = {name for name, _title in config["sections"]} | {config["prelude_section_name"], "trivial"}
    fragments = sorted((REPO / "changelogs/fragments").glob("*.yml"))
    assert fragments
    for fragment in fragments:
        content = yaml.safe_load(fragment.read_text())
        assert isinstance(content, dict) and set(content) <= sections, fragment.name
        for entries in content.values():
            assert isinstance(entries, (list, str)), fragment.name


def test_the_checkout_is_the_installed_collection():
    link = REPO / "collections" / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert link.is_symlink() and not Path(os.readlink(link)).is_absolute()
    assert link.resolve() == REPO.resolve()
    completed = run([VENV_BIN / "ansible-galaxy", "collection", "list", FQCN, "--format", "json"], REPO,
                    clean_environment(ANSIBLE_CONFIG=str(REPO / "ansible.cfg")))
    assert completed.returncode == 0, completed.stderr
    found = {name: info for paths in json.loads(completed.stdout).values() for name, info in paths.items()}
    assert found[FQCN]["version"] == GALAXY["version"]
    # the bundled collections are still found from the checkout
    config = run([VENV_BIN / "ansible-doc", "-t", "module", "kubernetes.core.k8s", "--json"], REPO,
                 clean_environment(ANSIBLE_CONFIG=str(REPO / "ansible.cfg")))
    assert config.returncode == 0, config.stderr


# ---------------------------------------------------------------- build and install


def test_the_tarball_holds_the_content_and_nothing_of_the_checkout(tarball):
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (GALAXY["namespace"], GALAXY["name"],
                                                                    GALAXY["version"])
    assert info["dependencies"] == GALAXY["dependencies"]
    expected = {"meta/runtime.yml", "README.md", "changelogs/changelog.yaml", "playbooks/site.yml",
                "plugins/doc_fragments/istio_lab_auth.py", "plugins/module_utils/istio_lab/__init__.py",
                *(f"plugins/modules/{m}.py" for m in MODULES), *(f"roles/{r}/meta/main.yml" for r in ROLES),
                *(f"plugins/filter/{p.name}" for p in (REPO / "plugins/filter").glob("*.py"))}
    assert sorted(expected - names) == []
    unwanted = (".venv", ".git", "collections", "bench", "molecule", "scripts", "artifacts", "handouts", "saves",
                ".retry", ".ci", "tests/api", "tests/kube_double", "tests/node", "tests/fixtures", "tests/bin",
                "ansible.cfg", "site.yml", "inventory/classroom/")
    leaked = sorted(n for n in names if n.startswith(unwanted) or "__pycache__" in n or n.endswith((".pyc", ".retry")))
    assert leaked == []
    kept_tests = ("tests/sanity", "tests/unit/plugins")
    assert sorted(n for n in names if n.startswith("tests/") and not n.startswith(kept_tests)
                  and n not in ("tests", "tests/unit")) == []


def test_installed_alone_into_an_empty_directory(collections, installed):
    assert sorted(p.name for p in collections.iterdir()) == ["ansible_collections"]
    assert sorted(p.name for p in (collections / "ansible_collections").iterdir()) == [GALAXY["namespace"]]
    manifest = json.loads((installed / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["version"] == GALAXY["version"]
    # role defaults that the repository links in from inventory/ are real content once installed
    assert "lab_chapters" in yaml.safe_load((installed / "roles/lab_defaults/defaults/main/chapters.yml").read_text())


def test_ansible_doc_renders_every_module_by_fqcn(collections, outside):
    env = clean_environment(collections)
    completed = run([VENV_BIN / "ansible-doc", "--json", *(f"{FQCN}.{m}" for m in MODULES)], outside, env)
    assert completed.returncode == 0, completed.stderr
    docs = json.loads(completed.stdout)
    assert sorted(docs) == [f"{FQCN}.{m}" for m in MODULES]
    for name, doc in docs.items():
        assert doc["doc"]["short_description"] and doc["doc"]["options"], name
        assert doc["doc"]["collection"] == FQCN, name
        # the connection options come from the collection's doc fragment
        assert "kubeconfig" in doc["doc"]["options"] or name.endswith("lab_http_probe"), name
        assert doc["examples"].strip() and doc["return"], name
        assert f"{FQCN}." in doc["examples"], f"{name}: examples must call the module by FQCN"
    for module in MODULES:
        text = run([VENV_BIN / "ansible-doc", f"{FQCN}.{module}"], outside, env)
        assert text.returncode == 0, text.stderr
        assert f"{FQCN}.{module}" in text.stdout and "OPTIONS" in text.stdout, module
        assert "WARNING" not in text.stderr.upper(), text.stderr
    roles = run([VENV_BIN / "ansible-doc", "-t", "role", "--list", "--json", FQCN], outside, env)
    assert roles.returncode == 0, roles.stderr
    assert sorted(json.loads(roles.stdout)) == [f"{FQCN}.{r}" for r in ROLES]


def playbook(command, collections, outside, kube=None, timeout=600):
    env = clean_environment(collections, **(kube.env if kube is not None else {}))
    completed = run([VENV_BIN / "ansible-playbook", *command], outside, env, timeout=timeout)
    completed.recap = parse_recap(completed.stdout)
    completed.changed = sum(h.get("changed", 0) for h in completed.recap.values())
    completed.failed = sum(h.get("failed", 0) + h.get("unreachable", 0) for h in completed.recap.values())
    return completed


def show(completed) -> str:
    return f"rc={completed.returncode}\n{completed.stdout[-6000:]}\n{completed.stderr[-3000:]}"


def readme_first_playbook() -> str:
    """The README's first playbook with istio_routes (between its markers)."""
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- first-playbook -->", 1)[1].split("<!-- /first-playbook -->", 1)[0]
    return block.split("```yaml\n", 1)[1].split("```", 1)[0]


@pytest.mark.api
def test_the_readmes_first_playbook_runs_by_fqcn_from_outside_the_repository(kube, collections, outside, tmp_path):
    """The user's own playbook (README): lab_manifests and istio_routes by FQCN;
    a second run changes and writes nothing."""
    path = tmp_path / "publish-tomcat.yml"
    path.write_text(readme_first_playbook())
    command = [path, "-i", "localhost,", "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"]
    first = playbook(command, collections, tmp_path, kube)
    assert first.returncode == 0 and first.failed == 0, show(first)
    assert first.changed == 2, show(first)
    gateway = kube.get(ISTIO, "Gateway", "ingressgateway80", "microservice")
    route = kube.get(ISTIO, "VirtualService", "tomcat-virtualservice", "microservice")
    assert gateway and route
    assert route["spec"]["gateways"] == ["ingressgateway80"]
    assert gateway["metadata"]["labels"][MANAGED[0]] == MANAGED[1]
    mark = kube.mark()
    again = playbook(command, collections, tmp_path, kube)
    assert again.returncode == 0 and again.changed == 0, show(again)
    assert kube.writes(mark) == []


@pytest.mark.api
def test_a_collection_playbook_runs_by_fqcn_with_an_inventory_of_ones_own(kube, collections, outside, tmp_path):
    """`ansible-playbook istio_lab.lab.routes` with a bare inventory (no istio-lab
    group_vars): the chapter catalogue and lab settings come with the roles."""
    kube.ensure_namespace("microservice", {"istio-injection": "enabled"})
    kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "tomcat", "namespace": "microservice"},
                 "spec": {"selector": {"app": "tomcat"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"labs": {"hosts": {"lab": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "lab_kubeconfig": kube.kubeconfig, "lab_kube_context": kube.context}}}}}}))
    chapter_1 = ["-e", json.dumps({"lab_routes_chapters": ["1"]})]
    first = playbook([f"{FQCN}.routes", "-i", inventory, *chapter_1], collections, outside, kube)
    assert first.returncode == 0 and first.failed == 0, show(first)
    assert first.changed == 1, show(first)
    gateway = kube.get(ISTIO, "Gateway", "ingressgateway80", "microservice")
    # A chapter's routes are its owned set chapter-<id> (issue 20, docs/applysets.md).
    assert gateway["metadata"]["labels"] == {MANAGED[0]: MANAGED[1], "istio-lab.io/chapter": "1",
                                             applyset.PART_OF: applyset.set_id("chapter-1")}
    assert kube.get(ISTIO, "VirtualService", "tomcat-virtualservice", "microservice")
    mark = kube.mark()
    again = playbook([f"{FQCN}.routes", "-i", inventory, *chapter_1], collections, outside, kube)
    assert again.returncode == 0 and again.changed == 0, show(again)
    assert kube.writes(mark) == []
    removed = playbook([f"{FQCN}.routes", "-i", inventory, *chapter_1, "-e", "lab_routes_state=absent"],
                       collections, outside, kube)
    assert removed.returncode == 0 and removed.failed == 0, show(removed)
    assert kube.get(ISTIO, "Gateway", "ingressgateway80", "microservice") is None


def test_every_collection_playbook_is_found_by_fqcn(collections, outside):
    inventory = outside / "syntax-hosts.yml"
    inventory.write_text("all:\n  children:\n    labs:\n      hosts:\n        lab: {ansible_connection: local}\n")
    assert {"site", "metallb", "routes", "verify", "reset_chapter", "classroom"} <= set(PLAYBOOKS)
    for name in PLAYBOOKS:
        completed = playbook([f"{FQCN}.{name}", "-i", inventory, "--syntax-check"], collections, outside)
        assert completed.returncode == 0, f"{name}: {show(completed)}"
        assert f"ansible_collections/{GALAXY['namespace']}/{GALAXY['name']}/playbooks/{name}.yml" in completed.stdout


# ---------------------------------------------------------------- ansible-test


def ansible_test_environment(workdir: Path) -> dict:
    """ansible-test --venv makes a virtual environment per test and bootstraps pip
    in each with a get-pip script from ci-files.testing.ansible.com, looked for
    first in ~/.ansible/test/cache. A HOME of ansible-test's own (kept between
    runs: the environments are reused) holds a stand-in that installs pip from
    PyPI instead (get_pip_offline.py)."""
    home = Path(os.environ.get("ISTIO_LAB_ANSIBLE_TEST_HOME")
                or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "istio-lab" / "ansible-test")
    cache = home / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    import ansible_test._internal.python_requirements as requirements

    pip_version = re.search(r"pip='([\d.]+)'", Path(requirements.__file__).read_text()).group(1)
    stand_in = cache / f"get_pip_{pip_version.replace('.', '_')}.py"
    shutil.copyfile(Path(__file__).with_name("get_pip_offline.py"), stand_in)
    env = clean_environment(HOME=str(home))
    # ansible-test hands pip only HOME and PATH: the caller's pip settings (its user pip.conf, PIP_* variables:
    # index, certificates) go to the pip.conf of that HOME.
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(Path.home() / ".config" / "pip" / "pip.conf")
    if not conf.has_section("global"):
        conf.add_section("global")
    for key, value in os.environ.items():
        if key.startswith("PIP_"):
            conf.set("global", key[4:].lower().replace("_", "-"), value)
    (home / ".config" / "pip").mkdir(parents=True, exist_ok=True)
    with open(home / ".config" / "pip" / "pip.conf", "w", encoding="utf-8") as handle:
        conf.write(handle)
    return env


@pytest.fixture(scope="module")
def test_tree(installed, tmp_path_factory) -> Path:
    """A copy of the installed collection under .../ansible_collections/<namespace>/<name>,
    as ansible-test wants it (its output goes to tests/output of the copy)."""
    root = tmp_path_factory.mktemp("ansible-test") / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    shutil.copytree(installed, root, symlinks=True)
    return root


@pytest.mark.slow
def test_ansible_test_sanity_passes(test_tree):
    ignores = test_tree / "tests" / "sanity" / "ignore-2.19.txt"
    if ignores.is_file():
        for line in ignores.read_text().splitlines():
            assert "#" in line or not line.strip(), f"an ignore without its reason: {line}"
    env = ansible_test_environment(test_tree)
    completed = run([VENV_BIN / "ansible-test", "sanity", "--venv", "--python", "3.11", "--color", "no"], test_tree,
                    env, timeout=3600)
    assert completed.returncode == 0, completed.stdout[-8000:] + completed.stderr[-8000:]


@pytest.mark.slow
def test_ansible_test_units_runs_the_module_utils_tests(test_tree):
    tests = sorted((REPO / "tests/unit/plugins/module_utils").rglob("test_*.py"))
    assert tests, "module_utils unit tests belong under tests/unit/plugins/module_utils/"
    env = ansible_test_environment(test_tree)
    completed = run([VENV_BIN / "ansible-test", "units", "--venv", "--python", "3.11", "--color", "no",
                     "tests/unit/plugins/module_utils/"], test_tree, env, timeout=3600)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-8000:]
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) >= len(tests), output[-3000:]
