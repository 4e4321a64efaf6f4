"""plugins/module_utils/istio_lab/manifests.py (module lab_manifests): which
manifests a re-run must apply, and why (missing, changed, drifted)."""

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.manifests import (  # noqa: E402
    APPLIED_HASH,
    applied_hash,
    apply_reason,
    contains,
    with_applied_hash,
)


def stamp_all(manifests):
    return [with_applied_hash(m) for m in manifests]


def needed(manifests, live):
    """The manifests apply_reason says must be applied, given the live objects."""
    index = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in live}
    return [m for m in manifests
            if apply_reason(m, index.get((m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"])))]


SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "tomcat", "namespace": "microservice",
                 "labels": {"app.kubernetes.io/managed-by": "istio-lab"}},
    "spec": {"type": "ClusterIP", "selector": {"app": "tomcat"},
             "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "microservice"}}
DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "tomcat", "namespace": "microservice"},
    "spec": {"replicas": 1, "strategy": {"type": "Recreate", "rollingUpdate": None},
             "template": {"spec": {"containers": [{"name": "tomcat", "image": "tomcat:9", "args": ["run"],
                                                   "ports": [{"containerPort": 8080}]}]}}},
}


def live_of(manifest):
    """What the API server stores for an applied manifest: defaults and server fields added."""
    live = copy.deepcopy(manifest)
    live["metadata"].update(uid="1", resourceVersion="7", creationTimestamp="2026-01-01T00:00:00Z",
                            managedFields=[{"manager": "istio-lab"}])
    if manifest["kind"] == "Service":
        live["spec"].update(clusterIP="10.0.0.7", sessionAffinity="None")
        for port in live["spec"]["ports"]:
            port["protocol"] = "TCP"
    if manifest["kind"] == "Deployment":
        del live["spec"]["strategy"]["rollingUpdate"]
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
        live["status"] = {"availableReplicas": 1}
    return live


@pytest.fixture
def stamped():
    return stamp_all([NAMESPACE, SERVICE, DEPLOYMENT])


def test_the_filters_are_gone():
    """The decision lives in the module now: no filter plugin duplicates it."""
    assert not (REPO / "plugins" / "filter" / "lab_apply.py").exists()


def test_the_hash_is_stable_and_ignores_its_own_annotation(stamped):
    assert applied_hash(SERVICE) == applied_hash(copy.deepcopy(SERVICE))
    assert applied_hash(SERVICE).startswith("sha256:")
    assert stamped[1]["metadata"]["annotations"] == {APPLIED_HASH: applied_hash(SERVICE)}
    assert applied_hash(stamped[1]) == applied_hash(SERVICE)
    reordered = dict(reversed(list(SERVICE.items())))
    assert applied_hash(reordered) == applied_hash(SERVICE)
    assert SERVICE["metadata"].get("annotations") is None, "the input is left alone"


def test_existing_annotations_are_kept():
    manifest = {**NAMESPACE, "metadata": {"name": "x", "annotations": {"a": "b"}}}
    assert with_applied_hash(manifest)["metadata"]["annotations"] == {
        "a": "b", APPLIED_HASH: applied_hash(manifest)}


def test_a_rerun_where_nothing_differs_applies_nothing(stamped):
    assert needed(stamped, [live_of(m) for m in stamped]) == []


def test_missing_objects_are_applied(stamped):
    live = [live_of(m) for m in stamped[:2]]
    assert needed(stamped, live) == [stamped[2]]
    assert apply_reason(stamped[2], None) == "missing"


def test_a_changed_manifest_is_applied_even_when_a_field_was_only_removed(stamped):
    live = [live_of(m) for m in stamped]
    trimmed = copy.deepcopy(SERVICE)
    del trimmed["spec"]["selector"]
    desired = stamp_all([trimmed])
    # desired ⊆ live still holds: only the hash tells the field went away.
    assert contains(live[1], trimmed)
    assert needed(desired, live) == desired
    assert apply_reason(desired[0], live[1]) == "changed"


def test_a_live_object_without_the_hash_is_applied_once(stamped):
    live = live_of(stamped[1])
    del live["metadata"]["annotations"]
    assert apply_reason(stamped[1], live) == "changed"


@pytest.mark.parametrize("edit", [
    lambda o: o["spec"]["ports"][0].update(port=81),
    lambda o: o["spec"]["ports"].pop(),
    lambda o: o["spec"].update(type="NodePort"),
    lambda o: o["spec"]["selector"].update(app="other"),
    lambda o: o["metadata"]["labels"].clear(),
], ids=["port", "port-removed", "type", "selector", "labels"])
def test_an_edited_live_field_istio_lab_sets_is_drift(stamped, edit):
    live = live_of(stamped[1])
    edit(live)
    assert apply_reason(stamped[1], live) == "drifted"
    assert needed(stamped, [live]) == stamped


@pytest.mark.parametrize("edit", [
    lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image="tomcat:10"),
    lambda o: o["spec"]["template"]["spec"]["containers"][0].update(args=["run", "--debug"]),
    lambda o: o["spec"].update(replicas=3),
], ids=["image", "args", "replicas"])
def test_deployment_drift(stamped, edit):
    live = live_of(stamped[2])
    edit(live)
    assert apply_reason(stamped[2], live) == "drifted"


def test_what_others_add_is_not_drift(stamped):
    live = live_of(stamped[1])
    live["metadata"]["labels"]["team"] = "a"
    live["metadata"]["annotations"]["note"] = "b"
    live["spec"]["ports"].append({"name": "extra", "port": 9000, "protocol": "TCP"})
    assert apply_reason(stamped[1], live) == ""


def test_contains_rules():
    assert contains({"a": 1}, {"a": None})
    assert contains({}, {"a": {}, "b": [], "c": None})
    assert not contains({}, {"a": {"b": 1}})
    assert contains({"port": "8080"}, {"port": 8080})
    assert contains({"x": 1.0}, {"x": 1})
    assert not contains({"x": "true"}, {"x": True})
    assert not contains({"x": 1}, {"x": True})
    assert not contains({"x": ["a", "b", "c"]}, {"x": ["a", "b"]})
    assert not contains({"x": ["b", "a"]}, {"x": ["a", "b"]})
    assert contains({"x": [{"n": 1, "p": 2}, {"n": 2}, {"n": 3}]}, {"x": [{"n": 1}, {"n": 3}]})
    assert not contains({"x": [{"n": 3}, {"n": 1}]}, {"x": [{"n": 1}, {"n": 3}]})
    assert not contains({"x": "a"}, {"x": {"a": 1}})
    assert contains({"s": "\U0001F510mTLS"}, {"s": "\U0001F510mTLS"})


def test_a_secret_gets_no_hash_and_only_the_subset_counts():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
              "data": {"password": "cHc="}}
    assert with_applied_hash(secret) is secret
    live = copy.deepcopy(secret)
    live["metadata"]["uid"] = "1"
    assert needed([secret], [live]) == []
    live["data"]["password"] = "b3RoZXI="
    assert needed([secret], [live]) == [secret]
    assert apply_reason(secret, live) == "drifted"


@pytest.fixture
def upstream(shared_dir):
    paths = [shared_dir / "upstream" / "metallb-0.16.1" / "metallb-native.yaml",
             *sorted((shared_dir / "upstream" / "istio-1.30.3" / "addons").glob("*.yaml"))]
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_the_upstream_manifests_as_stored_need_nothing(upstream):
    stamped = stamp_all(upstream)
    live = copy.deepcopy(stamped)
    for obj in live:
        obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    assert needed(stamped, live) == []
    assert len({applied_hash(m) for m in stamped}) == len(stamped)
