"""Shared pytest fixtures of istio-lab.

- `shared_dir`: the read-only reference folder (`../shared` or $ISTIO_LAB_SHARED).
- `kube`: a Kubernetes API for one test. By default a fresh in-process
  kube-apiserver double (tests/kube_double) with the Istio CRDs installed;
  when $ISTIO_LAB_TEST_KUBECONFIG names a kubeconfig, the real cluster behind
  a local counting proxy. Either way requests are counted (`kube.mark()`,
  `kube.requests()`, `kube.writes()`).
- `kube_no_crds`: the same without any CRD (double only).

Also puts `collections/` on sys.path, so that the checkout imports as the
installed collection (`ansible_collections.istio_lab.lab.plugins.module_utils...`
through the symlink collections/ansible_collections/istio_lab/lab -> the
repository root), and the repository itself so `tests.kube_double` imports.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

COLLECTIONS = REPO / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from tests.kube_double import KubeDouble  # noqa: E402
from tests.kube_double.proxy import CountingProxy  # noqa: E402

FIXTURE_USER_AGENT = "istio-lab-test-fixture/1.0"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def pytest_configure(config):
    config.addinivalue_line("markers", "leaves_cluster_objects(why): on a real cluster, the test leaves the "
                            "cluster-scoped objects it created (CRDs, ClusterRoles, webhook configurations)")


# ------------------------------------------------------------------ scheduling: the longest files first
# scripts/test runs two workers with `--dist loadfile --no-loadscope-reorder`: xdist hands out whole files in
# collection order, so the collection is ordered longest file first (longest-processing-time scheduling) and
# the short files fill both workers at the end. A file's length is what the last full run measured (pytest's
# cache, key FILE_SECONDS_KEY, written by the controller), else the committed profile SEED_PROFILE (a fresh
# clone has no cache), else an estimate from its tests' markers: a new file is placed without any list to update.
FILE_SECONDS_KEY = "istio-lab/file-seconds"
SEED_PROFILE = REPO / "tests" / "file-seconds.json"
MARKER_SECONDS = (("slow", 60.0), ("node", 60.0), ("api", 8.0), ("lint", 7.0))  # first match, per test
UNMARKED_SECONDS = 0.2
_file_seconds: dict[str, float] = {}  # this run's reports (at the controller under xdist)


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def estimated_seconds(item) -> float:
    """A test's guessed length when no run has measured its file."""
    return next((seconds for name, seconds in MARKER_SECONDS if item.get_closest_marker(name)), UNMARKED_SECONDS)


def file_weights(items, measured: dict) -> dict[str, float]:
    """Seconds per test file: measured when known, estimated from the markers otherwise."""
    weights: dict[str, float] = {}
    for item in items:
        path = _file_of(item.nodeid)
        weights[path] = weights.get(path, 0.0) + estimated_seconds(item)
    return {path: float(measured.get(path, guess)) for path, guess in weights.items()}


def order_longest_first(items, weights: dict[str, float]) -> None:
    """Files by decreasing weight (then name); the tests of a file keep their order and stay together."""
    rank = {path: n for n, path in enumerate(sorted(weights, key=lambda p: (-weights[p], p)))}
    items.sort(key=lambda item: rank[_file_of(item.nodeid)])


def pytest_collection_modifyitems(config, items):
    import json

    measured = json.loads(SEED_PROFILE.read_text()) if SEED_PROFILE.is_file() else {}
    if getattr(config, "cache", None):
        measured.update(config.cache.get(FILE_SECONDS_KEY, {}))
    order_longest_first(items, file_weights(items, measured))


def pytest_runtest_logreport(report):
    # setup, call and teardown: module fixtures count for their file.
    path = _file_of(report.nodeid)
    _file_seconds[path] = _file_seconds.get(path, 0.0) + report.duration


def pytest_sessionfinish(session):
    """The controller (or a run without workers) keeps each file's measured seconds for the next ordering;
    a run narrowed by -k, -m, node ids or -x measures part of a file, and is not kept."""
    config = session.config
    if hasattr(config, "workerinput") or not getattr(config, "cache", None):
        return
    narrowed = config.option.keyword or config.option.markexpr or config.option.maxfail \
        or any("::" in str(arg) for arg in config.args)
    measured = _file_seconds
    if narrowed or not measured:
        return
    known = config.cache.get(FILE_SECONDS_KEY, {})
    known.update({path: round(seconds, 1) for path, seconds in measured.items()})
    config.cache.set(FILE_SECONDS_KEY, known)


def shared_path() -> Path:
    return Path(os.environ.get("ISTIO_LAB_SHARED") or REPO.parent / "shared").resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = shared_path()
    if not path.is_dir():
        pytest.skip(f"shared reference folder not found at {path} (set ISTIO_LAB_SHARED)")
    return path


def _istio_crds() -> Path:
    return shared_path() / "crds" / "istio-1.30.3-crds.yaml"


def _metallb_crds() -> Path:
    return shared_path() / "crds" / "metallb-0.16.1-crds.yaml"


class KubeTarget:
    """One test's Kubernetes API: the double, or a real cluster behind a proxy."""

    def __init__(self, kubeconfig: str, context: str, counter, double: KubeDouble | None, workdir: Path):
        self.kubeconfig = kubeconfig
        self.context = context
        self.double = double
        self._counter = counter
        self._workdir = workdir
        self._client = None
        # TMPDIR: kubernetes.core and the python client cache discovery per
        # server URL in the temp dir; a per-test dir stops a later double on a
        # reused port from reading this test's resource list.
        self.env = {"KUBECONFIG": kubeconfig, "K8S_AUTH_KUBECONFIG": kubeconfig, "K8S_AUTH_CONTEXT": context,
                    "TMPDIR": str(workdir / "tmp")}
        (workdir / "tmp").mkdir(exist_ok=True)

    @property
    def is_double(self) -> bool:
        return self.double is not None

    def require_double(self, why: str) -> KubeDouble:
        """Skip on a real cluster: for tests that need the double's in-process features."""
        if self.double is None:
            pytest.skip(f"needs the in-process API double ({why}); not possible against a real cluster")
        return self.double

    # ---- request counting
    def mark(self) -> int:
        return self._counter.mark()

    def requests(self, since: int | None = None, include_fixture: bool = False) -> list[dict]:
        """Requests since a mark; the fixture's own helper calls are left out
        unless include_fixture."""
        records = self._counter.requests(since)
        if include_fixture:
            return records
        return [r for r in records if not r.get("user_agent", "").startswith(FIXTURE_USER_AGENT.split("/")[0])]

    def writes(self, since: int | None = None) -> list[dict]:
        """Non-dry-run create/update/patch/delete(collection) requests since a mark."""
        return [r for r in self.requests(since) if r.get("verb") in WRITE_VERBS and not r.get("dry_run")]

    # ---- client helpers (their requests are tagged and not counted by default)
    def client(self):
        if self._client is None:
            from kubernetes import config
            from kubernetes.dynamic import DynamicClient

            api_client = config.new_client_from_config(config_file=self.kubeconfig, context=self.context)
            api_client.user_agent = FIXTURE_USER_AGENT
            self._client = DynamicClient(api_client, cache_file=str(self._workdir / "discovery.json"))
        return self._client

    def resource(self, api_version: str, kind: str):
        return self.client().resources.get(api_version=api_version, kind=kind)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return self.resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict]:
        result = self.resource(api_version, kind).get(namespace=namespace, label_selector=label_selector)
        return [item.to_dict() for item in result.items]

    def create(self, obj: dict) -> dict:
        meta = obj.get("metadata") or {}
        resource = self.resource(obj["apiVersion"], obj["kind"])
        namespace = meta.get("namespace") or ("default" if resource.namespaced else None)
        return resource.create(body=obj, namespace=namespace).to_dict()

    def apply(self, obj: dict) -> dict:
        """Server-side apply one object (field manager istio-lab-tests, forced)."""
        meta = obj.get("metadata") or {}
        resource = self.resource(obj["apiVersion"], obj["kind"])
        namespace = meta.get("namespace") or ("default" if resource.namespaced else None)
        return resource.server_side_apply(body=obj, name=meta["name"], namespace=namespace,
                                          field_manager="istio-lab-tests", force_conflicts=True).to_dict()

    def apply_file(self, path) -> list[dict]:
        """Apply every document of a YAML file (like `kubectl apply --server-side -f`)."""
        import yaml

        with open(path, encoding="utf-8") as handle:
            docs = [d for d in yaml.safe_load_all(handle) if d]
        applied = []
        for doc in docs:
            if doc.get("kind", "").endswith("List") and "items" in doc:
                applied.extend(self.apply(item) for item in doc["items"])
            else:
                applied.append(self.apply(doc))
                if doc.get("kind") == "CustomResourceDefinition":
                    self.client().resources.invalidate_cache()
        return applied

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            self.resource(api_version, kind).delete(name=name, namespace=namespace)
            return True
        except NotFoundError:
            return False

    def ensure_namespace(self, name: str, labels: dict | None = None) -> dict:
        existing = self.get("v1", "Namespace", name)
        if existing is not None:
            return existing
        return self.create({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": name, "labels": labels or {}}})

    def install_istio_crds(self) -> None:
        self._install_crds(_istio_crds())

    def install_metallb_crds(self) -> None:
        self._install_crds(_metallb_crds())

    def _install_crds(self, path: Path) -> None:
        if not path.is_file():
            pytest.skip(f"CRD file {path} not found (set ISTIO_LAB_SHARED)")
        if self.double is not None:
            self.double.install_crds(path)
        else:
            self.apply_file(path)
        if self._client is not None:
            self._client.resources.invalidate_cache()


def _make_double_target(workdir: Path, crd_files, **options):
    double = KubeDouble(crds=crd_files, **options).start()
    kubeconfig = double.write_kubeconfig(workdir / "kubeconfig", context="double")
    return double, KubeTarget(kubeconfig, "double", double, double, workdir)


@pytest.fixture
def kube_workdir(tmp_path_factory) -> Path:
    """Where the kube fixtures keep their files (kubeconfig, discovery cache, TMPDIR): a folder of
    their own, never the test's tmp_path, so that nothing a test writes there can clobber them."""
    return tmp_path_factory.mktemp("kube-fixture")


@pytest.fixture
def kube(kube_workdir, request):
    """A Kubernetes API for this test: a fresh double with the Istio CRDs, or the
    real cluster of $ISTIO_LAB_TEST_KUBECONFIG behind a counting proxy."""
    real = os.environ.get("ISTIO_LAB_TEST_KUBECONFIG")
    if real:
        yield from _real_cluster(kube_workdir, real, request)
        return
    crds = _istio_crds()
    if not crds.is_file():
        pytest.skip(f"Istio CRDs not found at {crds} (set ISTIO_LAB_SHARED)")
    double, target = _make_double_target(kube_workdir, [crds])
    try:
        yield target
    finally:
        double.stop()


@pytest.fixture
def kube_no_crds(kube_workdir):
    """A fresh double without any CRD (for "CRD missing" behaviour)."""
    if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
        pytest.skip("needs a cluster without the Istio CRDs: only the double can provide one")
    double, target = _make_double_target(kube_workdir, [])
    try:
        yield target
    finally:
        double.stop()


# Cluster-scoped kinds a test may create (addons' ClusterRoles, MetalLB's webhook
# configuration, CRDs): on a real cluster the fixture removes the ones a test
# created, in this order (webhooks first, so that they refuse nothing; CRDs last,
# after the namespaces that held their objects), unless the test is marked
# `@pytest.mark.leaves_cluster_objects("why")`.
CLUSTER_SCOPED_KINDS = (
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
)


def _namespace_timeout() -> float:
    return float(os.environ.get("ISTIO_LAB_TEST_NAMESPACE_TIMEOUT") or 300)


def wait_namespaces_gone(target: KubeTarget, names, timeout: float | None = None, interval: float = 0.25) -> float:
    """Wait until none of the namespaces reads any more (a deleted namespace stays Terminating
    until the namespace controller has emptied it); the seconds it took. AssertionError on timeout."""
    import time

    timeout = _namespace_timeout() if timeout is None else timeout
    start = time.monotonic()
    left = set(names)
    while left:
        left = {n for n in left if target.get("v1", "Namespace", n) is not None}
        if not left:
            break
        if time.monotonic() - start > timeout:
            raise AssertionError(f"namespaces still terminating after {timeout:.0f}s: {', '.join(sorted(left))} "
                                 "(set ISTIO_LAB_TEST_NAMESPACE_TIMEOUT to wait longer)")
        time.sleep(interval)
    return time.monotonic() - start


def _names(target: KubeTarget, api_version: str, kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in target.list(api_version, kind)}


def real_cluster_target(workdir: Path, real_kubeconfig: str, context: str | None = None,
                        leaves_cluster_objects: bool = False):
    """The `kube` fixture's real-cluster mode as a generator (tests drive it against a double
    posing as a remote cluster): a counting proxy in front of the cluster; afterwards every
    namespace the test created is deleted and waited for until it is gone, and the cluster-scoped
    objects it created (CLUSTER_SCOPED_KINDS) are deleted unless it leaves them."""
    proxy = CountingProxy(real_kubeconfig, context).start()
    kubeconfig = proxy.write_kubeconfig(workdir / "kubeconfig", context="proxy")
    target = KubeTarget(kubeconfig, "proxy", proxy, None, workdir)
    before = _names(target, "v1", "Namespace")
    cluster_before = {kind: _names(target, *kind) for kind in CLUSTER_SCOPED_KINDS}
    try:
        yield target
    finally:
        try:
            target._client = None  # the test may have installed CRDs: fresh discovery
            created = {kind: _names(target, *kind) - cluster_before[kind] for kind in CLUSTER_SCOPED_KINDS}
            if not leaves_cluster_objects:
                for kind in CLUSTER_SCOPED_KINDS[:2]:
                    for name in sorted(created[kind]):
                        target.delete(*kind, name)
            # Every namespace the test created (and so its objects), then wait until they are gone:
            # the next test may create them again, and a terminating namespace refuses new content.
            doomed = sorted(_names(target, "v1", "Namespace") - before)
            for name in doomed:
                target.delete("v1", "Namespace", name)
            wait_namespaces_gone(target, doomed)
            if not leaves_cluster_objects:
                for kind in CLUSTER_SCOPED_KINDS[2:]:
                    for name in sorted(created[kind]):
                        target.delete(*kind, name)
        finally:
            proxy.stop()


def _cluster_key(kubeconfig: str, context: str | None) -> str:
    """The API server a kubeconfig's context points at (its path and context when unreadable)."""
    import yaml

    try:
        with open(kubeconfig, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
        name = context or config.get("current-context")
        cluster = next(c["context"]["cluster"] for c in config.get("contexts") or [] if c.get("name") == name)
        return next(c["cluster"]["server"] for c in config.get("clusters") or [] if c.get("name") == cluster)
    except (OSError, StopIteration, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return f"{os.path.realpath(kubeconfig)}#{context or ''}"


@contextlib.contextmanager
def cluster_turn(kubeconfig: str, context: str | None = None):
    """Hold one real cluster for one test: an exclusive lock per API server, shared by every pytest
    worker and run on this machine. The lab's names are the course's (namespace microservice, Gateway
    ingressgateway80, students lab-alice): two tests at once on one cluster would collide on them, and
    the fixture's cleanup would remove the other test's namespaces. Tests that need no cluster (unit,
    lint, the double's own) still run on the other worker meanwhile."""
    key = hashlib.sha256(_cluster_key(kubeconfig, context).encode()).hexdigest()[:16]
    path = Path(os.environ.get("ISTIO_LAB_TEST_LOCK_DIR") or tempfile.gettempdir()) / f"istio-lab-cluster-{key}.lock"
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, and by the kernel if the worker dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _real_cluster(workdir: Path, real_kubeconfig: str, request=None):
    marker = request.node.get_closest_marker("leaves_cluster_objects") if request is not None else None
    context = os.environ.get("ISTIO_LAB_TEST_CONTEXT") or None
    with cluster_turn(real_kubeconfig, context):
        yield from real_cluster_target(workdir, real_kubeconfig, context, leaves_cluster_objects=marker is not None)
