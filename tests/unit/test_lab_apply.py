"""plugins/filter/lab_apply.py: which manifests a re-run must apply."""

import copy
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins" / "filter"))
from lab_apply import (  # noqa: E402
    APPLIED_HASH,
    FilterModule,
    lab_applied_hash,
    lab_apply_needed,
    lab_apply_reason,
    lab_contains,
    lab_live_queries,
    lab_with_applied_hash,
)

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
    return lab_with_applied_hash([NAMESPACE, SERVICE, DEPLOYMENT])


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {"lab_applied_hash", "lab_with_applied_hash", "lab_live_queries",
                                             "lab_apply_needed"}


def test_the_hash_is_stable_and_ignores_its_own_annotation(stamped):
    assert lab_applied_hash(SERVICE) == lab_applied_hash(copy.deepcopy(SERVICE))
    assert lab_applied_hash(SERVICE).startswith("sha256:")
    assert stamped[1]["metadata"]["annotations"] == {APPLIED_HASH: lab_applied_hash(SERVICE)}
    assert lab_applied_hash(stamped[1]) == lab_applied_hash(SERVICE)
    reordered = dict(reversed(list(SERVICE.items())))
    assert lab_applied_hash(reordered) == lab_applied_hash(SERVICE)
    assert SERVICE["metadata"].get("annotations") is None, "the input is left alone"


def test_existing_annotations_are_kept():
    manifest = {**NAMESPACE, "metadata": {"name": "x", "annotations": {"a": "b"}}}
    assert lab_with_applied_hash([manifest])[0]["metadata"]["annotations"] == {
        "a": "b", APPLIED_HASH: lab_applied_hash(manifest)}


def test_one_list_per_kind_and_namespace(stamped):
    second = copy.deepcopy(SERVICE)
    second["metadata"]["name"] = "other"
    assert lab_live_queries(stamped + [second]) == [
        {"api_version": "v1", "kind": "Namespace", "namespace": ""},
        {"api_version": "v1", "kind": "Service", "namespace": "microservice"},
        {"api_version": "apps/v1", "kind": "Deployment", "namespace": "microservice"},
    ]


def test_a_rerun_where_nothing_differs_applies_nothing(stamped):
    assert lab_apply_needed(stamped, [live_of(m) for m in stamped]) == []


def test_k8s_info_results_are_accepted(stamped):
    looped = {"results": [{"item": {}, "resources": [live_of(m)], "api_found": True} for m in stamped]}
    assert lab_apply_needed(stamped, looped) == []
    assert lab_apply_needed(stamped, looped["results"]) == []
    assert lab_apply_needed(stamped, {"resources": [live_of(stamped[0])]}) == stamped[1:]
    assert lab_apply_needed(stamped, {"skipped": True}) == stamped


def test_missing_objects_are_applied(stamped):
    live = [live_of(m) for m in stamped[:2]]
    assert lab_apply_needed(stamped, live) == [stamped[2]]
    assert lab_apply_reason(stamped[2], None) == "missing"


def test_an_object_of_another_namespace_or_group_is_not_the_one(stamped):
    elsewhere = live_of(stamped[1])
    elsewhere["metadata"]["namespace"] = "default"
    other_group = live_of(stamped[2])
    other_group["apiVersion"] = "extensions/v1beta1"
    assert lab_apply_needed(stamped[1:], [elsewhere, other_group]) == stamped[1:]


def test_a_changed_manifest_is_applied_even_when_a_field_was_only_removed(stamped):
    live = [live_of(m) for m in stamped]
    trimmed = copy.deepcopy(SERVICE)
    del trimmed["spec"]["selector"]
    desired = lab_with_applied_hash([trimmed])
    # desired ⊆ live still holds: only the hash tells the field went away.
    assert lab_contains(live[1], trimmed)
    assert lab_apply_needed(desired, live) == desired
    assert lab_apply_reason(desired[0], live[1]) == "changed"


def test_a_live_object_without_the_hash_is_applied_once(stamped):
    live = live_of(stamped[1])
    del live["metadata"]["annotations"]
    assert lab_apply_reason(stamped[1], live) == "changed"


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
    assert lab_apply_reason(stamped[1], live) == "drifted"
    assert lab_apply_needed(stamped, [live]) == stamped


@pytest.mark.parametrize("edit", [
    lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image="tomcat:10"),
    lambda o: o["spec"]["template"]["spec"]["containers"][0].update(args=["run", "--debug"]),
    lambda o: o["spec"].update(replicas=3),
], ids=["image", "args", "replicas"])
def test_deployment_drift(stamped, edit):
    live = live_of(stamped[2])
    edit(live)
    assert lab_apply_reason(stamped[2], live) == "drifted"


def test_what_others_add_is_not_drift(stamped):
    live = live_of(stamped[1])
    live["metadata"]["labels"]["team"] = "a"
    live["metadata"]["annotations"]["note"] = "b"
    live["spec"]["ports"].append({"name": "extra", "port": 9000, "protocol": "TCP"})
    assert lab_apply_reason(stamped[1], live) == ""


def test_contains_rules():
    assert lab_contains({"a": 1}, {"a": None})
    assert lab_contains({}, {"a": {}, "b": [], "c": None})
    assert not lab_contains({}, {"a": {"b": 1}})
    assert lab_contains({"port": "8080"}, {"port": 8080})
    assert lab_contains({"x": 1.0}, {"x": 1})
    assert not lab_contains({"x": "true"}, {"x": True})
    assert not lab_contains({"x": 1}, {"x": True})
    assert not lab_contains({"x": ["a", "b", "c"]}, {"x": ["a", "b"]})
    assert not lab_contains({"x": ["b", "a"]}, {"x": ["a", "b"]})
    assert lab_contains({"x": [{"n": 1, "p": 2}, {"n": 2}, {"n": 3}]}, {"x": [{"n": 1}, {"n": 3}]})
    assert not lab_contains({"x": [{"n": 3}, {"n": 1}]}, {"x": [{"n": 1}, {"n": 3}]})
    assert not lab_contains({"x": "a"}, {"x": {"a": 1}})
    assert lab_contains({"s": "\U0001F510mTLS"}, {"s": "\U0001F510mTLS"})


def test_without_annotation_only_the_subset_counts():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
              "data": {"password": "cHc="}}
    live = copy.deepcopy(secret)
    live["metadata"]["uid"] = "1"
    assert lab_apply_needed([secret], [live], "") == []
    live["data"]["password"] = "b3RoZXI="
    assert lab_apply_needed([secret], [live], "") == [secret]


@pytest.fixture
def upstream(shared_dir):
    paths = [shared_dir / "upstream" / "metallb-0.16.1" / "metallb-native.yaml",
             *sorted((shared_dir / "upstream" / "istio-1.30.3" / "addons").glob("*.yaml"))]
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_the_upstream_manifests_as_stored_need_nothing(upstream):
    stamped = lab_with_applied_hash(upstream)
    live = copy.deepcopy(stamped)
    for obj in live:
        obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    assert lab_apply_needed(stamped, live) == []
    assert len({lab_applied_hash(m) for m in stamped}) == len(stamped)
