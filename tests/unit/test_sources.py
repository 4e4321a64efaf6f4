"""plugins/module_utils/istio_lab/sources.py: the files lab_manifests and
istio_routes read themselves, and the adjustments made to upstream manifests
(on the real upstream addons)."""

import pytest
import yaml
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.sources import (
    SourceError,
    env_from_secret,
    mirror_image,
    mirror_images,
    yaml_documents,
)


def _addon(shared_dir, name):
    path = shared_dir / "upstream" / "istio-1.30.3" / "addons" / f"{name}.yaml"
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture
def grafana(shared_dir):
    return _addon(shared_dir, "grafana")


def env_of(manifests, name):
    deployment = next(m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "grafana")
    return {entry["name"]: entry for entry in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}[name]


def test_the_admin_password_is_read_from_the_secret_instead_of_the_literal(grafana):
    assert env_of(grafana, "GF_SECURITY_ADMIN_PASSWORD") == {"name": "GF_SECURITY_ADMIN_PASSWORD", "value": "admin"}
    adjusted = env_from_secret(grafana, "Deployment", "grafana", "GF_SECURITY_ADMIN_PASSWORD", "grafana-admin",
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
    assert env_from_secret(grafana, "Deployment", "kiali", "GF_SECURITY_ADMIN_PASSWORD", "s", "k") == grafana


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("hub.c.163.com/library/tomcat:latest", "mirror.lab:5000/proxy/library/tomcat:latest"),
        ("quay.io/metallb/controller:v0.16.1", "mirror.lab:5000/proxy/metallb/controller:v0.16.1"),
        ("docker.io/istio", "mirror.lab:5000/proxy/istio"),
        ("localhost/tools/x:1", "mirror.lab:5000/proxy/tools/x:1"),
        ("registry:5000/a/b", "mirror.lab:5000/proxy/a/b"),
        ("prom/prometheus:v3.10.0", "mirror.lab:5000/proxy/prom/prometheus:v3.10.0"),
        ("nginx:1.27", "mirror.lab:5000/proxy/library/nginx:1.27"),
    ],
)
def test_mirror_image_replaces_the_registry_host(image, expected):
    assert mirror_image(image, "mirror.lab:5000/proxy/") == expected
    assert mirror_image(image, "") == image


def test_mirror_images_moves_every_container_of_the_real_manifests(shared_dir):
    docs = _addon(shared_dir, "prometheus")
    moved = mirror_images(docs, "mirror.lab")
    images = [
        c["image"]
        for d in moved
        if d["kind"] == "Deployment"
        for key in ("containers", "initContainers")
        for c in d["spec"]["template"]["spec"].get(key, [])
    ]
    assert sorted(images) == [
        "mirror.lab/prom/prometheus:v3.10.0",
        "mirror.lab/prometheus-operator/prometheus-config-reloader:v0.89.0",
    ]
    # Everything but the images is untouched, and the input is not modified.
    assert [d["metadata"]["name"] for d in moved] == [d["metadata"]["name"] for d in docs]
    assert "docker.io/prom/prometheus:v3.10.0" in yaml.safe_dump(docs)
    assert mirror_images(docs, "") == docs


def test_yaml_documents_reads_files_and_directories_in_name_order(tmp_path):
    (tmp_path / "b.yaml").write_text("kind: B\n---\n---\nkind: C\n")
    (tmp_path / "a.yml").write_text("kind: A\n")
    (tmp_path / "notes.txt").write_text("kind: ignored\n")
    single = tmp_path / "single.yaml"
    single.write_text("kind: S\n")
    found = [(path.rsplit("/", 1)[-1], index, doc["kind"]) for path, index, doc in yaml_documents([tmp_path])]
    assert found == [("a.yml", 0, "A"), ("b.yaml", 0, "B"), ("b.yaml", 1, "C"), ("single.yaml", 0, "S")]
    assert [doc["kind"] for _, _, doc in yaml_documents([str(single)])] == ["S"]


@pytest.mark.parametrize("content", [None, "kind: [unclosed\n"])
def test_yaml_documents_names_a_file_it_cannot_read(tmp_path, content):
    path = tmp_path / "broken.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SourceError, match=f"src: cannot read {path}"):
        list(yaml_documents([str(path)]))
