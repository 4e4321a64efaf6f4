"""lab_manifests' owned sets (issue 20, KEP-3659 ApplySets) against a
Kubernetes API: the double, or a real cluster with ISTIO_LAB_TEST_KUBECONFIG.
Results are checked through the API and the fixture's request counters only.
The sets' parents live in namespace istio-lab (deleted after the test on a
real cluster, as every namespace a test creates)."""

import pytest

from tests.conftest import wait_namespaces_gone
from tests.helpers import run_module

pytestmark = pytest.mark.api

NS = "applyset-test"
OTHER_NS = "applyset-test-b"
PARENT_NS = "istio-lab"
MANAGED = {"app.kubernetes.io/managed-by": "istio-lab"}
PART_OF = "applyset.kubernetes.io/part-of"
ID = "applyset.kubernetes.io/id"
KINDS = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES = "applyset.kubernetes.io/additional-namespaces"
TOOLING = "applyset.kubernetes.io/tooling"
# kubectl's ID of ConfigMap istio-lab/applyset-demo:
# base64url(sha256("applyset-demo.istio-lab.ConfigMap.")), unpadded
DEMO_ID = "applyset-" + __import__("base64").urlsafe_b64encode(
    __import__("hashlib").sha256(b"applyset-demo.istio-lab.ConfigMap.").digest()).decode().rstrip("=") + "-v1"


def app(name, namespace=NS):
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
         "spec": {"selector": {"matchLabels": {"app": name}},
                  "template": {"metadata": {"labels": {"app": name}},
                               "spec": {"containers": [{"name": name, "image": "nginx:1.27"}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
         "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}},
    ]


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def config(name, namespace=NS):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"k": "v"}}


def demo(manifests, **extra):
    return {"applyset": "demo", "manifests": manifests, "wait_timeout": 60, "retry_delay": 0.2, **extra}


def parent(kube):
    return kube.get("v1", "ConfigMap", "applyset-demo", PARENT_NS)


def members(kube, api_version, kind, namespace=None):
    return sorted(o["metadata"]["name"] for o in kube.list(api_version, kind, namespace,
                                                           label_selector=f"{PART_OF}={DEMO_ID}"))


def test_the_parent_records_what_the_set_holds_and_a_rerun_writes_nothing(kube):
    first = run_module("lab_manifests", demo([namespace(NS), *app("web"), config("settings")]), kube=kube)
    assert first["changed"], first.get("msg")
    record = parent(kube)
    assert record["metadata"]["labels"][ID] == DEMO_ID == first["applyset"]["id"]
    assert record["metadata"]["annotations"][TOOLING].startswith("istio-lab/")
    # contains-group-kinds lists exactly the kinds the set holds, sorted, core kinds without a group
    assert record["metadata"]["annotations"][KINDS] == "ConfigMap,Deployment.apps,Namespace,Service"
    assert record["metadata"]["annotations"][NAMESPACES] == NS
    # every member, of every kind, carries the set's label (kubectl's view of the set)
    assert members(kube, "v1", "Namespace") == [NS]
    assert members(kube, "apps/v1", "Deployment", NS) == ["web"]
    assert members(kube, "v1", "Service", NS) == ["web"]
    assert members(kube, "v1", "ConfigMap", NS) == ["settings"]
    # the parent's ID label is kubectl's: the labelled objects are found from it
    kinds = record["metadata"]["annotations"][KINDS].split(",")
    assert len(kinds) == len({k for k in kinds})

    mark = kube.mark()
    again = run_module("lab_manifests", demo([namespace(NS), *app("web"), config("settings")]), kube=kube)
    assert not again["changed"], again
    assert kube.writes(mark) == []
    assert again["pruned"] == []
    # one GET of the parent beyond what the call reads without a set
    assert again["api_requests"] == {"discovery": 2, "get": 1, "list": 4}


def test_a_member_left_out_is_pruned_and_nothing_else_is_written(kube):
    run_module("lab_manifests", demo([namespace(NS), *app("web"), *app("extra"), config("settings")]), kube=kube)
    # a look-alike of the user's own in the same namespace: managed label, no set label
    kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "users", "namespace": NS, "labels": dict(MANAGED)}})

    check = run_module("lab_manifests", demo([namespace(NS), *app("web")]), kube=kube, check=True, diff=True)
    assert check["changed"]
    assert sorted((p["kind"], p["name"]) for p in check["pruned"]) == [
        ("ConfigMap", "settings"), ("Deployment", "extra"), ("Service", "extra")]
    assert sorted(d["before_header"] for d in check["diff"]) == [
        "ConfigMap applyset-test/settings (pruned)", "Deployment.apps applyset-test/extra (pruned)",
        "Service applyset-test/extra (pruned)"]
    assert kube.get("apps/v1", "Deployment", "extra", NS) is not None

    mark = kube.mark()
    pruned = run_module("lab_manifests", demo([namespace(NS), *app("web")]), kube=kube)
    assert pruned["changed"], pruned.get("msg")
    writes = sorted((w["verb"], w["resource"], w["name"]) for w in kube.writes(mark))
    # exactly the left-out members, and the parent's record (ConfigMap is no longer one of its kinds)
    assert writes == [("delete", "configmaps", "settings"), ("delete", "deployments", "extra"),
                      ("delete", "services", "extra"), ("patch", "configmaps", "applyset-demo")]
    assert kube.get("v1", "ConfigMap", "users", NS) is not None
    assert kube.get("apps/v1", "Deployment", "web", NS) is not None
    assert parent(kube)["metadata"]["annotations"][KINDS] == "Deployment.apps,Namespace,Service"

    mark = kube.mark()
    back = run_module("lab_manifests", demo([namespace(NS), *app("web"), *app("extra")]), kube=kube)
    assert back["changed"] and back["pruned"] == []
    assert kube.get("apps/v1", "Deployment", "extra", NS) is not None
    assert {w["name"] for w in kube.writes(mark)} == {"extra"}


def test_a_namespace_left_out_goes_last_and_a_kind_left_out_is_still_found(kube):
    run_module("lab_manifests", demo([namespace(NS), namespace(OTHER_NS), *app("web"), config("c", OTHER_NS)]),
               kube=kube)
    assert parent(kube)["metadata"]["annotations"][NAMESPACES] == f"{NS},{OTHER_NS}"
    mark = kube.mark()
    pruned = run_module("lab_manifests", demo([namespace(NS), *app("web")]), kube=kube)
    assert pruned["changed"], pruned.get("msg")
    deletes = [(w["resource"], w["name"]) for w in kube.writes(mark) if w["verb"] == "delete"]
    assert deletes == [("configmaps", "c"), ("namespaces", OTHER_NS)]
    assert parent(kube)["metadata"]["annotations"][NAMESPACES] == NS
    # a re-run while the namespace terminates has nothing to do
    mark = kube.mark()
    assert not run_module("lab_manifests", demo([namespace(NS), *app("web")]), kube=kube)["changed"]
    assert kube.writes(mark) == []


def test_a_namespace_left_out_that_holds_a_users_object_is_kept_and_listed_once(kube):
    """Issue 27: the prune deletes a member namespace only when nothing foreign is left in it (the web
    app's Pods and Endpoints, the default ServiceAccount and kube-root-ca.crt do not count, the user's
    ConfigMap does); a re-run is quiet; remove_foreign deletes it anyway."""
    run_module("lab_manifests", demo([namespace(NS), namespace(OTHER_NS), *app("web", OTHER_NS)]), kube=kube)
    kube.create(config("mine", OTHER_NS))  # no labels: a user's
    mark = kube.mark()
    pruned = run_module("lab_manifests", demo([namespace(NS)]), kube=kube)
    assert pruned["changed"], pruned.get("msg")
    deletes = sorted((w["resource"], w["name"]) for w in kube.writes(mark) if w["verb"] == "delete")
    assert deletes == [("deployments", "web"), ("services", "web")]
    kept = [p for p in pruned["pruned"] if p["kind"] == "Namespace"]
    assert [(p["name"], [(f["kind"], f["name"]) for f in p["foreign"]]) for p in kept] == [
        (OTHER_NS, [("ConfigMap", "mine")])]
    assert "ConfigMap/mine" in kept[0]["action"]
    assert kube.get("v1", "Namespace", OTHER_NS)["metadata"]["annotations"]["istio-lab.io/kept-for"] == \
        "ConfigMap/mine"
    assert "Namespace" in parent(kube)["metadata"]["annotations"][KINDS].split(",")  # still a member
    # what the namespace holds: one LIST per namespaced kind the cluster serves (no selector), not per object
    lists = [r["path"] for r in kube.requests(mark) if r["verb"] == "list" and not r["query"]]
    assert len(set(lists)) == len(lists) and f"/api/v1/namespaces/{OTHER_NS}/configmaps" in lists, lists

    mark = kube.mark()
    again = run_module("lab_manifests", demo([namespace(NS)]), kube=kube)
    assert not again["changed"] and again["pruned"] == [] and kube.writes(mark) == []

    forced = run_module("lab_manifests", demo([namespace(NS)], remove_foreign=True), kube=kube)
    assert forced["changed"] and [p["name"] for p in forced["pruned"]] == [OTHER_NS]
    wait_namespaces_gone(kube, [OTHER_NS])


def test_prune_false_keeps_and_records_what_left(kube):
    run_module("lab_manifests", demo([namespace(NS), *app("web"), config("settings")]), kube=kube)
    mark = kube.mark()
    kept = run_module("lab_manifests", demo([namespace(NS), *app("web")], prune=False), kube=kube)
    assert not kept["changed"] and kept["pruned"] == []
    assert kube.writes(mark) == []
    assert "ConfigMap" in parent(kube)["metadata"]["annotations"][KINDS].split(",")


def test_an_existing_lab_adopts_its_set_without_writing_anything_else(kube):
    plain = {"manifests": [namespace(NS), *app("web")], "wait_timeout": 60}
    run_module("lab_manifests", plain, kube=kube)
    kube.ensure_namespace(OTHER_NS)
    kube.create(config("bystander", OTHER_NS))
    mark = kube.mark()
    adopted = run_module("lab_manifests", demo([namespace(NS), *app("web")]), kube=kube)
    assert adopted["changed"] and adopted["pruned"] == []
    # the members (their set label) and the parent (and its namespace), nothing else; the parent's
    # first apply finds no namespace istio-lab (404), which is then created
    written = sorted((w["resource"], w["name"]) for w in kube.writes(mark) if w["status"] < 400)
    assert written == [("configmaps", "applyset-demo"), ("deployments", "web"), ("namespaces", NS),
                       ("namespaces", PARENT_NS), ("services", "web")]
    assert members(kube, "apps/v1", "Deployment", NS) == ["web"]


def test_state_absent_removes_the_set_and_its_parent(kube):
    run_module("lab_manifests", demo([namespace(NS), *app("web")]), kube=kube)
    kube.ensure_namespace(OTHER_NS)
    kube.create(config("bystander", OTHER_NS))
    listed = run_module("lab_manifests", {"applyset": "demo", "state": "absent"}, kube=kube, check=True)
    assert listed["changed"] and len(listed["pruned"]) == 3 and parent(kube) is not None
    gone = run_module("lab_manifests", {"applyset": "demo", "state": "absent"}, kube=kube)
    gone_rows = [(p["kind"], p["name"]) for p in gone["pruned"]]
    assert sorted(gone_rows[:2]) == [("Deployment", "web"), ("Service", "web")]
    assert gone_rows[2:] == [("Namespace", NS)]  # namespaces last
    assert parent(kube) is None
    assert kube.get("v1", "ConfigMap", "bystander", OTHER_NS) is not None
    mark = kube.mark()
    again = run_module("lab_manifests", {"applyset": "demo", "state": "absent"}, kube=kube)
    assert not again["changed"] and kube.writes(mark) == []


def test_a_parent_of_another_tool_is_refused(kube):
    kube.ensure_namespace(PARENT_NS)
    kube.create({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "applyset-demo", "namespace": PARENT_NS,
                              "annotations": {TOOLING: "kubectl/v1.36"}}})
    mark = kube.mark()
    refused = run_module("lab_manifests", demo([namespace(NS)]), kube=kube)
    assert refused.get("failed") and "kubectl/v1.36" in refused["msg"]
    assert kube.writes(mark) == []


def test_a_kind_only_an_older_version_serves_is_still_found(kube):
    """The parent records group and kind, not the version: ProxyConfig is
    served in networking.istio.io/v1beta1 only, the group prefers v1."""
    proxy = {"apiVersion": "networking.istio.io/v1beta1", "kind": "ProxyConfig",
             "metadata": {"name": "lab", "namespace": NS}, "spec": {"concurrency": 2}}
    run_module("lab_manifests", demo([namespace(NS), proxy]), kube=kube)
    assert "ProxyConfig.networking.istio.io" in parent(kube)["metadata"]["annotations"][KINDS].split(",")
    pruned = run_module("lab_manifests", demo([namespace(NS)]), kube=kube)
    assert [(p["kind"], p["name"]) for p in pruned["pruned"]] == [("ProxyConfig", "lab")], pruned
    assert kube.get("networking.istio.io/v1beta1", "ProxyConfig", "lab", NS) is None


CHAPTER = "istio-lab.io/chapter"


def routes(*virtual_services):
    return {"applyset": "chapter", "applyset_label": CHAPTER,
            "gateways": [{"name": "gw", "namespace": NS, "labels": {CHAPTER: "1"},
                          "spec": {"selector": {"istio": "ingressgateway"},
                                   "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                                                "hosts": ["*"]}]}}],
            "virtual_services": [{"name": name, "namespace": NS, "labels": {CHAPTER: chapter},
                                  "spec": {"hosts": [f"{name}.example"], "gateways": ["gw"],
                                           "http": [{"route": [{"destination": {"host": name}}]}]}}
                                 for name, chapter in virtual_services]}


def test_chapter_routes_are_one_set_per_chapter_and_prune_within_it(kube):
    kube.ensure_namespace(NS)
    kube.create({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                 "metadata": {"name": "users", "namespace": NS},
                 "spec": {"hosts": ["users.example"], "http": [{"route": [{"destination": {"host": "users"}}]}]}})
    first = run_module("istio_routes", routes(("a", "1"), ("b", "2"), ("c", "2")), kube=kube)
    assert first["changed"], first.get("msg")
    one = kube.get("v1", "ConfigMap", "applyset-chapter-1", PARENT_NS)
    two = kube.get("v1", "ConfigMap", "applyset-chapter-2", PARENT_NS)
    assert one["metadata"]["annotations"][KINDS] == "Gateway.networking.istio.io,VirtualService.networking.istio.io"
    assert two["metadata"]["annotations"][KINDS] == "VirtualService.networking.istio.io"
    identity = two["metadata"]["labels"][ID]
    assert sorted(o["metadata"]["name"] for o in kube.list("networking.istio.io/v1", "VirtualService", NS,
                                                             label_selector=f"{PART_OF}={identity}")) == ["b", "c"]

    mark = kube.mark()
    again = run_module("istio_routes", routes(("a", "1"), ("b", "2"), ("c", "2")), kube=kube)
    assert not again["changed"] and kube.writes(mark) == []
    # one LIST of the parents beyond the LIST per kind
    assert again["api_requests"] == {"list": 3}

    check = run_module("istio_routes", routes(("a", "1"), ("b", "2")), kube=kube, check=True, diff=True)
    assert [p["name"] for p in check["pruned"]] == ["c"] and check["changed"]
    mark = kube.mark()
    pruned = run_module("istio_routes", routes(("a", "1"), ("b", "2")), kube=kube)
    assert [(w["verb"], w["name"]) for w in kube.writes(mark)] == [("delete", "c")], pruned
    assert kube.get("networking.istio.io/v1", "VirtualService", "users", NS) is not None

    # a run for chapter 1 alone never touches chapter 2's set
    mark = kube.mark()
    alone = run_module("istio_routes", routes(("a", "1")), kube=kube)
    assert not alone["changed"] and kube.writes(mark) == []
    assert kube.get("networking.istio.io/v1", "VirtualService", "b", NS) is not None


WIDGETS = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.lab.example.com"},
           "spec": {"group": "lab.example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}}}]}}


def test_a_crd_goes_only_when_asked_and_never_while_a_users_object_uses_it(kube_no_crds):
    kube = kube_no_crds
    run_module("lab_manifests", demo([WIDGETS, namespace(NS)]), kube=kube)
    kube.create({"apiVersion": "lab.example.com/v1", "kind": "Widget", "metadata": {"name": "users", "namespace": NS}})

    kept = run_module("lab_manifests", {"applyset": "demo", "state": "absent"}, kube=kube)
    # the CRD is kept (prune_crds off), and so is the namespace: the user's Widget is in it (issue 27)
    assert [(p["kind"], p["action"].split(":")[0]) for p in kept["pruned"]] == [
        ("CustomResourceDefinition", "kept"), ("Namespace", "kept")]
    assert kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.lab.example.com")
    assert "CustomResourceDefinition.apiextensions.k8s.io" in parent(kube)["metadata"]["annotations"][KINDS]
    assert kube.get("v1", "Namespace", NS) is not None
    kube.delete("lab.example.com/v1", "Widget", "users", NS)

    kube.ensure_namespace(OTHER_NS)
    kube.create({"apiVersion": "lab.example.com/v1", "kind": "Widget",
                 "metadata": {"name": "users", "namespace": OTHER_NS}})
    mark = kube.mark()
    refused = run_module("lab_manifests", {"applyset": "demo", "state": "absent", "prune_crds": True}, kube=kube)
    assert refused.get("failed") and f"{OTHER_NS}/users" in refused["msg"], refused
    assert kube.writes(mark) == []

    kube.delete("lab.example.com/v1", "Widget", "users", OTHER_NS)
    gone = run_module("lab_manifests", {"applyset": "demo", "state": "absent", "prune_crds": True}, kube=kube)
    assert [(p["kind"], p["action"]) for p in gone["pruned"]] == [("CustomResourceDefinition", "deleted"),
                                                                 ("Namespace", "deleted")], gone
    wait_namespaces_gone(kube, [NS])
    assert kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.lab.example.com") is None
    assert parent(kube) is None
