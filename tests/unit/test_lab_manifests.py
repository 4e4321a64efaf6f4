"""plugins/filter/lab_manifests.py on the real upstream Grafana addon."""

import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins" / "filter"))
from lab_manifests import lab_env_from_secret  # noqa: E402


@pytest.fixture
def grafana(shared_dir):
    path = shared_dir / "upstream" / "istio-1.30.3" / "addons" / "grafana.yaml"
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def env_of(manifests, name):
    deployment = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "grafana")
    return {entry["name"]: entry for entry in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}[name]


def test_the_admin_password_is_read_from_the_secret_instead_of_the_literal(grafana):
    assert env_of(grafana, "GF_SECURITY_ADMIN_PASSWORD") == {"name": "GF_SECURITY_ADMIN_PASSWORD", "value": "admin"}
    adjusted = lab_env_from_secret(grafana, "Deployment", "grafana", "GF_SECURITY_ADMIN_PASSWORD", "grafana-admin",
                                   "password")
    assert env_of(adjusted, "GF_SECURITY_ADMIN_PASSWORD") == {
        "name": "GF_SECURITY_ADMIN_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "grafana-admin", "key": "password"}},
    }
    # Only that variable of that Deployment changes; the input is left as it was.
    assert env_of(adjusted, "GF_SECURITY_ADMIN_USER") == env_of(grafana, "GF_SECURITY_ADMIN_USER")
    assert [m for m in adjusted if m["kind"] != "Deployment"] == [m for m in grafana if m["kind"] != "Deployment"]
    assert env_of(grafana, "GF_SECURITY_ADMIN_PASSWORD")["value"] == "admin"


def test_other_workloads_are_untouched(grafana):
    assert lab_env_from_secret(grafana, "Deployment", "kiali", "GF_SECURITY_ADMIN_PASSWORD", "s", "k") == grafana
