"""Address filters of the platform roles (plugins/filter/lab_addresses.py):
MetalLB's pool checked before anything is written, image references moved to
a registry mirror."""

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

REPO = Path(__file__).resolve().parents[2]

_spec = importlib.util.spec_from_file_location("lab_addresses_filters", REPO / "plugins/filter/lab_addresses.py")
F = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(F)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.240.0.10-127.240.0.20", ("127.240.0.10-127.240.0.20", "127.240.0.10", "127.240.0.20", 11)),
        (" 127.240.0.10 - 127.240.0.10 ", ("127.240.0.10-127.240.0.10", "127.240.0.10", "127.240.0.10", 1)),
        ("127.240.0.16/28", ("127.240.0.16/28", "127.240.0.16", "127.240.0.31", 16)),
        ("127.240.0.7/32", ("127.240.0.7/32", "127.240.0.7", "127.240.0.7", 1)),
        ("fd00::10-fd00::1f", ("fd00::10-fd00::1f", "fd00::10", "fd00::1f", 16)),
    ],
)
def test_range_parses_both_metallb_forms(text, expected):
    parsed = F.lab_address_range(text)
    assert (parsed["range"], parsed["first"], parsed["last"], parsed["size"]) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        (None, "is empty"),
        ("127.240.0.10", "is malformed"),
        ("127.240.0.10-", "is malformed"),
        ("127.240.0.300-127.240.0.310", "is malformed"),
        ("127.240.0.10-127.240.0.20-127.240.0.30", "is malformed"),
        ("pool-a", "is malformed"),
        ("127.240.0.20-127.240.0.10", "is reversed: it starts after it ends; did you mean 127.240.0.10-127.240.0.20?"),
        ("127.240.0.10-fd00::1", "mixes IPv4 and IPv6"),
        ("127.240.0.17/28", "is not a valid CIDR"),
        ("127.240.0.0/33", "is not a valid CIDR"),
    ],
)
def test_range_refuses_bad_input_with_the_variable_name(text, message):
    with pytest.raises(AnsibleFilterError) as caught:
        F.lab_address_range(text)
    assert str(caught.value).startswith("metallb_address_range")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # An IPv4 CIDR of more than two addresses loses its network and broadcast addresses...
        ("127.240.0.16/28", ("127.240.0.17-127.240.0.30", "127.240.0.17", "127.240.0.30", 14)),
        ("127.240.0.4/30", ("127.240.0.5-127.240.0.6", "127.240.0.5", "127.240.0.6", 2)),
        # ... /31, /32 and IPv6 keep every address; first-last ranges are the same either way.
        ("127.240.0.6/31", ("127.240.0.6/31", "127.240.0.6", "127.240.0.7", 2)),
        ("127.240.0.7/32", ("127.240.0.7/32", "127.240.0.7", "127.240.0.7", 1)),
        ("fd00::/126", ("fd00::/126", "fd00::", "fd00::3", 4)),
        ("127.240.0.10-127.240.0.20", ("127.240.0.10-127.240.0.20", "127.240.0.10", "127.240.0.20", 11)),
    ],
)
def test_range_with_host_cidr_semantics_leaves_out_network_and_broadcast(text, expected):
    parsed = F.lab_address_range(text, cidr="hosts")
    assert (parsed["range"], parsed["first"], parsed["last"], parsed["size"]) == expected
    # The default (MetalLB's pools) keeps the whole CIDR.
    assert F.lab_address_range("127.240.0.16/28", cidr="all")["first"] == "127.240.0.16"


def test_range_accepts_a_single_address_only_when_asked():
    parsed = F.lab_address_range(" 127.240.0.9 ", "reserved address", single=True)
    assert (parsed["range"], parsed["first"], parsed["last"], parsed["size"]) == (
        "127.240.0.9-127.240.0.9", "127.240.0.9", "127.240.0.9", 1)
    with pytest.raises(AnsibleFilterError, match="^reserved address 'node1' is not an IP address$"):
        F.lab_address_range("node1", "reserved address", single=True)
    with pytest.raises(AnsibleFilterError, match="is malformed"):
        F.lab_address_range("127.240.0.9")
    with pytest.raises(AnsibleFilterError, match="cidr='net'"):
        F.lab_address_range("127.240.0.16/28", cidr="net")


def test_pool_returns_the_normalised_range_when_all_is_well():
    nodes = ["127.240.0.2", "127.240.0.21", "node-1.lab", "fd00::1"]
    assert F.lab_address_pool("127.240.0.10 - 127.240.0.20", nodes, "127.240.0.10") == "127.240.0.10-127.240.0.20"
    assert F.lab_address_pool("127.240.0.16/28", [], "") == "127.240.0.16/28"


def test_pool_refuses_node_addresses_inside_and_names_them():
    with pytest.raises(AnsibleFilterError) as caught:
        F.lab_address_pool("127.240.0.10-127.240.0.20", ["127.240.0.9", "127.240.0.20", "127.240.0.12"], "")
    message = str(caught.value)
    assert "includes node or reserved address(es) 127.240.0.12, 127.240.0.20" in message
    assert "127.240.0.9" not in message


@pytest.mark.parametrize("ingress", ["127.240.0.9", "127.240.0.21", "fd00::10"])
def test_pool_refuses_an_ingress_ip_outside_it(ingress):
    with pytest.raises(AnsibleFilterError, match=f"lab_ingress_ip '{ingress}' is outside metallb_address_range"):
        F.lab_address_pool("127.240.0.10-127.240.0.20", [], ingress)


def test_pool_refuses_an_ingress_ip_that_is_not_an_address():
    with pytest.raises(AnsibleFilterError, match="lab_ingress_ip 'ingress.lab' is not an IP address"):
        F.lab_address_pool("127.240.0.10-127.240.0.20", [], "ingress.lab")


def test_address_in_range_edges():
    assert F.lab_address_in_range("127.240.0.10", "127.240.0.10-127.240.0.20")
    assert F.lab_address_in_range("127.240.0.20", "127.240.0.10-127.240.0.20")
    assert not F.lab_address_in_range("127.240.0.21", "127.240.0.10-127.240.0.20")
    assert not F.lab_address_in_range("::ffff:7ff0:a", "127.240.0.10-127.240.0.20")


def test_mirror_image_filter_moves_the_registry_host():
    """The filter templates use; its cases are tests/unit/test_sources.py (the function lab_manifests shares)."""
    assert F.lab_mirror_image("quay.io/metallb/controller:v0.16.1", "mirror.lab:5000/proxy/") == \
        "mirror.lab:5000/proxy/metallb/controller:v0.16.1"


def test_mirror_image_without_mirror_keeps_the_reference():
    assert F.lab_mirror_image("quay.io/kiali/kiali:v2.26", "") == "quay.io/kiali/kiali:v2.26"
