# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The in-mesh probes (chapter 6's `mesh_probes`) through istio-lab's own client, in one process: find each
client's running pod, send the request from it (the `exec` subresource, a websocket), read the egress gateway's
access log. Every step is retried as the client retries (429, 500, 502, 503, 504 and dropped connections, the wait
doubling from 0.2 s to 5 s, a handshake's Retry-After followed); kubernetes.core's k8s_info, k8s_exec and k8s_log
retry none of them.

The results have the shapes lab_verify_mesh_report (verify.py) judges: `execs` [{item: {url}, pod, stdout, stderr,
rc, failed, msg, attempts}] and `logs` [{item: {url}, pod, log, failed, msg}].
"""

from __future__ import annotations

import types
from urllib.parse import quote

from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import (
    REQUEST_TIMEOUT,
    TRANSIENT_STATUSES,
    KubeError,
)

STDOUT, STDERR = 1, 2


def _pods_path(namespace):
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/pods"


def find_pod(client, namespace, selector, running=True):
    """The name of the first pod `selector` matches (running ones only when `running`), or None."""
    query = [("labelSelector", selector)]
    if running:
        query.append(("fieldSelector", "status.phase=Running"))
    items = client.request("list", "GET", _pods_path(namespace), query=query).get("items") or []
    names = sorted((item.get("metadata") or {}).get("name", "") for item in items)
    return names[0] if names else None


def _websocket():
    """The kubernetes library's websocket client (imported only when a probe runs: a real cluster's)."""
    from kubernetes.stream.ws_client import WSClient, get_websocket_url
    from websocket import WebSocketBadStatusException, WebSocketException, setdefaulttimeout

    # The library's websocket has no timeout: a blackholed API would hang the handshake for ever.
    setdefaulttimeout(REQUEST_TIMEOUT[1])
    return WSClient, get_websocket_url, WebSocketBadStatusException, WebSocketException


def exec_in_pod(client, namespace, pod, container, argv, timeout, websocket=None):
    """Run `argv` in the pod's container: {stdout, stderr, rc, failed, msg, attempts}. The handshake's transient
    answers and dropped connections are tried again (the command is a request, safe to repeat); another status
    (403, 404: exec not allowed or not served) is the answer."""
    client_class, websocket_url, bad_status, websocket_error = websocket or _websocket()
    query = [("command", part) for part in argv] + [("container", container), ("stdout", "true"),
                                                    ("stderr", "true")]
    url = websocket_url(client.server + f"{_pods_path(namespace)}/{quote(pod, safe='')}/exec", query)
    attempt = 0
    while True:
        client._count("exec")
        headers = {}
        token = client.configuration.get_api_key_with_prefix("authorization")
        if token:
            headers["authorization"] = token
        try:
            stream = client_class(client.configuration, url, headers, False)
            stream.run_forever(timeout=timeout)
            if stream.is_open():
                stream.close()
                return {"stdout": "", "stderr": "", "rc": None, "failed": True, "attempts": attempt + 1,
                        "msg": f"the command did not end within {timeout:.0f} s"}
            stdout, stderr = stream.read_channel(STDOUT), stream.read_channel(STDERR)
            # Without the command's status on its channel the connection dropped: returncode raises TypeError.
            rc = stream.returncode
            return {"stdout": stdout, "stderr": stderr, "rc": rc, "failed": rc != 0, "attempts": attempt + 1,
                    "msg": "" if rc == 0 else f"the command exited {rc}"}
        except bad_status as exc:
            status = getattr(exc, "status_code", 0)
            if status not in TRANSIENT_STATUSES:
                return {"stdout": "", "stderr": "", "rc": None, "failed": True, "attempts": attempt + 1,
                        "msg": f"exec in {namespace}/{pod}: the API answered {status}"
                               f" {getattr(exc, 'status_message', '') or ''}".rstrip()}
            answer = types.SimpleNamespace(status=status, headers={
                "Retry-After": (getattr(exc, "resp_headers", None) or {}).get("retry-after")})
            pause = client._pause(attempt, answer)
            error = f"{status} {getattr(exc, 'status_message', '') or ''}".strip()
        except (websocket_error, OSError, ValueError, TypeError, KeyError) as exc:
            pause = client._pause(attempt)
            error = str(exc) or type(exc).__name__
        if pause is None:
            return {"stdout": "", "stderr": "", "rc": None, "failed": True, "attempts": attempt + 1,
                    "msg": f"exec in {namespace}/{pod} at {client.server}: {error} (tried {attempt + 1} times)"}
        client.sleep(pause)
        attempt += 1


def read_log(client, namespace, pod, container, since_seconds):
    """The container's log of the last `since_seconds` (text)."""
    query = [("container", container), ("sinceSeconds", str(int(since_seconds)))]
    return client.request("get", "GET", f"{_pods_path(namespace)}/{quote(pod, safe='')}/log", query=query, raw=True)


def mesh_probe(client, plan, timeout=10, since_seconds=300, websocket=None):
    """Run the plan (lab_verify's RV(mesh_plan)): {execs, logs}, one entry per plan entry (logs: those with `via`)."""
    execs, logs = [], []
    for entry in plan:
        item = {"url": entry["url"]}
        source = entry["client"]
        container = source.get("container") or source["app"]
        try:
            pod = find_pod(client, source["namespace"], f"app={source['app']}")
            if pod is None:
                done = {"failed": True, "msg": f"no running pod app={source['app']} in {source['namespace']}"}
            else:
                done = {"pod": pod, **exec_in_pod(client, source["namespace"], pod, container,
                                                  entry["exec_argv"], timeout + 10, websocket)}
        except KubeError as exc:
            done = {"failed": True, "msg": str(exc)}
        execs.append({"item": item, **done})
        via = entry.get("via") or {}
        if not via:
            continue
        try:
            pod = find_pod(client, via["namespace"], via["selector"], running=False)
            if pod is None:
                logs.append({"item": item, "failed": True, "log": "",
                             "msg": f"no pod {via['selector']} in {via['namespace']}"})
            else:
                text = read_log(client, via["namespace"], pod, via.get("container") or "istio-proxy", since_seconds)
                logs.append({"item": item, "pod": pod, "failed": False, "log": text, "msg": ""})
        except KubeError as exc:
            logs.append({"item": item, "failed": True, "log": "", "msg": str(exc)})
    return {"changed": False, "execs": execs, "logs": logs}
