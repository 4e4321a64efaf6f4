"""A fault-injecting proxy (issue 21): the counting proxy (proxy.py) in front of
an API server, failing a share of the requests the way a busy or restarting
kube-apiserver and a flaky network do:

- ``429`` (with ``Retry-After: 1``, as API Priority and Fairness answers),
  ``500`` and ``503`` (with ``Retry-After: 1``), answered by the proxy: the
  request never reaches the server;
- ``drop-before``: the connection is closed without forwarding the request;
- ``drop-after``: the request is forwarded (a write is applied) and the
  connection closed before the answer, so the client cannot know it landed.

The choice is seeded and depends only on the request (method and path) and how
many times the same request came before, never on the interleaving of
parallel requests: a run through the proxy meets the same faults every time.
The same request is never failed more than `max_in_a_row` times in a row (a
real server is not down for one request only); `agent_shares` gives a client
another share (istioctl, whose install the Istio stage repeats as a whole: at
one request in five, none of its 40 requests' runs would ever pass, and its
own per-request handling is client-go's, not istio-lab's). The fixture's own requests
(User-Agent istio-lab-test-fixture) and watches pass untouched, so a test
checks the result through the same proxy without meeting faults.

    proxy = FaultProxy(kubeconfig, seed=21, share=0.2).start()
    proxy.write_kubeconfig(path)      # what the playbooks use
    proxy.faults                      # the faults injected: [{method, path, fault}]
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import socket
import threading
import time
from urllib.parse import parse_qsl, urlsplit

from .proxy import CountingProxy, _ProxyHandler

FAULTS = ("429", "500", "503", "drop-before", "drop-after")
FIXTURE_AGENT = "istio-lab-test-fixture"
REASONS = {"429": ("TooManyRequests", "Too Many Requests", "the server has received too many requests and has "
                   "asked us to try again later"),
           "500": ("InternalError", "Internal Server Error", "Internal error occurred: injected by the fault proxy"),
           "503": ("ServiceUnavailable", "Service Unavailable", "the server is currently unable to handle the request")}


class FaultProxy(CountingProxy):
    """CountingProxy that fails `share` of the requests with one of `faults`, chosen by `seed`."""

    def __init__(self, kubeconfig: str, context: str | None = None, seed: int = 21, share: float = 0.2,
                 faults=FAULTS, max_in_a_row: int = 2, agent_shares: dict | None = None, **options):
        super().__init__(kubeconfig, context, **options)
        self.seed, self.share, self.fault_kinds, self.max_in_a_row = seed, share, tuple(faults), max_in_a_row
        # {User-Agent prefix: share} for clients another share suits (a tool that retries whole runs)
        self.agent_shares = dict(agent_shares or {})
        self.faults: list[dict] = []
        self._seen: dict[str, int] = {}
        self._in_a_row: dict[str, int] = {}
        self._choice_lock = threading.Lock()

    def start(self) -> FaultProxy:
        super().start()
        self._server.RequestHandlerClass = _FaultHandler
        return self

    def choose(self, method: str, path: str, agent: str) -> str | None:
        """The fault for this request, or None to forward it."""
        split = urlsplit(path)
        if agent.startswith(FIXTURE_AGENT) or dict(parse_qsl(split.query)).get("watch") in ("1", "true"):
            return None
        key = f"{method} {split.path}"
        with self._choice_lock:
            occurrence = self._seen.get(key, 0)
            self._seen[key] = occurrence + 1
            digest = hashlib.sha256(f"{self.seed}:{key}:{occurrence}".encode()).digest()
            roll = random.Random(digest)
            fault = None
            share = next((v for prefix, v in self.agent_shares.items() if agent.startswith(prefix)), self.share)
            if roll.random() < share and self._in_a_row.get(key, 0) < self.max_in_a_row:
                fault = roll.choice(self.fault_kinds)
            self._in_a_row[key] = self._in_a_row.get(key, 0) + 1 if fault else 0
            if fault:
                self.faults.append({"method": method, "path": split.path, "fault": fault})
        return fault


class _FaultHandler(_ProxyHandler):
    def _forward(self) -> None:
        proxy: FaultProxy = self.server.proxy
        fault = proxy.choose(self.command, self.path, self.headers.get("User-Agent", ""))
        if fault is None:
            super()._forward()
        elif fault == "drop-after":
            # Forward the request (the server applies a write), then lose the answer.
            answer, self.wfile = self.wfile, io.BytesIO()
            try:
                super()._forward()
            finally:
                self.wfile = answer
            self._drop()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            proxy._record({"time": time.time(), "method": self.command, "path": urlsplit(self.path).path,
                           "query": {}, "status": 0 if fault == "drop-before" else int(fault), "fault": fault,
                           "user_agent": self.headers.get("User-Agent", "")})
            if fault == "drop-before":
                self._drop()
            else:
                self._answer(fault)

    def _answer(self, code: str) -> None:
        reason, phrase, message = REASONS[code]
        payload = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": int(code)}).encode()
        self.send_response(int(code), phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if code in ("429", "503"):
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        """Close the connection without a word: the client sees it reset or closed before any answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
