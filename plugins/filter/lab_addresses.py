"""Address filters of the lab platform.

IP address ranges (MetalLB's pool)
----------------------------------
``metallb_address_range`` is one range, written the two ways MetalLB accepts:
``first-last`` (``192.168.1.240-192.168.1.250``) or a CIDR
(``192.168.1.240/28``). ``lab_address_range`` parses it (the project's one
range parser: the classroom address plan uses it too, with ``cidr="hosts"``
and ``single=True``, see below); ``lab_address_pool``
also refuses a pool that covers a node's own address (MetalLB would answer ARP
for it and steal the node's traffic) and a pinned ingress IP outside the pool
(MetalLB only hands out addresses of its pools). Both raise a message that
names the variable and says what to change, so a role can call them before it
touches the cluster.

Image registry addresses (classroom mirrors)
--------------------------------------------
``lab_mirror_image`` moves an image reference to ``lab_registry_mirror``:
the registry host is replaced by the mirror and the repository path kept
(``quay.io/metallb/controller:v0.16.1`` -> ``<mirror>/metallb/controller:v0.16.1``;
Docker Hub short names gain their implicit ``library/``). The upstream
manifests' images are moved by lab_manifests itself (``image_mirror``).
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.sources import mirror_image

RANGE_EXAMPLES = "'first-last' (e.g. 192.168.1.240-192.168.1.250) or a CIDR (e.g. 192.168.1.240/28)"


def _ip(text, what):
    try:
        return ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise AnsibleFilterError(f"{what} {text!r} is not an IP address") from None


CIDR_SEMANTICS = ("all", "hosts")


def lab_address_range(value, name="metallb_address_range", cidr="all", single=False):
    """Parse one address range; return {range, first, last, size}.

    ``name`` names the variable in error messages.
    ``cidr`` says which addresses of a CIDR the range holds:

    - ``"all"`` (MetalLB's pools): every address, network and broadcast
      included; ``range`` is the CIDR.
    - ``"hosts"`` (the classroom plan, which hands addresses to students as
      ingress IPs): an IPv4 CIDR of more than two addresses leaves out its
      network and broadcast addresses (``/31``, ``/32`` and IPv6 keep all);
      ``range`` is then ``first-last``.

    ``single``: also accept one bare address (a range of one, ``range`` is
    ``address-address``); MetalLB does not, so it is off by default.
    Otherwise ``range`` is the normalised text MetalLB takes (``first-last``
    or the CIDR).
    """
    if cidr not in CIDR_SEMANTICS:
        raise AnsibleFilterError(f"cidr={cidr!r}: use one of {', '.join(CIDR_SEMANTICS)}")
    text = str(value).strip() if isinstance(value, str) else ""
    if not text:
        raise AnsibleFilterError(f"{name} is empty: set it to {RANGE_EXAMPLES}")
    if single and "/" not in text and "-" not in text:
        first = last = _ip(value, name)
        normalised = f"{first}-{last}"
    elif "/" in text:
        try:
            network = ipaddress.ip_network(text)
        except ValueError as exc:
            raise AnsibleFilterError(f"{name} {text!r} is not a valid CIDR ({exc}); use {RANGE_EXAMPLES}") from None
        first, last, normalised = network.network_address, network.broadcast_address, str(network)
        if cidr == "hosts" and network.version == 4 and network.num_addresses > 2:
            first, last = first + 1, last - 1
            normalised = f"{first}-{last}"
    elif text.count("-") == 1:
        first_text, last_text = (part.strip() for part in text.split("-"))
        try:
            first, last = ipaddress.ip_address(first_text), ipaddress.ip_address(last_text)
        except ValueError:
            raise AnsibleFilterError(f"{name} {text!r} is malformed: use {RANGE_EXAMPLES}") from None
        if first.version != last.version:
            raise AnsibleFilterError(f"{name} {text!r} mixes IPv4 and IPv6 addresses")
        if last < first:
            raise AnsibleFilterError(
                f"{name} {text!r} is reversed: it starts after it ends; did you mean {last}-{first}?"
            )
        normalised = f"{first}-{last}"
    else:
        raise AnsibleFilterError(f"{name} {text!r} is malformed: use {RANGE_EXAMPLES}")
    return {"range": normalised, "first": str(first), "last": str(last), "size": int(last) - int(first) + 1}


def _inside(address, parsed):
    first, last = ipaddress.ip_address(parsed["first"]), ipaddress.ip_address(parsed["last"])
    return address.version == first.version and first <= address <= last


def lab_address_in_range(address, value):
    """True when ``address`` lies inside the range ``value``."""
    return _inside(_ip(address, "address"), lab_address_range(value))


def lab_address_pool(value, reserved=(), ingress_ip=""):
    """Check MetalLB's pool before anything is written; return its normalised range.

    ``reserved``: the nodes' addresses and any other address the pool must
    leave alone (entries that are not IP addresses, such as host names, are
    ignored). ``ingress_ip``: the ingress gateway's pinned address, or empty.
    """
    parsed = lab_address_range(value)
    addresses = []
    for entry in reserved or ():
        try:
            addresses.append(ipaddress.ip_address(str(entry).strip()))
        except ValueError:
            continue
    taken = sorted({str(address) for address in addresses if _inside(address, parsed)}, key=ipaddress.ip_address)
    if taken:
        raise AnsibleFilterError(
            f"metallb_address_range {parsed['range']!r} includes node or reserved address(es) {', '.join(taken)}: "
            "MetalLB would announce them and steal their traffic; choose free addresses outside them"
        )
    if ingress_ip:
        ip = _ip(ingress_ip, "lab_ingress_ip")
        if not _inside(ip, parsed):
            raise AnsibleFilterError(
                f"lab_ingress_ip {ingress_ip!r} is outside metallb_address_range {parsed['range']!r}: "
                "MetalLB only hands out addresses of its pool; pick one inside it or widen the range"
            )
    return parsed["range"]


def lab_mirror_image(image, mirror=""):
    """Return ``image`` pulled through ``mirror`` (unchanged when mirror is empty)."""
    return mirror_image(image, mirror)


class FilterModule:
    def filters(self):
        return {
            "lab_address_range": lab_address_range,
            "lab_address_in_range": lab_address_in_range,
            "lab_address_pool": lab_address_pool,
            "lab_mirror_image": lab_mirror_image,
        }
