"""Simulated cluster behaviour: what kube-controller-manager, the kubelet and
MetalLB would do, done synchronously after each write, plus the MetalLB
admission webhook and its well-known start-up pitfall.

- Deployments, StatefulSets, DaemonSets, ReplicaSets report ready at once and
  get Running Pods (with loopback pod IPs 127.244.x.x).
- Every Service with a selector gets Endpoints and an EndpointSlice listing
  the ready Pods it selects (no addresses when none).
- LoadBalancer Services get status.loadBalancer.ingress[0].ip from MetalLB
  IPAddressPools in metallb-system, honouring the `metallb.io/loadBalancerIPs`
  annotation (and spec.loadBalancerIP), only while a ready `controller`
  Deployment exists in metallb-system.
- Every new namespace gets ServiceAccount `default` and ConfigMap
  `kube-root-ca.crt` (the cluster's CA bundle), as kube-controller-manager's
  serviceaccount and root-ca-cert-publisher controllers make them.
- Webhook: while ValidatingWebhookConfiguration `metallb-webhook-configuration`
  exists, writes it covers fail with 500 InternalError "failed calling webhook"
  until Service metallb-system/metallb-webhook-service has endpoints, and for
  the first `webhook_warmup_failures` writes after that.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json

from . import errors
from .store import now

WORKLOADS = {("apps", "deployments"), ("apps", "statefulsets"), ("apps", "daemonsets"), ("apps", "replicasets")}
METALLB_NAMESPACE = "metallb-system"
METALLB_WEBHOOK_CONFIG = "metallb-webhook-configuration"
NODE_NAME = "double-control-plane"
KUBE_ROOT_CA = "kube-root-ca.crt"
KUBE_ROOT_CA_DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
                            "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
                            "guaranteed across distributions of Kubernetes clusters.")
KUBE_ROOT_CA_PEM = "-----BEGIN CERTIFICATE-----\nZG91YmxlIHJvb3QgQ0E=\n-----END CERTIFICATE-----\n"
_RESYNC_TRIGGERS = WORKLOADS | {("", "services"), ("", "pods"), ("", "namespaces"), ("metallb.io", "ipaddresspools")}


def _short_hash(*parts) -> str:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[int(digest[i:i + 2], 16) % len(alphabet)] for i in range(0, 20, 2))


def _ip_in_loopback(seed: str, second: int) -> str:
    number = int(hashlib.sha256(seed.encode()).hexdigest()[:6], 16)
    return f"127.{second}.{(number >> 8) % 256}.{number % 253 + 1}"


def _conditions(old_status, wanted: list[tuple]) -> list[dict]:
    """Conditions with stable lastTransitionTime (kept from the previous status)."""
    previous = {c.get("type"): c for c in (old_status or {}).get("conditions", [])}
    result = []
    for ctype, reason, message in wanted:
        prior = previous.get(ctype)
        stamp = prior.get("lastTransitionTime") if prior and prior.get("status") == "True" else now()
        condition = {"type": ctype, "status": "True", "lastTransitionTime": stamp, "reason": reason,
                     "message": message}
        if ctype in ("Available", "Progressing"):
            condition["lastUpdateTime"] = prior.get("lastUpdateTime", stamp) if prior else stamp
        result.append(condition)
    return result


class Controllers:
    def __init__(self, enabled: bool = True, webhook_warmup_failures: int = 0):
        self.enabled = enabled
        self.webhook_warmup_failures = webhook_warmup_failures
        self._busy = False

    def install(self, store) -> None:
        store.admission_hooks.append(self.admission)
        store.after_write_hooks.append(self.after_write)
        if self.enabled:
            for namespace in store.items("", "namespaces"):
                self._namespace_defaults(store, namespace)

    @staticmethod
    def _namespace_defaults(store, namespace) -> None:
        """What kube-controller-manager puts in every namespace (no labels, as on a real cluster)."""
        name = namespace["metadata"]["name"]
        if namespace["metadata"].get("deletionTimestamp"):
            return
        if store.find("", "serviceaccounts", name, "default") is None:
            store.put_object(store.type_for("", "v1", "serviceaccounts"),
                             {"apiVersion": "v1", "kind": "ServiceAccount",
                              "metadata": {"name": "default", "namespace": name}})
        if store.find("", "configmaps", name, KUBE_ROOT_CA) is None:
            store.put_object(store.type_for("", "v1", "configmaps"),
                             {"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": KUBE_ROOT_CA, "namespace": name,
                                           "annotations": {"kubernetes.io/description": KUBE_ROOT_CA_DESCRIPTION}},
                              "data": {"ca.crt": KUBE_ROOT_CA_PEM}})

    # ------------------------------------------------------------------ admission webhook
    def admission(self, store, rtype, obj, old, ctx, operation) -> None:
        config = store.find("admissionregistration.k8s.io", "validatingwebhookconfigurations", None,
                            METALLB_WEBHOOK_CONFIG)
        if config is None or rtype.group != "metallb.io":
            return
        for webhook in config.get("webhooks") or []:
            if webhook.get("failurePolicy") == "Ignore" or not _rule_matches(webhook, rtype, operation):
                continue
            service_ref = (webhook.get("clientConfig") or {}).get("service") or {}
            ready = self._has_endpoints(store, service_ref.get("namespace"), service_ref.get("name"))
            if ready and self.webhook_warmup_failures <= 0:
                return
            if ready:
                self.webhook_warmup_failures -= 1
            service = store.find("", "services", service_ref.get("namespace"), service_ref.get("name"))
            cluster_ip = ((service or {}).get("spec") or {}).get("clusterIP", "127.96.0.1")
            port = service_ref.get("port", 443)
            url = (f"https://{service_ref.get('name')}.{service_ref.get('namespace')}.svc:{port}"
                   f"{service_ref.get('path', '/')}?timeout=10s")
            raise errors.internal_error(
                f'failed calling webhook "{webhook.get("name")}": failed to call webhook: Post "{url}": '
                f"dial tcp {cluster_ip}:{port}: connect: connection refused")

    @staticmethod
    def _has_endpoints(store, namespace, name) -> bool:
        endpoints = store.find("", "endpoints", namespace, name)
        return any(subset.get("addresses") for subset in (endpoints or {}).get("subsets") or [])

    # ------------------------------------------------------------------ reconcile
    def after_write(self, store, rtype, obj, old) -> None:
        if not self.enabled or self._busy:
            return
        key = (rtype.group, rtype.plural)
        if key not in _RESYNC_TRIGGERS and key != ("metallb.io", "ipaddresspools"):
            return
        self._busy = True
        try:
            if key in WORKLOADS:
                self._workload(store, rtype, obj, old)
            if key == ("", "namespaces") and obj is not None and old is None:
                self._namespace_defaults(store, obj)
            namespace = ((obj or old or {}).get("metadata") or {}).get("namespace")
            if key in (("", "namespaces"), ("metallb.io", "ipaddresspools")) or namespace == METALLB_NAMESPACE:
                namespace = None
            if key == ("", "services") and obj is None:
                self._drop_endpoints(store, old)
            self.resync_services(store, namespace)
        finally:
            self._busy = False

    def _workload(self, store, rtype, obj, old) -> None:
        pods_type = store.type_for("", "v1", "pods")
        owner = obj or old
        uid = owner["metadata"]["uid"]
        namespace = owner["metadata"]["namespace"]
        existing = [p for p in store.items("", "pods", namespace)
                    if any(ref.get("uid") == uid for ref in p["metadata"].get("ownerReferences") or [])]
        if obj is None:
            for pod in existing:
                store.remove_object(pods_type, namespace, pod["metadata"]["name"])
            return
        spec = obj.get("spec") or {}
        replicas = 1 if rtype.plural == "daemonsets" else int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        revision = _short_hash(template)
        name = obj["metadata"]["name"]
        if rtype.plural == "statefulsets":
            wanted = [f"{name}-{i}" for i in range(replicas)]
        elif rtype.plural == "deployments":
            wanted = [f"{name}-{revision}-{_short_hash(uid, i)[:5]}" for i in range(replicas)]
        else:
            wanted = [f"{name}-{_short_hash(uid, revision, i)[:5]}" for i in range(replicas)]
        for pod in existing:
            if pod["metadata"]["name"] not in wanted or pod["metadata"].get("labels", {}).get(
                    _revision_label(rtype)) != revision:
                store.remove_object(pods_type, namespace, pod["metadata"]["name"])
        present = {p["metadata"]["name"] for p in store.items("", "pods", namespace)}
        for pod_name in wanted:
            if pod_name not in present:
                store.put_object(pods_type, self._pod(obj, rtype, pod_name, template, revision))
        self._workload_status(store, rtype, obj, replicas, revision)

    def _pod(self, owner, rtype, name, template, revision) -> dict:
        namespace = owner["metadata"]["namespace"]
        pod_spec = json.loads(json.dumps(template.get("spec") or {}))
        pod_spec["nodeName"] = NODE_NAME
        ip = _ip_in_loopback(f"{namespace}/{name}", 244)
        containers = pod_spec.get("containers") or []
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels[_revision_label(rtype)] = revision
        started = now()
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels,
                         "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                         "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                              "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                              "controller": True, "blockOwnerDeletion": True}]},
            "spec": pod_spec,
            "status": {
                "phase": "Running", "hostIP": "127.0.0.1", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": t, "status": "True"} for t in
                               ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                "PodScheduled")],
                "containerStatuses": [{"name": c.get("name"), "image": c.get("image"), "ready": True,
                                       "started": True, "restartCount": 0,
                                       "state": {"running": {"startedAt": started}}} for c in containers],
            },
        }

    def _workload_status(self, store, rtype, obj, replicas, revision) -> None:
        generation = obj["metadata"].get("generation", 1)
        old_status = obj.get("status") or {}
        if rtype.plural == "daemonsets":
            status = {"currentNumberScheduled": 1, "desiredNumberScheduled": 1, "numberAvailable": 1,
                      "numberMisscheduled": 0, "numberReady": 1, "observedGeneration": generation,
                      "updatedNumberScheduled": 1}
        else:
            status = {"observedGeneration": generation}
            if replicas:
                status.update(replicas=replicas, readyReplicas=replicas, availableReplicas=replicas)
                if rtype.plural != "replicasets":
                    status["updatedReplicas"] = replicas
                else:
                    status["fullyLabeledReplicas"] = replicas
            if rtype.plural == "deployments":
                status["conditions"] = _conditions(old_status, [
                    ("Available", "MinimumReplicasAvailable", "Deployment has minimum availability."),
                    ("Progressing", "NewReplicaSetAvailable",
                     f'ReplicaSet "{obj["metadata"]["name"]}-{revision}" has successfully progressed.')])
            if rtype.plural == "statefulsets":
                status.update(currentReplicas=replicas, currentRevision=f"{obj['metadata']['name']}-{revision}",
                              updateRevision=f"{obj['metadata']['name']}-{revision}", collisionCount=0)
        store.set_status(rtype, obj, status)

    # ------------------------------------------------------------------ services
    def resync_services(self, store, namespace=None) -> None:
        for service in list(store.items("", "services", namespace)):
            self._endpoints(store, service)
        self._load_balancers(store)

    def _drop_endpoints(self, store, service) -> None:
        namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
        store.remove_object(store.type_for("", "v1", "endpoints"), namespace, name)
        slices = store.type_for("discovery.k8s.io", "v1", "endpointslices")
        for item in store.items("discovery.k8s.io", "endpointslices", namespace):
            if item["metadata"].get("labels", {}).get("kubernetes.io/service-name") == name:
                store.remove_object(slices, namespace, item["metadata"]["name"])

    def _endpoints(self, store, service) -> None:
        spec = service.get("spec") or {}
        selector = spec.get("selector")
        if not selector:
            return
        namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
        pods = [p for p in store.items("", "pods", namespace)
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
                and (p.get("status") or {}).get("phase") == "Running"]
        pods.sort(key=lambda p: p["metadata"]["name"])
        ports = []
        for port in spec.get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, str):
                target = next((cp.get("containerPort") for p in pods for c in p["spec"].get("containers") or []
                               for cp in c.get("ports") or [] if cp.get("name") == target), None)
                if target is None:
                    continue
            entry = {"port": target, "protocol": port.get("protocol", "TCP")}
            if port.get("name"):
                entry = {"name": port["name"], **entry}
            if port.get("appProtocol"):
                entry["appProtocol"] = port["appProtocol"]
            ports.append(entry)
        addresses = [{"ip": p["status"]["podIP"], "nodeName": NODE_NAME,
                      "targetRef": {"kind": "Pod", "namespace": namespace, "name": p["metadata"]["name"],
                                    "uid": p["metadata"]["uid"]}} for p in pods]
        endpoints = {"apiVersion": "v1", "kind": "Endpoints",
                     "metadata": {"name": name, "namespace": namespace,
                                  "labels": dict(service["metadata"].get("labels") or {})}}
        if addresses and ports:
            endpoints["subsets"] = [{"addresses": addresses, "ports": ports}]
        store.put_object(store.type_for("", "v1", "endpoints"), endpoints)
        slice_labels = dict(service["metadata"].get("labels") or {})
        slice_labels.update({"kubernetes.io/service-name": name,
                             "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"})
        endpoint_slice = {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{name}-{_short_hash(namespace, name)[:5]}", "namespace": namespace,
                         "labels": slice_labels,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                                              "uid": service["metadata"]["uid"], "controller": True,
                                              "blockOwnerDeletion": True}]},
            "endpoints": [{"addresses": [a["ip"]], "conditions": {"ready": True, "serving": True,
                                                                   "terminating": False},
                           "nodeName": NODE_NAME, "targetRef": a["targetRef"]} for a in addresses],
            "ports": ports,
        }
        store.put_object(store.type_for("discovery.k8s.io", "v1", "endpointslices"), endpoint_slice)

    def _load_balancers(self, store) -> None:
        controller = store.find("apps", "deployments", METALLB_NAMESPACE, "controller")
        if controller is None or not (controller.get("status") or {}).get("availableReplicas"):
            return
        pools = sorted(store.items("metallb.io", "ipaddresspools", METALLB_NAMESPACE),
                       key=lambda p: p["metadata"]["name"])
        ranges = [(p, _pool_networks(p)) for p in pools]
        # Services that hold an address keep it; the others are served oldest first.
        services = sorted((s for s in store.items("", "services") if (s.get("spec") or {}).get("type") ==
                           "LoadBalancer"), key=lambda s: (not _current_ip(s), s["metadata"]["creationTimestamp"],
                                                           s["metadata"]["namespace"], s["metadata"]["name"]))
        taken: set = set()
        assignments = {}
        for service in services:
            wanted = _wanted_ips(service)
            current = _current_ip(service)
            ip = None
            if wanted:
                ip = next((w for w in wanted if w not in taken and _in_pools(w, ranges)), None)
            elif current and current not in taken and _in_pools(current, ranges):
                ip = current
            else:
                ip = _allocate(ranges, taken)
            if ip:
                taken.add(ip)
            assignments[(service["metadata"]["namespace"], service["metadata"]["name"])] = ip
        services_type = store.type_for("", "v1", "services")
        for service in services:
            ip = assignments[(service["metadata"]["namespace"], service["metadata"]["name"])]
            status = dict(service.get("status") or {})
            status["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"}]} if ip else {}
            store.set_status(services_type, service, status)


def _revision_label(rtype) -> str:
    """The label that ties a Pod to its template revision, as the real controllers name it."""
    return "pod-template-hash" if rtype.plural in ("deployments", "replicasets") else "controller-revision-hash"


def _rule_matches(webhook, rtype, operation) -> bool:
    for rule in webhook.get("rules") or []:
        groups, versions = rule.get("apiGroups") or [], rule.get("apiVersions") or []
        resources, operations = rule.get("resources") or [], rule.get("operations") or []
        if ((rtype.group in groups or "*" in groups) and (rtype.version in versions or "*" in versions)
                and (rtype.plural in resources or "*" in resources)
                and (operation in operations or "*" in operations)):
            return True
    return False


def _current_ip(service):
    ingress = (((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}])[0]
    return ingress.get("ip")


def _wanted_ips(service) -> list[str]:
    annotation = (service["metadata"].get("annotations") or {}).get("metallb.io/loadBalancerIPs", "")
    wanted = [a.strip() for a in annotation.split(",") if a.strip()]
    legacy = (service.get("spec") or {}).get("loadBalancerIP")
    return wanted or ([legacy] if legacy else [])


def _pool_networks(pool) -> list[tuple]:
    """(first, last, auto_assign) address ranges of an IPAddressPool (CIDRs and a-b ranges)."""
    auto = (pool.get("spec") or {}).get("autoAssign", True)
    result = []
    for entry in (pool.get("spec") or {}).get("addresses") or []:
        try:
            if "-" in entry:
                first, last = (ipaddress.ip_address(p.strip()) for p in entry.split("-", 1))
            else:
                network = ipaddress.ip_network(entry.strip(), strict=False)
                first, last = network[0], network[-1]
        except ValueError:
            continue
        result.append((first, last, auto))
    return result


def _in_pools(ip: str, ranges) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(first <= address <= last for _, networks in ranges for first, last, _ in networks)


def _allocate(ranges, taken):
    for _, networks in ranges:
        for first, last, auto in networks:
            if not auto:
                continue
            address = first
            while address <= last:
                if str(address) not in taken:
                    return str(address)
                address += 1
    return None
