"""Classroom filters other than the address plan: the inventory built from a
roster, host-name styles, platform readiness and the status rows."""

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "filter"))
import classroom  # noqa: E402

ROSTER = [
    {"id": "ada", "name": "Ada", "kubeconfig": "/k/ada.yaml", "context": "ada-ctx", "machines": ""},
    {"id": "alan", "name": "Alan", "kubeconfig": "", "machines": "cp=127.30.0.1 w1=127.30.0.2", "provider": ""},
    {"id": "grace", "name": "Grace", "kubeconfig": "", "machines": "127.30.0.3", "provider": "kubeadm"},
]
SETTINGS = {"mode": "per-student", "domain": "lab.test", "host_style": "subdomain", "provider": "k3s"}


def build(roster=ROSTER, settings=SETTINGS):
    plan = classroom.address_plan(roster, "127.20.0.0/24", reserved=classroom.roster_node_addresses(roster))
    return plan, classroom.classroom_inventory(roster, plan, settings)["all"]["children"]


def test_every_student_is_a_lab_host_with_their_own_addresses_and_domain():
    plan, children = build()
    labs = children["labs"]["hosts"]
    assert sorted(labs) == ["ada", "alan", "grace"]
    for student, lab in labs.items():
        assert lab["ansible_connection"] == "local"
        assert lab["ansible_python_interpreter"] == "{{ ansible_playbook_python }}"
        assert lab["metallb_address_range"] == plan[student]["address_range"]
        assert lab["lab_ingress_ip"] == plan[student]["ingress_ip"]
        assert lab["lab_domain"] == f"{student}.lab.test"
    assert labs["ada"]["cluster_provider"] == "existing"
    assert (labs["ada"]["lab_kubeconfig"], labs["ada"]["lab_kube_context"]) == ("/k/ada.yaml", "ada-ctx")


def test_students_given_machines_get_a_cluster_built_and_a_group_of_their_own():
    _plan, children = build()
    assert children["labs"]["hosts"]["alan"]["cluster_provider"] == "k3s"
    assert children["labs"]["hosts"]["grace"]["cluster_provider"] == "kubeadm"
    assert children["labs"]["hosts"]["alan"]["lab_kubeconfig"] == "{{ inventory_dir }}/kubeconfigs/alan.yaml"
    assert children["kube_control_plane"]["hosts"] == {
        "alan-cp": {"ansible_host": "127.30.0.1", "cluster_lab": "alan"},
        "grace-node1": {"ansible_host": "127.30.0.3", "cluster_lab": "grace"},
    }
    assert children["kube_workers"]["hosts"] == {
        "alan-w1": {"ansible_host": "127.30.0.2", "cluster_lab": "alan"}
    }
    assert children["class_alan"]["hosts"] == {"alan": {}, "alan-cp": {}, "alan-w1": {}}
    assert children["class_ada"]["hosts"] == {"ada": {}}


def test_nip_io_style_hangs_host_names_from_the_ingress_ip():
    plan, children = build(settings={**SETTINGS, "host_style": "nip.io"})
    assert children["labs"]["hosts"]["ada"]["lab_domain"] == f"{plan['ada']['ingress_ip']}.nip.io"
    with pytest.raises(AnsibleFilterError):
        classroom.student_lab_domain("ada", "lab.test", "carrier-pigeon", "127.0.0.1")


def test_shared_mode_gives_every_student_the_class_cluster_and_a_namespace():
    settings = {
        "mode": "shared",
        "domain": "lab.test",
        "shared_kubeconfig": "/k/admin.yaml",
        "shared_context": "",
        "shared_address_range": "127.20.0.1-127.20.0.4",
        "shared_ingress_ip": "127.20.0.1",
    }
    labs = classroom.classroom_inventory(ROSTER[:1] + [{"id": "bob", "name": "Bob"}], {}, settings)["all"]["children"][
        "labs"
    ]["hosts"]
    assert labs["bob"]["lab_kubeconfig"] == labs["ada"]["lab_kubeconfig"] == "/k/admin.yaml"
    assert labs["bob"]["classroom_namespace"] == "lab-bob"
    assert labs["bob"]["classroom_shared_cluster"] is True
    assert labs["bob"]["lab_domain"] == "bob.lab.test"


@pytest.mark.parametrize(
    "row, message",
    [
        ({"id": "x1", "name": "X", "kubeconfig": "/k", "machines": "127.30.0.9"}, "either a kubeconfig or machines"),
        ({"id": "x1", "name": "X"}, "neither a kubeconfig nor machines"),
        ({"id": "x1", "name": "X", "machines": "cp=not-an-ip"}, "not name=address"),
    ],
)
def test_roster_mistakes_are_refused(row, message):
    plan = classroom.address_plan([row["id"]], "127.20.0.0/24")
    with pytest.raises(AnsibleFilterError, match=message):
        classroom.classroom_inventory([row], plan, SETTINGS)


def test_unready_deployments_names_missing_and_partly_ready_ones():
    results = [
        {
            "resources": [
                {
                    "metadata": {"namespace": "istio-system", "name": "istiod"},
                    "spec": {"replicas": 1},
                    "status": {"readyReplicas": 1},
                },
                {
                    "metadata": {"namespace": "istio-system", "name": "grafana"},
                    "spec": {"replicas": 2},
                    "status": {"readyReplicas": 1},
                },
                {"metadata": {"namespace": "istio-system", "name": "kiali"}, "spec": {"replicas": 1}, "status": {}},
            ]
        }
    ]
    expected = [{"namespace": "istio-system", "name": n} for n in ("istiod", "grafana", "kiali", "zipkin")]
    assert classroom.unready_deployments(expected, results) == [
        "istio-system/grafana: 1/2 ready",
        "istio-system/kiali: 0/1 ready",
        "istio-system/zipkin: missing",
    ]


def test_status_rows_tell_healthy_unhealthy_and_failed_labs_apart():
    good_route = {
        "chapter": "1",
        "host": "",
        "url": "http://127.20.0.1/",
        "expected_status": 200,
        "status": 200,
        "ok": True,
    }
    bad_route = {**good_route, "url": "http://127.20.0.5/", "status": 404, "ok": False, "explanation": "no VS"}
    labs = [
        {
            "student": "s2",
            "name": "B",
            "built": True,
            "probe": {"reachable": True, "platform_problems": []},
            "routes": [bad_route],
        },
        {
            "student": "s1",
            "name": "A",
            "built": True,
            "probe": {"reachable": True, "platform_problems": []},
            "routes": [good_route],
        },
        {"student": "s3", "name": "C", "built": False, "probe": None, "routes": None},
        {
            "student": "s4",
            "name": "D",
            "built": True,
            "probe": {"reachable": False, "error": "connection refused", "platform_problems": ["API unreachable"]},
            "routes": None,
        },
    ]
    rows = {row["student"]: row for row in classroom.status_rows(labs, build_run=True)}
    assert [r for r in rows] == ["s1", "s2", "s3", "s4"]
    assert (rows["s1"]["state"], rows["s1"]["reachable"], rows["s1"]["platform"]) == ("healthy", "yes", "ready")
    assert rows["s2"]["state"] == "unhealthy"
    assert rows["s2"]["problems"] == ["route http://127.20.0.5/ answered 404"]
    assert rows["s3"]["state"] == "failed"
    assert "the lab failed during this run" in rows["s3"]["problems"]
    assert (rows["s4"]["state"], rows["s4"]["reachable"]) == ("failed", "no")
    assert "API unreachable: connection refused" in rows["s4"]["problems"]


def test_cluster_yml_builds_one_cluster_per_student_from_the_generated_inventory():
    import cluster_preflight  # plugins/filter/cluster_preflight.py: how cluster.yml groups nodes into clusters

    _plan, children = build()
    groups = {name: list(group["hosts"]) for name, group in children.items()}
    hostvars = {host: values for group in children.values() for host, values in group["hosts"].items() if values}
    assert cluster_preflight.cluster_membership(groups, hostvars, "alan-w1") == {
        "lab": "alan", "nodes": ["alan-cp", "alan-w1"], "control_plane": ["alan-cp"]}
    assert cluster_preflight.cluster_membership(groups, hostvars, "grace-node1") == {
        "lab": "grace", "nodes": ["grace-node1"], "control_plane": ["grace-node1"]}


def test_only_deployments_this_run_did_not_see_rolled_out_are_read_again():
    expected = [{"namespace": "metallb-system", "name": "controller"}, {"namespace": "istio-system", "name": "istiod"},
                {"namespace": "istio-system", "name": "kiali"}, {"namespace": "istio-system", "name": "zipkin"}]
    # lab_waited_deployments, as the stages append it (each keeps only its ready Deployments; the filter checks again).
    waited = [{"kind": "Deployment", "namespace": "metallb-system", "name": "controller", "ready": True},
              {"kind": "Endpoints", "namespace": "istio-system", "name": "kiali", "ready": True},
              {"kind": "Deployment", "namespace": "istio-system", "name": "zipkin", "ready": True},
              {"kind": "Deployment", "namespace": "istio-system", "name": "kiali", "ready": False}]
    assert classroom.unconfirmed_deployments(expected, waited) == [
        {"namespace": "istio-system", "name": "istiod"}, {"namespace": "istio-system", "name": "kiali"}]
    assert classroom.unconfirmed_deployments(expected, []) == expected
