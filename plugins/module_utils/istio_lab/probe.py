# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probing routes through a gateway the way a student's curl does: a GET
with a Host header, the status and the `server` header read, retried while
the answer is not the expected one (Envoy may not have the newest route yet),
and, for a weighted route, many requests counting which subset answered.
Every probe of a lab in one process (lab_http_probe): an Ansible loop would
cost a process per request."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

# How many request errors a sampled probe keeps to show.
KEPT_ERRORS = 5


def _target(base_url, path):
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only http:// gateway addresses are probed, not {base_url!r}")
    return parts.hostname, parts.port or 80, (path or "/")


def request(hostname, port, path, host, timeout):
    """One GET over a fresh connection (so the gateway balances each one):
    (status, server, location, header getter) or raises OSError/HTTPException."""
    conn = http.client.HTTPConnection(hostname, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host} if host else {})
        response = conn.getresponse()
        response.read()
        return response
    finally:
        conn.close()


def answered(status, server, expected_status, expected_server, accept_redirects):
    """The gateway answered as expected: its server header, the expected status or, where 200 is expected and
    redirects are accepted, the application's redirect."""
    if expected_status is None:
        return status is not None
    redirected = accept_redirects and expected_status == 200 and status is not None and 300 <= status < 400
    return (not expected_server or server == expected_server) and (status == expected_status or redirected)


def probe_once(target, probe, options, sleep=time.sleep):
    """The probe's answer, retried `retries` times `delay` seconds apart while it is not the expected one."""
    hostname, port, path = target
    host = probe.get("host") or ""
    outcome = {}
    for attempt in range(1, options["retries"] + 2):
        outcome = {"attempts": attempt, "status": None, "server": "", "location": "", "msg": ""}
        try:
            response = request(hostname, port, path, host, options["timeout"])
            outcome.update(status=response.status, server=response.getheader("server") or "",
                           location=response.getheader("location") or "", msg=f"HTTP {response.status}")
        except (OSError, http.client.HTTPException) as exc:
            outcome["msg"] = f"Request failed: {exc}"
        if answered(outcome["status"], outcome["server"], probe.get("expected_status"), options["server"],
                    options["accept_redirects"]) or attempt > options["retries"]:
            break
        sleep(options["delay"])
    return outcome


def sample(target, host, header, samples, timeout):
    """`samples` requests, counting the values of the response header `header` (empty when absent), the statuses
    (`error` for no answer) and the `server` headers."""
    hostname, port, path = target
    counts = {"samples": samples, "values": {}, "statuses": {}, "servers": {}, "errors": []}
    for _attempt in range(samples):
        try:
            response = request(hostname, port, path, host, timeout)
        except (OSError, http.client.HTTPException) as exc:
            counts["statuses"]["error"] = counts["statuses"].get("error", 0) + 1
            if len(counts["errors"]) < KEPT_ERRORS:
                counts["errors"].append(str(exc))
            continue
        for key, value in (("statuses", str(response.status)), ("servers", response.getheader("server") or ""),
                           ("values", response.getheader(header) or "")):
            counts[key][value] = counts[key].get(value, 0) + 1
    return counts


def probe_all(base_url, probes, options, sleep=time.sleep):
    """The module's `results`, one per probe in order, each with `item` (the probe as given)."""
    results = []
    for probe in probes:
        target = _target(base_url, probe.get("path"))
        result = {"item": probe, "url": f"{base_url.rstrip('/')}{target[2]}",
                  **probe_once(target, probe, options, sleep)}
        split = probe.get("split") or {}
        if split.get("header") and options["samples"] > 0:
            result.update(sample(target, probe.get("host") or "", split["header"], options["samples"],
                                 options["timeout"]))
        results.append(result)
    return results
