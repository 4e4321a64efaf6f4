"""The platform record and the upgrade's plan (docs/upgrade.md).

The record is ConfigMap ``istio-lab/istio-lab-record``: what istio-lab
installed (``istio_version``, ``istio_revisions`` active first,
``metallb_version``, ``addons`` and ``addons_version``, the Istio release
whose addon manifests are applied), by which istio-lab (``tooling``), when
(``updated_at``) and the upgrade steps so far (``history``, JSON). A lab built
before the record existed has only ``istio-system/istio-lab-install``
(``data.version``): its Istio version is read from there.

The plan compares the record with the pinned versions and says, before
anything is written, what the upgrade will do and what it refuses: a
downgrade (unless allowed), an Istio jump of more than two minor versions, a
Kubernetes version outside the target Istio's supported range.
"""

from __future__ import annotations

import json
import re

from ansible.errors import AnsibleFilterError
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.record import (
    RECORD_NAME,
    RECORD_NAMESPACE,
    parse_record,
)

# The keys whose change is a change of the platform; updated_at and history follow them.
STATE_KEYS = ("istio_version", "istio_revisions", "metallb_version", "addons", "addons_version", "tooling")
VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")
MAX_ISTIO_MINOR_JUMP = 2


def _version(text, what="version"):
    match = VERSION.match(str(text or "").strip())
    if not match:
        raise AnsibleFilterError(f"{what} {text!r} is not a version such as 1.30.3")
    return tuple(int(part or 0) for part in match.groups())


def lab_istio_revision(version):
    """The revision name of an Istio version: 1.30.3 -> 1-30-3 (a DNS label, as istioctl requires)."""
    major, minor, patch = _version(version, "istio_version")
    return f"{major}-{minor}-{patch}"


def lab_record_parse(read):
    """The record as data from lab_manifests' RV(read) of [the record, the install record]
    (either may be null). Empty strings / lists where nothing is recorded."""
    record, install = (list(read or []) + [None, None])[:2]
    parsed = parse_record(record, install)
    parsed["exists"] = parsed.pop("source") == "record"
    return parsed


def lab_record_manifest(current, desired, now, steps=None, labels=None):
    """The record's ConfigMap for `desired` ({istio_version, istio_revisions, metallb_version, addons,
    addons_version, tooling}), or None when the record already says so and no step is to be added (nothing to write).
    `steps`: history entries ({step, from, to, result}) stamped with `now`."""
    state = {
        "istio_version": str(desired["istio_version"]),
        "istio_revisions": ",".join(desired["istio_revisions"]),
        "metallb_version": str(desired["metallb_version"]),
        "addons": ",".join(desired["addons"]),
        "addons_version": str(desired.get("addons_version") or desired["istio_version"]),
        "tooling": str(desired["tooling"]),
    }
    recorded = {
        "istio_version": current.get("istio_version", ""),
        "istio_revisions": ",".join(current.get("istio_revisions") or []),
        "metallb_version": current.get("metallb_version", ""),
        "addons": ",".join(current.get("addons") or []),
        "addons_version": current.get("addons_version", ""),  # parse_record derives it for an older record
        "tooling": current.get("tooling", ""),
    }
    if current.get("exists") and state == recorded and not steps:
        return None
    history = list(current.get("history") or []) + [{**step, "at": now} for step in (steps or [])]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": RECORD_NAME, "namespace": RECORD_NAMESPACE, "labels": dict(labels or {})},
        "data": {**state, "updated_at": now, "history": json.dumps(history, separators=(",", ":"))},
    }


def _supported(table, target):
    minor = ".".join(str(part) for part in _version(target)[:2])
    entry = (table or {}).get(minor)
    if not entry:
        return minor, None
    return minor, (_version(entry["min"]), _version(entry["max"]))


def lab_upgrade_plan(recorded, pinned, kubernetes_version, support, allow_downgrade=False):
    """What the upgrade does and what it refuses.

    `recorded`: lab_record_parse's result; `pinned`: {istio_version, metallb_version, addons};
    `kubernetes_version`: the API server's (``v1.36.2`` or ``1.36``; empty: not checked);
    `support`: {"1.30": {min, max}} (Kubernetes minor versions each Istio minor supports).
    Returns {steps: [{step, from, to}], refusals: [text], istio: {from, to} or None, metallb: ..., addons: bool}."""
    if not isinstance(allow_downgrade, bool):
        raise AnsibleFilterError("allow_downgrade must be a boolean (convert it with | bool)")
    refusals, steps = [], []
    if not recorded.get("istio_version"):
        refusals.append("nothing is recorded on this cluster (no ConfigMap istio-lab/istio-lab-record nor "
                        "istio-system/istio-lab-install): build the lab with site.yml first")
        return {"steps": [], "refusals": refusals, "istio": None, "metallb": None, "addons": False}

    istio_from, istio_to = recorded["istio_version"], str(pinned["istio_version"])
    istio = None
    if _version(istio_from) != _version(istio_to):
        istio = {"from": istio_from, "to": istio_to}
        old, new = _version(istio_from), _version(istio_to)
        if new < old and not allow_downgrade:
            refusals.append(f"Istio {istio_to} is older than the recorded {istio_from}: a downgrade is refused "
                            "unless -e lab_upgrade_allow_downgrade=true")
        jump = abs((new[0] - old[0]) * 100 + new[1] - old[1])
        if jump > MAX_ISTIO_MINOR_JUMP:
            refusals.append(f"Istio {istio_from} to {istio_to} skips {jump} minor versions: Istio upgrades at most "
                            f"{MAX_ISTIO_MINOR_JUMP} minor versions at once; upgrade through an intermediate release")
        steps.append({"step": "istio", **istio})

    # Only an Istio step meets the support table; no Kubernetes version given: not checked yet.
    if istio and kubernetes_version:
        minor, supported = _supported(support, istio_to)
        kubernetes = _version(kubernetes_version, "the Kubernetes version")[:2]
        if supported is None:
            refusals.append(f"no supported Kubernetes range is known for Istio {minor}: add it to "
                            "lab_upgrade_istio_kubernetes_support")
        elif not supported[0][:2] <= kubernetes <= supported[1][:2]:
            refusals.append(f"Kubernetes {kubernetes[0]}.{kubernetes[1]} is outside Istio {minor}'s supported "
                            f"range {supported[0][0]}.{supported[0][1]}-{supported[1][0]}.{supported[1][1]}")

    metallb = None
    metallb_from, metallb_to = recorded.get("metallb_version") or "", str(pinned["metallb_version"])
    if metallb_from and _version(metallb_from) != _version(metallb_to):
        metallb = {"from": metallb_from, "to": metallb_to}
        if _version(metallb_to) < _version(metallb_from) and not allow_downgrade:
            refusals.append(f"MetalLB {metallb_to} is older than the recorded {metallb_from}: a downgrade is refused "
                            "unless -e lab_upgrade_allow_downgrade=true")
        steps.append({"step": "metallb", **metallb})

    # The addons come with an Istio release: a new one, another list, or addons left on an older release
    # (their step rolled back, or never reached after a later step failed) is an addons step.
    addons_to = list(pinned.get("addons") or [])
    addons_from = recorded.get("addons_version") or istio_from
    addons = bool(istio) or _version(addons_from) != _version(istio_to) or (
        bool(recorded.get("addons")) and sorted(recorded["addons"]) != sorted(addons_to))
    if addons:
        steps.append({"step": "addons", "from": f"{addons_from} ({','.join(recorded.get('addons') or [])})",
                      "to": f"{istio_to} ({','.join(addons_to)})"})
    return {"steps": steps, "refusals": refusals, "istio": istio, "metallb": metallb, "addons": addons}


def lab_upgrade_failed_probes(report):
    """'host: explanation' of each failed entry of lab_verify_report."""
    return [f"{entry.get('host') or entry.get('url')}: {entry.get('explanation')}"
            for entry in report or [] if not entry.get("ok")]


class FilterModule:
    def filters(self):
        return {
            "lab_istio_revision": lab_istio_revision,
            "lab_record_parse": lab_record_parse,
            "lab_record_manifest": lab_record_manifest,
            "lab_upgrade_plan": lab_upgrade_plan,
            "lab_upgrade_failed_probes": lab_upgrade_failed_probes,
        }
