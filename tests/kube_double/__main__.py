"""Serve a kube-apiserver double until SIGTERM/SIGINT, for out-of-process users
(benchmark, classroom tests, manual kubectl sessions):

    .venv/bin/python -m tests.kube_double --kubeconfig /tmp/double.yaml --istio-crds

Prints the server URL on stdout once it listens.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from .server import DEFAULT_NAMESPACE_DELETION_DELAY, DEFAULT_TOKEN, KubeDouble


def _shared_dir() -> Path:
    return Path(os.environ.get("ISTIO_LAB_SHARED") or Path(__file__).resolve().parents[3] / "shared")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kube_double", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig (mode 0600)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (127.x only)")
    parser.add_argument("--port", type=int, default=0, help="port (0 = pick a free one)")
    parser.add_argument("--context", default="double", help="context/cluster name in the kubeconfig")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="bearer token the double accepts")
    parser.add_argument("--crds", nargs="*", default=[], metavar="FILE", help="CRD YAML files to install")
    parser.add_argument("--istio-crds", action="store_true", help="install the shared Istio 1.30.3 CRDs")
    parser.add_argument("--metallb-crds", action="store_true", help="install the shared MetalLB 0.16.1 CRDs")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with a self-signed certificate (kubectl sends tokens only over TLS)")
    parser.add_argument("--no-controllers", action="store_true", help="no simulated controllers (nothing gets ready)")
    parser.add_argument("--webhook-warmup-failures", type=int, default=0,
                        help="first N MetalLB webhook calls fail even once its endpoints exist")
    parser.add_argument("--namespace-deletion-delay", type=float, default=DEFAULT_NAMESPACE_DELETION_DELAY,
                        metavar="SECONDS", help="how long a deleted namespace stays Terminating (0 = gone at once)")
    parser.add_argument("--write-cost-ms", type=float, default=0.0, metavar="MS",
                        help="model a real server's cost: every write takes MS milliseconds (default 0: none)")
    parser.add_argument("--server-slots", type=int, default=2, metavar="N",
                        help="with --write-cost-ms, how many writes the modelled server serves at once (default 2)")
    args = parser.parse_args(argv)
    crds = list(args.crds)
    if args.istio_crds:
        crds.append(_shared_dir() / "crds" / "istio-1.30.3-crds.yaml")
    if args.metallb_crds:
        crds.append(_shared_dir() / "crds" / "metallb-0.16.1-crds.yaml")
    for path in crds:
        if not Path(path).is_file():
            parser.error(f"CRD file not found: {path} (set ISTIO_LAB_SHARED)")
    double = KubeDouble(crds=crds, controllers=not args.no_controllers, token=args.token, host=args.host,
                        port=args.port, webhook_warmup_failures=args.webhook_warmup_failures, tls=args.tls,
                        namespace_deletion_delay=args.namespace_deletion_delay,
                        write_cost=args.write_cost_ms / 1000, server_slots=args.server_slots)
    double.start()
    double.write_kubeconfig(args.kubeconfig, context=args.context)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(double.url, flush=True)
    stop.wait()
    double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
