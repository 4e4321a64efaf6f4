"""A counting reverse proxy: HTTP (or, with `tls=True`, HTTPS) on 127.0.0.1 in,
a real cluster out (with the kubeconfig's TLS and credentials). Tests talk to
the proxy so that requests are counted the same way as with the double.

A request with the proxy's test token (what the `kube` fixture's kubeconfig
holds) goes out with the kubeconfig's credentials; a request with any other
`Authorization` header (a student's ServiceAccount token) goes out with that
header and nothing of the proxy's own (no token, no client certificate), so
the cluster authenticates and authorizes the client itself. A request without
credentials gets 401 from the proxy.

kubectl (client-go) sends a kubeconfig's credentials only to https:// servers,
so kubectl through the proxy needs `tls=True`: the proxy then serves the
double's self-signed certificate (tests/kube_double/tls.py) and its kubeconfig
carries that CA, exactly like `KubeDouble(tls=True)`."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import urllib3

from .server import DEFAULT_TOKEN, RequestLog, describe_request, write_kubeconfig

_HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                "transfer-encoding", "upgrade", "host", "authorization", "content-length", "content-encoding"}


class CountingProxy(RequestLog):
    """Forward everything to the cluster of `kubeconfig`/`context`; log each
    request like KubeDouble does (mark/requests/reset_requests)."""

    def __init__(self, kubeconfig: str, context: str | None = None, token: str = DEFAULT_TOKEN,
                 tls: bool = False):
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, context=context or None,
                                client_configuration=configuration)
        self.configuration = configuration
        self.upstream = configuration.host.rstrip("/")
        self.token = token
        self.tls = tls
        self._ca_data = None
        verify = "CERT_REQUIRED" if configuration.verify_ssl else "CERT_NONE"
        self.pool = urllib3.PoolManager(
            num_pools=4, maxsize=16, cert_reqs=verify,
            ca_certs=configuration.ssl_ca_cert, cert_file=configuration.cert_file, key_file=configuration.key_file)
        # For requests that carry their own Authorization: no client certificate, or kube-apiserver
        # would authenticate the kubeconfig's user (x509 comes first) instead of the client's token.
        self.own_auth_pool = urllib3.PoolManager(num_pools=4, maxsize=16, cert_reqs=verify,
                                                 ca_certs=configuration.ssl_ca_cert)
        self._log: list[dict] = []
        self._log_lock = threading.Lock()
        self._server = None
        self.port = 0

    def _upstream_headers(self) -> dict:
        headers = {}
        auth = self.configuration.get_api_key_with_prefix("authorization")
        if auth:
            headers["Authorization"] = auth
        return headers

    def start(self) -> CountingProxy:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        self._server.proxy = self
        if self.tls:
            from .tls import server_context

            context, self._ca_data = server_context("127.0.0.1")
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path, context: str = "proxy") -> str:
        return write_kubeconfig(path, self.url, self.token, self._ca_data, context)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - no access log on stderr
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # see server._Handler.setup

    def do_GET(self):
        self._forward()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _forward(self) -> None:
        proxy: CountingProxy = self.server.proxy
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        record = {"time": time.time(), "method": self.command, "path": split.path.rstrip("/") or "/",
                  "query": query, "dry_run": query.get("dryRun") == "All", "status": 0,
                  "field_manager": query.get("fieldManager"), "content_type": self.headers.get("Content-Type"),
                  "user_agent": self.headers.get("User-Agent", "")}
        record.update(describe_request(self.command, record["path"], query))
        own_auth = self.headers.get("Authorization", "")
        if not own_auth:
            payload = (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                       b'"message":"Unauthorized","reason":"Unauthorized","code":401}')
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            record["status"] = 401
            proxy._record(record)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        if own_auth == f"Bearer {proxy.token}":
            headers.update(proxy._upstream_headers())  # the test token stands for the kubeconfig's credentials
            pool = proxy.pool
        else:
            headers["Authorization"] = own_auth  # a client's own credentials (a student's token) pass through
            pool = proxy.own_auth_pool
        record["own_credentials"] = pool is proxy.own_auth_pool
        response = pool.request(self.command, proxy.upstream + self.path, body=body, headers=headers,
                                      preload_content=False, redirect=False, retries=False,
                                      timeout=urllib3.Timeout(connect=10, read=330))
        record["status"] = response.status
        proxy._record(record)
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() not in _HOP_HEADERS:
                self.send_header(name, value)
        streaming = query.get("watch") in ("true", "1")
        try:
            if streaming:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in response.stream(4096, decode_content=True):
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True
            else:
                payload = response.read(decode_content=True)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            response.release_conn()
