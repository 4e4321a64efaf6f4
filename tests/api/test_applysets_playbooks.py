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
    # Chapters 1-2 only: the plan refuses to take out an addon an enabled chapter routes to (chapter 3: zipkin).
    values = platform_vars(shared_path() / "upstream", workdir, POOL, INGRESS_IP, istio_addons_enabled=enabled,
                           lab_enabled_chapters=["1", "2"])
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
                       "metallb.io": "metallb.io/v1beta1", "networking.istio.io": "networking.istio.io/v1"}[group]
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


# --- a chapter taken out of lab_enabled_chapters ------------------------------------------------------------------

ISTIO = "networking.istio.io/v1"
CHAPTER_3 = {("Gateway", "istio-system", "allgateway"), ("VirtualService", "istio-system", "grafana-istio"),
             ("VirtualService", "istio-system", "kiali-istio"), ("VirtualService", "istio-system", "zipkin-istio")}


def chapter_routes(kube, enabled, check=False, diff=False, **extra):
    return run_playbook("playbooks/routes.yml", kube=kube, check=check, diff=diff,
                        extra_vars={"lab_enabled_chapters": enabled, **extra})


def routes_of(kube):
    """(kind, namespace, name) -> chapter of istio-lab's Gateways and VirtualServices."""
    return {(kind, o["metadata"]["namespace"], o["metadata"]["name"]): o["metadata"]["labels"]["istio-lab.io/chapter"]
            for kind in ("Gateway", "VirtualService")
            for o in kube.list(ISTIO, kind, label_selector="app.kubernetes.io/managed-by=istio-lab")}


def test_a_chapter_no_longer_enabled_loses_exactly_its_routes_and_put_back_returns(kube, tmp_path):
    from tests.api.test_routes_verify import make_platform

    make_platform(kube)
    # A user's own VirtualService that carries the chapter's label but is no member of its set: never pruned.
    kube.create({"apiVersion": ISTIO, "kind": "VirtualService",
                 "metadata": {"name": "my-grafana", "namespace": "istio-system",
                              "labels": {"istio-lab.io/chapter": "3"}},
                 "spec": {"hosts": ["my-grafana"], "http": [{"route": [{"destination": {"host": "grafana"}}]}]}})
    # A ConfigMap of a chapter parent's name that is not istio-lab's set (another ID): left alone, no failure.
    kube.ensure_namespace("istio-lab")
    kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "applyset-chapter-x", "namespace": "istio-lab",
                              "labels": {ID: "applyset-someone-else-v1"}}})
    first = chapter_routes(kube, ["1", "2", "3"])
    assert first.rc == 0, first
    built = routes_of(kube)
    assert {key for key, chapter in built.items() if chapter == "3"} == CHAPTER_3
    assert kube.get("v1", "ConfigMap", "applyset-chapter-3", "istio-lab") is not None
    saves = tmp_path / "saves"
    saved = run_playbook("playbooks/save-chapter.yml", kube=kube,
                         extra_vars={"chapter": "3", "lab_saves_dir": str(saves)})
    assert saved.rc == 0, saved
    save_files = {p: p.read_bytes() for p in saves.rglob("*") if p.is_file()}
    assert save_files

    # An id no chapter defines: refused before anything, nothing written.
    mark = kube.mark()
    unknown = chapter_routes(kube, ["1", "2", "9"])
    assert unknown.rc != 0 and "which lab_chapters does not define" in " ".join(unknown.stdout.split()), unknown
    assert kube.writes(mark) == []
    # A run for one chapter never touches another chapter's routes (chapter.yml).
    mark = kube.mark()
    one = chapter_routes(kube, ["1", "2"], lab_routes_chapters=["1"])
    assert one.rc == 0 and one.changed == 0, one
    assert kube.writes(mark) == []

    # check mode (--diff): lists chapter 3's routes and its parent, writes nothing
    mark = kube.mark()
    check = chapter_routes(kube, ["1", "2"], check=True, diff=True)
    assert check.rc == 0 and check.changed == 1, check
    assert kube.writes(mark) == []
    for kind, namespace, name in CHAPTER_3:
        assert f"{kind} {namespace}/{name} (pruned)" in check.stdout, check.stdout[-3000:]
    assert "ConfigMap istio-lab/applyset-chapter-3 (parent of the pruned set chapter-3)" in check.stdout
    assert routes_of(kube) == built

    mark = kube.mark()
    dropped = chapter_routes(kube, ["1", "2"])
    assert dropped.rc == 0 and dropped.changed == 1, dropped
    assert sorted((w["verb"], w["resource"], w.get("namespace") or "", w["name"]) for w in kube.writes(mark)) == sorted(
        [("delete", kind.lower() + "s", namespace, name) for kind, namespace, name in CHAPTER_3]
        + [("delete", "configmaps", "istio-lab", "applyset-chapter-3")])
    assert routes_of(kube) == {key: chapter for key, chapter in built.items() if chapter != "3"}
    assert kube.get("v1", "ConfigMap", "applyset-chapter-3", "istio-lab") is None
    assert kube.get(ISTIO, "VirtualService", "my-grafana", "istio-system") is not None
    assert kube.get("v1", "ConfigMap", "applyset-chapter-x", "istio-lab") is not None
    assert {p: p.read_bytes() for p in saves.rglob("*") if p.is_file()} == save_files  # the saves stay

    mark = kube.mark()
    again = chapter_routes(kube, ["1", "2"])
    assert again.rc == 0 and again.changed == 0, again
    assert kube.writes(mark) == []

    # put back: it returns, with its parent
    back = chapter_routes(kube, ["1", "2", "3"])
    assert back.rc == 0 and back.changed == 1, back
    assert routes_of(kube) == built
    assert set_members(kube, kube.get("v1", "ConfigMap", "applyset-chapter-3", "istio-lab")) == CHAPTER_3
    mark = kube.mark()
    assert chapter_routes(kube, ["1", "2", "3"]).changed == 0
    assert kube.writes(mark) == []

    # every chapter taken out: the task has no route left to apply and still prunes them all, parents included
    none = chapter_routes(kube, [])
    assert none.rc == 0 and none.changed == 1, none
    assert routes_of(kube) == {}
    assert [c["metadata"]["name"] for c in kube.list("v1", "ConfigMap", "istio-lab")
            if c["metadata"]["name"].startswith("applyset-chapter-")] == ["applyset-chapter-x"]
    assert kube.get(ISTIO, "VirtualService", "my-grafana", "istio-system") is not None
