"""What is foreign (module_utils foreign, issue 27) on the objects as a real
kube-apiserver v1.36 stores them (../shared/apiserver-recordings/stored-forms):
MetalLB's and the addons' manifests as istio-lab applies them (its labels
added) leave nothing foreign in their namespaces; the same objects applied by
someone else (the recorder's kubectl-like apply, no istio-lab label) are all
foreign, and listed once each."""

from __future__ import annotations

import json

import pytest
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab import foreign

MANAGED = {"app.kubernetes.io/managed-by": "istio-lab"}
FILES = ("metallb-native.json", "prometheus.json", "grafana.json", "kiali.json", "zipkin.json")


@pytest.fixture(scope="module")
def stored(shared_dir):
    by_namespace = {}
    for name in FILES:
        for entry in json.loads((shared_dir / "apiserver-recordings" / "stored-forms" / name).read_text()):
            obj = entry.get("stored") if isinstance(entry, dict) else None
            if isinstance(obj, dict) and obj.get("metadata", {}).get("namespace"):
                by_namespace.setdefault(obj["metadata"]["namespace"], []).append(obj)
    assert set(by_namespace) == {"metallb-system", "istio-system"}
    return by_namespace


def labelled(obj):
    copy = json.loads(json.dumps(obj))
    copy["metadata"]["labels"] = {**(copy["metadata"].get("labels") or {}), **MANAGED}
    return copy


def test_istio_labs_own_stored_objects_leave_nothing_foreign(stored):
    for objects in stored.values():
        assert foreign.Judge([labelled(o) for o in objects], MANAGED).roots() == []


def test_the_same_objects_from_someone_else_are_all_foreign(stored):
    for objects in stored.values():
        roots = foreign.Judge(objects, MANAGED).roots()
        assert sorted((r["kind"], r["name"]) for r in roots) == sorted(
            (o["kind"], o["metadata"]["name"]) for o in objects)
