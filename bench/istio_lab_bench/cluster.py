"""A real cluster (ISTIO_LAB_TEST_KUBECONFIG): timed directly, counted apart.

Timed runs talk to the cluster with its own kubeconfig, nothing in between: the
suite's counting proxy (tests/kube_double/proxy.py) costs about 9 ms a request
in Python and so once inflated the methods that send many requests (issue 23:
`kubectl apply --server-side` looked 2.5x slower than istio_routes on a no-op;
measured directly they were level). The requests are counted in a separate
pass of the same method over its own namespaces, untimed, through the proxy,
which logs each request exactly as the double does. The proxy serves TLS (the
double's self-signed certificate, CA in its kubeconfig) because kubectl sends
credentials only over TLS.

On the double there is one pass: it counts in-process, with no proxy.
"""

from __future__ import annotations

from pathlib import Path

from tests.kube_double.proxy import CountingProxy

from .harness import COUNTED, TIMED, Api, Pass


class ClusterTarget:
    kind = "cluster"
    requests_source = "counted in a separate untimed pass through the counting proxy"

    def __init__(self, workdir: Path, real_kubeconfig: Path):
        self.real_kubeconfig = Path(real_kubeconfig)
        # What the harness reads and writes itself (namespaces, reading back): untimed, uncounted, direct.
        self.kubeconfig = self.real_kubeconfig
        self.api = Api(self.real_kubeconfig)
        self.workdir = workdir
        self.proxy: CountingProxy | None = None

    def _proxy(self) -> CountingProxy:
        if self.proxy is None:
            self.proxy = CountingProxy(str(self.real_kubeconfig), tls=True).start()
            self.proxy_kubeconfig = Path(self.proxy.write_kubeconfig(self.workdir / "proxy-kubeconfig.yaml"))
        return self.proxy

    def passes(self) -> list[Pass]:
        """The timed pass straight at the cluster, then the counting pass through the proxy (own namespaces)."""
        proxy = self._proxy()
        return [Pass(TIMED, self.real_kubeconfig, timed=True, counts=None),
                Pass(COUNTED, self.proxy_kubeconfig, timed=False, counts=ProxyCounts(proxy), scope_suffix="-c")]

    def cleanup(self, namespaces: set[str]) -> None:
        """Delete the run's namespaces (and so its objects); the cluster finishes that in the background."""
        self.api.delete_namespaces(namespaces)

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()


class ProxyCounts:
    def __init__(self, proxy: CountingProxy):
        self.proxy = proxy

    def records(self) -> list[dict]:
        return self.proxy.requests()

    def reset(self) -> None:
        self.proxy.reset_requests()
