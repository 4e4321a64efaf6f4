"""The HTTP face of the double: kube-apiserver's URL layout, discovery,
bearer-token auth, request log, fault injection; `KubeDouble` ties it together."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

from . import errors
from .catalog import BUILTIN_GROUP_ORDER, ResourceType, version_priority
from .controllers import NODE_NAME, Controllers
from .errors import ApiError
from .schema import load_crd_file
from .store import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, Store, WriteContext, now

DEFAULT_TOKEN = "istio-lab-test"
DEFAULT_USER = "kubernetes-admin"
# Seconds a deleted namespace stays Terminating (5.5 s in the recording; short here so the suite stays fast).
DEFAULT_NAMESPACE_DELETION_DELAY = 0.5
AGGREGATED_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
VERSION_INFO = {
    "major": "1", "minor": "36", "emulationMajor": "1", "emulationMinor": "36", "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "35", "gitVersion": "v1.36.2", "gitCommit": "98b35193b2ac7a23a673325f5e9b830ecd5ba406",
    "gitTreeState": "clean", "buildDate": "2026-11-25T21:13:04Z", "goVersion": "go1.26.6", "compiler": "gc",
    "platform": "linux/amd64",
}
# Verbs of subresources as kube-apiserver lists them in discovery.
_SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"], "scale": ["get", "patch", "update"], "approval": ["get", "patch", "update"],
    "ephemeralcontainers": ["get", "patch", "update"], "finalize": ["update"], "binding": ["create"],
    "eviction": ["create"], "token": ["create"], "log": ["get"], "exec": ["create", "get"],
    "portforward": ["create", "get"], "proxy": ["create", "delete", "get", "patch", "update"],
}
_STATUS_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
                   422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
                   504: "Timeout"}
_INTERNAL_PREFIX = "/_double/"


class Fault:
    def __init__(self, method, path_regex, status, body, times):
        self.method = method.upper()
        self.pattern = re.compile(path_regex)
        self.status = status
        self.body = body
        self.remaining = times


# What Go's strconv.ParseBool reads as true, as the API server reads its boolean query
# parameters (the Python client sends force=True).
GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")


def write_kubeconfig(path, url: str, token: str, ca_data: str | None, context: str) -> str:
    """A kubeconfig (mode 0600) for `url` with a bearer token, and the CA when the server speaks TLS."""
    cluster = {"server": url, **({"certificate-authority-data": ca_data} if ca_data else {})}
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": f"{context}-user", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": f"{context}-user"}}],
        "current-context": context,
    }
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    return os.fspath(path)


class RequestLog:
    """The request log of the double and of the counting proxy: what tests count.
    The owner sets `_log` (a list) and `_log_lock` (a lock)."""

    def _record(self, entry: dict) -> None:
        with self._log_lock:
            self._log.append(entry)

    def mark(self) -> int:
        with self._log_lock:
            return len(self._log)

    def requests(self, since: int | None = None) -> list[dict]:
        with self._log_lock:
            return list(self._log[since or 0:])

    def reset_requests(self) -> None:
        with self._log_lock:
            self._log.clear()


class KubeDouble(RequestLog):
    """An in-process kube-apiserver v1.36 stand-in on 127.0.0.1.

    >>> with KubeDouble(crds=[".../istio-1.30.3-crds.yaml"]) as double:
    ...     double.write_kubeconfig("/tmp/kubeconfig")
    """

    def __init__(self, crds=(), controllers: bool = True, token: str = DEFAULT_TOKEN, host: str = "127.0.0.1",
                 port: int = 0, webhook_warmup_failures: int = 0, node_ip: str = "127.0.0.1", tls: bool = False,
                 namespace_deletion_delay: float = DEFAULT_NAMESPACE_DELETION_DELAY, tokens: dict | None = None,
                 write_cost: float = 0.0, server_slots: int = 2):
        if not host.startswith("127."):
            raise ValueError("the double only listens on loopback (127.x) addresses")
        self.token = token
        self.tls = tls
        self._ca_data = None
        self.host = host
        self.port = port
        self.node_ip = node_ip
        # Other bearer tokens the double accepts: token -> user name (besides ServiceAccount
        # tokens found in `kubernetes.io/service-account-token` Secrets).
        self.tokens = dict(tokens or {})
        # A model of what a write costs a real kube-apiserver (admission, validation, etcd), for
        # benchmarks: every write holds one of `server_slots` slots for `write_cost` seconds.
        # 0 (the default, every test): the double answers as fast as it can.
        self.write_cost = write_cost
        self._write_slots = threading.BoundedSemaphore(max(1, server_slots))
        self.store = Store(namespace_deletion_delay=namespace_deletion_delay)
        self.controllers = Controllers(enabled=controllers, webhook_warmup_failures=webhook_warmup_failures)
        self.controllers.install(self.store)
        self._seed_cluster()
        for crd_source in crds:
            self.install_crds(crd_source)
        self._log: list[dict] = []
        self._log_lock = threading.Lock()
        self._faults: list[Fault] = []
        self._arrival_hooks: list = []
        self._server = None
        self._thread = None
        self.stopping = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> KubeDouble:
        self._server = _Server((self.host, self.port), _Handler)
        self._server.double = self
        if self.tls:
            from .tls import server_context

            context, self._ca_data = server_context(self.host)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"kube-double-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()  # as a stopped kube-apiserver: its clients' connections end too
            self._server = None

    def restart(self, down: float) -> None:
        """Stop, stay away `down` seconds (new connections refused), start again on the same port with the
        same objects: a control-plane restart (issue 21)."""
        self.stop()
        time.sleep(down)
        self.stopping.clear()
        self.start()

    def on_request(self, hook) -> None:
        """Call `hook(record)` as each request arrives, in the request's thread, before it is authenticated or
        answered (`record` as in the request log, without its status). A hook that stops the double leaves that
        request unanswered: its connection closes, as at a real server going down mid-request."""
        self._arrival_hooks.append(hook)

    def restart_on(self, predicate, down: float) -> threading.Event:
        """A control-plane restart that begins when a request for which `predicate(record)` is true arrives
        (that request is not answered; the double is away `down` seconds, then back with the same objects
        on the same port). Returns an Event set once the double answers again. The outage starts at a point
        the caller observes, not after a sleep: its verdict does not depend on how fast a playbook starts."""
        back, fired, lock = threading.Event(), threading.Event(), threading.Lock()

        def hook(record):
            with lock:
                if fired.is_set() or not predicate(record):
                    return
                fired.set()
            self.stop()  # synchronously: this request and every later one until the restart go unanswered

            def come_back():
                time.sleep(down)
                self.stopping.clear()
                self.start()
                back.set()

            threading.Thread(target=come_back, name=f"kube-double-restart-{self.port}", daemon=True).start()

        self.on_request(hook)
        back.fired = fired
        return back

    def __enter__(self) -> KubeDouble:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    # ------------------------------------------------------------------ setup helpers
    def _seed_cluster(self) -> None:
        """What a fresh kubeadm cluster has that the lab looks at: one Ready node
        and kube-proxy's configuration (iptables mode, strictARP off)."""
        with self.store.lock:
            nodes = self.store.type_for("", "v1", "nodes")
            self.store.put_object(nodes, {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE_NAME, "labels": {
                    "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                    "node-role.kubernetes.io/control-plane": ""}},
                "spec": {},
                "status": {
                    "addresses": [{"type": "InternalIP", "address": self.node_ip},
                                  {"type": "Hostname", "address": NODE_NAME}],
                    "capacity": {"cpu": "2", "memory": "4015868Ki", "pods": "110"},
                    "allocatable": {"cpu": "2", "memory": "3913468Ki", "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                    "message": "kubelet is posting ready status"}],
                    "nodeInfo": {"kubeletVersion": "v1.36.2", "containerRuntimeVersion": "containerd://2.1.4",
                                 "osImage": "Debian GNU/Linux 12 (bookworm)", "architecture": "amd64",
                                 "operatingSystem": "linux"},
                },
            })
            self.store.put_object(self.store.type_for("", "v1", "configmaps"), {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"app": "kube-proxy"}},
                "data": {"config.conf": yaml.safe_dump({
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
                    "mode": "", "ipvs": {"strictARP": False, "scheduler": ""},
                    "clusterCIDR": "10.244.0.0/16"}, sort_keys=True)},
            })

    def install_crds(self, source) -> None:
        """Install CRDs from a YAML file path or a list of CRD dicts."""
        crds = load_crd_file(source) if isinstance(source, (str, os.PathLike)) else list(source)
        self.store.install_crds(crds)

    def write_kubeconfig(self, path, context: str = "double") -> str:
        return write_kubeconfig(path, self.url, self.token, self._ca_data, context)

    def user_of(self, token: str) -> str | None:
        """Who a bearer token authenticates, or None."""
        if token == self.token:
            return DEFAULT_USER
        if token in self.tokens:
            return self.tokens[token]
        with self.store.lock:
            for secret in self.store.items("", "secrets"):
                if secret.get("type") != "kubernetes.io/service-account-token":
                    continue
                encoded = (secret.get("data") or {}).get("token")
                try:
                    if encoded and base64.b64decode(encoded).decode() == token:
                        meta = secret["metadata"]
                        account = (meta.get("annotations") or {}).get("kubernetes.io/service-account.name", "")
                        return f"system:serviceaccount:{meta['namespace']}:{account}"
                except ValueError:
                    continue
        return None

    # ------------------------------------------------------------------ fault injection
    def inject(self, method: str, path_regex: str, status: int, body=None, times: int = 1) -> None:
        """Answer the next `times` requests matching method ("*" = any) and
        path_regex (searched in the URL path) with `status` (and `body`, a
        Status dict built from the code when omitted)."""
        if body is None:
            reason = _STATUS_REASONS.get(status, "Unknown")
            body = errors.status_body(status, reason, f"injected fault: {reason}")
            if status == 429:
                body["details"] = {"retryAfterSeconds": 1}
        self._faults.append(Fault(method, path_regex, status, body, times))

    def _take_fault(self, method: str, path: str):
        with self._log_lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method in ("*", method) and fault.pattern.search(path):
                    fault.remaining -= 1
                    return fault
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, *args, **kwargs):
        self._open, self._open_lock = set(), threading.Lock()  # the connections being served
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            open_now, self._open = list(self._open), set()
        for request in open_now:
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _parse_resource_path(parts: list[str]):
    """Split /api/v1/... or /apis/g/v/... (already split) into
    (group, version, namespace, plural, name, subresource) or None."""
    if parts[0] == "api":
        if len(parts) < 3:
            return None
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 4:
            return None
        group, version, rest = parts[1], parts[2], parts[3:]
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) if len(rest) > 2 else ""
    return group, version, namespace, plural, name, subresource


def describe_request(method: str, path: str, query: dict) -> dict:
    """The request log's verb and resource coordinates of a request."""
    parts = [unquote(p) for p in path.split("/") if p]
    parsed = _parse_resource_path(parts) if parts and parts[0] in ("api", "apis") else None
    if parsed is None:
        return {"verb": method.lower() if method != "GET" else "get", "discovery": True}
    group, version, namespace, plural, name, subresource = parsed
    if method == "GET":
        verb = "get" if name else ("watch" if query.get("watch") in ("true", "1") else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
    return {"verb": verb, "group": group, "version": version, "namespace": namespace, "resource": plural,
            "name": name, "subresource": subresource or None, "discovery": False}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-double"

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr access log
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle
        # plus delayed ACKs add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # every method goes through one dispatcher
    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    # ------------------------------------------------------------------ plumbing
    @property
    def double(self) -> KubeDouble:
        return self.server.double

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, code: int, body, content_type: str = "application/json", headers=None) -> None:
        if isinstance(body, (dict, list)):
            payload = json.dumps(body, separators=(",", ":")).encode()
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = body or b""
        self._status = code
        self._log_request()  # before answering: a client may read the log right after the answer
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in (headers or []):
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _log_request(self) -> None:
        record = getattr(self, "_record_entry", None)
        if record is not None:
            record["status"] = self._status
            self.double._record(record)
            self._record_entry = None

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        self._status = 0
        self._record_entry = None
        body = self._read_body()
        if path.startswith(_INTERNAL_PREFIX):
            self._internal(path, query)
            return
        record = {"time": time.time(), "method": self.command, "path": path, "query": query, "verb": "",
                  "group": None, "version": None, "resource": None, "subresource": None, "namespace": None,
                  "name": None, "dry_run": query.get("dryRun") == "All", "status": 0,
                  "field_manager": query.get("fieldManager"), "content_type": self.headers.get("Content-Type"),
                  "user_agent": self.headers.get("User-Agent", ""), "user": None}
        record.update(describe_request(self.command, path, query))
        for hook in list(self.double._arrival_hooks):
            hook(record)
        if self.double.stopping.is_set():  # a hook took the server down: this request goes unanswered
            self.double._record(record)  # status 0: never answered
            self.close_connection = True
            return
        self._record_entry = record
        try:
            fault = self.double._take_fault(self.command, path)
            if fault is not None:
                raise ApiError(fault.status, fault.body)
            self._authenticate()
            if self.double.write_cost and self.command in ("POST", "PUT", "PATCH", "DELETE"):
                with self.double._write_slots:
                    time.sleep(self.double.write_cost)
            self._route(path, query, body)
        except ApiError as exc:
            self._send(exc.code, exc.body, exc.content_type)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # a bug in the double: answer 500 so the test shows it
            import traceback

            traceback.print_exc()
            self._send(500, errors.status_body(500, "InternalError", f"kube-double bug: {exc!r}"))
        self._log_request()

    def _internal(self, path: str, query: dict) -> None:
        """The request log for out-of-process users: GET (`?since=N` = from the
        N-th record on; `count` is the log's length, a mark), DELETE clears it."""
        if path == "/_double/requests" and self.command == "GET":
            since = int(query.get("since") or 0)
            self._send(200, {"count": self.double.mark(), "requests": self.double.requests(since)})
        elif path == "/_double/requests" and self.command == "DELETE":
            self.double.reset_requests()
            self._send(200, {"cleared": True})
        else:
            self._send(404, "404 page not found\n", "text/plain; charset=utf-8")

    def _authenticate(self) -> None:
        """Bearer tokens: the double's own (the admin), the extra `tokens`, and the tokens of
        ServiceAccount token Secrets (as the token controller fills them). The user goes into the
        request log; no authorization follows (the double allows every authenticated request)."""
        header = self.headers.get("Authorization", "")
        token = header[len("Bearer "):] if header.startswith("Bearer ") else None
        user = self.double.user_of(token) if token else None
        if user is None:
            raise errors.unauthorized()
        if self._record_entry is not None:
            self._record_entry["user"] = user

    # ------------------------------------------------------------------ routing
    def _route(self, path: str, query: dict, body: bytes) -> None:
        parts = [unquote(p) for p in path.split("/") if p]
        aggregated = "as=APIGroupDiscoveryList" in (self.headers.get("Accept") or "") and \
            "v=v2;" in (self.headers.get("Accept") or "").replace("v=v2beta1", "")
        store = self.double.store
        if self.command in ("GET", "HEAD"):
            if path == "/version":
                return self._send(200, VERSION_INFO)
            if path in ("/healthz", "/readyz", "/livez"):
                return self._send(200, "ok", "text/plain; charset=utf-8")
            if path == "/api":
                if aggregated:
                    return self._send(200, self._aggregated([("", "v1")]), AGGREGATED_TYPE)
                return self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.double.host}:{self.double.port}"}]})
            if path == "/apis":
                with store.lock:
                    if aggregated:
                        return self._send(200, self._aggregated(self._group_versions()), AGGREGATED_TYPE)
                    return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                        self._group_doc(g) for g in self._group_names()]})
            if path == "/openapi/v3":
                with store.lock:
                    paths = {(f"apis/{g}/{v}" if g else f"api/{v}"): {
                        "serverRelativeURL": f"/openapi/v3/{'apis/' + g if g else 'api'}/{v}"
                                             f"?hash={store.resource_version}"}
                        for g, v in [("", "v1")] + self._group_versions()}
                return self._send(200, {"paths": paths})
            if path.startswith("/openapi/v3/"):
                with store.lock:
                    return self._send(200, self._openapi_v3(path[len("/openapi/v3/"):]))
            if len(parts) == 2 and parts[0] == "apis":
                with store.lock:
                    if parts[1] not in self._group_names():
                        raise errors.page_not_found()
                    return self._send(200, dict(self._group_doc(parts[1]), kind="APIGroup", apiVersion="v1"))
            if (len(parts) == 2 and parts[0] == "api") or (len(parts) == 3 and parts[0] == "apis"):
                group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
                with store.lock:
                    types = [t for t in store.served_types() if t.group == group and t.version == version]
                    if not types:
                        raise errors.page_not_found()
                    return self._send(200, self._resource_list(group, version, types))
        if not parts or parts[0] not in ("api", "apis"):
            raise errors.page_not_found()
        parsed = _parse_resource_path(parts)
        if parsed is None:
            raise errors.page_not_found()
        group, version, namespace, plural, name, subresource = parsed
        rtype = store.type_for(group, version, plural)
        # Of the subresources only /status has behaviour; the others are listed in discovery only.
        if rtype is None or (subresource and (subresource not in rtype.subresources or subresource != "status")):
            raise errors.page_not_found()
        if namespace is not None and not rtype.namespaced:
            raise errors.page_not_found()
        self._resource(rtype, namespace, name, subresource, query, body)

    def _resource(self, rtype: ResourceType, namespace, name, subresource, query, body: bytes) -> None:
        store = self.double.store
        if query.get("dryRun") not in (None, "", "All"):
            raise errors.bad_request(f'unsupported dry run option "{query["dryRun"]}"')
        ctx = WriteContext(dry_run=query.get("dryRun") == "All", field_manager=query.get("fieldManager"),
                           user_agent=self.headers.get("User-Agent", ""),
                           force=query.get("force") in GO_TRUE,
                           field_validation=query.get("fieldValidation", ""), subresource=subresource)
        if rtype.deprecation_warning:
            ctx.warnings.append(rtype.deprecation_warning)
        method = "GET" if self.command == "HEAD" else self.command
        if method == "GET":
            if name:
                return self._send(200, store.get(rtype, namespace, name), headers=_warnings(ctx))
            if query.get("watch") in ("true", "1"):
                return self._watch(rtype, namespace, query)
            listed = store.list(rtype, namespace, query.get("labelSelector", ""), query.get("fieldSelector", ""))
            if "as=Table" in (self.headers.get("Accept") or ""):
                return self._send(200, _table(listed, rtype), "application/json", headers=_warnings(ctx))
            return self._send(200, listed, headers=_warnings(ctx))
        if method == "POST" and not name:
            obj = store.create(rtype, namespace, _decode(body, self.headers.get("Content-Type")), ctx)
            return self._send(201, obj, headers=_warnings(ctx))
        if method == "PUT" and name:
            obj = store.update(rtype, namespace, name, _decode(body, self.headers.get("Content-Type")), ctx)
            return self._send(200, obj, headers=_warnings(ctx))
        if method == "PATCH" and name:
            existed = store.find(rtype.group, rtype.plural, namespace, name) is not None
            obj = store.patch(rtype, namespace, name, self.headers.get("Content-Type", ""), body, ctx)
            return self._send(200 if existed else 201, obj, headers=_warnings(ctx))
        if method == "DELETE" and name:
            return self._send(200, store.delete(rtype, namespace, name, ctx), headers=_warnings(ctx))
        if method == "DELETE":
            return self._send(200, store.delete_collection(rtype, namespace, query.get("labelSelector", ""),
                                                           query.get("fieldSelector", ""), ctx))
        raise errors.method_not_allowed()

    def _watch(self, rtype: ResourceType, namespace, query) -> None:
        """A minimal watch: the current objects as ADDED (unless a
        resourceVersion is given), then changes polled from the store until
        timeoutSeconds (default 30) or the double stops."""
        store = self.double.store
        deadline = time.monotonic() + min(float(query.get("timeoutSeconds") or 30), 300)
        self._status = 200
        self._log_request()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        label_selector, field_selector = query.get("labelSelector", ""), query.get("fieldSelector", "")
        since = int(query.get("resourceVersion") or 0)

        def snapshot():
            listed = store.list(rtype, namespace, label_selector, field_selector)
            return {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in listed["items"]}

        seen = snapshot()
        try:
            for obj in seen.values():
                if int(obj["metadata"]["resourceVersion"]) > since:
                    self._chunk({"type": "ADDED", "object": obj})
            while time.monotonic() < deadline and not self.double.stopping.is_set():
                time.sleep(0.05)
                current = snapshot()
                for key, obj in current.items():
                    if key not in seen:
                        self._chunk({"type": "ADDED", "object": obj})
                    elif obj["metadata"]["resourceVersion"] != seen[key]["metadata"]["resourceVersion"]:
                        self._chunk({"type": "MODIFIED", "object": obj})
                for key in seen.keys() - current.keys():
                    self._chunk({"type": "DELETED", "object": seen[key]})
                seen = current
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _chunk(self, event: dict) -> None:
        data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _openapi_v3(self, group_version_path: str) -> dict:
        """A skeleton OpenAPI v3 document for one group/version: a PATCH
        operation per kind that declares the fieldValidation parameter, which
        is what kubectl checks before using server-side field validation
        (schemas are not served: kubectl then computes patches from its
        built-in types, or merge patches for custom resources)."""
        parts = group_version_path.split("/")
        group, version = ("", parts[1]) if parts[0] == "api" and len(parts) == 2 else (
            (parts[1], parts[2]) if len(parts) == 3 else (None, None))
        types = [t for t in self.double.store.served_types() if t.group == group and t.version == version]
        if not types:
            raise errors.page_not_found()
        paths = {}
        for rtype in types:
            prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
            scope = "/namespaces/{namespace}" if rtype.namespaced else ""
            patch_types = [STRATEGIC_PATCH] if not rtype.is_custom else []
            paths[f"{prefix}{scope}/{rtype.plural}/{{name}}"] = {"patch": {
                "operationId": f"patch{rtype.kind}",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rtype.kind},
                "parameters": [{"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                               for p in ("dryRun", "fieldManager", "fieldValidation", "force")],
                "requestBody": {"content": {t: {"schema": {"type": "object"}} for t in
                                            [JSON_PATCH, MERGE_PATCH, APPLY_PATCH] + patch_types}},
                "responses": {"200": {"description": "OK"}}}}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.36.2"}, "paths": paths,
                "components": {"schemas": {}}}

    # ------------------------------------------------------------------ discovery documents
    def _group_names(self) -> list[str]:
        served = {t.group for t in self.double.store.served_types() if t.group}
        custom = sorted(served - set(BUILTIN_GROUP_ORDER))
        return [g for g in BUILTIN_GROUP_ORDER if g in served] + custom

    def _versions(self, group: str) -> list[str]:
        versions = {t.version for t in self.double.store.served_types() if t.group == group}
        return sorted(versions, key=version_priority)

    def _group_versions(self) -> list[tuple[str, str]]:
        return [(g, v) for g in self._group_names() for v in self._versions(g)]

    def _group_doc(self, group: str) -> dict:
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in self._versions(group)]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def _resource_list(self, group: str, version: str, types: list[ResourceType]) -> dict:
        resources = []
        for rtype in sorted(types, key=lambda t: t.plural):
            entry = {"name": rtype.plural, "singularName": rtype.singular, "namespaced": rtype.namespaced,
                     "kind": rtype.kind, "verbs": rtype.verbs}
            if rtype.short_names:
                entry["shortNames"] = rtype.short_names
            if rtype.categories:
                entry["categories"] = rtype.categories
            resources.append(entry)
            for sub in rtype.subresources:
                sub_entry = {"name": f"{rtype.plural}/{sub}", "singularName": "", "namespaced": rtype.namespaced,
                             "kind": "Scale" if sub == "scale" else rtype.kind,
                             "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"])}
                if sub == "scale":
                    sub_entry.update(group="autoscaling", version="v1")
                resources.append(sub_entry)
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": resources}

    def _aggregated(self, group_versions: list[tuple[str, str]]) -> dict:
        store = self.double.store
        by_group: dict[str, list] = {}
        for group, version in group_versions:
            types = sorted((t for t in store.served_types() if t.group == group and t.version == version),
                           key=lambda t: t.plural)
            resources = []
            for rtype in types:
                entry = {"resource": rtype.plural,
                         "responseKind": {"group": rtype.group, "version": rtype.version, "kind": rtype.kind},
                         "scope": "Namespaced" if rtype.namespaced else "Cluster",
                         "singularResource": rtype.singular, "verbs": rtype.verbs}
                if rtype.short_names:
                    entry["shortNames"] = rtype.short_names
                if rtype.categories:
                    entry["categories"] = rtype.categories
                if rtype.subresources:
                    entry["subresources"] = [{
                        "subresource": sub,
                        "responseKind": ({"group": "autoscaling", "version": "v1", "kind": "Scale"} if sub == "scale"
                                         else {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}),
                        "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"])} for sub in rtype.subresources]
                resources.append(entry)
            by_group.setdefault(group, []).append({"version": version, "resources": resources,
                                                   "freshness": "Current"})
        items = [{"metadata": {"name": g} if g else {"creationTimestamp": None}, "versions": versions}
                 for g, versions in by_group.items()]
        return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
                "items": items}


def _decode(body: bytes, content_type) -> dict:
    if not body:
        raise errors.bad_request("the body of the request was empty")
    if content_type and "protobuf" in content_type:
        # kube-apiserver accepts protobuf; the double only speaks JSON and YAML.
        raise errors.unsupported_media_type(["application/json", "application/yaml"])
    try:
        if content_type and "yaml" in content_type:
            return yaml.safe_load(body)
        return json.loads(body)
    except ValueError as exc:
        raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


def _warnings(ctx: WriteContext) -> list[tuple[str, str]]:
    return [("Warning", f'299 - "{w.replace(chr(34), chr(92) + chr(34))}"') for w in ctx.warnings]


def _table(listed: dict, rtype: ResourceType) -> dict:
    """A meta.k8s.io/v1 Table (what `kubectl get` asks for): name and creation time."""
    rows = []
    for item in listed["items"]:
        meta = item.get("metadata", {})
        rows.append({"cells": [meta.get("name"), meta.get("creationTimestamp") or now()],
                     "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": listed["metadata"]["resourceVersion"]},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "description": "Name of the object",
                 "priority": 0},
                {"name": "Created At", "type": "date", "format": "", "description": "Creation timestamp",
                 "priority": 0}],
            "rows": rows}
