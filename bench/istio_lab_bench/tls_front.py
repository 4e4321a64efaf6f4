"""A loopback TLS front for the counting proxy, which speaks plain http.

kubectl only sends a kubeconfig's credentials to https:// servers (clientcmd
drops the user's auth for plain http), so through the proxy it would get 401
on every request. Against a real cluster the benchmark puts this front before
the proxy for every method alike: TLS on 127.0.0.1 with the double's
self-signed certificate (tests/kube_double/tls.py), bytes relayed as they are
to the proxy (HTTP/1.1 only: no ALPN h2 is offered). The double itself serves
TLS (`--tls`) and needs no front.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from tests.kube_double.tls import server_context


class TlsFront:
    def __init__(self, backend_url: str):
        backend = urlsplit(backend_url)
        if backend.scheme != "http" or not (backend.hostname or "").startswith("127."):
            raise ValueError(f"the TLS front only relays to http://127.x, not {backend_url}")
        self.backend = (backend.hostname, backend.port or 80)
        self.context, self.authority = server_context("127.0.0.1")
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
            with tls, socket.create_connection(self.backend) as plain:
                plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while True:
                    # Bytes already decrypted inside the TLS object do not show up in select().
                    readable = [tls] if tls.pending() else select.select([tls, plain], [], [], 300)[0]
                    if not readable:
                        return
                    for source, sink in ((tls, plain), (plain, tls)):
                        if source in readable:
                            data = source.recv(65536)
                            if not data:
                                return
                            sink.sendall(data)
        except (OSError, ssl.SSLError):
            return

    def kubeconfig_from(self, backend_kubeconfig: Path, out: Path) -> Path:
        """`backend_kubeconfig` with its cluster pointed at this front (credentials unchanged)."""
        config = yaml.safe_load(backend_kubeconfig.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"] = {"server": self.url, "certificate-authority-data": self.authority}
        out.touch(mode=0o600)
        out.write_text(yaml.safe_dump(config, sort_keys=False))
        return out

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
