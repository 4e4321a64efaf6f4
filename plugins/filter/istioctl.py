"""Judge a failed `istioctl install` from its output (issue 21).

    {{ result | istio_lab.lab.istioctl_failure }}

returns ``transient`` when istioctl failed because the API server was away or
overloaded (unreachable, 429, 5xx, timeouts: worth another try, an install is
safe to repeat), ``permanent`` when it refused the input or was refused for good
(an invalid IstioOperator, validation or admission refusals, credentials,
Deployments that never got ready: another try gives the same answer), and ``""``
for a result that did not fail. ``result`` is a registered command result
(``rc``, ``stderr``, ``stdout``) or the text itself.
"""

import re

# Refusals that another try cannot change; checked first, since their message may also quote a timeout.
PERMANENT = re.compile("|".join((
    r"unknown field", r"is invalid", r"validation (?:failed|error)", r"failed validation", r"denied the request",
    r"\bforbidden\b",
    r"\bunauthorized\b", r"could not read", r"cannot read", r"no such file", r"failed to load kubeconfig",
    r"resources not ready after", r"not a duration", r"unexpected (install )?argument", r"unknown (flag|command)",
    r"generate config",
)), re.IGNORECASE)

# The API server away (a control-plane restart) or overloaded, and the transport errors of both.
TRANSIENT = re.compile("|".join((
    r"connection refused", r"connection reset", r"no route to host", r"network is unreachable", r"broken pipe",
    r"i/o timeout", r"timed out", r"timeout awaiting", r"deadline exceeded", r"tls handshake timeout",
    r"unexpected eof", r'": eof\b', r"client connection lost", r"request canceled", r"connection aborted",
    r"server is currently unable to handle the request", r"too many requests", r"try again later",
    r"internal error occurred", r"service unavailable", r"bad gateway", r"gateway timeout",
    r"unable to return a response in the time allotted", r"etcdserver: ", r"\b(?:status|code)[ :=]*(?:429|5\d\d)\b",
    r"\b(?:429|5\d\d) (?:too many requests|internal server error|bad gateway|service unavailable|gateway timeout)",
)), re.IGNORECASE)


def istioctl_failure(result):
    if isinstance(result, dict):
        if result.get("rc", 0) == 0 and not result.get("failed"):
            return ""
        text = f"{result.get('stderr', '')}\n{result.get('stdout', '')}\n{result.get('msg', '')}"
    else:
        text = str(result or "")
    if PERMANENT.search(text):
        return "permanent"
    return "transient" if TRANSIENT.search(text) else "permanent"


class FilterModule:
    def filters(self):
        return {"istioctl_failure": istioctl_failure}
