# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The in-cluster Service a route's destination host names, and every one of
a VirtualService's: shared by the route table (routes.py), istio_routes'
check_services and the run's plan (plugins/filter/lab_plan.py), which runs in
every lab's fork on the controller and so imports nothing heavier than this."""

from __future__ import annotations

CLUSTER_SUFFIX = ".svc.cluster.local"


def resolve_host(host, namespace):
    """Istio's ResolveShortnameToFQDN: a name without dots is a Service of
    the rule's namespace; anything else is taken as written."""
    if host == "*" or "." in host:
        return host.lower()
    return f"{host}.{namespace}{CLUSTER_SUFFIX}".lower()


def service_key(fqdn):
    """(namespace, name) of a cluster Service FQDN, else None."""
    if not fqdn.endswith(CLUSTER_SUFFIX):
        return None
    parts = fqdn[: -len(CLUSTER_SUFFIX)].split(".")
    return (parts[1], parts[0]) if len(parts) == 2 else None


def service_destinations(virtual_services):
    """Every in-cluster Service destination of the VirtualServices' HTTP, TLS
    and TCP routes, once each: [{virtual_service, namespace, service, port}]
    (port None when the route names none); external hosts are left out."""
    found = []
    for vs in virtual_services:
        namespace = vs["metadata"].get("namespace", "")
        spec = vs.get("spec") or {}
        for protocol in ("http", "tls", "tcp"):
            for rule in spec.get(protocol) or []:
                for route in rule.get("route") or []:
                    destination = route.get("destination") or {}
                    key = service_key(resolve_host(destination.get("host", ""), namespace))
                    if key is None:
                        continue
                    entry = {"virtual_service": f"{namespace}/{vs['metadata']['name']}", "namespace": key[0],
                             "service": key[1], "port": (destination.get("port") or {}).get("number")}
                    if entry not in found:
                        found.append(entry)
    return found
