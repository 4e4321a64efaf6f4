"""plugins/module_utils/istio_lab/apply.py: what makes a first run fast
without changing what it sends (issue 23): POOL_SIZE writes really in
flight at once, the CRD schemas read together and each only once."""

import threading

import pytest
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab import apply as apply_module
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.apply import Applier, Plan, read_schemas
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import POOL_SIZE, KubeError

WAIT_S = 10


class BarrierResource:
    """A resource whose create returns only once `parties` creates are waiting:
    fewer writes in flight and the barrier breaks."""

    def __init__(self, parties, timeout=WAIT_S):
        self.barrier = threading.Barrier(parties, timeout=timeout)
        self.created = []
        self.lock = threading.Lock()

    def create(self, obj):
        self.barrier.wait()
        with self.lock:
            self.created.append(obj["metadata"]["name"])
        return obj


def applier_with(resource):
    applier = Applier.__new__(Applier)  # no client: the resource is the fake
    applier.kind, applier.resource, applier.check_mode, applier.adopt = "Gateway", resource, False, False
    return applier


def create_plans(count):
    return [Plan({"namespace": "ns", "name": f"gw{i}"}, {"metadata": {"name": f"gw{i}"}}, None, "create")
            for i in range(count)]


def test_pool_size_writes_are_in_flight_at_once():
    """A real API server serves writes concurrently: the first run keeps
    POOL_SIZE creates in flight (8, not the 4 of before issue 23)."""
    assert POOL_SIZE >= 8
    resource = BarrierResource(POOL_SIZE)
    written = applier_with(resource).execute(create_plans(POOL_SIZE * 3))
    assert written == POOL_SIZE * 3
    assert sorted(resource.created) == sorted(f"gw{i}" for i in range(POOL_SIZE * 3))


def test_no_more_than_pool_size_writes_in_flight():
    resource = BarrierResource(POOL_SIZE + 1, timeout=1)
    with pytest.raises(threading.BrokenBarrierError):
        applier_with(resource).execute(create_plans(POOL_SIZE + 1))


class SchemaResource:
    def __init__(self, barrier, schema, error=None):
        self.barrier, self.schema_doc, self.error, self.reads = barrier, schema, error, 0

    def schema(self):
        self.reads += 1
        self.barrier.wait()  # returns only when every kind's read is on the wire
        if self.error:
            raise self.error
        return self.schema_doc


def test_the_schemas_are_read_together_and_once(monkeypatch):
    loaded = []
    monkeypatch.setattr(apply_module.validate_module, "load_validator", lambda: loaded.append(True))
    barrier = threading.Barrier(3, timeout=WAIT_S)
    appliers = [applier_with(SchemaResource(barrier, {"kind": kind})) for kind in ("a", "b", "c")]
    read_schemas(appliers)
    assert loaded == [True]  # the validator's import overlaps the reads
    assert [a.schema() for a in appliers] == [{"kind": "a"}, {"kind": "b"}, {"kind": "c"}]
    assert [a.resource.reads for a in appliers] == [1, 1, 1]  # validation does not read again


def test_a_failed_schema_read_is_raised(monkeypatch):
    monkeypatch.setattr(apply_module.validate_module, "load_validator", lambda: None)
    barrier = threading.Barrier(2, timeout=WAIT_S)
    appliers = [applier_with(SchemaResource(barrier, {})),
                applier_with(SchemaResource(barrier, None, KubeError("cannot reach the Kubernetes API")))]
    with pytest.raises(KubeError, match="cannot reach"):
        read_schemas(appliers)

