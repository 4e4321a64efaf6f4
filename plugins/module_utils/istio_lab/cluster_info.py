# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a run learns of the lab's cluster once, before any stage: that its API
answers and accepts the credentials (with a verdict an instructor can act
on when it does not), kube-proxy's mode and strictARP (MetalLB's layer-2 mode
needs it in IPVS mode), and the nodes' addresses (MetalLB's pool must not
cover them). One process, a handful of GETs/LISTs (lab_cluster_info)."""

from __future__ import annotations

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import ApiStatusError, KubeError

NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP")


class ClusterUnusable(KubeError):
    """The cluster cannot be used as it is: the message says why and what to do."""


def _verdict(exc, client, kubeconfig=None):
    where = f"(API server {client.server or 'unknown'}, context {client.context or 'none'}" + (
        f", kubeconfig {kubeconfig})" if kubeconfig else ")")
    status = getattr(exc, "status", None)
    if status == 401:
        return (f"The cluster refused the credentials of this context (401 Unauthorized): renew the token or "
                f"certificate {where}. Client said: {exc}")
    if status == 403:
        return (f"The credentials of this context may not read namespaces (403 Forbidden): istio-lab needs "
                f"cluster-admin {where}. Client said: {exc}")
    return f"The cluster is unreachable: nothing answered at its API server {where}. Client said: {exc}"


def _kube_proxy(client):
    """kube-proxy's mode and strictARP from the kube-system/kube-proxy ConfigMap (kubeadm's); a cluster
    without that ConfigMap (k3s) reports found=False."""
    import yaml  # a dependency of the kubernetes client

    try:
        config_map = client.request("get", "GET", "/api/v1/namespaces/kube-system/configmaps/kube-proxy")
    except ApiStatusError as exc:
        if exc.status == 404:
            return {"found": False, "mode": "", "strict_arp": False}
        raise
    try:
        config = yaml.safe_load((config_map.get("data") or {}).get("config.conf") or "{}") or {}
    except yaml.YAMLError:
        config = {}
    ipvs = config.get("ipvs") or {}
    strict = ipvs.get("strictARP", False)
    return {"found": True, "mode": config.get("mode") or "",
            "strict_arp": strict is True or str(strict).lower() == "true"}


def kube_proxy_problem(kube_proxy):
    if kube_proxy.get("mode") == "ipvs" and not kube_proxy.get("strict_arp"):
        return ("kube-proxy runs in IPVS mode without strictARP: MetalLB's layer-2 announcements would not work. "
                "Set `ipvs: {strictARP: true}` in the kube-system/kube-proxy ConfigMap (config.conf) and restart "
                "kube-proxy (kubectl -n kube-system rollout restart daemonset kube-proxy), then rerun.")
    return ""


def node_addresses(nodes):
    """The InternalIP and ExternalIP addresses of the nodes, in order, once each."""
    found = []
    for node in nodes:
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") in NODE_ADDRESS_TYPES and address.get("address") not in found:
                found.append(address.get("address"))
    return found


def cluster_info(client, kube_proxy=True, nodes=True, kubeconfig=None):
    """The module's result. Raises ClusterUnusable with the verdict when the API does not answer, refuses the
    credentials, or kube-proxy would break MetalLB."""
    try:
        client.request("get", "GET", "/api/v1/namespaces/kube-system")
    except KubeError as exc:
        raise ClusterUnusable(_verdict(exc, client, kubeconfig)) from None
    result = {"changed": False, "server": client.server, "context": client.context}
    if kube_proxy:
        result["kube_proxy"] = _kube_proxy(client)
        problem = kube_proxy_problem(result["kube_proxy"])
        if problem:
            raise ClusterUnusable(problem)
    if nodes:
        result["node_addresses"] = node_addresses(client.request("list", "GET", "/api/v1/nodes").get("items", []))
    return result
