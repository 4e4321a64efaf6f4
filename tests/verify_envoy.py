"""A local HTTP server that answers like the Istio ingress gateway's Envoy.

lab_verify probes routes through the ingress gateway with a Host header. No
Envoy runs here, so the tests point lab_verify at this server on a loopback
address instead. Like Envoy it answers, for each Host:

- a routed host: the configured status (200 by default) with
  `server: istio-envoy` (Envoy rewrites the upstream's server header);
- a host no VirtualService binds: 404 with `server: istio-envoy` and an
  empty body (what `curl -i` shows in the course before the VirtualService);
- a broken route: whatever is configured, e.g. 503 "no healthy upstream";
- `server` can be overridden per host or for the whole server, to play
  "something other than Envoy holds this address";
- a list of answers for a host is served in turn, the last one repeating
  (a route Istio has not pushed yet: 404, then 200);
- a weighted route (`Answer(split={"v1": 90, "v2": 10})`) answers from
  each subset in proportion to its weight, naming the subset in the response
  header `split_header` (`x-istio-lab-subset`, as chapter 5's destinations
  set it) and in the body. The choice is a smooth weighted round robin, so
  every window of 100 requests splits exactly 90/10: the tests of the
  verification are deterministic (a real Envoy picks at random).

Hosts are matched as Istio does: exact names, `*.domain` and `*`.

Use it as a context manager::

    with EnvoyLikeServer(routes={"a.example": 200, "*": 200}) as envoy:
        envoy.address, envoy.port

or from a shell: `python tests/verify_envoy.py --port 18080 a.example=200`.
"""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENVOY_SERVER = "istio-envoy"
REASONS = {
    200: "OK",
    302: "Found",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Answer:
    """What the server answers for one host."""

    status: int = 200
    server: str = ENVOY_SERVER
    body: str = ""
    location: str = ""
    split: dict | None = None
    split_header: str = "x-istio-lab-subset"


def _as_answer(value) -> Answer:
    if isinstance(value, Answer):
        return value
    if isinstance(value, int):
        body = {503: "no healthy upstream"}.get(value, "" if value == 404 else f"answer {value}\n")
        return Answer(status=value, body=body)
    return Answer(**value)


def _matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host


def chapter_answers(domain: str) -> dict:
    """What the ingress gateway's Envoy answers once chapters 1-4 are routed
    for `domain`: chapter 1's '*' route (tomcat) catches the bare IP and every
    other host, Kiali redirects."""
    return {
        "*": 200,
        f"prometheus-istio.{domain}": 200,
        f"grafana-istio.{domain}": 200,
        f"kiali-istio.{domain}": Answer(302, location="/kiali/"),
        f"zipkin-istio.{domain}": 200,
    }


class EnvoyLikeServer:
    """Answers like Envoy on `address:port` (port 0 = pick a free one).

    `routes`: {host pattern: status | Answer | dict(status, server, body,
    location) | a list of those, served in turn}; exact names win over
    wildcards, longer wildcards over shorter. A host no pattern matches gets `unrouted` (404 from Envoy).
    `server` replaces the server header of every answer (None: per answer).
    `requests` records (method, host header, path) of each request.
    """

    def __init__(self, address="127.0.0.1", port=0, routes=None, unrouted=404, server=None):
        if not address.startswith("127."):
            raise ValueError(f"loopback addresses only (127.x), not {address}")
        self.routes = {
            k.lower(): [_as_answer(a) for a in (v if isinstance(v, list) else [v])] for k, v in (routes or {}).items()
        }
        self.unrouted = _as_answer(unrouted)
        self.server_override = server
        self.requests: list[tuple[str, str, str]] = []
        self._split_state: dict[int, dict[str, int]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((address, port), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def address(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def answer_for(self, host_header: str) -> Answer:
        host = host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header
        host = host.lower()
        wildcards = sorted((p for p in self.routes if p.startswith("*")), key=len, reverse=True)
        pattern = host if host in self.routes else next((p for p in wildcards if _matches(p, host)), None)
        if pattern is None:
            return self.unrouted
        answers = self.routes[pattern]
        return answers.pop(0) if len(answers) > 1 else answers[0]

    def pick_subset(self, answer: Answer) -> str:
        """Smooth weighted round robin over answer.split (nginx's): each pick
        adds every subset's weight to its credit and takes the highest, which
        then pays the total back."""
        with self._lock:
            credit = self._split_state.setdefault(id(answer), dict.fromkeys(answer.split, 0))
            total = sum(answer.split.values())
            for name, weight in answer.split.items():
                credit[name] += weight
            best = max(credit, key=lambda name: credit[name])
            credit[best] -= total
            return best

    def _handler(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def version_string(self):  # the `server` header
                return self._answer.server

            def _reply(self, with_body=True):
                outer.requests.append((self.command, self.headers.get("Host", ""), self.path))
                answer = outer.answer_for(self.headers.get("Host", ""))
                if answer is None:  # nobody answers at this address: the connection closes, no response
                    self.close_connection = True
                    return
                subset = outer.pick_subset(answer) if answer.split else None
                if outer.server_override is not None:
                    answer = replace(answer, server=outer.server_override)
                if subset is not None:
                    answer = replace(answer, body=answer.body or f"tomcat {subset}\n")
                self._answer = answer
                body = answer.body.encode()
                self.send_response(answer.status, REASONS.get(answer.status, ""))
                if answer.location:
                    self.send_header("location", answer.location)
                if subset is not None:
                    self.send_header(answer.split_header, subset)
                self.send_header("content-length", str(len(body)))
                self.send_header("content-type", "text/plain")
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_GET(self):  # noqa: N802 (http.server's naming)
                self._reply()

            def do_HEAD(self):  # noqa: N802
                self._reply(with_body=False)

            def log_message(self, *args):  # keep test output clean
                pass

        return Handler

    def start(self) -> EnvoyLikeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> EnvoyLikeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()



class UpgradeEnvoy(EnvoyLikeServer):
    """The ingress gateway's Envoy stand-in for a lab with chapters 1-6 routed for `domain`, during an
    upgrade. With `broken_on` (an image tag), a new release breaks the lab while the lab's (`kube`)
    Deployment `broken_deployment` ("namespace/name", the ingress gateway by default) runs that tag:
    the hosts `broken_hosts` (None: every host) get `broken_answer`, 503 "no healthy upstream" by default
    (a gateway that does not route, an addon that does not serve), or None: the connection is closed
    without an answer (a MetalLB release that no longer serves the ingress address). `break_on()` and
    `fix()` change the breakage between runs."""

    def __init__(self, kube, broken_on=None, address="127.0.0.1", port=0, domain="kubernets.cn",
                 broken_deployment="istio-system/istio-ingressgateway", broken_hosts=None, broken_answer=503,
                 **kwargs):
        super().__init__(address, port, {**chapter_answers(domain),
                                         f"tomcat.{domain}": Answer(split={"v1": 90, "v2": 10})}, **kwargs)
        self.kube = kube
        self.break_on(broken_on, broken_deployment, broken_hosts, broken_answer)

    def break_on(self, tag, deployment="istio-system/istio-ingressgateway", hosts=None, answer=503):
        self.broken_on, self.broken_deployment, self.broken_answer = tag, deployment, answer
        self.broken_hosts = None if hosts is None else {host.lower() for host in hosts}

    def fix(self):
        self.broken_on = None

    def broken(self, host_header) -> bool:
        if not self.broken_on:
            return False
        host = host_header.rsplit(":", 1)[0].lower()
        if self.broken_hosts is not None and host not in self.broken_hosts:
            return False
        namespace, name = self.broken_deployment.split("/")
        deployment = self.kube.get("apps/v1", "Deployment", name, namespace)
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"] if deployment else ""
        return image.endswith(f":{self.broken_on}")

    def answer_for(self, host_header):
        if self.broken(host_header):
            return None if self.broken_answer is None else _as_answer(self.broken_answer)
        return super().answer_for(host_header)


class ClusterEnvoy(EnvoyLikeServer):
    """The ingress gateway's Envoy stand-in that routes by the lab's own objects, read from `kube` (the fixture)
    at each request, as Envoy would once Istio pushed them: the route table (plugins/module_utils routes.py) of the
    Gateways whose selector the ingress gateway's pods carry; for the most specific host binding the request's
    Host, 200 from the destination (a weighted route answers from each subset by its weight, naming it in
    `x-istio-lab-subset`), 503 "no healthy upstream" when a destination's Service or port is missing or has no
    ready endpoint, 404 when nothing binds the host. Envoy's own matching details (paths, headers) are the boundary
    of the tests that use it."""

    LABELS = {"app": "istio-ingressgateway", "istio": "ingressgateway"}

    def __init__(self, kube, address="127.0.0.1", port=0, gateway_port=80, **kwargs):
        super().__init__(address, port, {}, **kwargs)
        self.kube = kube
        self.gateway_port = gateway_port
        self._answers = {}

    def _serving(self, host):
        from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.routes import route_table
        from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.verify import (
            _serving_routes,
            lab_verify_ingress_routes,
        )

        istio = "networking.istio.io/v1"
        read = {kind: self.kube.list(istio, kind)
                for kind in ("Gateway", "VirtualService", "DestinationRule", "ServiceEntry")}
        table = route_table(read["Gateway"], read["VirtualService"], self.kube.list("v1", "Service"),
                            read["DestinationRule"], read["ServiceEntry"])
        return _serving_routes(host, lab_verify_ingress_routes(table["routes"], self.LABELS), self.gateway_port)

    def _ready(self, service):
        from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.verify import (
            lab_verify_ready_endpoints,
        )

        namespace, name = service.split("/")
        slices = self.kube.list("discovery.k8s.io/v1", "EndpointSlice", namespace,
                                label_selector=f"kubernetes.io/service-name={name}")
        return lab_verify_ready_endpoints([{"item": {"namespace": namespace, "service": name},
                                            "resources": slices}]).get(service, 0) > 0

    def answer_for(self, host_header):
        host = (host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header).lower()
        serving = self._serving(host)
        if not serving:
            return self.unrouted
        destinations = serving[0]["destinations"]
        if not destinations or any(not d["service_exists"] or not d["port_exists"] or not self._ready(d["service"])
                                   for d in destinations if d["service"]):
            return _as_answer(503)
        weights = {d["subset"]: int(d["weight"] or 0) for d in destinations if d.get("subset")}
        key = (serving[0]["virtual_service"], tuple(sorted(weights.items())))
        if key not in self._answers:
            self._answers[key] = Answer(split=weights) if weights else _as_answer(200)
        return self._answers[key]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Answer like the Istio ingress gateway on a loopback address.")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--server", default=None, help="server header of every answer (default istio-envoy)")
    parser.add_argument("routes", nargs="*", help="HOST=STATUS, e.g. '*=200' or grafana-istio.kubernets.cn=503")
    args = parser.parse_args(argv)
    if not args.address.startswith("127."):
        parser.error("loopback addresses only (127.x)")
    routes = {host: int(status) for host, status in (r.split("=", 1) for r in args.routes)}
    server = EnvoyLikeServer(args.address, args.port, routes, server=args.server).start()
    print(f"answering like Envoy on http://{server.address}:{server.port}/ (Ctrl-C stops)")
    try:
        server._thread.join()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
