# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection to the Kubernetes API: kubeconfig/context through the
kubernetes library's loader, one HTTP connection pool per process, raw JSON
requests (no model classes), a count of requests by verb, and retries with
backoff for transient answers."""

from __future__ import annotations

import datetime
import email.utils
import importlib.util
import json
import os
import sys
import threading
import time
import types
from urllib.parse import urlencode

try:
    import urllib3

    HAS_KUBERNETES = importlib.util.find_spec("kubernetes") is not None
    KUBERNETES_IMPORT_ERROR = None if HAS_KUBERNETES else "no module named kubernetes"
except ImportError as exc:  # reported by the module through missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc

USER_AGENT = "istio-lab/1.0"


class _Kubernetes:
    """The parts of the kubernetes library istio-lab uses: the Configuration
    and kubeconfig loaders, the REST layer (one urllib3 pool) and ApiException.

    A module process imports them without the package's __init__ files,
    which load every API and model class (about 850 modules, half of a
    no-op task's time); `light=False` (tests, or a process that already
    imported kubernetes) imports the package as usual."""

    def __init__(self, light):
        if light and "kubernetes" not in sys.modules:
            try:
                self._load(light=True)
                return
            except Exception:  # noqa: BLE001 -- any surprise: forget the stubs, import normally
                for name in [n for n in sys.modules if n == "kubernetes" or n.startswith("kubernetes.")]:
                    del sys.modules[name]
        self._load(light=False)

    def _load(self, light):
        if light:
            root = os.path.dirname(importlib.util.find_spec("kubernetes").origin)
            for name, path in (("kubernetes", root), ("kubernetes.client", os.path.join(root, "client"))):
                stub = types.ModuleType(name)
                stub.__path__ = [path]
                sys.modules[name] = stub
            from kubernetes.client.configuration import Configuration

            sys.modules["kubernetes"].client = sys.modules["kubernetes.client"]
            sys.modules["kubernetes.client"].Configuration = Configuration
            # kube_config needs ApiClient only for OIDC token refresh: load it then
            sys.modules["kubernetes.client"].ApiClient = _api_client_on_demand
        from kubernetes.client.configuration import Configuration
        from kubernetes.client.exceptions import ApiException
        from kubernetes.client.rest import RESTClientObject, RESTResponse
        from kubernetes.config import incluster_config, kube_config
        from kubernetes.config.config_exception import ConfigException

        self.Configuration = Configuration
        self.ApiException = ApiException
        self.RESTClientObject = RESTClientObject
        self.RESTResponse = RESTResponse
        self.kube_config = kube_config
        self.incluster_config = incluster_config
        self.ConfigException = ConfigException


def _api_client_on_demand(*args, **kwargs):
    from kubernetes.client.api_client import ApiClient

    return ApiClient(*args, **kwargs)


# Answers worth another try: throttling and the server or a proxy being busy.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
# The answers whose Retry-After says when to come back (API Priority and Fairness, a server going away).
RETRY_AFTER_STATUSES = frozenset({429, 503})
# The longest pause between two tries, and the longest Retry-After followed by a task without a timeout.
MAX_BACKOFF = 5.0
MAX_RETRY_AFTER = 10.0
# (connect, read) timeouts in seconds for one request.
REQUEST_TIMEOUT = (10, 60)
# Connections kept open to the API server, and the writes apply.py and
# manifests.py keep in flight. A real kube-apiserver serves writes
# concurrently (200 mutating requests in flight by default); one create
# waits several ms on it (etcd) and costs this process about 1 ms of CPU
# (JSON, TLS, under the GIL). At 4 in flight a first run still waits on the
# server; at 8 our own CPU is about the bound, so more only adds threads.
POOL_SIZE = 8


class KubeError(Exception):
    """A failure to report as is: the message says what to do."""


class ApiStatusError(KubeError):
    """The API answered with an error status."""

    def __init__(self, message, status, reason="", body=None):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.body = body

    @property
    def not_served(self):
        """True for the plain-text 404 of a group/version/resource the server
        does not serve (CRD not installed), as opposed to a NotFound Status."""
        return self.status == 404 and not isinstance(self.body, dict)


def _decode(data):
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


class KubeClient:
    """One connection to one API server, shared by every request of a task."""

    def __init__(
        self,
        kubeconfig=None,
        context=None,
        host=None,
        api_key=None,
        validate_certs=None,
        ca_cert=None,
        client_cert=None,
        client_key=None,
        tries=5,
        backoff=0.2,
        sleep=time.sleep,
        light_imports=False,
        timeout=0,
        clock=time.monotonic,
        budget=0,
    ):
        self.lib = _Kubernetes(light_imports)
        self.tries = max(1, tries)
        self.backoff = backoff
        self.sleep = sleep
        self.clock = clock
        # A task with a timeout (wait_timeout) rides out an API that is away or throttling until then, e.g. a
        # control-plane restart; without one, `tries` bounds the retries.
        self.deadline = clock() + timeout if timeout else None
        # A budget (a status probe's) bounds the whole client, each request's connect and read timeouts included:
        # a dead or blackholed API is reported within it rather than waited out.
        self.budget = budget or 0
        if budget:
            self.deadline = clock() + min(budget, timeout or budget)
        self.counts = {}
        self._counts_lock = threading.Lock()
        self.context = context or ""
        configuration = self.lib.Configuration()
        if kubeconfig or not host:
            self._load_kubeconfig(configuration, kubeconfig, context)
        if host:
            configuration.host = host
        if api_key:
            configuration.api_key = {"authorization": "Bearer " + api_key}
            # the kubeconfig loader's hook would put the kubeconfig's token back
            configuration.refresh_api_key_hook = None
        if validate_certs is not None:
            configuration.verify_ssl = validate_certs
        if ca_cert:
            configuration.ssl_ca_cert = ca_cert
        if client_cert:
            configuration.cert_file = client_cert
        if client_key:
            configuration.key_file = client_key
        # Our own loop retries, with backoff and a count of every attempt.
        configuration.retries = False
        configuration.connection_pool_maxsize = POOL_SIZE
        self.server = configuration.host
        self.configuration = configuration
        self.rest = self.lib.RESTClientObject(configuration, maxsize=POOL_SIZE)

    def _load_kubeconfig(self, configuration, kubeconfig, context):
        path = os.path.expanduser(kubeconfig) if kubeconfig else None
        if path and not os.path.exists(path):
            raise KubeError(f"kubeconfig {path} does not exist: set kubeconfig (or K8S_AUTH_KUBECONFIG) to the lab's")
        try:
            if not context:
                _contexts, active = self.lib.kube_config.list_kube_config_contexts(config_file=path)
                self.context = (active or {}).get("name", "")
            self.lib.kube_config.load_kube_config(
                config_file=path, context=context or None, client_configuration=configuration, persist_config=False
            )
        except (self.lib.ConfigException, OSError, ValueError) as exc:
            if path is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                self.lib.incluster_config.load_incluster_config(client_configuration=configuration)
                self.context = "in-cluster"
                return
            where = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise KubeError(f"cannot load kubeconfig {where} (context {context or 'current'}): {exc}") from exc

    def describe(self):
        return f"{self.server} (context {self.context or 'none'})"

    def _count(self, verb):
        with self._counts_lock:  # writes run in parallel threads
            self.counts[verb] = self.counts.get(verb, 0) + 1

    def request(self, verb, method, path, query=None, body=None, content_type=None, raw=False):
        """Send one request and return the decoded JSON answer (`raw`: the answer as text, a pod's log). `verb` is
        the Kubernetes verb counted in `api_requests` (get, list, create...).
        A `body` of bytes is sent as it is, with `content_type` (a server-side
        apply's UTF-8 JSON: the kubernetes library would re-encode it with
        \\u escapes, which the API server's apply decoder refuses)."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        started = self.clock()
        attempt = 0
        # A write whose answer was lost (the connection dropped after sending) may have been applied: its
        # retry then meets its own result, which is the success it reports.
        unsure = False
        while True:
            request_timeout = self._request_timeout(started, attempt)
            self._count(verb)
            # read per request: the kubeconfig's refresh hook renews expiring tokens
            token = self.configuration.get_api_key_with_prefix("authorization")
            if token:
                headers["Authorization"] = token
            try:
                if isinstance(body, bytes):
                    response = self._send_bytes(method, path, query, headers, body, request_timeout)
                else:
                    response = self.rest.request(
                        method,
                        self.server + path,
                        query_params=list(query or []),
                        headers=headers,
                        body=body,
                        _preload_content=False,
                        _request_timeout=request_timeout,
                    )
                if raw:
                    return (response.data or b"").decode("utf-8", "replace")
                return _decode(response.data) or {}
            except self.lib.ApiException as exc:
                if unsure:
                    landed = self._landed(method, path, body, exc)
                    if landed is not None:
                        return landed
                pause = self._pause(attempt, exc) if exc.status in TRANSIENT_STATUSES else None
                if pause is None:
                    raise self._status_error(exc, method, path, attempt + 1) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                unsure = unsure or (method != "GET" and not _not_sent(exc))
                pause = self._pause(attempt)
                if pause is None:
                    reason = getattr(exc, "reason", None) or exc
                    raise KubeError(
                        f"cannot reach the Kubernetes API at {self.server} (context {self.context or 'none'}): "
                        f"{reason} (tried {attempt + 1} times over {self.clock() - started:.0f} s). Is the cluster "
                        "up and the kubeconfig the lab's? After a control-plane restart, rerun the playbook once "
                        "the API answers: it resumes where it stopped."
                    ) from None
            self.sleep(pause)
            attempt += 1
        raise AssertionError("unreachable")  # pragma: no cover

    def _landed(self, method, path, body, exc):
        """The result of a write an earlier, unanswered try applied, told by the retry's refusal: a create
        answered 409 AlreadyExists (the object, read back), a delete answered 404 ({}). None otherwise."""
        reason = (_decode(exc.body) or {}).get("reason") if isinstance(_decode(exc.body), dict) else None
        if method == "DELETE" and exc.status == 404:
            return {}
        if method == "POST" and exc.status == 409 and reason == "AlreadyExists":
            obj = json.loads(body) if isinstance(body, bytes) else body
            name = ((obj or {}).get("metadata") or {}).get("name")
            if name:
                return self.request("get", "GET", f"{path}/{name}")
        return None

    def _pause(self, attempt, exc=None):
        """Seconds to wait before another try, or None to give up. The wait doubles from `backoff` up to
        MAX_BACKOFF; a 429 or 503 with Retry-After waits what the server asked. Within `tries`, or with a
        timeout, while the API is unreachable or asks to come back (429/503) and the deadline allows."""
        pause = min(self.backoff * 2**attempt, MAX_BACKOFF)
        asked = _retry_after(exc) if exc is not None and exc.status in RETRY_AFTER_STATUSES else None
        if asked is not None:
            pause = asked
        if self.deadline is None:
            return min(pause, MAX_RETRY_AFTER) if attempt < self.tries - 1 else None
        remaining = self.deadline - self.clock()
        waits_out = exc is None or exc.status in RETRY_AFTER_STATUSES
        if remaining <= 0 or (asked is not None and asked > remaining) or not (attempt < self.tries - 1 or waits_out):
            return None
        return min(pause, remaining)  # a last try at the deadline

    def _request_timeout(self, started, attempt):
        """(connect, read) timeouts of the next try: REQUEST_TIMEOUT, cut to what is left of a budget (past it,
        the API did not answer in time)."""
        if not self.budget:
            return REQUEST_TIMEOUT
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            raise KubeError(
                f"no answer from the Kubernetes API at {self.server} (context {self.context or 'none'}) within "
                f"{self.budget} s (tried {attempt} times over {self.clock() - started:.0f} s): the API is down, "
                "unreachable or too slow.")
        return (min(REQUEST_TIMEOUT[0], remaining), min(REQUEST_TIMEOUT[1], remaining))

    def _send_bytes(self, method, path, query, headers, body, request_timeout=REQUEST_TIMEOUT):
        """The REST layer's request, for a body already serialized: through
        the same connection pool, answering errors with the same ApiException."""
        url = self.server + path
        if query:
            url += "?" + urlencode(list(query))
        response = self.rest.pool_manager.request(
            method, url, body=body, headers=headers, preload_content=False,
            timeout=urllib3.Timeout(connect=request_timeout[0], read=request_timeout[1]))
        if not 200 <= response.status <= 299:
            raise self.lib.ApiException(http_resp=self.lib.RESTResponse(response))
        return response

    def _status_error(self, exc, method, path, attempts):
        body = _decode(exc.body)
        reason = body.get("reason", "") if isinstance(body, dict) else ""
        detail = body.get("message", "") if isinstance(body, dict) else (body or exc.reason or "").strip()
        if exc.status == 401:
            message = f"the Kubernetes API at {self.server} refused the credentials of context {self.context or 'none'}"
        elif exc.status == 403:
            message = (
                f"the Kubernetes API at {self.server} refused the credentials of context "
                f"{self.context or 'none'} for {method} {path}: {detail}"
            )
        elif exc.status in TRANSIENT_STATUSES:
            message = (
                f"the Kubernetes API at {self.server} kept failing ({exc.status} {reason or exc.reason}) "
                f"for {method} {path} after {attempts} tries: {detail}"
            )
        else:
            message = f"{method} {path}: {exc.status} {reason or exc.reason}: {detail}"
        return ApiStatusError(message, exc.status, reason, body)


def _not_sent(exc):
    """True for a transport error before the request left (no connection): a write that met it was not applied."""
    cause = getattr(exc, "reason", None) or exc  # urllib3's MaxRetryError wraps the cause
    return isinstance(cause, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError,
                              ConnectionRefusedError))


def _retry_after(exc):
    """The seconds of an answer's Retry-After header (delta-seconds or an HTTP date), or None."""
    value = (getattr(exc, "headers", None) or {}).get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())  # noqa: UP017 -- module_utils


def client_from_params(params, light_imports=False):
    """A client from a module's connection options (args.CONNECTION_ARGS); a module with a wait_timeout
    rides out an API that is away or throttling for up to that long, one with a budget gives up by then."""
    return KubeClient(
        light_imports=light_imports,
        timeout=params.get("wait_timeout") or 0,
        budget=params.get("budget") or 0,
        kubeconfig=params.get("kubeconfig"),
        context=params.get("context"),
        host=params.get("host"),
        api_key=params.get("api_key"),
        validate_certs=params.get("validate_certs"),
        ca_cert=params.get("ca_cert"),
        client_cert=params.get("client_cert"),
        client_key=params.get("client_key"),
    )
