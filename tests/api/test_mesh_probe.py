"""The in-mesh probes through istio-lab's client (issue 27, item 4): module lab_mesh_probe (module_utils
istio_lab/mesh_probe.py), which roles/lab_verify/tasks/mesh.yml runs, rides out 429/5xx answers and dropped
connections as every istio-lab module does, on each of its steps: the client pod's LIST, the exec handshake,
the gateway's log.

The double answers the exec subresource 404 (it runs no containers): against it, the request is retried past
the injected 503s and stops at the 404, reported in the entry; the command's output and exit code are tested
with a scripted websocket (a real cluster's part). The log is the double's injected answer."""

from __future__ import annotations

import pytest

from tests.helpers import run_playbook

pytestmark = pytest.mark.api

HOST = "httpbin.lab.test"
PLAN = [{"chapter": "6", "host": HOST, "url": f"http://{HOST}/", "route_problems": [],
         "client": {"namespace": "egress", "app": "curl", "container": "curl"},
         "via": {"namespace": "istio-system", "selector": "istio=egressgateway", "container": "istio-proxy"},
         "exec_argv": ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"http://{HOST}/"],
         "exec_command": f"curl -sS -o /dev/null -w %{{http_code}} http://{HOST}/",
         "kubectl": ["kubectl exec ..."], "log_pattern": f"outbound|80||{HOST}"}]
LOG = f'[2026-12-04T10:00:00.000Z] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 9 3 2 outbound|80||{HOST}\n'


def deployment(namespace, name, labels):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": name.split("-")[0], "image": "curl:8"}]}}}}


@pytest.fixture
def mesh(kube):
    """The client's and the egress gateway's pods, and the faults: every step meets 503s (or a 500) first."""
    double = kube.require_double("injects faults and the log's answer")
    for namespace in ("egress", "istio-system"):
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    kube.create(deployment("egress", "curl", {"app": "curl"}))
    kube.create(deployment("istio-system", "istio-egressgateway", {"istio": "egressgateway"}))
    double.inject("GET", r"/namespaces/egress/pods$", 503, times=2)
    double.inject("GET", r"/namespaces/egress/pods/[^/]+/exec$", 503, times=2)
    double.inject("GET", r"/namespaces/istio-system/pods$", 429, times=1)
    double.inject("GET", r"/namespaces/istio-system/pods/[^/]+/log$", 500, times=1)
    double.inject("GET", r"/namespaces/istio-system/pods/[^/]+/log$", 200, body=LOG, times=1)
    return double


def test_each_step_rides_out_the_faults_and_the_exec_stops_at_the_doubles_404(kube, mesh):
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import KubeClient
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.mesh_probe import mesh_probe
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.verify import lab_verify_mesh_report

    pauses = []
    client = KubeClient(kubeconfig=kube.kubeconfig, context=kube.context, sleep=pauses.append)
    mark = kube.mark()
    result = mesh_probe(client, PLAN)
    [done], [log] = result["execs"], result["logs"]
    assert done["pod"].startswith("curl-") and done["attempts"] == 3, done
    assert done["failed"] and "404" in done["msg"], done  # not served by the double: a real cluster's part
    assert log == {"item": {"url": PLAN[0]["url"]}, "pod": log["pod"], "failed": False, "log": LOG, "msg": ""}
    statuses = [(r["path"].rsplit("/", 1)[-1], r["status"]) for r in kube.requests(mark)]
    assert statuses == [("pods", 503), ("pods", 503), ("pods", 200), ("exec", 503), ("exec", 503), ("exec", 404),
                        ("pods", 429), ("pods", 200), ("log", 500), ("log", 200)], statuses
    assert pauses == [0.2, 0.4, 0.2, 0.4, 0.2, 0.2]  # the client's backoff, each step from its first try
    assert client.counts == {"list": 5, "exec": 3, "get": 2}
    [row] = lab_verify_mesh_report(PLAN, result["execs"], result["logs"])
    assert not row["ok"] and "404" in row["explanation"], row


class Stream:
    """A scripted exec websocket: `script` is what each connection does (dropped, or its output and status)."""

    def __init__(self, script):
        self.script = script

    def __call__(self, configuration, url, headers, capture_all):
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        self.url, self.headers, self.step = url, headers, step
        return self

    def run_forever(self, timeout=None):
        pass

    def is_open(self):
        return False

    def read_channel(self, channel, timeout=0):
        return {1: self.step.get("stdout", ""), 2: self.step.get("stderr", "")}[channel]

    @property
    def returncode(self):
        if self.step.get("rc") is None:  # closed without the command's status: what the library meets when dropped
            raise TypeError("'NoneType' object is not subscriptable")
        return self.step["rc"]


class BadStatus(Exception):
    def __init__(self, status, headers=None):
        super().__init__(f"Handshake status {status}")
        self.status_code, self.status_message, self.resp_headers = status, "Service Unavailable", headers or {}


class WebSocketError(Exception):
    pass


def test_a_command_is_sent_again_after_a_dropped_stream_and_a_503_with_retry_after():
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import KubeClient
    from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.mesh_probe import exec_in_pod

    pauses = []
    client = KubeClient(host="https://127.0.0.1:6443", api_key="t0ken", sleep=pauses.append)
    stream = Stream([BadStatus(503, {"retry-after": "3"}), WebSocketError("Connection to remote host was lost."),
                     {"rc": None}, {"stdout": "200", "rc": 0}])
    done = exec_in_pod(client, "egress", "curl-1", "curl", ["curl", "-w", "%{http_code}", "http://x/"], 20,
                       websocket=(stream, lambda url, query: url + "?" + "&".join(f"{k}={v}" for k, v in query),
                                  BadStatus, WebSocketError))
    assert done == {"stdout": "200", "stderr": "", "rc": 0, "failed": False, "attempts": 4, "msg": ""}
    assert pauses == [3.0, 0.4, 0.8]  # Retry-After, then the doubling backoff
    assert stream.url.startswith("https://127.0.0.1:6443/api/v1/namespaces/egress/pods/curl-1/exec?command=curl")
    assert stream.headers == {"authorization": "Bearer t0ken"}
    # A command that ran and failed is an answer, not retried; a refused exec (403) neither.
    stream.script = [{"stdout": "", "stderr": "curl: (6) Could not resolve host", "rc": 6}, BadStatus(403)]
    failed = exec_in_pod(client, "egress", "curl-1", "curl", ["curl"], 20, websocket=(stream, lambda u, q: u,
                                                                                       BadStatus, WebSocketError))
    assert failed["failed"] and failed["rc"] == 6 and failed["attempts"] == 1, failed
    refused = exec_in_pod(client, "egress", "curl-1", "curl", ["curl"], 20, websocket=(stream, lambda u, q: u,
                                                                                        BadStatus, WebSocketError))
    assert refused["failed"] and "403" in refused["msg"] and refused["attempts"] == 1, refused


def test_the_role_runs_the_probes_in_one_task_and_judges_them(kube, mesh, tmp_path):
    playbook = tmp_path / "mesh.yml"
    playbook.write_text(f"""---
- name: Run the in-mesh probes
  hosts: localhost
  gather_facts: false
  environment:
    K8S_AUTH_KUBECONFIG: {kube.kubeconfig}
    K8S_AUTH_CONTEXT: {kube.context}
  vars:
    lab_verify_report: []
    lab_verify_timeout: 10
    lab_verify_mesh_plan: {PLAN!r}
  tasks:
    - name: Send the requests from inside the mesh and judge them
      ansible.builtin.include_role:
        name: istio_lab.lab.lab_verify
        tasks_from: mesh

    - name: Show the report
      ansible.builtin.debug:
        var: lab_verify_report
""")
    result = run_playbook(playbook, kube=kube)
    assert result.rc == 0, result
    assert "the API answered 404" in result.stdout and "egress" in result.stdout, result.stdout
    assert result.stdout.count("TASK [istio_lab.lab.lab_verify : ") == 2, result.stdout
