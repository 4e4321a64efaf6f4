"""Resource types the double serves: the built-in kinds of kube-apiserver v1.36
(as its aggregated discovery lists them) plus custom resources from CRDs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FULL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
# kube-apiserver lists CRD verbs in this order (recording 04/05).
CRD_VERBS = ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]
CREATE_ONLY = ["create"]


@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    subresources: list[str] = field(default_factory=list)
    verbs: list[str] = field(default_factory=lambda: list(FULL_VERBS))
    # Custom resources only: the CRD version's compiled schema (schema.CompiledSchema).
    schema: object = None
    crd_name: str = ""
    # Virtual resources (reviews) answer a create without storing anything.
    virtual: bool = False
    # Custom resource versions marked deprecated: the Warning every request gets.
    deprecation_warning: str = ""

    def __post_init__(self):
        if not self.singular:
            self.singular = self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """`virtualservices.networking.istio.io`, as Status messages print it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def is_custom(self) -> bool:
        return bool(self.crd_name)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


def _builtin(spec: str) -> list[ResourceType]:
    """Parse the compact table below: group version plural Kind N|C [short,names] [subresources] [flags]."""
    types = []
    for line in spec.strip().replace("\n  ", " ").splitlines():
        parts = line.split()
        group = "" if parts[0] == "core" else parts[0]
        version, plural, kind, scope = parts[1:5]
        extras = dict(p.split("=", 1) for p in parts[5:])
        types.append(ResourceType(
            group=group, version=version, plural=plural, kind=kind, namespaced=scope == "N",
            short_names=[s for s in extras.get("short", "").split(",") if s],
            categories=[c for c in extras.get("cat", "").split(",") if c],
            subresources=[s for s in extras.get("sub", "").split(",") if s],
            verbs=CREATE_ONLY if "virtual" in extras else list(FULL_VERBS),
            virtual="virtual" in extras,
        ))
    return types


# Taken from what kube-apiserver v1.36 serves (aggregated discovery, recording 04;
# core v1 from the same server). Order = discovery order.
BUILTIN_TYPES = _builtin("""
core v1 bindings Binding N virtual=1
core v1 componentstatuses ComponentStatus C short=cs
core v1 configmaps ConfigMap N short=cm
core v1 endpoints Endpoints N short=ep
core v1 events Event N short=ev
core v1 limitranges LimitRange N short=limits
core v1 namespaces Namespace C short=ns sub=finalize,status
core v1 nodes Node C short=no sub=proxy,status
core v1 persistentvolumeclaims PersistentVolumeClaim N short=pvc sub=status
core v1 persistentvolumes PersistentVolume C short=pv sub=status
core v1 pods Pod N short=po cat=all sub=binding,ephemeralcontainers,eviction,exec,log,portforward,proxy,status
core v1 podtemplates PodTemplate N
core v1 replicationcontrollers ReplicationController N short=rc cat=all sub=scale,status
core v1 resourcequotas ResourceQuota N short=quota sub=status
core v1 secrets Secret N
core v1 serviceaccounts ServiceAccount N short=sa sub=token
core v1 services Service N short=svc cat=all sub=proxy,status
apiregistration.k8s.io v1 apiservices APIService C cat=api-extensions sub=status
apps v1 controllerrevisions ControllerRevision N
apps v1 daemonsets DaemonSet N short=ds cat=all sub=status
apps v1 deployments Deployment N short=deploy cat=all sub=scale,status
apps v1 replicasets ReplicaSet N short=rs cat=all sub=scale,status
apps v1 statefulsets StatefulSet N short=sts cat=all sub=scale,status
events.k8s.io v1 events Event N short=ev
authentication.k8s.io v1 selfsubjectreviews SelfSubjectReview C virtual=1
authentication.k8s.io v1 tokenreviews TokenReview C virtual=1
authorization.k8s.io v1 localsubjectaccessreviews LocalSubjectAccessReview N virtual=1
authorization.k8s.io v1 selfsubjectaccessreviews SelfSubjectAccessReview C virtual=1
authorization.k8s.io v1 selfsubjectrulesreviews SelfSubjectRulesReview C virtual=1
authorization.k8s.io v1 subjectaccessreviews SubjectAccessReview C virtual=1
autoscaling v2 horizontalpodautoscalers HorizontalPodAutoscaler N short=hpa cat=all sub=status
autoscaling v1 horizontalpodautoscalers HorizontalPodAutoscaler N short=hpa cat=all sub=status
batch v1 cronjobs CronJob N short=cj cat=all sub=status
batch v1 jobs Job N cat=all sub=status
certificates.k8s.io v1 certificatesigningrequests CertificateSigningRequest C short=csr sub=approval,status
networking.k8s.io v1 ingressclasses IngressClass C
networking.k8s.io v1 ingresses Ingress N short=ing sub=status
networking.k8s.io v1 ipaddresses IPAddress C short=ip
networking.k8s.io v1 networkpolicies NetworkPolicy N short=netpol
networking.k8s.io v1 servicecidrs ServiceCIDR C sub=status
policy v1 poddisruptionbudgets PodDisruptionBudget N short=pdb sub=status
rbac.authorization.k8s.io v1 clusterrolebindings ClusterRoleBinding C
rbac.authorization.k8s.io v1 clusterroles ClusterRole C
rbac.authorization.k8s.io v1 rolebindings RoleBinding N
rbac.authorization.k8s.io v1 roles Role N
storage.k8s.io v1 csidrivers CSIDriver C
storage.k8s.io v1 csinodes CSINode C
storage.k8s.io v1 csistoragecapacities CSIStorageCapacity N
storage.k8s.io v1 storageclasses StorageClass C short=sc
storage.k8s.io v1 volumeattachments VolumeAttachment C sub=status
storage.k8s.io v1 volumeattributesclasses VolumeAttributesClass C short=vac
admissionregistration.k8s.io v1 mutatingadmissionpolicies MutatingAdmissionPolicy C cat=api-extensions
admissionregistration.k8s.io v1 mutatingadmissionpolicybindings MutatingAdmissionPolicyBinding C cat=api-extensions
admissionregistration.k8s.io v1 mutatingwebhookconfigurations MutatingWebhookConfiguration C cat=api-extensions
admissionregistration.k8s.io v1 validatingadmissionpolicies ValidatingAdmissionPolicy C cat=api-extensions sub=status
admissionregistration.k8s.io v1 validatingadmissionpolicybindings ValidatingAdmissionPolicyBinding C cat=api-extensions
admissionregistration.k8s.io v1 validatingwebhookconfigurations ValidatingWebhookConfiguration C cat=api-extensions
apiextensions.k8s.io v1 customresourcedefinitions CustomResourceDefinition C short=crd,crds
  cat=api-extensions sub=status
scheduling.k8s.io v1 priorityclasses PriorityClass C short=pc
coordination.k8s.io v1 leases Lease N
node.k8s.io v1 runtimeclasses RuntimeClass C
discovery.k8s.io v1 endpointslices EndpointSlice N
resource.k8s.io v1 deviceclasses DeviceClass C
resource.k8s.io v1 resourceclaims ResourceClaim N sub=status
resource.k8s.io v1 resourceclaimtemplates ResourceClaimTemplate N
resource.k8s.io v1 resourceslices ResourceSlice C
flowcontrol.apiserver.k8s.io v1 flowschemas FlowSchema C sub=status
flowcontrol.apiserver.k8s.io v1 prioritylevelconfigurations PriorityLevelConfiguration C sub=status
""")

# Groups in the order kube-apiserver lists them in /apis (recording 03).
BUILTIN_GROUP_ORDER = []
for _t in BUILTIN_TYPES:
    if _t.group and _t.group not in BUILTIN_GROUP_ORDER:
        BUILTIN_GROUP_ORDER.append(_t.group)

_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple:
    """Sort key of Kubernetes version priority: GA > beta > alpha, higher numbers
    first, then anything else alphabetically (as kube-apiserver orders versions)."""
    match = _VERSION_RE.match(version)
    if not match:
        return (3, 0, 0, version)
    major, level, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[level]
    return (rank, -int(major), -int(minor or 0), version)
