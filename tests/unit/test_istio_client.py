"""The connection layer against a scripted HTTP server on 127.0.0.1:
kubeconfig/context loading, retries with backoff on transient answers,
and the messages of each failure."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import (  # noqa: E402
    ApiStatusError,
    KubeClient,
    KubeError,
)
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.resource import IstioResource, NotServed  # noqa: E402


class Scripted(BaseHTTPRequestHandler):
    """Answers each request with the next scripted (status, body) and records it."""

    def log_message(self, *args):
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization"), body))
        status, payload, *extra = self.server.script.pop(0) if self.server.script else (200, {})
        if status is None:  # the connection dropped before the answer
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (extra[0] if extra else {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture
def server(tmp_path):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    httpd.script, httpd.seen = [], []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "lab",
                "clusters": [{"name": "c", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": "t0ken"}}],
                "contexts": [
                    {"name": "lab", "context": {"cluster": "c", "user": "u"}},
                    {"name": "other", "context": {"cluster": "c", "user": "u"}},
                ],
            }
        )
    )
    httpd.kubeconfig = str(kubeconfig)
    httpd.url = url
    yield httpd
    httpd.shutdown()


def client(server, **kwargs):
    sleeps = []
    made = KubeClient(kubeconfig=server.kubeconfig, sleep=sleeps.append, **kwargs)
    made.sleeps = sleeps
    return made


def status(code, reason, message):
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


def test_kubeconfig_context_and_token(server):
    made = client(server)
    assert made.context == "lab" and made.server == server.url
    assert client(server, context="other").context == "other"
    server.script = [(200, {"kind": "VirtualServiceList", "apiVersion": "networking.istio.io/v1", "items": []})]
    assert made.request("list", "GET", "/apis/networking.istio.io/v1/virtualservices")["items"] == []
    assert server.seen[0][2] == "Bearer t0ken"
    assert made.counts == {"list": 1}


def test_transient_errors_are_retried_with_backoff(server):
    made = client(server)
    server.script = [
        (503, status(503, "ServiceUnavailable", "busy")),
        (429, status(429, "TooManyRequests", "slow")),
        (200, {"ok": True}),
    ]
    assert made.request("get", "GET", "/x") == {"ok": True}
    assert made.sleeps == [0.2, 0.4]
    assert made.counts == {"get": 3}


def test_transient_errors_give_up_with_a_clear_message(server):
    made = client(server)
    server.script = [(500, status(500, "InternalError", "etcd down"))] * 5
    with pytest.raises(ApiStatusError, match=r"kept failing \(500 InternalError\).*after 5 tries: etcd down"):
        made.request("get", "GET", "/x")
    assert made.sleeps == [0.2, 0.4, 0.8, 1.6]


def test_retry_after_of_a_429_is_honoured(server):
    """Issue 21: the server's Retry-After, not the client's own backoff, decides the wait (really slept here)."""
    made = KubeClient(kubeconfig=server.kubeconfig)
    server.script = [(429, status(429, "TooManyRequests", "slow down"), {"Retry-After": "2"}), (200, {"ok": True})]
    started = time.monotonic()
    assert made.request("get", "GET", "/x") == {"ok": True}
    assert 1.9 <= time.monotonic() - started < 3.0
    assert made.counts == {"get": 2}


def test_retry_after_of_a_503_is_bounded_by_the_tasks_timeout(server):
    made = client(server, timeout=30)
    server.script = [(503, status(503, "ServiceUnavailable", "restarting"), {"Retry-After": "3"}), (200, {"ok": True})]
    assert made.request("get", "GET", "/x") == {"ok": True}
    assert made.sleeps == [3.0]
    # more than the task has left: it stops at once and says what kept failing
    made = client(server, timeout=5)
    server.script = [(503, status(503, "ServiceUnavailable", "restarting"), {"Retry-After": "60"})]
    with pytest.raises(ApiStatusError, match=r"kept failing \(503 ServiceUnavailable\).*after 1 tries"):
        made.request("get", "GET", "/x")
    assert made.sleeps == []
    # without a timeout a Retry-After is followed up to MAX_RETRY_AFTER, within the tries
    made = client(server)
    server.script = [(429, status(429, "TooManyRequests", "slow"), {"Retry-After": "60"}), (200, {"ok": True})]
    assert made.request("get", "GET", "/x") == {"ok": True}
    assert made.sleeps == [10.0]


def test_a_task_with_a_timeout_waits_out_an_unreachable_api(server):
    """A control-plane restart: connections refused for a while. With a timeout the client keeps trying
    (backoff capped at 5 s) until the deadline; the clock is simulated."""
    now = [0.0]
    made = KubeClient(host="http://127.0.0.1:9", api_key="x", sleep=lambda s: now.__setitem__(0, now[0] + s),
                      clock=lambda: now[0], timeout=30)
    with pytest.raises(KubeError, match=r"cannot reach the Kubernetes API at http://127.0.0.1:9 .*tried 11 times over "
                                        r"30 s\).*rerun the playbook once the API answers"):
        made.request("list", "GET", "/x")
    assert made.counts == {"list": 11}


def test_a_write_whose_answer_was_lost_reports_its_own_result(server):
    """Issue 21: a create or delete applied by a try whose answer was lost; its retry is refused (409
    AlreadyExists, 404) by that very result, which is the success to report."""
    made = client(server)
    created = {"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x", "resourceVersion": "7"}}
    server.script = [(None, None), (409, status(409, "AlreadyExists", 'configmaps "a" already exists')),
                     (200, created)]
    assert made.request("create", "POST", "/api/v1/namespaces/x/configmaps",
                        body={"metadata": {"name": "a"}}) == created
    assert [seen[:2] for seen in server.seen] == [("POST", "/api/v1/namespaces/x/configmaps")] * 2 + [
        ("GET", "/api/v1/namespaces/x/configmaps/a")]
    server.script = [(None, None), (404, status(404, "NotFound", 'configmaps "a" not found'))]
    assert made.request("delete", "DELETE", "/api/v1/namespaces/x/configmaps/a") == {}
    # without a lost answer, the refusals stand
    server.script = [(409, status(409, "AlreadyExists", 'configmaps "a" already exists'))]
    with pytest.raises(ApiStatusError, match="409 AlreadyExists"):
        made.request("create", "POST", "/api/v1/namespaces/x/configmaps", body={"metadata": {"name": "a"}})


def test_bad_credentials_name_the_context(server):
    server.script = [(401, status(401, "Unauthorized", "Unauthorized"))]
    with pytest.raises(ApiStatusError, match=r"refused the credentials of context lab"):
        client(server).request("list", "GET", "/x")


def test_unreachable_api_names_server_and_context(server, tmp_path):
    made = KubeClient(host="http://127.0.0.1:9", api_key="x", sleep=lambda s: None)  # nothing listens on port 9
    with pytest.raises(KubeError, match=r"cannot reach the Kubernetes API at http://127.0.0.1:9 \(context none\)"):
        made.request("list", "GET", "/x")
    assert made.counts == {"list": 5}


def test_missing_kubeconfig(tmp_path):
    with pytest.raises(KubeError, match="kubeconfig .*missing does not exist"):
        KubeClient(kubeconfig=str(tmp_path / "missing"))


def test_a_kind_not_served_says_install_istio(server):
    server.script = [(404, "404 page not found\n")]
    resource = IstioResource(client(server), "VirtualService")
    with pytest.raises(NotServed, match=r"VirtualService .* not served .*context lab.*playbooks/istio.yml"):
        resource.list({"microservice"})


def test_writes_are_strict_and_lists_scoped(server):
    resource = IstioResource(client(server), "Gateway")
    server.script = [(200, {"items": []}), (200, {"items": []}), (201, {}), (404, status(404, "NotFound", "gone"))]
    resource.list({"microservice"})
    resource.list({"microservice", "istio-system"})
    resource.create({"metadata": {"name": "g", "namespace": "microservice"}})
    assert resource.delete("microservice", "g") is False
    paths = [(method, path) for method, path, _, _ in server.seen]
    assert paths == [
        ("GET", "/apis/networking.istio.io/v1/namespaces/microservice/gateways"),
        ("GET", "/apis/networking.istio.io/v1/gateways"),
        ("POST", "/apis/networking.istio.io/v1/namespaces/microservice/gateways?fieldValidation=Strict"),
        ("DELETE", "/apis/networking.istio.io/v1/namespaces/microservice/gateways/g"),
    ]


def test_cluster_wide_list_falls_back_to_namespaces_when_forbidden(server):
    resource = IstioResource(client(server), "Gateway")
    item = {"metadata": {"name": "g", "namespace": "a"}}
    server.script = [
        (403, status(403, "Forbidden", "cannot list at cluster scope")),
        (200, {"items": [item]}),
        (200, {"items": []}),
    ]
    assert list(resource.list({"a", "b"})) == [("a", "g")]
    assert [path for _, path, _, _ in server.seen][1:] == [
        "/apis/networking.istio.io/v1/namespaces/a/gateways",
        "/apis/networking.istio.io/v1/namespaces/b/gateways",
    ]


def test_module_processes_import_only_the_parts_of_kubernetes_they_use(server):
    # in a fresh process, as a module runs: the kubeconfig loader and REST
    # layer work without the library's ~850 API and model modules
    import subprocess
    import sys

    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import KubeClient;"
        "c = KubeClient(kubeconfig=sys.argv[2], light_imports=True);"
        "answer = c.request('list', 'GET', '/apis/networking.istio.io/v1/gateways');"
        "print(json.dumps([c.context, answer, len([n for n in sys.modules if n.startswith('kubernetes')])]))"
    )
    server.script = [(200, {"items": [{"metadata": {"name": "g"}}]})]
    out = subprocess.run([sys.executable, "-c", code, str(REPO / "collections"), server.kubeconfig],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    context, answer, loaded = json.loads(out)
    assert context == "lab" and answer == {"items": [{"metadata": {"name": "g"}}]}
    assert server.seen[0][2] == "Bearer t0ken"
    assert loaded < 50
