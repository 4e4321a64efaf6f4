"""The owned sets through the stage playbooks (issue 20, "Done when"): zipkin
taken out of istio_addons_enabled deletes exactly its objects and writes
nothing else; put back, it returns. The ApplySet metadata of every stage's set
is consistent with what the set holds. Runs unchanged on a real cluster (the
addons are plain upstream manifests; no MetalLB or istioctl needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import shared_path
from tests.helpers import platform_vars, run_playbook

pytestmark = pytest.mark.api

POOL = "127.243.0.10-127.243.0.20"
INGRESS_IP = "127.243.0.10"
PART_OF = "applyset.kubernetes.io/part-of"
ID = "applyset.kubernetes.io/id"
KINDS = "applyset.kubernetes.io/contains-group-kinds"
ADDONS = ["prometheus", "grafana", "kiali", "zipkin"]


def addons(kube, workdir: Path, enabled, check=False, diff=False):
    values = platform_vars(shared_path() / "upstream", workdir, POOL, INGRESS_IP, istio_addons_enabled=enabled)
    return run_playbook("playbooks/addons.yml", kube=kube, extra_vars=values, check=check, diff=diff)


def upstream_objects(addon: str) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of every object of an upstream addon file."""
    path = shared_path() / "upstream" / "istio-1.30.3" / "addons" / f"{addon}.yaml"
    found = set()
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if doc:
            meta = doc["metadata"]
            namespaced = doc["kind"] not in ("ClusterRole", "ClusterRoleBinding", "Namespace")
            found.add((doc["kind"], meta.get("namespace", "istio-system") if namespaced else "", meta["name"]))
    return found


def set_members(kube, parent: dict) -> set[tuple[str, str, str]]:
    """Every object labelled with the set's ID, of every kind its parent records (as kubectl finds them)."""
    identity = parent["metadata"]["labels"][ID]
    found = set()
    for group_kind in parent["metadata"]["annotations"][KINDS].split(","):
        kind, _sep, group = group_kind.partition(".")
        api_version = {"": "v1", "apps": "apps/v1", "rbac.authorization.k8s.io": "rbac.authorization.k8s.io/v1",
                       "admissionregistration.k8s.io": "admissionregistration.k8s.io/v1",
                       "apiextensions.k8s.io": "apiextensions.k8s.io/v1", "policy": "policy/v1",
                       "metallb.io": "metallb.io/v1beta1"}[group]
        for obj in kube.list(api_version, kind, label_selector=f"{PART_OF}={identity}"):
            found.add((kind, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
    return found


def record_written_apart(kube, writes, addons_listed):
    """The writes other than the platform record's one update, which must now list `addons_listed`."""
    record = [w for w in writes if (w["resource"], w["name"]) == ("configmaps", "istio-lab-record")]
    assert len(record) == 1, writes
    assert kube.get("v1", "ConfigMap", "istio-lab-record", "istio-lab")["data"]["addons"] == addons_listed
    return [w for w in writes if w not in record]


def test_zipkin_taken_out_is_pruned_alone_and_put_back_returns(kube, tmp_path):
    if not (shared_path() / "upstream").is_dir():
        pytest.skip(f"shared upstream manifests not found under {shared_path()}")
    kube.ensure_namespace("istio-system")
    first = addons(kube, tmp_path, ADDONS)
    assert first.rc == 0, first
    parent = kube.get("v1", "ConfigMap", "applyset-addons", "istio-lab")
    every = set().union(*(upstream_objects(a) for a in ADDONS))
    # contains-group-kinds lists what the set holds: the members found through it are every addon object
    assert set_members(kube, parent) == every
    assert sorted(parent["metadata"]["annotations"][KINDS].split(",")) == sorted(
        {k if k in ("ConfigMap", "Service", "ServiceAccount") else
         f"{k}.apps" if k == "Deployment" else f"{k}.rbac.authorization.k8s.io" for k, _ns, _n in every})
    zipkin = upstream_objects("zipkin")
    assert zipkin == {("Deployment", "istio-system", "zipkin"), ("Service", "istio-system", "tracing"),
                      ("Service", "istio-system", "zipkin")}

    mark = kube.mark()
    # Two changes: zipkin's objects pruned, and the platform record's list of addons
    # (istio-lab/istio-lab-record, docs/upgrade.md), which the upgrade's rollback reads.
    check = addons(kube, tmp_path, ADDONS[:3], check=True, diff=True)
    assert check.rc == 0 and check.changed == 2, check
    assert kube.writes(mark) == []
    for kind, namespace, name in zipkin:
        assert f"{kind}{'.apps' if kind == 'Deployment' else ''} {namespace}/{name} (pruned)" in check.stdout

    mark = kube.mark()
    without = addons(kube, tmp_path, ADDONS[:3])
    assert without.rc == 0 and without.changed == 2, without
    writes = record_written_apart(kube, kube.writes(mark), "prometheus,grafana,kiali")
    assert sorted((w["verb"], w["resource"], w["name"]) for w in writes) == sorted(
        ("delete", kind.lower() + "s", name) for kind, _ns, name in zipkin)
    for kind, namespace, name in zipkin:
        assert kube.get("apps/v1" if kind == "Deployment" else "v1", kind, name, namespace) is None
    assert set_members(kube, kube.get("v1", "ConfigMap", "applyset-addons", "istio-lab")) == every - zipkin

    mark = kube.mark()
    assert addons(kube, tmp_path, ADDONS[:3]).changed == 0
    assert kube.writes(mark) == []

    mark = kube.mark()
    back = addons(kube, tmp_path, ADDONS)
    assert back.rc == 0 and back.changed == 2, back
    assert {(w["resource"], w["name"]) for w in record_written_apart(kube, kube.writes(mark), ",".join(ADDONS))} == {
        (kind.lower() + "s", name) for kind, _ns, name in zipkin}
    assert set_members(kube, kube.get("v1", "ConfigMap", "applyset-addons", "istio-lab")) == every
