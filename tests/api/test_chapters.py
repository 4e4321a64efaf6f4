"""Chapters (issue 5): bring up, reset, save and restore an exercise's state,
against a Kubernetes API (the double, or a real cluster with
ISTIO_LAB_TEST_KUBECONFIG). Results are checked through the API and the
fixture's request counters, never through the double's internals.

The platform roles (MetalLB, Istio, addons) are slow and need releases that
cannot be downloaded here, so the `platform` fixture creates what the
chapters need from the platform directly through the API: namespace
istio-system, the addons' Services, and stand-ins for the platform's own
objects (the ingress gateway Service, Istio's ConfigMap, a Gateway istio-lab
manages without a chapter, a VirtualService a student made by hand), whose
resourceVersions prove they are left untouched. Pods never run here (the
double marks Deployments available), so "gone" is measured on API objects.
"""

import copy
import hashlib
import importlib.util
import json
import stat

import pytest
import yaml

# conftest.py puts collections/ on sys.path (the checkout as the collection)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.chapter_objects import (
    KINDS,
    strip_server_fields,
    table,
)

from tests.helpers import REPO, documented_options, run_module, run_playbook

pytestmark = pytest.mark.api

CATALOGUE = yaml.safe_load((REPO / "inventory/group_vars/all/chapters.yml").read_text())["lab_chapters"]
ISTIO = "networking.istio.io/v1"
CHAPTER_LABEL = "istio-lab.io/chapter"
MANAGED = {"app.kubernetes.io/managed-by": "istio-lab"}
ROUTE_KINDS = {"gateways": "Gateway", "virtual_services": "VirtualService", "destination_rules": "DestinationRule"}
# The addons' Services as the Istio 1.30.3 samples define them (name, port).
ADDONS = {"prometheus": 9090, "grafana": 3000, "kiali": 20001, "zipkin": 9411}
# reset-chapter.yml asks first (issue 28): tests answer as an instructor's -e would.
CONFIRMED = {"reset_confirm": "yes"}


def chapter_objects(chapter):
    """(apiVersion, kind, namespace, name) of everything a chapter brings, from the catalogue."""
    entry = CATALOGUE[chapter]
    objects = [("v1", "Namespace", None, ns) for ns in entry["namespaces"]]
    for app in entry["apps"]:  # lab_apps: a Deployment and a Service per app, in microservice
        objects += [("apps/v1", "Deployment", "microservice", app), ("v1", "Service", "microservice", app)]
    for key, kind in ROUTE_KINDS.items():
        objects += [(ISTIO, kind, obj["namespace"], obj["name"]) for obj in entry[key]]
    return objects


def snapshot(kube, objects):
    """Each object as the API serves it now (None when absent)."""
    return {ref: kube.get(ref[0], ref[1], ref[3], ref[2]) for ref in objects}


def versions(snap):
    return {ref: obj and obj["metadata"]["resourceVersion"] for ref, obj in snap.items()}


def comparable(obj):
    """What a restore must bring back: labels, annotations, spec (data), minus what the cluster allocates."""
    meta = obj["metadata"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != "kubernetes.io/metadata.name"}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != "deployment.kubernetes.io/revision"}
    spec = copy.deepcopy(obj.get("spec") or {})
    if obj["kind"] == "Service":
        for key in ("clusterIP", "clusterIPs"):
            spec.pop(key, None)
    if obj["kind"] == "Namespace":
        spec = {}
    return {"labels": labels, "annotations": annotations, "spec": spec}


@pytest.fixture
def platform(kube):
    """What the chapters expect from a built platform, plus stand-ins for the platform's own objects."""
    created = []

    def ensure(obj):
        meta = obj["metadata"]
        if kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")) is None:
            kube.create(obj)
            created.append((obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]))

    kube.ensure_namespace("istio-system")
    for name, port in ADDONS.items():
        ensure({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "istio-system", "labels": {"app": name}},
                "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port, "targetPort": port}]}})
    stand_ins = [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system",
                      "labels": {"app": "istio-ingressgateway", "istio": "ingressgateway"}},
         "spec": {"selector": {"istio": "ingressgateway"},
                  "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"},
         "data": {"mesh": "defaultConfig: {}\n"}},
        # istio-lab manages it, but no chapter does: a reset of every chapter leaves it.
        {"apiVersion": ISTIO, "kind": "Gateway",
         "metadata": {"name": "platform-gateway", "namespace": "istio-system", "labels": dict(MANAGED)},
         "spec": {"selector": {"istio": "ingressgateway"},
                  "servers": [{"port": {"number": 8081, "name": "http-platform", "protocol": "HTTP"},
                               "hosts": ["*"]}]}},
        # A student's own object: labelled with a chapter but not managed by istio-lab.
        {"apiVersion": ISTIO, "kind": "VirtualService",
         "metadata": {"name": "student-own", "namespace": "istio-system", "labels": {CHAPTER_LABEL: "1"}},
         "spec": {"hosts": ["student.example"], "http": [{"route": [{"destination": {"host": "grafana"}}]}]}},
    ]
    for obj in stand_ins:
        ensure(obj)
    platform_refs = [("v1", "Namespace", None, "istio-system")]
    platform_refs += [("v1", "Service", "istio-system", name) for name in ADDONS]
    platform_refs += [(o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                      for o in stand_ins]
    yield platform_refs
    if not kube.is_double:  # a real cluster outlives the test: remove what it made there
        run_module("lab_chapter_objects", {"chapter": "all", "state": "absent"}, kube=kube)
        for api_version, kind, namespace, name in reversed(created):
            kube.delete(api_version, kind, name, namespace)


def assert_ok(result):
    assert result.rc == 0 and result.failed == 0, str(result)


def bring_up(kube, *chapters):
    for chapter in chapters:
        assert_ok(run_playbook("playbooks/chapter.yml", kube=kube, extra_vars={"chapter": chapter}))


# ---------------------------------------------------------------------------------------------- reset


def test_reset_removes_one_chapter_and_leaves_the_rest(kube, platform):
    bring_up(kube, "1", "3")
    chapter1, chapter3 = chapter_objects("1"), chapter_objects("3")
    before1 = snapshot(kube, chapter1)
    assert all(before1.values()), {ref for ref, obj in before1.items() if obj is None}
    for obj in before1.values():
        assert obj["metadata"]["labels"][CHAPTER_LABEL] == "1" and obj["metadata"]["labels"].items() >= MANAGED.items()
    untouched = versions(snapshot(kube, chapter3 + platform))
    assert all(untouched.values())

    mark = kube.mark()
    dry = run_playbook("playbooks/reset-chapter.yml", kube=kube, extra_vars={"chapter": "1"}, check=True)
    assert_ok(dry)
    assert kube.writes(mark) == [], "check mode deleted something"
    assert all(snapshot(kube, chapter1).values())
    for _, kind, namespace, name in chapter1:  # the table lists what would go
        assert any(kind in line and name in line and "would delete" in line for line in dry.stdout.splitlines()), \
            (kind, namespace, name, dry.stdout)
    # It asks first: with no answer nothing goes.
    unconfirmed = run_playbook("playbooks/reset-chapter.yml", kube=kube, extra_vars={"chapter": "1"})
    assert unconfirmed.rc != 0 and "not confirmed" in unconfirmed.stdout, unconfirmed
    assert kube.writes(mark) == [], "an unconfirmed reset deleted something"

    mark = kube.mark()
    reset = run_playbook("playbooks/reset-chapter.yml", kube=kube, extra_vars={"chapter": "1", **CONFIRMED})
    assert_ok(reset)
    assert reset.changed >= 1
    assert snapshot(kube, chapter1) == dict.fromkeys(chapter1)
    assert versions(snapshot(kube, chapter3 + platform)) == untouched
    deleted = [(w["method"], w["path"]) for w in kube.writes(mark)]
    assert all(method == "DELETE" for method, _ in deleted), deleted
    assert len(deleted) == len(chapter1), deleted
    # dependency order: routes first, the namespace last
    paths = [path for _, path in deleted]
    assert "virtualservices/tomcat-virtualservice" in paths[0] and paths[-1].endswith("/namespaces/microservice")
    assert paths.index(next(p for p in paths if "/deployments/" in p)) > paths.index(
        next(p for p in paths if "/gateways/" in p))
    for line in ("CHAPTER  KIND", "Namespace", "microservice", "deleted"):
        assert line in reset.stdout

    mark = kube.mark()
    again = run_playbook("playbooks/reset-chapter.yml", kube=kube, extra_vars={"chapter": "1", **CONFIRMED})
    assert_ok(again)
    assert again.changed == 0, str(again)
    assert kube.writes(mark) == []

    # The reset waited until the namespace was gone (a terminating one refuses new content): the
    # chapter comes up again at once.
    bring_up(kube, "1")
    assert all(snapshot(kube, chapter1).values())


def test_reset_keeps_a_namespace_in_use_and_all_returns_to_the_bare_platform(kube, platform):
    bring_up(kube, "1", "4", "3")  # chapter 4's DestinationRule lives in chapter 1's namespace
    rule = (ISTIO, "DestinationRule", "microservice", "tomcat")
    before = versions(snapshot(kube, [rule] + chapter_objects("3")))
    untouched = versions(snapshot(kube, platform))
    reset = run_playbook("playbooks/reset-chapter.yml", kube=kube, extra_vars={"chapter": "1", **CONFIRMED})
    assert_ok(reset)
    assert "kept: holds chapter 4 objects" in reset.stdout
    assert kube.get("v1", "Namespace", "microservice") is not None
    assert versions(snapshot(kube, [rule] + chapter_objects("3"))) == before
    gone = [ref for ref in chapter_objects("1") if ref[1] != "Namespace"]
    assert snapshot(kube, gone) == dict.fromkeys(gone)

    everything = run_playbook("playbooks/reset-chapter.yml", kube=kube, extra_vars={"chapter": "all", **CONFIRMED})
    assert_ok(everything)
    refs = chapter_objects("1") + chapter_objects("3") + chapter_objects("4")
    assert snapshot(kube, refs) == dict.fromkeys(refs)
    assert versions(snapshot(kube, platform)) == untouched
    bring_up(kube, "1")  # the namespaces are gone, not terminating: the course starts over at once
    assert all(snapshot(kube, chapter_objects("1")).values())


def test_reset_keeps_a_students_own_objects_and_their_namespace(kube, platform, tmp_path):
    """Issue 27 item 3, issue 28 item 6: a student's own ConfigMap and VirtualService (no labels) in the
    chapter's namespace stay, with the namespace, and the table lists them; a re-run is quiet; with
    chapter_reset_student_objects=true exactly the objects of check-1.json go (the reset asks first);
    remove_foreign=true deletes the namespace anyway."""
    bring_up(kube, "1")
    notes = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "my-notes", "namespace": "microservice"},
             "data": {"todo": "split traffic"}}
    attempt = {"apiVersion": ISTIO, "kind": "VirtualService",
               "metadata": {"name": "my-own-try", "namespace": "microservice"},
               "spec": {"hosts": ["tomcat"], "http": [{"route": [{"destination": {"host": "tomcat"}}]}]}}
    kube.create(notes)
    kube.create(attempt)
    reports = tmp_path / "artifacts"
    extra = {"chapter": "1", "lab_verify_report_dir": str(reports), **CONFIRMED}

    reset = run_playbook("playbooks/reset-chapter.yml", kube=kube, extra_vars=extra)
    assert_ok(reset)
    namespace = kube.get("v1", "Namespace", "microservice")
    assert namespace is not None and not namespace["metadata"].get("deletionTimestamp")
    assert kube.get("v1", "ConfigMap", "my-notes", "microservice") is not None
    assert kube.get(ISTIO, "VirtualService", "my-own-try", "microservice") is not None
    gone = [ref for ref in chapter_objects("1") if ref[1] != "Namespace"]
    assert snapshot(kube, gone) == dict.fromkeys(gone)
    for kind, name in (("Namespace", "microservice"), ("ConfigMap", "my-notes"), ("VirtualService", "my-own-try")):
        assert any(kind in line and name in line and "kept" in line for line in reset.stdout.splitlines()), \
            (kind, name, reset.stdout)
    # What Kubernetes makes in every namespace is not the student's
    assert "kube-root-ca.crt" not in reset.stdout and "ServiceAccount" not in reset.stdout

    mark = kube.mark()
    again = run_playbook("playbooks/reset-chapter.yml", kube=kube, extra_vars=extra)
    assert_ok(again)
    assert again.changed == 0 and kube.writes(mark) == []
    assert "my-own-try" not in again.stdout, again.stdout

    # The check attributed the VirtualService (not the notes) to the exercise.
    (reports / "lab").mkdir(parents=True)
    (reports / "lab" / "check-1.json").write_text(json.dumps({
        "lab": "lab", "chapter": "1", "title": "", "state": "not_yet", "reason": "", "explanation": [],
        "hint": None, "ingress_ip": "127.0.0.1", "probes": [], "checked_at": "2026-12-04T16:00:00Z",
        "student_objects": [{"apiVersion": ISTIO, "kind": "VirtualService", "namespace": "microservice",
                             "name": "my-own-try"}]}))
    unasked = run_playbook("playbooks/reset-chapter.yml", kube=kube,
                           extra_vars={**extra, "chapter_reset_student_objects": "true", "reset_confirm": "no"})
    assert unasked.rc != 0 and "not confirmed" in unasked.stdout
    mark = kube.mark()
    students = run_playbook("playbooks/reset-chapter.yml", kube=kube,
                            extra_vars={**extra, "chapter_reset_student_objects": "true", "reset_confirm": "yes"})
    assert_ok(students)
    # exactly the student's object, then the namespace's note of what keeps it
    assert [(w["method"], w["resource"], w["name"]) for w in kube.writes(mark)] == [
        ("DELETE", "virtualservices", "my-own-try"), ("PATCH", "namespaces", "microservice")]
    assert kube.get(ISTIO, "VirtualService", "my-own-try", "microservice") is None
    assert kube.get("v1", "ConfigMap", "my-notes", "microservice") is not None
    assert "kept" in students.stdout and "my-notes" in students.stdout

    forced = run_module("lab_chapter_objects", {"chapter": "1", "state": "absent", "remove_foreign": True},
                        kube=kube)
    assert forced.get("changed") and not forced.get("failed"), forced
    assert kube.get("v1", "Namespace", "microservice") is None


def test_bring_up_and_restore_wait_for_a_namespace_still_terminating(kube, platform, tmp_path):
    """A reset that did not wait (or `kubectl delete ns`) leaves the namespace Terminating for a while;
    bringing the chapter up or restoring it then waits until it is gone instead of failing with
    403 NamespaceTerminating (stored-forms/namespace-deletion.json), and a save refuses."""

    def termination_takes(seconds):  # on a real cluster termination takes seconds by itself
        if kube.is_double:
            kube.double.store.namespace_deletion_delay = seconds

    bring_up(kube, "1")
    chapter1 = chapter_objects("1")
    saves = tmp_path / "saves"
    assert_ok(run_playbook("playbooks/save-chapter.yml", kube=kube,
                           extra_vars={"chapter": "1", "lab_saves_dir": str(saves)}))

    def reset_without_waiting():
        reset = run_module("lab_chapter_objects", {"chapter": "1", "state": "absent", "wait": False}, kube=kube)
        assert reset["changed"] and not reset.get("failed"), reset
        namespace = kube.get("v1", "Namespace", "microservice")
        assert namespace is not None and namespace["status"]["phase"] == "Terminating"

    termination_takes(6)  # longer than an ansible-playbook start: the playbooks meet it terminating
    reset_without_waiting()
    bring_up(kube, "1")
    assert all(snapshot(kube, chapter1).values())
    assert "deletionTimestamp" not in kube.get("v1", "Namespace", "microservice")["metadata"]

    reset_without_waiting()
    restored = run_playbook("playbooks/restore-chapter.yml", kube=kube,
                            extra_vars={"chapter": "1", "lab_saves_dir": str(saves)})
    assert_ok(restored)
    assert all(snapshot(kube, chapter1).values())
    assert "deletionTimestamp" not in kube.get("v1", "Namespace", "microservice")["metadata"]

    # A save now would record what is about to go: refused, the previous save kept.
    termination_takes(3600)  # held terminating until released (on the double)
    reset_without_waiting()
    manifest = (saves / "lab" / "1" / "manifest.yml").read_bytes()
    refused = run_playbook("playbooks/save-chapter.yml", kube=kube,
                           extra_vars={"chapter": "1", "lab_saves_dir": str(saves)})
    termination_takes(0.5)
    # (On a real cluster the namespace may be gone by then: "no objects", refused all the same.)
    reasons = ["chapter 1 is being deleted"] + ([] if kube.is_double else ["chapter 1 has no objects"])
    assert refused.rc != 0 and any(r in refused.stdout for r in reasons), str(refused)
    assert (saves / "lab" / "1" / "manifest.yml").read_bytes() == manifest


def test_reset_with_the_istio_crds_absent(kube_no_crds):
    kube = kube_no_crds
    labels = {**MANAGED, CHAPTER_LABEL: "1"}
    kube.ensure_namespace("microservice", labels)
    kube.create({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "tomcat", "namespace": "microservice", "labels": labels},
                 "spec": {"selector": {"app": "tomcat"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    kube.ensure_namespace("other")
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep", "namespace": "other",
                                                                      "labels": {**MANAGED, CHAPTER_LABEL: "2"}}})
    reset = run_playbook("playbooks/reset-chapter.yml", kube=kube, extra_vars={"chapter": "1", **CONFIRMED})
    assert_ok(reset)
    assert kube.get("v1", "Service", "tomcat", "microservice") is None
    assert kube.get("v1", "Namespace", "microservice") is None
    assert kube.get("v1", "ConfigMap", "keep", "other") is not None
    listed = run_module("lab_chapter_objects", {"chapter": "all"}, kube=kube)
    assert {"Gateway", "VirtualService", "DestinationRule"} <= set(listed["unserved_kinds"])
    assert [(o["kind"], o["name"]) for o in listed["objects"]] == [("ConfigMap", "keep")]
    again = run_playbook("playbooks/reset-chapter.yml", kube=kube, extra_vars={"chapter": "all", **CONFIRMED})
    assert_ok(again)
    assert kube.get("v1", "ConfigMap", "keep", "other") is None


# ----------------------------------------------------------------------------------------- save/restore


def read_save(folder):
    manifest = yaml.safe_load((folder / "manifest.yml").read_text())
    return manifest, {e["file"]: yaml.safe_load((folder / e["file"]).read_text()) for e in manifest["objects"]}


def test_save_reset_restore_brings_the_same_objects_back(kube, platform, tmp_path):
    bring_up(kube, "1", "4", "2")
    saves = tmp_path / "saves"
    refs = chapter_objects("1") + chapter_objects("2") + chapter_objects("4")
    originals = snapshot(kube, refs)
    untouched = versions(snapshot(kube, platform))
    extra = {"chapter": "all", "lab_saves_dir": str(saves)}

    dry = run_playbook("playbooks/save-chapter.yml", kube=kube, extra_vars=extra, check=True)
    assert_ok(dry)
    assert not saves.exists(), "check mode wrote a save"
    saved = run_playbook("playbooks/save-chapter.yml", kube=kube, extra_vars=extra)
    assert_ok(saved)
    for chapter in ("1", "2", "4"):
        folder = saves / "lab" / chapter
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        manifest, files = read_save(folder)
        assert manifest["chapter"] == chapter and manifest["cluster"]["name"] == "lab"
        assert manifest["cluster"]["uid"] == kube.get("v1", "Namespace", "kube-system")["metadata"]["uid"]
        listed = {(e["apiVersion"], e["kind"], e["namespace"] or None, e["name"]) for e in manifest["objects"]}
        assert listed == set(chapter_objects(chapter))
        for entry in manifest["objects"]:
            path = folder / entry["file"]
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        for obj in files.values():  # nothing the server set survives
            meta = obj["metadata"]
            assert not {"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"} & meta.keys()
            assert "status" not in obj
            if obj["kind"] == "Service":
                assert not {"clusterIP", "clusterIPs"} & obj["spec"].keys()
    manifest_before = (saves / "lab" / "1" / "manifest.yml").read_bytes()
    resaved = run_playbook("playbooks/save-chapter.yml", kube=kube, extra_vars=extra)
    assert_ok(resaved)
    assert resaved.changed == 0, str(resaved)
    assert (saves / "lab" / "1" / "manifest.yml").read_bytes() == manifest_before

    assert_ok(run_playbook("playbooks/reset-chapter.yml", kube=kube, extra_vars={"chapter": "all", **CONFIRMED}))
    assert snapshot(kube, refs) == dict.fromkeys(refs)
    # Chapter 2 left lab_enabled_chapters and site.yml pruned its set, parent included (issue 27 item 5):
    # the restore brings the parent back, recording its routes, so that the next site.yml prunes it again.
    parent2 = kube.get("v1", "ConfigMap", "applyset-chapter-2", "istio-lab")
    assert parent2 is not None
    recorded2 = parent2["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"]
    kube.delete("v1", "ConfigMap", "applyset-chapter-2", "istio-lab")

    restored = run_playbook("playbooks/restore-chapter.yml", kube=kube, extra_vars=extra)
    assert_ok(restored)
    assert "created" in restored.stdout
    parent2 = kube.get("v1", "ConfigMap", "applyset-chapter-2", "istio-lab")
    assert parent2 is not None and "parent of set chapter-2" in restored.stdout
    assert parent2["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"] == recorded2
    after = snapshot(kube, refs)
    assert all(after.values()), {ref for ref, obj in after.items() if obj is None}
    for ref in refs:
        assert comparable(after[ref]) == comparable(originals[ref]), ref
    assert versions(snapshot(kube, platform)) == untouched

    mark = kube.mark()
    again = run_playbook("playbooks/restore-chapter.yml", kube=kube, extra_vars=extra)
    assert_ok(again)
    assert again.changed == 0, str(again)
    assert kube.writes(mark) == []

    # A student changed a route: the restore puts the saved one back, and only that one.
    vs = kube.get(ISTIO, "VirtualService", "tomcat-virtualservice", "microservice")
    vs["spec"]["http"][0]["route"][0]["destination"]["port"]["number"] = 8080
    kube.resource(ISTIO, "VirtualService").replace(body=vs, namespace="microservice")
    mark = kube.mark()
    fixed = run_playbook("playbooks/restore-chapter.yml", kube=kube, extra_vars={**extra, "chapter": "1"})
    assert_ok(fixed)
    assert [w["method"] for w in kube.writes(mark)] == ["PUT"]
    vs = kube.get(ISTIO, "VirtualService", "tomcat-virtualservice", "microservice")
    assert comparable(vs) == comparable(originals[(ISTIO, "VirtualService", "microservice", "tomcat-virtualservice")])


def saved_chapter_one(kube, tmp_path):
    """Chapter 1's objects (made through the API, as lab_apps and lab_routes label them), saved, then removed."""
    labels = {**MANAGED, CHAPTER_LABEL: "1"}
    kube.ensure_namespace("microservice", labels)
    kube.create({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "tomcat", "namespace": "microservice", "labels": labels},
                 "spec": {"selector": {"app": "tomcat"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    gateway = CATALOGUE["1"]["gateways"][0]
    kube.create({"apiVersion": ISTIO, "kind": "Gateway",
                 "metadata": {"name": gateway["name"], "namespace": gateway["namespace"], "labels": labels},
                 "spec": gateway["spec"]})
    folder = tmp_path / "saves" / "lab" / "1"
    saved = run_module("lab_chapter_objects", {"chapter": "1", "state": "saved", "path": str(folder), "cluster": "lab"},
                       kube=kube)
    assert saved["changed"] and not saved.get("failed"), saved
    reset = run_module("lab_chapter_objects", {"chapter": "1", "state": "absent"}, kube=kube)
    assert reset["changed"] and not reset.get("failed"), reset
    return folder


def restore(kube, tmp_path, **extra):
    return run_playbook("playbooks/restore-chapter.yml", kube=kube,
                        extra_vars={"chapter": "1", "lab_saves_dir": str(tmp_path / "saves"), **extra})


def assert_refused(kube, tmp_path, message, **extra):
    mark = kube.mark()
    result = restore(kube, tmp_path, **extra)
    assert result.rc != 0 and result.failed, str(result)
    assert message in result.stdout, str(result)
    assert kube.writes(mark) == [], "a refused restore wrote to the cluster"
    assert kube.get("v1", "Namespace", "microservice") is None
    return result


def test_restore_refuses_a_tampered_save_before_writing(kube, tmp_path):
    folder = saved_chapter_one(kube, tmp_path)
    gateway_file = next(folder.glob("*-gateway-*.yaml"))
    pristine = gateway_file.read_text()
    gateway_file.write_text(pristine.replace("'*'", "evil.example"))
    assert_refused(kube, tmp_path, "checksum mismatch")

    gateway_file.write_text(pristine)
    service_file = next(folder.glob("*-service-*.yaml"))
    service_file.unlink()
    assert_refused(kube, tmp_path, "missing")


def test_restore_refuses_a_foreign_save_unless_forced(kube, tmp_path):
    folder = saved_chapter_one(kube, tmp_path)
    manifest_path = folder / "manifest.yml"
    manifest = yaml.safe_load(manifest_path.read_text())

    foreign = copy.deepcopy(manifest)
    foreign["cluster"]["uid"] = "00000000-0000-0000-0000-000000000000"
    manifest_path.write_text(yaml.safe_dump(foreign))
    assert_refused(kube, tmp_path, "saved from another cluster")

    other_chapter = copy.deepcopy(manifest)
    other_chapter["chapter"] = "3"
    (tmp_path / "saves" / "lab" / "3").mkdir()
    for path in folder.iterdir():
        (tmp_path / "saves" / "lab" / "3" / path.name).write_bytes(path.read_bytes())
    result = run_playbook("playbooks/restore-chapter.yml", kube=kube,
                          extra_vars={"chapter": "3", "lab_saves_dir": str(tmp_path / "saves")})
    assert result.rc != 0 and "a save of chapter 1, not of chapter 3" in result.stdout, str(result)

    manifest_path.write_text(yaml.safe_dump(foreign))
    forced = restore(kube, tmp_path, chapter_restore_force=True)
    assert_ok(forced)
    assert kube.get("v1", "Service", "tomcat", "microservice")["metadata"]["labels"][CHAPTER_LABEL] == "1"


# ------------------------------------------------------------------------------------- bring up


def test_bring_up_checks_prerequisites_before_writing(kube, platform):
    mark = kube.mark()
    needs_one = run_playbook("playbooks/chapter.yml", kube=kube, extra_vars={"chapter": "4"})
    assert needs_one.rc != 0 and "builds on chapter(s) 1" in needs_one.stdout, str(needs_one)
    unknown = run_playbook("playbooks/chapter.yml", kube=kube, extra_vars={"chapter": "9"})
    assert unknown.rc != 0 and "Unknown chapter" in unknown.stdout, str(unknown)
    kube.delete("v1", "Service", "grafana", "istio-system")
    no_grafana = run_playbook("playbooks/chapter.yml", kube=kube, extra_vars={"chapter": "3"})
    assert no_grafana.rc != 0 and "istio-system/grafana" in no_grafana.stdout, str(no_grafana)
    assert kube.writes(mark) == []



# ------------------------------------------------------------------------- pure logic (no API)


def test_documentation_matches_the_argument_spec():
    path = REPO / "plugins/modules/lab_chapter_objects.py"
    spec = importlib.util.spec_from_file_location("lab_chapter_objects", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    options = documented_options("lab_chapter_objects")
    assert set(options) == set(module.ARGUMENT_SPEC)
    for name, doc in options.items():
        for field in ("type", "choices", "default", "aliases"):
            assert doc.get(field) == module.ARGUMENT_SPEC[name].get(field), (name, field)


def test_strip_server_fields_keeps_what_a_client_writes():
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "ns", "uid": "u", "resourceVersion": "7", "generation": 1,
                            "creationTimestamp": "t", "managedFields": [{}], "labels": {"a": "b"},
                            "ownerReferences": [{"uid": "old"}],
                            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"}},
               "spec": {"type": "NodePort", "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
                        "ports": [{"port": 80, "nodePort": 31234, "targetPort": 8080}], "selector": {"app": "web"}},
               "status": {"loadBalancer": {}}}
    assert strip_server_fields(service) == {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "ns", "labels": {"a": "b"}, "annotations": {"keep": "me"}},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "web"}}}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "spec": {"finalizers": ["kubernetes"]},
                 "metadata": {"name": "ns", "labels": {"kubernetes.io/metadata.name": "ns"}}}
    assert strip_server_fields(namespace) == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}, "secrets": [{"name": "t"}]}
    assert "secrets" not in strip_server_fields(account)


def test_kinds_are_created_before_what_points_at_them():
    order = [kind.kind for kind in KINDS]
    assert order[0] == "Namespace"
    assert order.index("Service") < order.index("Deployment") < order.index("Gateway") < order.index("VirtualService")
    assert table([]) == ["(no objects)"]
    lines = table([{"chapter": "1", "kind": "Gateway", "namespace": "ns", "name": "gw", "action": "deleted"}])
    assert lines == ["CHAPTER  KIND     NAMESPACE  NAME  ACTION", "1        Gateway  ns         gw    deleted"]
