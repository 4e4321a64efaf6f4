"""How kube-apiserver stores a built-in object: decoded into its Go type,
defaulted (the `SetDefaults_*` functions of k8s.io/api), encoded again with
Go's `omitempty` rules. What `../shared/apiserver-recordings/stored-forms/`
shows, for the types of the core, apps, rbac and admissionregistration groups
the lab's manifests use.

Go's encoding, per field kind (the letters of the tables below):

- `s`  a value scalar with `omitempty` (string, int32, bool): null, "", 0 and
       false are not stored (`initialDelaySeconds: 0`, `subPath: ""`).
- `k`  a value scalar without `omitempty` (`containerPort`, Service `port`,
       `mountPath`): stored whatever its value, 0 included.
- `p`  a pointer (`replicas`, `defaultMode`, `optional`, int-or-string
       pointers, structs the tables do not model): null is not stored, a zero
       value is (`replicas: 0` stays).
- `m`  a map with `omitempty`: null and {} are not stored (`annotations: {}`).
- `l`  a list with `omitempty`: null and [] are not stored.
- `L`  a list without `omitempty` (`containers`, PolicyRule `verbs`): kept.
- `a`  a value the tables keep as sent (int-or-string values, quantities).
- `Type` / `*Type` / `[Type]`: a struct by value (always stored, `resources:
       {}`), by pointer (null not stored, `{}` kept: `emptyDir: {}`), a list of
       them with `omitempty`.

Fields the tables do not name are kept as sent (the double does not know
every field of every type; kube-apiserver would drop unknown ones with a
warning). Custom resources are not Go types: only their `metadata` follows
ObjectMeta's rules."""

from __future__ import annotations

_TABLES = {
    "ObjectMeta": "name:s generateName:s namespace:s selfLink:s uid:s resourceVersion:s generation:s "
                  "creationTimestamp:s deletionTimestamp:p deletionGracePeriodSeconds:p labels:m annotations:m "
                  "ownerReferences:l finalizers:l managedFields:l",
    "LabelSelector": "matchLabels:m matchExpressions:[LabelSelectorRequirement]",
    "LabelSelectorRequirement": "key:k operator:k values:l",
    # ---- core/v1 pods
    "PodTemplateSpec": "metadata:ObjectMeta spec:PodSpec",
    "PodSpec": "volumes:[Volume] initContainers:[Container] containers:[Container]! ephemeralContainers:l "
               "restartPolicy:s terminationGracePeriodSeconds:p activeDeadlineSeconds:p dnsPolicy:s nodeSelector:m "
               "serviceAccountName:s serviceAccount:s automountServiceAccountToken:p nodeName:s hostNetwork:s "
               "hostPID:s hostIPC:s shareProcessNamespace:p securityContext:*PodSecurityContext "
               "imagePullSecrets:l hostname:s subdomain:s affinity:p schedulerName:s tolerations:[Toleration] "
               "hostAliases:l priorityClassName:s priority:p dnsConfig:p readinessGates:l runtimeClassName:p "
               "enableServiceLinks:p preemptionPolicy:p overhead:m topologySpreadConstraints:l "
               "setHostnameAsFQDN:p os:p hostUsers:p schedulingGates:l resourceClaims:l resources:p",
    "Container": "name:k image:s command:l args:l workingDir:s ports:[ContainerPort] envFrom:[EnvFromSource] "
                 "env:[EnvVar] resources:ResourceRequirements resizePolicy:l restartPolicy:p "
                 "restartPolicyRules:l volumeMounts:[VolumeMount] volumeDevices:l livenessProbe:*Probe "
                 "readinessProbe:*Probe startupProbe:*Probe lifecycle:*Lifecycle terminationMessagePath:s "
                 "terminationMessagePolicy:s imagePullPolicy:s securityContext:*SecurityContext stdin:s "
                 "stdinOnce:s tty:s",
    "ContainerPort": "name:s hostPort:s containerPort:k protocol:s hostIP:s",
    "EnvVar": "name:k value:s valueFrom:*EnvVarSource",
    "EnvVarSource": "fieldRef:*ObjectFieldSelector resourceFieldRef:*ResourceFieldSelector "
                    "configMapKeyRef:*KeySelector secretKeyRef:*KeySelector fileKeyRef:p",
    "ObjectFieldSelector": "apiVersion:s fieldPath:k",
    "ResourceFieldSelector": "containerName:s resource:k divisor:a",
    "KeySelector": "name:s key:k optional:p",
    "EnvFromSource": "prefix:s configMapRef:*NameOptional secretRef:*NameOptional",
    "NameOptional": "name:s optional:p",
    "ResourceRequirements": "limits:m requests:m claims:l",
    "VolumeMount": "name:k readOnly:s recursiveReadOnly:p mountPath:k subPath:s mountPropagation:p subPathExpr:s",
    "Probe": "exec:*ExecAction httpGet:*HTTPGetAction tcpSocket:*TCPSocketAction grpc:*GRPCAction "
             "initialDelaySeconds:s timeoutSeconds:s periodSeconds:s successThreshold:s failureThreshold:s "
             "terminationGracePeriodSeconds:p",
    "ExecAction": "command:l",
    "HTTPGetAction": "path:s port:a host:s scheme:s httpHeaders:[HTTPHeader]",
    "HTTPHeader": "name:k value:k",
    "TCPSocketAction": "port:a host:s",
    "GRPCAction": "port:k service:p",
    "Lifecycle": "postStart:*LifecycleHandler preStop:*LifecycleHandler stopSignal:p",
    "LifecycleHandler": "exec:*ExecAction httpGet:*HTTPGetAction tcpSocket:*TCPSocketAction sleep:p",
    "SecurityContext": "capabilities:*Capabilities privileged:p seLinuxOptions:p windowsOptions:p runAsUser:p "
                       "runAsGroup:p runAsNonRoot:p readOnlyRootFilesystem:p allowPrivilegeEscalation:p "
                       "procMount:p seccompProfile:p appArmorProfile:p",
    "Capabilities": "add:l drop:l",
    "PodSecurityContext": "seLinuxOptions:p windowsOptions:p runAsUser:p runAsGroup:p runAsNonRoot:p "
                          "supplementalGroups:l supplementalGroupsPolicy:p fsGroup:p sysctls:l "
                          "fsGroupChangePolicy:p seccompProfile:p appArmorProfile:p seLinuxChangePolicy:p",
    "Toleration": "key:s operator:s value:s effect:s tolerationSeconds:p",
    "Volume": "name:k hostPath:*HostPathVolumeSource emptyDir:*EmptyDirVolumeSource secret:*SecretVolumeSource "
              "configMap:*ConfigMapVolumeSource persistentVolumeClaim:p projected:*ProjectedVolumeSource "
              "downwardAPI:*DownwardAPIVolumeSource csi:p ephemeral:p image:p nfs:p",
    "HostPathVolumeSource": "path:k type:p",
    "EmptyDirVolumeSource": "medium:s sizeLimit:p",
    "SecretVolumeSource": "secretName:s items:[KeyToPath] defaultMode:p optional:p",
    "ConfigMapVolumeSource": "name:s items:[KeyToPath] defaultMode:p optional:p",
    "KeyToPath": "key:k path:k mode:p",
    "ProjectedVolumeSource": "sources:[VolumeProjection]! defaultMode:p",
    "VolumeProjection": "secret:p downwardAPI:*DownwardAPIProjection configMap:p "
                        "serviceAccountToken:*ServiceAccountTokenProjection clusterTrustBundle:p podCertificate:p",
    "DownwardAPIProjection": "items:[DownwardAPIVolumeFile]",
    "ServiceAccountTokenProjection": "audience:s expirationSeconds:p path:k",
    "DownwardAPIVolumeSource": "items:[DownwardAPIVolumeFile] defaultMode:p",
    "DownwardAPIVolumeFile": "path:k fieldRef:*ObjectFieldSelector resourceFieldRef:*ResourceFieldSelector mode:p",
    # ---- core/v1 others
    "ServiceSpec": "ports:[ServicePort] selector:m clusterIP:s clusterIPs:l type:s externalIPs:l "
                   "sessionAffinity:s loadBalancerIP:s loadBalancerSourceRanges:l externalName:s "
                   "externalTrafficPolicy:s healthCheckNodePort:s publishNotReadyAddresses:s "
                   "sessionAffinityConfig:p ipFamilies:l ipFamilyPolicy:p allocateLoadBalancerNodePorts:p "
                   "loadBalancerClass:p internalTrafficPolicy:p trafficDistribution:p",
    "ServicePort": "name:s protocol:s appProtocol:p port:k targetPort:a nodePort:s",
    "NamespaceSpec": "finalizers:l",
    # ---- apps/v1
    "DeploymentSpec": "replicas:p selector:*LabelSelector template:PodTemplateSpec strategy:DeploymentStrategy "
                      "minReadySeconds:s revisionHistoryLimit:p paused:s progressDeadlineSeconds:p",
    "DeploymentStrategy": "type:s rollingUpdate:*RollingUpdate",
    "RollingUpdate": "maxUnavailable:p maxSurge:p partition:p",
    "DaemonSetSpec": "selector:*LabelSelector template:PodTemplateSpec updateStrategy:DaemonSetUpdateStrategy "
                     "minReadySeconds:s revisionHistoryLimit:p",
    "DaemonSetUpdateStrategy": "type:s rollingUpdate:*RollingUpdate",
    "StatefulSetSpec": "replicas:p selector:*LabelSelector template:PodTemplateSpec volumeClaimTemplates:l "
                       "serviceName:s podManagementPolicy:s updateStrategy:DeploymentStrategy "
                       "revisionHistoryLimit:p minReadySeconds:s persistentVolumeClaimRetentionPolicy:p ordinals:p",
    "ReplicaSetSpec": "replicas:p minReadySeconds:s selector:*LabelSelector template:PodTemplateSpec",
    # ---- rbac.authorization.k8s.io/v1
    "PolicyRule": "verbs:L apiGroups:l resources:l resourceNames:l nonResourceURLs:l",
    "Subject": "kind:k apiGroup:s name:k namespace:s",
    "RoleRef": "apiGroup:k kind:k name:k",
    # ---- admissionregistration.k8s.io/v1
    "Webhook": "name:k clientConfig:WebhookClientConfig rules:[RuleWithOperations] failurePolicy:p "
               "matchPolicy:p namespaceSelector:*LabelSelector objectSelector:*LabelSelector sideEffects:p "
               "timeoutSeconds:p admissionReviewVersions:L matchConditions:l reinvocationPolicy:p",
    "WebhookClientConfig": "url:p service:*ServiceReference caBundle:s",
    "ServiceReference": "namespace:k name:k path:p port:p",
    "RuleWithOperations": "operations:l apiGroups:l apiVersions:l resources:l scope:p",
}

# The top level of each kind (metadata is ObjectMeta for every kind; status is the subresource's).
_KINDS = {
    ("", "pods"): "spec:PodSpec",
    ("", "podtemplates"): "template:PodTemplateSpec",
    ("", "services"): "spec:ServiceSpec",
    ("", "namespaces"): "spec:NamespaceSpec",
    ("", "configmaps"): "immutable:p data:m binaryData:m",
    ("", "secrets"): "immutable:p data:m stringData:m type:s",
    ("", "serviceaccounts"): "secrets:l imagePullSecrets:l automountServiceAccountToken:p",
    ("apps", "deployments"): "spec:DeploymentSpec",
    ("apps", "daemonsets"): "spec:DaemonSetSpec",
    ("apps", "statefulsets"): "spec:StatefulSetSpec",
    ("apps", "replicasets"): "spec:ReplicaSetSpec",
    ("rbac.authorization.k8s.io", "roles"): "rules:[PolicyRule]!",
    ("rbac.authorization.k8s.io", "clusterroles"): "rules:[PolicyRule]! aggregationRule:p",
    ("rbac.authorization.k8s.io", "rolebindings"): "subjects:[Subject] roleRef:RoleRef",
    ("rbac.authorization.k8s.io", "clusterrolebindings"): "subjects:[Subject] roleRef:RoleRef",
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): "webhooks:[Webhook]",
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): "webhooks:[Webhook]",
}


def _parse(spec: str) -> dict:
    return dict(item.split(":", 1) for item in spec.split())


TABLES = {name: _parse(spec) for name, spec in _TABLES.items()}
KINDS = {key: _parse(spec) for key, spec in _KINDS.items()}


def _is_zero(value) -> bool:
    return value is None or value == "" or value is False or (value == 0 and not isinstance(value, bool)) or \
        value == {} or value == []


def omit(obj: dict, fields: dict) -> dict:
    """Drop, in place, what Go's encoding of a struct with these fields would not write."""
    for key in list(obj):
        kind = fields.get(key)
        if kind is None:
            continue  # a field the tables do not model: kept as sent
        value = obj[key]
        if kind == "s":
            if value is None or _is_zero(value):
                del obj[key]
        elif kind in ("m", "l"):
            if value is None or value == {} or value == []:
                del obj[key]
        elif kind in ("p", "a"):
            if value is None:
                del obj[key]
        elif kind in ("k", "L"):
            continue
        elif kind.startswith("["):
            if not value:
                if value is None or not kind.endswith("!"):
                    del obj[key]
                continue
            table = TABLES[kind.strip("[]!")]
            for item in value:
                if isinstance(item, dict):
                    omit(item, table)
        elif kind.startswith("*"):
            if value is None:
                del obj[key]
            elif isinstance(value, dict):
                omit(value, TABLES[kind[1:]])
        elif isinstance(value, dict):  # a struct by value
            omit(value, TABLES[kind])
        elif value is None:
            obj[key] = {}
    return obj


def omit_object(group: str, plural: str, obj: dict) -> dict:
    """The object without what its Go type would not store (metadata for every kind)."""
    if isinstance(obj.get("metadata"), dict):
        omit(obj["metadata"], TABLES["ObjectMeta"])
    fields = KINDS.get((group, plural))
    if fields:
        omit(obj, fields)
    return obj


# ---------------------------------------------------------------------- defaults (k8s.io/api SetDefaults_*)

def default_pod_spec(spec: dict) -> None:
    """SetDefaults_PodSpec and what it calls for containers, probes, volumes (pod templates and Pods)."""
    if not isinstance(spec, dict):
        return
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    # The deprecated serviceAccount mirrors serviceAccountName (conversion to v1).
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    elif spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _default_container(container)
    for volume in spec.get("volumes") or []:
        if isinstance(volume, dict):
            _default_volume(volume)


def _default_container(container: dict) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    if "imagePullPolicy" not in container and isinstance(container.get("image"), str):
        image = container["image"]
        tag = image.rsplit("/", 1)[-1].partition(":")[2] if "@" not in image else "digest"
        container["imagePullPolicy"] = "Always" if tag in ("", "latest") else "IfNotPresent"
    if not isinstance(container.get("resources"), dict):
        container["resources"] = {}
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for env in container.get("env") or []:
        field_ref = ((env or {}).get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")
    for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_key)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            _default_http_get(probe)
    for handler in ((container.get("lifecycle") or {}).get(k) for k in ("postStart", "preStop")):
        if isinstance(handler, dict):
            _default_http_get(handler)


def _default_http_get(handler: dict) -> None:
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        http_get.setdefault("scheme", "HTTP")


_VOLUME_SOURCES = ("hostPath", "emptyDir", "secret", "configMap", "persistentVolumeClaim", "projected",
                   "downwardAPI", "csi", "ephemeral", "image", "nfs", "iscsi", "gitRepo", "fc", "rbd",
                   "cephfs", "cinder", "flexVolume", "azureFile", "azureDisk", "vsphereVolume", "quobyte",
                   "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos", "gcePersistentDisk",
                   "awsElasticBlockStore", "glusterfs", "flocker")


def _default_volume(volume: dict) -> None:
    if not any(volume.get(k) is not None for k in _VOLUME_SOURCES):
        volume["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        if isinstance(volume.get(key), dict):
            volume[key].setdefault("defaultMode", 420)
    if isinstance(volume.get("hostPath"), dict):
        volume["hostPath"].setdefault("type", "")
    for item in (volume.get("downwardAPI") or {}).get("items") or []:
        if isinstance((item or {}).get("fieldRef"), dict):
            item["fieldRef"].setdefault("apiVersion", "v1")
    for source in (volume.get("projected") or {}).get("sources") or []:
        token = (source or {}).get("serviceAccountToken")
        if isinstance(token, dict):
            token.setdefault("expirationSeconds", 3600)
        for item in ((source or {}).get("downwardAPI") or {}).get("items") or []:
            if isinstance((item or {}).get("fieldRef"), dict):
                item["fieldRef"].setdefault("apiVersion", "v1")


def _default_rolling(strategy: dict, max_unavailable, max_surge) -> None:
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        rolling = dict(rolling) if isinstance(rolling, dict) else {}
        rolling.setdefault("maxUnavailable", max_unavailable)
        rolling.setdefault("maxSurge", max_surge)
        strategy["rollingUpdate"] = rolling


def default_workload(plural: str, spec: dict, meta: dict, old) -> None:
    """SetDefaults_Deployment / _DaemonSet / _StatefulSet / _ReplicaSet, and the DaemonSet
    registry's template generation annotation."""
    template = spec.get("template")
    if isinstance(template, dict):
        default_pod_spec(template.get("spec"))
    if plural in ("deployments", "statefulsets", "replicasets") and spec.get("replicas") is None:
        spec["replicas"] = 1
    if plural == "deployments":
        if not isinstance(spec.get("strategy"), dict):
            spec["strategy"] = {}
        _default_rolling(spec["strategy"], "25%", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    elif plural == "daemonsets":
        if not isinstance(spec.get("updateStrategy"), dict):
            spec["updateStrategy"] = {}
        _default_rolling(spec["updateStrategy"], 1, 0)
        spec.setdefault("revisionHistoryLimit", 10)
        annotations = dict(meta.get("annotations") or {})
        key = "deprecated.daemonset.template.generation"
        old_annotations = ((old or {}).get("metadata") or {}).get("annotations") or {}
        generation = int(old_annotations.get(key, "0") or 0)
        old_template = ((old or {}).get("spec") or {}).get("template")
        if old is None:
            generation = 1
        elif old_template != template:
            generation += 1
        annotations[key] = str(max(generation, 1))
        meta["annotations"] = annotations
    elif plural == "statefulsets":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.get("updateStrategy")
        strategy = dict(strategy) if isinstance(strategy, dict) else {}
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy["rollingUpdate"] = dict(strategy.get("rollingUpdate") or {})
            strategy["rollingUpdate"].setdefault("partition", 0)
        spec["updateStrategy"] = strategy
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})


def default_rbac(plural: str, obj: dict) -> None:
    """SetDefaults_Subject: users and groups belong to the RBAC API group."""
    if plural in ("rolebindings", "clusterrolebindings"):
        for subject in obj.get("subjects") or []:
            if isinstance(subject, dict) and not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
                subject["apiGroup"] = "rbac.authorization.k8s.io"


def default_webhooks(plural: str, obj: dict) -> None:
    """SetDefaults_ValidatingWebhook / _MutatingWebhook / _ServiceReference / _Rule."""
    for webhook in obj.get("webhooks") or []:
        if not isinstance(webhook, dict):
            continue
        webhook.setdefault("failurePolicy", "Fail")
        webhook.setdefault("matchPolicy", "Equivalent")
        webhook.setdefault("namespaceSelector", {})
        webhook.setdefault("objectSelector", {})
        webhook.setdefault("timeoutSeconds", 10)
        if plural == "mutatingwebhookconfigurations":
            webhook.setdefault("reinvocationPolicy", "Never")
        service = (webhook.get("clientConfig") or {}).get("service")
        if isinstance(service, dict):
            service.setdefault("port", 443)
        for rule in webhook.get("rules") or []:
            if isinstance(rule, dict):
                rule.setdefault("scope", "*")
