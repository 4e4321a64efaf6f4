"""node_prep's templates and per-OS settings, beyond what the Debian containers show.

The molecule scenarios run node_prep on Debian 12 and 13. Ubuntu uses the same
Debian vars; Rocky/Alma's are checked here against Debian's (same settings,
their own names). The containerd templates are rendered the way Ansible's
template module does (Jinja2, trim_blocks) and parsed as TOML, as containerd
reads them.
"""

import tomllib
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import to_bool

ROLE = Path(__file__).resolve().parents[2] / "roles" / "node_prep"


def render(template, **variables):
    environment = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["bool"] = to_bool  # Ansible's, as the template module has it
    source = (ROLE / "templates" / template).read_text()
    return environment.from_string(source).render(ansible_managed="Ansible managed", **variables)


def family_vars(family):
    return yaml.safe_load((ROLE / "vars" / f"{family}.yml").read_text())


def test_every_os_family_defines_the_same_settings():
    debian, redhat = family_vars("Debian"), family_vars("RedHat")
    assert set(debian) == set(redhat)
    assert debian["node_prep_containerd_packages"] == ["containerd"]
    assert redhat["node_prep_containerd_packages"] == ["containerd.io"]
    assert redhat["node_prep_containerd_repo"]["baseurl"].startswith("https://download.docker.com/linux/rhel/")
    assert debian["node_prep_containerd_repo"] == {}
    assert (debian["node_prep_time_service"], redhat["node_prep_time_service"]) == ("chrony", "chronyd")
    for family in (debian, redhat):
        assert "chrony" in family["node_prep_packages"]
        assert {"ipset", "ipvsadm"} <= set(family["node_prep_ipvs_packages"])


def test_containerd_config_is_toml_with_systemd_cgroups():
    config = tomllib.loads(
        render(
            "containerd-config.toml.j2",
            node_prep_sandbox_image="registry.k8s.io/pause:3.10.1",
            node_prep_containerd_certs_dir="/etc/containerd/certs.d",
        )
    )
    assert config["version"] == 2
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10.1"
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is True
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"


@pytest.mark.parametrize(
    "registry, mirror, skip_verify, expected",
    [
        (
            "_default",
            "harbor.school.example",
            False,
            {"host": {"https://harbor.school.example": {"capabilities": ["pull", "resolve"]}}},
        ),
        (
            "docker.io",
            "harbor.school.example/proxy",
            True,
            {
                "server": "https://registry-1.docker.io",
                "host": {
                    "https://harbor.school.example/v2/proxy": {
                        "capabilities": ["pull", "resolve"],
                        "override_path": True,
                        "skip_verify": True,
                    }
                },
            },
        ),
        (
            "registry.k8s.io",
            "127.0.0.1:5000",
            False,
            {
                "server": "https://registry.k8s.io",
                "host": {"https://127.0.0.1:5000": {"capabilities": ["pull", "resolve"]}},
            },
        ),
    ],
)
def test_mirror_hosts_toml(registry, mirror, skip_verify, expected):
    text = render(
        "hosts.toml.j2",
        item=registry,
        node_prep_registry_mirror=mirror,
        node_prep_registry_mirror_skip_verify=skip_verify,
    )
    assert tomllib.loads(text) == expected
