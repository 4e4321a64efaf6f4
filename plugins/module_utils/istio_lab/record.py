# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The platform record, read: one parser for the upgrade (plugins/filter/lab_upgrade.py) and the status page
(plugins/filter/classroom.py).

The record is ConfigMap ``istio-lab/istio-lab-record`` (docs/upgrade.md). A lab built before the record existed has
only ``istio-system/istio-lab-install`` (``data.version``): its Istio version is read from there.
"""

from __future__ import annotations

import json

RECORD_NAME = "istio-lab-record"
RECORD_NAMESPACE = "istio-lab"


def _split(text):
    """`a, b,,c` -> ['a', 'b', 'c']: the record keeps lists comma-separated."""
    return [item.strip() for item in str(text or "").split(",") if item.strip()]


def parse_record(record, install):
    """The record as data from the two ConfigMaps (either may be None).

    Returns {source, istio_version, istio_revisions, metallb_version, addons, addons_version, tooling, updated_at,
    history}: source is ``record``, ``install`` (the Istio version only) or ``''`` (neither found); empty strings
    and lists where nothing is recorded.
    """
    data = (record or {}).get("data") or {}
    install_data = (install or {}).get("data") or {}
    try:
        history = json.loads(data.get("history") or "[]")
    except ValueError:
        history = []
    istio_version = str(data.get("istio_version") or install_data.get("version") or "")
    revisions = _split(data.get("istio_revisions"))
    if istio_version and not revisions:
        revisions = ["default"]  # a lab istio-lab installed before revisions: istioctl's default revision
    return {
        "source": "record" if record is not None else "install" if install is not None else "",
        "istio_version": istio_version,
        "istio_revisions": revisions,
        "metallb_version": str(data.get("metallb_version") or ""),
        "addons": _split(data.get("addons")),
        # A record written before the key: the addons came with the recorded Istio release.
        "addons_version": str(data.get("addons_version") or istio_version),
        "tooling": str(data.get("tooling") or ""),
        "updated_at": str(data.get("updated_at") or ""),
        "history": history if isinstance(history, list) else [],
    }
