"""A real cluster (ISTIO_LAB_TEST_KUBECONFIG) seen through the test suite's counting proxy.

The proxy (tests/kube_double/proxy.py) listens on 127.0.0.1 and logs each
request exactly as the double does, so requests are counted at the client
side of the real kube-apiserver with the same classification. It serves TLS
(`tls=True`, the double's self-signed certificate, CA in its kubeconfig)
because kubectl sends credentials only over TLS; every method goes through it
alike.
"""

from __future__ import annotations

from pathlib import Path

from tests.kube_double.proxy import CountingProxy

from .harness import Api


class ClusterTarget:
    kind = "cluster"

    def __init__(self, workdir: Path, real_kubeconfig: Path):
        self.proxy = CountingProxy(str(real_kubeconfig), tls=True).start()
        self.kubeconfig = Path(self.proxy.write_kubeconfig(workdir / "kubeconfig.yaml"))
        self.api = Api(self.kubeconfig)

    def records(self) -> list[dict]:
        return self.proxy.requests()

    def reset(self) -> None:
        self.proxy.reset_requests()

    def cleanup(self, namespaces: set[str]) -> None:
        """Delete the run's namespaces (and so its objects); the cluster finishes that in the background."""
        self.api.delete_namespaces(namespaces)

    def close(self) -> None:
        self.proxy.stop()
