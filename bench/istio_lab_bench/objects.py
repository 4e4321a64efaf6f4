"""The benchmark's workload: N Istio objects in the proportions of a classroom.

Per student the course has one Gateway, five VirtualServices and one
DestinationRule (weights 1:5:1). N is rarely a multiple of 7, so the count of
each kind is apportioned by largest remainder (Hamilton's method; ties go to
the kind listed first), which is the closest integer split of N to the 1:5:1
ratio: 12 -> 2/8/2, 120 -> 17/86/17, 360 -> 52/257/51.

One student = one Gateway, so there are as many students as Gateways; the
VirtualServices and DestinationRules are spread evenly over them. Each
student's objects live in the student's namespace (the classroom's
shared-cluster mode: one namespace and host prefix per student), unless
`namespaces` caps the number of namespaces, in which case students share them
round-robin (object names carry the student id, so they never collide).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

API_VERSION = "networking.istio.io/v1"
DOMAIN = "kubernets.cn"
MANAGED_LABELS = {"app.kubernetes.io/managed-by": "istio-lab"}
BENCH_LABEL = "istio-lab.io/bench"


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    per_student: int


KINDS = (
    Kind("Gateway", "gateways", 1),
    Kind("VirtualService", "virtualservices", 5),
    Kind("DestinationRule", "destinationrules", 1),
)


@dataclass
class IstioObject:
    kind: str
    name: str
    namespace: str
    spec: dict
    labels: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    def manifest(self) -> dict:
        """The object as kubectl and kubernetes.core.k8s take it."""
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": dict(self.labels)},
            "spec": copy.deepcopy(self.spec),
        }

    def definition(self) -> dict:
        """The object as istio-lab's modules take it in `definitions`."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "labels": dict(self.labels),
            "spec": copy.deepcopy(self.spec),
        }


def apportion(total: int, weights: list[int]) -> list[int]:
    """Split `total` into integers proportional to `weights` (largest remainder, ties to the first)."""
    if total < 0 or not weights or any(w <= 0 for w in weights):
        raise ValueError("total must be >= 0 and weights positive")
    weight_sum = sum(weights)
    quotas = [total * w / weight_sum for w in weights]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _student_id(index: int) -> str:
    return f"student{index + 1:02d}"


def _gateway(sid: str, namespace: str) -> IstioObject:
    spec = {
        "selector": {"istio": "ingressgateway"},
        "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [f"*.{sid}.{DOMAIN}"]}],
    }
    return IstioObject("Gateway", f"{sid}-gateway", namespace, spec)


def _virtual_service(sid: str, namespace: str, app: int) -> IstioObject:
    spec = {
        "hosts": [f"app{app}.{sid}.{DOMAIN}"],
        "gateways": [f"{sid}-gateway"],
        "http": [
            {
                "route": [{"destination": {"host": f"app{app}.{namespace}.svc.cluster.local", "port": {"number": 80}}}],
                "timeout": "10s",
            }
        ],
    }
    return IstioObject("VirtualService", f"{sid}-app{app}", namespace, spec)


def _destination_rule(sid: str, namespace: str, app: int) -> IstioObject:
    spec = {
        "host": f"app{app}.{namespace}.svc.cluster.local",
        "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 100}}},
        "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}],
    }
    return IstioObject("DestinationRule", f"{sid}-app{app}", namespace, spec)


def generate(total: int, scope: str = "bench", namespaces: int | None = None) -> list[IstioObject]:
    """Exactly `total` objects, student by student (Gateway, VirtualServices, DestinationRules).

    Namespaces are `<scope>-studentNN` (one per student), or `<scope>-nsNN`
    when `namespaces` caps their number.
    """
    gateways, virtual_services, destination_rules = apportion(total, [k.per_student for k in KINDS])
    students = max(1, gateways)
    if namespaces is not None and namespaces < 1:
        raise ValueError("namespaces must be >= 1")

    def namespace_of(student: int) -> str:
        if namespaces is None:
            return f"{scope}-{_student_id(student)}"
        return f"{scope}-ns{student % namespaces + 1:02d}"

    per_student: list[list[IstioObject]] = [[] for _ in range(students)]
    for student in range(gateways):
        per_student[student].append(_gateway(_student_id(student), namespace_of(student)))
    # Spread evenly: object j of a kind belongs to student j * students // count.
    for count, make in ((virtual_services, _virtual_service), (destination_rules, _destination_rule)):
        seen = [0] * students
        for j in range(count):
            student = j * students // count
            seen[student] += 1
            per_student[student].append(make(_student_id(student), namespace_of(student), seen[student]))
    labels = {**MANAGED_LABELS, BENCH_LABEL: scope}
    objects = [obj for student_objects in per_student for obj in student_objects]
    for obj in objects:
        obj.labels = dict(labels)
    return objects


def changed_indices(total: int, fraction: float = 0.10) -> list[int]:
    """Which objects the "changed" run modifies: round(fraction * total) (at least one), spread evenly."""
    if total == 0:
        return []
    count = min(total, max(1, round(total * fraction)))
    return [j * total // count for j in range(count)]


def change(obj: IstioObject) -> IstioObject:
    """A copy of `obj` with a realistic edit of its spec (what an instructor changes between chapters)."""
    edited = copy.deepcopy(obj)
    if obj.kind == "Gateway":
        edited.spec["servers"][0]["hosts"].append(f"www.{obj.name.removesuffix('-gateway')}.{DOMAIN}")
    elif obj.kind == "VirtualService":
        edited.spec["http"][0]["timeout"] = "15s"
    elif obj.kind == "DestinationRule":
        edited.spec["trafficPolicy"]["connectionPool"]["tcp"]["maxConnections"] = 200
    else:
        raise ValueError(f"no edit defined for kind {obj.kind}")
    return edited


def with_changes(objects: list[IstioObject], fraction: float = 0.10) -> tuple[list[IstioObject], set[tuple]]:
    """The workload of the changed run and the keys of the objects it changed."""
    indices = set(changed_indices(len(objects), fraction))
    result = [change(obj) if i in indices else obj for i, obj in enumerate(objects)]
    return result, {objects[i].key for i in indices}


def counts_by_kind(objects: list[IstioObject]) -> dict[str, int]:
    counts = {k.kind: 0 for k in KINDS}
    for obj in objects:
        counts[obj.kind] += 1
    return counts


def scopes(objects: list[IstioObject]) -> set[tuple[str, str]]:
    """(kind, namespace) pairs: what a list-per-kind-and-namespace client has to read."""
    return {(obj.kind, obj.namespace) for obj in objects}
