"""playbooks/remove-platform.yml (issue 20, "Done when"): on a cluster that
also holds a user's own namespace, VirtualService and Deployment, only
istio-lab's objects go; a re-run has nothing to do; --check lists and writes
nothing; remove_crds is refused while the user's VirtualService uses Istio's
CRDs; site.yml afterwards builds the lab again and verifies it.

Boundaries as in tests/api/test_site.py (the lab is built on the API double:
MetalLB with a loopback pool, Istio through tests/bin/istioctl, whose
`uninstall` is a minimal model: it removes what its `install` wrote for the
revision; the routes probed through a local Envoy stand-in)."""

from __future__ import annotations

import json

import pytest

from tests.api.test_site import envoy_stand_in, site, site_vars
from tests.conftest import wait_namespaces_gone
from tests.helpers import run_playbook

pytestmark = pytest.mark.api

USER_NS = "team-a"
MANAGED = "app.kubernetes.io/managed-by=istio-lab"
PLATFORM_NAMESPACES = ["metallb-system", "istio-system", "istio-lab", "microservice"]
# Issue 27: a user's objects in the platform's namespaces keep those namespaces.
USER_IN_PLATFORM = [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "my-settings", "namespace": "istio-system"},
     "data": {"note": "mine"}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "lb-watch", "namespace": "metallb-system"},
     "spec": {"selector": {"matchLabels": {"app": "lb-watch"}},
              "template": {"metadata": {"labels": {"app": "lb-watch"}},
                           "spec": {"containers": [{"name": "watch", "image": "busybox:1.36"}]}}}},
]


def remove(kube, shared_dir, workdir, check=False, **extra):
    values = {**site_vars(shared_dir, workdir, None), "remove_confirm": "yes", **extra}
    return run_playbook("playbooks/remove-platform.yml", kube=kube, extra_vars=values, check=check, diff=check,
                        env={"ISTIOCTL_DOUBLE_LOG": str(workdir / "istioctl.log")})


def user_objects(kube):
    kube.ensure_namespace(USER_NS)
    kube.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop", "namespace": USER_NS},
                 "spec": {"selector": {"matchLabels": {"app": "shop"}},
                          "template": {"metadata": {"labels": {"app": "shop"}},
                                       "spec": {"containers": [{"name": "shop", "image": "nginx:1.27"}]}}}})
    kube.create({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                 "metadata": {"name": "shop", "namespace": USER_NS},
                 "spec": {"hosts": ["shop"], "http": [{"route": [{"destination": {"host": "shop"}}]}]}})


def assert_user_objects_stay(kube):
    assert kube.get("v1", "Namespace", USER_NS)["status"]["phase"] == "Active"
    assert kube.get("apps/v1", "Deployment", "shop", USER_NS) is not None
    assert kube.get("networking.istio.io/v1", "VirtualService", "shop", USER_NS) is not None


def managed_left(kube):
    """istio-lab's objects still on the cluster, of the kinds the lab creates (CRDs aside)."""
    kinds = [("v1", "Namespace"), ("v1", "Service"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "ServiceAccount"),
             ("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"),
             ("rbac.authorization.k8s.io/v1", "ClusterRole"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
             ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
             ("networking.istio.io/v1", "Gateway"), ("networking.istio.io/v1", "VirtualService"),
             ("networking.istio.io/v1", "DestinationRule"), ("networking.istio.io/v1", "ServiceEntry"),
             ("metallb.io/v1beta1", "IPAddressPool"), ("metallb.io/v1beta1", "L2Advertisement")]
    return sorted((kind, o["metadata"].get("namespace", ""), o["metadata"]["name"])
                  for api_version, kind in kinds for o in kube.list(api_version, kind, label_selector=MANAGED)
                  if not o["metadata"].get("deletionTimestamp"))


def test_remove_platform_leaves_the_users_objects_and_site_rebuilds(kube, shared_dir, tmp_path):
    kube.require_double("builds MetalLB with a loopback pool and Istio through the istioctl test double")
    with envoy_stand_in() as envoy:
        built = site(kube, shared_dir, tmp_path, envoy)
        assert built.rc == 0, built
    user_objects(kube)
    for obj in USER_IN_PLATFORM:
        kube.create(obj)
    assert managed_left(kube)

    # --check --diff: lists what would go, writes nothing
    mark = kube.mark()
    check = remove(kube, shared_dir, tmp_path, check=True)
    assert check.rc == 0 and check.failed == 0, check
    assert kube.writes(mark) == []
    assert "Deployment.apps istio-system/zipkin (pruned)" in check.stdout
    assert "would run istioctl uninstall for revision(s) default" in check.stdout

    # remove_crds while the user's VirtualService uses Istio's CRDs: refused before anything is deleted
    mark = kube.mark()
    refused = remove(kube, shared_dir, tmp_path, remove_crds=True)
    assert refused.rc != 0, refused
    assert "still in use" in refused.stdout and f"{USER_NS}/shop" in refused.stdout, refused
    assert kube.writes(mark) == []

    removed = remove(kube, shared_dir, tmp_path)
    assert removed.rc == 0 and removed.failed == 0, removed
    # Nothing foreign in istio-lab and microservice (what Kubernetes, its controllers and istioctl made
    # there does not count): they go. The user's ConfigMap and Deployment keep theirs, listed.
    wait_namespaces_gone(kube, ["istio-lab", "microservice"])
    kept = {"istio-system": "ConfigMap/my-settings", "metallb-system": "Deployment/lb-watch"}
    for namespace, what in kept.items():
        live = kube.get("v1", "Namespace", namespace)
        assert live is not None and live["status"]["phase"] == "Active", namespace
        assert any(namespace in line and what in line and "kept" in line for line in removed.stdout.splitlines()), \
            (namespace, removed.stdout)
    assert kube.get("v1", "ConfigMap", "my-settings", "istio-system") is not None
    assert kube.get("apps/v1", "Deployment", "lb-watch", "metallb-system") is not None
    assert "kube-root-ca.crt" not in removed.stdout and "Pod/" not in removed.stdout
    assert [ref for ref in managed_left(kube) if ref[0] != "Namespace" or ref[2] not in kept] == []
    for name in ("istiod", "istio-ingressgateway", "istio-egressgateway"):
        assert kube.get("apps/v1", "Deployment", name, "istio-system") is None
    assert_user_objects_stay(kube)
    calls = [json.loads(line)["argv"] for line in (tmp_path / "istioctl.log").read_text().splitlines()]
    assert ["uninstall", "-y", "--revision", "default"] in calls
    # the CRDs stay (remove_crds off): the user's VirtualService still has its kind, MetalLB's are kept
    assert kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "virtualservices.networking.istio.io")
    assert kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "ipaddresspools.metallb.io")
    assert "kept CustomResourceDefinition.apiextensions.k8s.io ipaddresspools.metallb.io" in removed.stdout
    assert "deleted IPAddressPool.metallb.io metallb-system/istio-lab-pool" in removed.stdout

    mark = kube.mark()
    again = remove(kube, shared_dir, tmp_path)
    assert again.rc == 0 and again.changed == 0, again
    assert kube.writes(mark) == []
    assert "my-settings" not in again.stdout and "lb-watch" not in again.stdout  # said once

    with envoy_stand_in() as envoy:
        rebuilt = site(kube, shared_dir, tmp_path, envoy)
        assert rebuilt.rc == 0 and rebuilt.failed == 0, rebuilt
    report = json.loads((tmp_path / "artifacts" / "lab" / "verify.json").read_text())
    assert report["ok"] is True
    assert_user_objects_stay(kube)
