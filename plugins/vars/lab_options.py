# Copyright: istio-lab contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Refuse an invalid boolean or integer option given with -e before any play runs."""

from __future__ import annotations

DOCUMENTATION = r"""
name: lab_options
short_description: Refuse invalid boolean and integer options given on the command line
version_added: 1.0.0
description:
  - Checks the extra vars (C(-e name=value), C(-e @file)) against the boolean and integer options
    (C(type=bool), C(type=int)) of every role's C(meta/argument_specs.yml) in this collection, and against
    the playbook-level booleans (C(reset_confirm), C(remove_foreign)).
  - A value the role's own argument check would refuse (C(-e lab_verify_fail=maybe), C(-e lab_wait_timeout=5m))
    stops the run before the first task of the first play, naming the option, instead of when its role starts,
    after the earlier stages already wrote to the cluster.
  - C(true/false/yes/no/on/off/1/0) in any case are valid booleans; the roles convert them with C(| bool).
  - Adds no variables. Enable it with C(vars_plugins_enabled = host_group_vars, istio_lab.lab.lab_options)
    (the repository's C(ansible.cfg) does).
extends_documentation_fragment:
  - ansible.builtin.vars_plugin_staging
"""

from pathlib import Path

from ansible.errors import AnsibleError
from ansible.module_utils.common.validation import check_type_bool, check_type_int
from ansible.plugins.vars import BaseVarsPlugin
from ansible.utils import vars as core_vars  # ansible-core's, not the ansible.utils collection

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core requires PyYAML
    yaml = None

ROLES = Path(__file__).resolve().parents[2] / "roles"
# Booleans that playbooks read directly (no role's argument spec declares them).
PLAYBOOK_OPTIONS = {"reset_confirm": "bool", "remove_foreign": "bool"}
CHECKS = {"bool": check_type_bool, "int": check_type_int}


def typed_options(roles: Path = ROLES) -> dict:
    """{option: 'bool'|'int'} from every entry point of every role's meta/argument_specs.yml."""
    types = dict(PLAYBOOK_OPTIONS)
    for spec_file in sorted(roles.glob("*/meta/argument_specs.yml")):
        specs = yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}
        for entry in (specs.get("argument_specs") or {}).values():
            for name, option in (entry.get("options") or {}).items():
                if option.get("type") in CHECKS:
                    types[name] = option["type"]
    return types


def option_errors(values: dict, types: dict) -> list:
    """The messages for the values that their option's type refuses (templates are left to Ansible)."""
    errors = []
    for name in sorted(name for name in set(values) & set(types) if types[name] in CHECKS):
        value = values[name]
        if isinstance(value, str) and "{{" in value:
            continue
        try:
            CHECKS[types[name]](value)
        except (TypeError, ValueError):
            expected = "true/false/yes/no/1/0" if types[name] == "bool" else "a whole number"
            errors.append(f"{name}={value!r} is not a valid {types[name]} (give {expected})")
    return errors


class VarsModule(BaseVarsPlugin):
    _checked = False  # once per run: the extra vars do not change between hosts or tasks

    def get_vars(self, loader, path, entities, cache=True):
        super().get_vars(loader, path, entities)
        if not VarsModule._checked:
            VarsModule._checked = True
            errors = option_errors(core_vars.load_extra_vars(loader), typed_options())
            if errors:
                raise AnsibleError("Invalid option(s) on the command line, nothing was run: " + "; ".join(errors))
        return {}
