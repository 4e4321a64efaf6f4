"""Shared-cluster mode: each student gets a namespace, a ServiceAccount with a
token, a Role and RoleBinding limited to that namespace, and a kubeconfig.

Against the double, the Role and RoleBinding are read back through the API
and their rules checked as data (the double does not enforce RBAC). Against a
real cluster (ISTIO_LAB_TEST_KUBECONFIG), the same run is followed by real
requests with a student's token: allowed in their namespace, refused (403) in
another student's namespace and on cluster-wide objects.
"""

from __future__ import annotations

import base64
import csv
import stat
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, run_playbook

pytestmark = pytest.mark.api

STUDENTS = ["alice", "bob"]
ROLE_DEFAULTS = yaml.safe_load((REPO / "roles/shared_cluster_tenant/defaults/main.yml").read_text())
MANAGED = {("networking.istio.io", "gateways"), ("networking.istio.io", "virtualservices"),
           ("networking.istio.io", "destinationrules"), ("apps", "deployments"), ("", "services")}
WRITE_VERBS = {"create", "update", "patch", "delete"}


def allows(rules, group, resource, verb):
    """What the RBAC authorizer decides for one Role's rules (no wildcards expected)."""
    return any(group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
               for rule in rules)


def emulate_token_controller(kube, namespace, account):
    """The double has no kube-controller-manager: put the token where the token controller would.
    (On a real cluster the controller fills the Secret the role creates.)"""
    kube.ensure_namespace(namespace)
    token = base64.b64encode(f"token-of-{namespace}".encode()).decode()
    kube.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                 "metadata": {"name": f"{account}-token", "namespace": namespace,
                              "annotations": {"kubernetes.io/service-account.name": account}},
                 "data": {"token": token}})


def build_shared_class(kube, tmp_path):
    roster = tmp_path / "roster.csv"
    with roster.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name"])
        writer.writerows([[s, s.title()] for s in STUDENTS])
    inventory = tmp_path / "inventory"
    result = run_playbook("playbooks/classroom-inventory.yml", extra_vars={
        "classroom_inventory_roster": str(roster), "classroom_inventory_dir": str(inventory),
        "classroom_inventory_mode": "shared", "classroom_inventory_shared_kubeconfig": kube.kubeconfig,
        "classroom_inventory_shared_context": kube.context, "classroom_inventory_domain": "lab.test",
        "classroom_inventory_shared_address_range": "127.20.0.1-127.20.0.4",
        "classroom_inventory_shared_ingress_ip": "127.20.0.1"})
    assert result.rc == 0, result
    if kube.is_double:
        for student in STUDENTS:
            emulate_token_controller(kube, f"lab-{student}", ROLE_DEFAULTS["shared_cluster_tenant_service_account"])
    extra = {"classroom_stages": ["tenants", "handouts"], "shared_cluster_tenant_kubeconfig_dir": str(tmp_path / "t"),
             "classroom_handout_dir": str(tmp_path / "handouts")}
    first = run_playbook("playbooks/classroom.yml", inventory=inventory, env={"TMPDIR": str(tmp_path)},
                         extra_vars=extra)
    second = run_playbook("playbooks/classroom.yml", inventory=inventory, env={"TMPDIR": str(tmp_path)},
                          extra_vars=extra)
    return {"kube": kube, "dir": tmp_path, "first": first, "second": second}


def test_shared_cluster_tenants(kube, tmp_path):
    """One build of a two-student shared class, then every check on it (a build takes minutes here)."""
    shared_class = build_shared_class(kube, tmp_path)
    first, second = shared_class["first"], shared_class["second"]
    assert first.rc == 0, first
    assert second.rc == 0 and second.changed == 0, second
    check_role_rules_as_data(shared_class)
    check_kubeconfigs_and_handouts(shared_class)
    if not kube.is_double:
        check_tokens_on_a_real_cluster(shared_class)


def check_role_rules_as_data(shared_class):
    """The Role manages only the lab objects, in the student's own namespace."""
    kube = shared_class["kube"]
    account = ROLE_DEFAULTS["shared_cluster_tenant_service_account"]
    for student in STUDENTS:
        namespace = f"lab-{student}"
        ns = kube.get("v1", "Namespace", namespace)
        assert ns["metadata"]["labels"]["istio-injection"] == "enabled"
        role = kube.get("rbac.authorization.k8s.io/v1", "Role", account, namespace)
        binding = kube.get("rbac.authorization.k8s.io/v1", "RoleBinding", account, namespace)
        assert role["rules"] == ROLE_DEFAULTS["shared_cluster_tenant_rules"]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
        rules = role["rules"]
        for rule in rules:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        for group, resource in MANAGED:
            assert all(allows(rules, group, resource, verb) for verb in WRITE_VERBS | {"get", "list"})
        for group, resource in [("", "pods"), ("", "pods/log"), ("", "endpoints")]:
            assert allows(rules, group, resource, "get") and not allows(rules, group, resource, "delete")
        for group, resource in [("", "secrets"), ("", "serviceaccounts"), ("", "configmaps"),
                                ("rbac.authorization.k8s.io", "roles"),
                                ("rbac.authorization.k8s.io", "rolebindings"), ("", "namespaces"),
                                ("networking.istio.io", "serviceentries"),
                                ("security.istio.io", "peerauthentications")]:
            assert not any(allows(rules, group, resource, verb) for verb in WRITE_VERBS | {"get", "list"}), resource
    # Cluster-wide: the student is bound by a RoleBinding to a Role only, never a ClusterRoleBinding.
    bindings = kube.list("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
    assert not [b for b in bindings for s in b.get("subjects") or [] if s.get("namespace", "").startswith("lab-")]


def check_kubeconfigs_and_handouts(shared_class):
    """Each student gets a 0600 kubeconfig for their namespace, in their handout too."""
    kube, root = shared_class["kube"], shared_class["dir"]
    admin = yaml.safe_load(Path(kube.kubeconfig).read_text())
    server = admin["clusters"][0]["cluster"]["server"]
    for student in STUDENTS:
        path = root / "t" / f"{student}.kubeconfig"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        config = yaml.safe_load(path.read_text())
        assert config["clusters"][0]["cluster"]["server"] == server
        assert config["contexts"][0]["context"]["namespace"] == f"lab-{student}"
        secret = kube.get("v1", "Secret", "student-token", f"lab-{student}")
        assert config["users"][0]["user"]["token"] == base64.b64decode(secret["data"]["token"]).decode()
        handout = root / "handouts" / student / "kubeconfig"
        assert handout.read_text() == path.read_text() and stat.S_IMODE(handout.stat().st_mode) == 0o600
        page = (root / "handouts" / student / "README.md").read_text()
        assert f"`lab-{student}`" in page and f"*.{student}.lab.test" in page
    assert "token-of-lab-" not in shared_class["first"].stdout + shared_class["second"].stdout


def check_tokens_on_a_real_cluster(shared_class):
    """A student's token works in their namespace and is refused (403) elsewhere.
    Only against a real cluster: the double does not enforce RBAC."""
    root = shared_class["dir"]
    from kubernetes import config
    from kubernetes.client import ApiException, CoreV1Api, CustomObjectsApi

    client = config.new_client_from_config(config_file=str(root / "t" / "alice.kubeconfig"))
    custom, core = CustomObjectsApi(client), CoreV1Api(client)
    custom.list_namespaced_custom_object("networking.istio.io", "v1", "lab-alice", "virtualservices")
    for call in (lambda: custom.list_namespaced_custom_object("networking.istio.io", "v1", "lab-bob",
                                                              "virtualservices"),
                 lambda: core.list_namespace(),
                 lambda: core.list_namespaced_secret("lab-alice"),
                 lambda: custom.list_cluster_custom_object("networking.istio.io", "v1", "gateways")):
        with pytest.raises(ApiException) as refused:
            call()
        assert refused.value.status == 403
