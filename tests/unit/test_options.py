"""Boolean and integer options as people type them (issue 21).

`-e name=false` gives Ansible the string "false", which a bare Jinja test
(`when: name`, `{{ name and ... }}`) takes as true. Every `type: bool` option of
every role's argument specs (and the playbook-level `reset_confirm`) is therefore
converted with `| bool` wherever a task, template, vars file or playbook reads
it; an integer option is converted with `| int` wherever it is computed with or
handed to a filter (a bare `"{{ name }}"` is converted by the module option or
task keyword it fills). This test reads the options from the specs, so a new
option or a new use is covered without editing it. The lab_options vars plugin
refuses invalid values before anything runs (checked here on its pure parts and
through ansible-playbook in tests/api/test_options.py).
"""

import re
from pathlib import Path

import pytest
from ansible_collections.istio_lab.lab.plugins.vars.lab_options import option_errors, typed_options

REPO = Path(__file__).resolve().parents[2]
# Where options are read: every role's tasks/templates/vars/defaults/handlers and the playbooks.
READERS = ("tasks", "templates", "vars", "defaults", "handlers")


def reader_files():
    for role in sorted((REPO / "roles").iterdir()):
        for folder in READERS:
            yield from sorted(path for path in (role / folder).rglob("*") if path.is_file())
    yield from sorted((REPO / "playbooks").glob("*.yml"))


def unconverted_uses(text: str, name: str, kind: str) -> list:
    """The lines of `text` that read option `name` without converting it to `kind`."""
    problems = []
    use = re.compile(rf"(?<![\w.'\"]){re.escape(name)}(?![\w'\"])")
    for number, line in enumerate(text.splitlines(), 1):
        code = line.strip()
        if code.startswith("#") or code.startswith("{#"):
            continue
        for match in use.finditer(line):
            before, after = line[:match.start()], line[match.end():]
            if re.fullmatch(r"\s*(-\s+)?", before) and after.startswith(":"):
                continue  # the key that defines it (defaults, vars:, set_fact)
            if after.startswith("="):
                continue  # a message quoting the command line (-e name=true)
            if re.match(r"\s*(\|\s*default\([^()]*\)\s*)?\|\s*" + kind + r"\b", after):
                continue
            if kind == "int" and (re.match(r"\s*\|\s*string\b", after)
                                  or (re.search(r"\{\{\s*$", before) and re.match(r"\s*\}\}", after))):
                continue  # rendered as text, or a whole "{{ name }}" the receiving option converts
            problems.append(f"{number}: {code}")
    return problems


def test_the_specs_declare_the_options_the_issue_names():
    types = typed_options()
    for name in ("lab_verify_fail", "lab_verify_mesh_probes", "lab_verify_accept_redirects", "lab_preflight_force",
                 "chapter_restore_force", "node_prep_containerd", "node_prep_ipvs", "reset_confirm"):
        assert types[name] == "bool"
    assert types["lab_wait_timeout"] == "int"
    assert sum(kind == "bool" for kind in types.values()) >= 14


@pytest.mark.parametrize("kind", ["bool", "int"])
def test_every_use_of_a_typed_option_converts_it(kind):
    names = sorted(name for name, declared in typed_options().items() if declared == kind)
    problems = []
    for path in reader_files():
        if path.suffix not in (".yml", ".yaml", ".j2"):
            continue
        text = path.read_text(encoding="utf-8")
        for name in names:
            problems += [f"{path.relative_to(REPO)}:{line} ({name})" for line in unconverted_uses(text, name, kind)]
    assert problems == [], f"uses without | {kind}:\n" + "\n".join(problems)


@pytest.mark.parametrize(("line", "kind", "flagged"), [
    ("  when: lab_verify_fail and x", "bool", True),
    ('    x: "{{ lab_verify_fail and not ansible_check_mode }}"', "bool", True),
    ("{% if lab_verify_fail %}", "bool", True),
    ("  when: lab_verify_fail | bool and x", "bool", False),
    ("  when: lab_verify_fail | default(false) | bool", "bool", False),
    ("lab_verify_fail: false", "bool", False),
    ("  msg: run with -e lab_verify_fail=false", "bool", False),
    ("  when: lab_verify_failed | length > 0", "bool", False),
    ("# lab_verify_fail is true by default", "bool", False),
    ('    wait_timeout: "{{ lab_wait_timeout }}"', "int", False),
    ('    x: "{{ lab_wait_timeout * 2 }}"', "int", True),
    ('    x: "{{ y | f(lab_wait_timeout) }}"', "int", True),
    ('    x: "{{ y | f(lab_wait_timeout | int) }}"', "int", False),
])
def test_the_check_tells_converted_from_unconverted_uses(line, kind, flagged):
    name = "lab_verify_fail" if kind == "bool" else "lab_wait_timeout"
    assert bool(unconverted_uses(line, name, kind)) is flagged


@pytest.mark.parametrize("value", [True, False, "true", "False", "YES", "no", "On", "off", "1", "0", 1, 0])
def test_every_boolean_form_is_accepted(value):
    assert option_errors({"lab_verify_fail": value}, {"lab_verify_fail": "bool"}) == []


def test_invalid_values_are_refused_by_name():
    types = {"lab_verify_fail": "bool", "lab_wait_timeout": "int", "lab_domain": "str"}
    errors = option_errors({"lab_verify_fail": "maybe", "lab_wait_timeout": "5m", "lab_domain": "x",
                            "other": "maybe"}, types)
    assert len(errors) == 2
    assert "lab_verify_fail='maybe' is not a valid bool" in errors[0]
    assert "lab_wait_timeout='5m' is not a valid int" in errors[1]
    assert option_errors({"lab_wait_timeout": "300", "lab_verify_fail": "{{ x }}"}, types) == []
