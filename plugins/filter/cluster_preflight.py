"""Cluster bootstrap filters: which cluster a node belongs to, and preflight checks.

    {{ groups | cluster_membership(hostvars, inventory_hostname) }}

tells the lab a node builds a cluster for (its ``cluster_lab``, default the
first host of ``labs``) and that cluster's nodes and control plane, so that
one inventory can hold one cluster per lab (classrooms).

    {{ facts_by_host | cluster_preflight_problems(control_plane=[...], pod_cidr=..., ...) }}

returns a list of messages an instructor can act on (empty: the nodes are fit).
Input is ``{inventory_hostname: ansible_facts}`` for every node of one cluster.
"""

import ipaddress
from collections import defaultdict

# Interfaces Kubernetes, CNIs and container engines create on a node: their
# addresses come from the pod/service ranges (kube-ipvs0 holds every
# ClusterIP), so they must not count as node networks on a rerun.
GENERATED_INTERFACE_PREFIXES = (
    "lo",
    "cali",
    "cni",
    "flannel",
    "tunl",
    "vxlan",
    "kube-",
    "veth",
    "nodelocaldns",
    "cilium",
    "weave",
)

NULL_MACS = {"", "00:00:00:00:00:00"}
UNKNOWN_UUIDS = {"", "na", "not settable", "not specified", "none"}


def _interfaces(facts):
    for name in facts.get("interfaces", []):
        if name.startswith(GENERATED_INTERFACE_PREFIXES):
            continue
        details = facts.get(name.replace("-", "_").replace(".", "_")) or facts.get(name) or {}
        if isinstance(details, dict):
            yield name, details


def node_networks(facts):
    """IPv4 networks a node is attached to (from ansible_facts), excluding generated interfaces."""
    networks = set()
    for _name, details in _interfaces(facts):
        entries = [details.get("ipv4")] + list(details.get("ipv4_secondaries") or [])
        for entry in entries:
            if entry and entry.get("address") and entry.get("netmask"):
                networks.add(ipaddress.ip_interface(f"{entry['address']}/{entry['netmask']}").network)
    default = facts.get("default_ipv4") or {}
    if default.get("address") and default.get("netmask"):
        networks.add(ipaddress.ip_interface(f"{default['address']}/{default['netmask']}").network)
    return networks


def node_macs(facts):
    macs = set()
    for _name, details in _interfaces(facts):
        mac = str(details.get("macaddress", "")).lower()
        if mac not in NULL_MACS:
            macs.add(mac)
    return macs


def _os_supported(facts, supported_os):
    versions = supported_os.get(facts.get("distribution", ""), [])
    candidates = {str(facts.get("distribution_version", "")), str(facts.get("distribution_major_version", ""))}
    return any(str(version) in candidates for version in versions)


def _describe_supported(supported_os):
    return ", ".join(f"{name} {'/'.join(str(v) for v in versions)}" for name, versions in supported_os.items())


def _duplicates(values_by_host):
    owners = defaultdict(list)
    for host, values in values_by_host.items():
        for value in values:
            owners[value].append(host)
    return {value: sorted(hosts) for value, hosts in owners.items() if len(hosts) > 1}


def _parse_cidr(name, value, problems):
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError as error:
        problems.append(f"{name} {value!r} is not a network in CIDR notation ({error}); fix it in the inventory")
        return None


def cluster_preflight_problems(
    facts_by_host,
    control_plane=(),
    pod_cidr="",
    service_cidr="",
    supported_os=None,
    min_cpus_control_plane=2,
    min_memory_mb_control_plane=1700,
    min_cpus_worker=1,
    min_memory_mb_worker=1024,
    skip=(),
):
    problems = []
    supported_os = supported_os or {}
    control_plane = set(control_plane)
    skip = set(skip)
    hosts = sorted(facts_by_host)

    if hosts and not control_plane & set(hosts):
        problems.append(
            f"none of {', '.join(hosts)} is in kube_control_plane: put the machine that initialises the cluster there"
        )

    for host in hosts:
        facts = facts_by_host[host] or {}
        if "os" not in skip and supported_os and not _os_supported(facts, supported_os):
            problems.append(
                f"{host}: {facts.get('distribution', 'unknown OS')} {facts.get('distribution_version', '')} is not "
                f"supported (supported: {_describe_supported(supported_os)}); reinstall the machine or remove it "
                "from kube_control_plane/kube_workers"
            )
        if "resources" not in skip:
            is_cp = host in control_plane
            role = "control-plane node" if is_cp else "worker"
            need_cpus = min_cpus_control_plane if is_cp else min_cpus_worker
            need_mb = min_memory_mb_control_plane if is_cp else min_memory_mb_worker
            cpus = int(facts.get("processor_vcpus") or facts.get("processor_count") or 0)
            memory = int(facts.get("memtotal_mb") or 0)
            if cpus < need_cpus:
                problems.append(f"{host}: a {role} needs at least {need_cpus} CPUs, it has {cpus}; add vCPUs")
            if memory < need_mb:
                problems.append(
                    f"{host}: a {role} needs at least {need_mb} MB of memory, it has {memory} MB; add memory to the VM"
                )

    if "hostname" not in skip:
        names = {host: {str((facts_by_host[host] or {}).get("nodename") or host).lower()} for host in hosts}
        for name, owners in sorted(_duplicates(names).items()):
            problems.append(
                f"hosts {', '.join(owners)} share the host name {name!r}; Kubernetes names nodes after it: "
                "give each machine its own (hostnamectl set-hostname)"
            )
    if "mac" not in skip:
        macs = {host: node_macs(facts_by_host[host] or {}) for host in hosts}
        for mac, owners in sorted(_duplicates(macs).items()):
            problems.append(f"hosts {', '.join(owners)} share the MAC address {mac}; cloned VMs need new MAC addresses")
    if "product_uuid" not in skip:
        uuids = {}
        for host in hosts:
            uuid = str((facts_by_host[host] or {}).get("product_uuid") or "").lower()
            uuids[host] = set() if uuid in UNKNOWN_UUIDS else {uuid}
        for uuid, owners in sorted(_duplicates(uuids).items()):
            problems.append(
                f"hosts {', '.join(owners)} share the product_uuid {uuid}; cloned VMs need a new UUID "
                "(regenerate it in the hypervisor)"
            )

    if "cidr" not in skip:
        pods = _parse_cidr("the pod CIDR", pod_cidr, problems) if pod_cidr else None
        services = _parse_cidr("the service CIDR", service_cidr, problems) if service_cidr else None
        if pods and services and pods.overlaps(services):
            problems.append(f"the pod CIDR {pods} overlaps the service CIDR {services}; choose disjoint ranges")
        for host in hosts:
            for network in sorted(node_networks(facts_by_host[host] or {}), key=str):
                for label, cidr in (("pod", pods), ("service", services)):
                    if cidr and cidr.version == network.version and cidr.overlaps(network):
                        problems.append(
                            f"{host}: the {label} CIDR {cidr} overlaps the node network {network}; "
                            f"choose another {label} CIDR in the inventory"
                        )
    return problems


def cluster_membership(groups, hostvars, node):
    """{lab, nodes, control_plane} of node's cluster: the nodes whose cluster_lab is node's, in inventory order
    (control-plane nodes first; the first of them initialises the cluster)."""
    labs = list(groups.get("labs") or [])
    default_lab = labs[0] if labs else ""

    def lab_of(name):
        return hostvars[name].get("cluster_lab") or default_lab

    lab = lab_of(node)
    control_plane = [name for name in groups.get("kube_control_plane") or [] if lab_of(name) == lab]
    workers = [
        name for name in groups.get("kube_workers") or [] if lab_of(name) == lab and name not in control_plane
    ]
    return {"lab": lab, "nodes": control_plane + workers, "control_plane": control_plane}


class FilterModule:
    def filters(self):
        return {
            "cluster_preflight_problems": cluster_preflight_problems,
            "cluster_membership": cluster_membership,
        }
