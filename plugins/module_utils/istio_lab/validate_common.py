# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The building blocks of istio-lab's single-object Istio rules: the
Problem a rule reports, the catalogue of rules (RULES, one id per rule, used
by the tests and the table in docs/modules.md), and the checks several kinds
share (host names, ports, labels, durations, exportTo, addresses).

Written for istio-lab from the rules of Istio 1.30's own validation
(pkg/config/validation); the names and messages are istio-lab's."""

from __future__ import annotations

import http
import ipaddress
import re

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Istio's own DNS label check takes upper case too (pkg/config/labels).
ISTIO_LABEL = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
# A first host label may be `*`, or a label led by `*` or `*-` (`*foo`, `*-foo`).
WILDCARD_LABEL = re.compile(r"^(\*|(\*|\*-)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)$")
LABEL_NAME = re.compile(r"^(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_PREFIX = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*$")
LABEL_VALUE = re.compile(r"^((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# RFC 7230 token characters: istiod's header names in matches and CORS.
HEADER_NAME = re.compile(r"^[-!#$%&'*+.^_`|~A-Za-z0-9]+$")
PSEUDO_HEADERS = {":method", ":scheme", ":authority", ":path", ":status"}
# Control characters other than tab: what istiod refuses in a header value.
HEADER_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
JWT_CLAIM_HEADER = re.compile(r"^@request\.auth\.claims(\.[^.]+|\[[^\]]+\])+$")
UNIX_PREFIX = "unix://"

# Port protocols Istio knows (case-insensitive), by family.
PROTOCOLS = {
    "HTTP": "http", "HTTP2": "http", "GRPC": "http", "GRPC-WEB": "http", "HTTP_PROXY": "http",
    "HTTPS": "tls", "TLS": "tls",
    "TCP": "tcp", "UDP": "udp", "MONGO": "mongo", "REDIS": "redis", "MYSQL": "mysql",
}


class Problem:
    """One finding: the object, the field path, what is wrong (and what
    would be right). `rule` is the id of the rule in RULES, when it has one."""

    def __init__(self, obj, field, message, rule=None):
        self.object = obj
        self.field = field
        self.message = message
        self.rule = rule

    def __str__(self):
        return f"{self.object}: {self.field}: {self.message}"

    def __repr__(self):
        return f"Problem({self})"

    def __eq__(self, other):
        return isinstance(other, Problem) and (self.object, self.field, self.message) == (
            other.object, other.field, other.message)

    def __hash__(self):
        return hash((self.object, self.field, self.message))

    def as_dict(self):
        found = {"kind": self.object.split(" ", 1)[0], "object": self.object, "field": self.field,
                 "message": self.message}
        if self.rule:
            found["rule"] = self.rule
        return found


def ref(kind, namespace, name):
    return f"{kind} {namespace}/{name}"


def object_name(obj):
    meta = obj.get("metadata", {})
    return ref(obj.get("kind", "?"), meta.get("namespace", ""), meta.get("name", ""))


def field_path(parts, root="spec"):
    """deque(['http', 0, 'route', 1, 'weight']) -> spec.http[0].route[1].weight"""
    text = root
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


class Findings(list):
    """The problems of one object; `add(rule, field, message)`."""

    def __init__(self, name):
        super().__init__()
        self.name = name

    def add(self, rule, field, message):
        if rule not in RULES:
            raise AssertionError(f"unknown rule {rule}")
        self.append(Problem(self.name, field, message, rule))


# ---------------------------------------------------------------- the catalogue

# id -> (kind, what the rule refuses). `policy` ids are istio-lab's own
# rules, stricter than istiod (see docs/modules.md); `warning` ids are what
# istiod only warns about. Both are warnings, never refusals.
RULES = {}
POLICY_RULES = set()
WARNING_RULES = set()


def _rules(kind, entries, policy=False, warning=False):
    for rule_id, text in entries:
        RULES[rule_id] = (kind, text)
        if policy:
            POLICY_RULES.add(rule_id)
        if warning:
            WARNING_RULES.add(rule_id)


_rules("any", [
    ("name-dns", "metadata.name is a DNS-1123 subdomain (the API server's rule)"),
    ("namespace-dns", "metadata.namespace is a DNS-1123 label (the API server's rule)"),
    ("export-to-entry", "each exportTo entry is `.`, `*` or a namespace (`~` only in a ServiceEntry)"),
    ("export-to-duplicate", "no exportTo entry twice (`.` and the own namespace count as the same)"),
    ("export-to-exclusive", "`*` (and `~`) stand alone in exportTo"),
    ("selector-label", "workload selector keys are non-empty and neither keys nor values hold `*`"),
    ("labels", "label keys and values are valid Kubernetes label keys and values"),
    ("duration", "durations are at least 1ms and whole milliseconds"),
    ("annotation", "no istio.io/dry-run annotation (AuthorizationPolicy only) and none of istiod's internal "
                   "annotations"),
])
_rules("Gateway", [
    ("gw-name", "a Gateway's name is a DNS-1123 label (no dots)"),
    ("gw-servers", "a Gateway has at least one server"),
    ("gw-server-hosts", "each server has at least one host"),
    ("gw-host-form", "server hosts are `[namespace/]dnsName` with namespace `*`, `.` or a DNS label, both parts "
                     "non-empty"),
    ("gw-host-name", "the dnsName of a server host is `*`, a qualified name (with a dot), a wildcard domain or an "
                     "IP; no partial wildcard"),
    ("gw-port", "each server has a port"),
    ("gw-port-number", "server port numbers are 1..65535 (0 only with a unix:// bind)"),
    ("gw-port-name", "each server port has a name"),
    ("gw-port-name-unique", "server port names are unique in a Gateway"),
    ("gw-protocol", "server protocols are ones Istio knows (HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TLS, TCP, ...)"),
    ("gw-target-port", "no targetPort on Gateway servers (it has no effect)"),
    ("gw-bind", "a bind is an IP address or unix:// with an absolute path (then port number 0)"),
    ("gw-tls-required", "HTTPS and TLS servers have tls settings"),
    ("gw-tls-plaintext", "HTTP servers carry tls only for httpsRedirect, other non-TLS servers none"),
    ("gw-tls-credential", "SIMPLE/MUTUAL/OPTIONAL_MUTUAL servers have credentialName or certificate and key"),
    ("gw-tls-one-source", "a server's certificate comes from one of credentialName, credentialNames, "
                          "serverCertificate/privateKey, tlsCertificates"),
    ("gw-tls-ca", "MUTUAL/OPTIONAL_MUTUAL servers without credentialName have caCertificates"),
    ("gw-tls-istio-mutual", "ISTIO_MUTUAL servers set no certificate, key, CA or credentialName"),
    ("gw-tls-crl", "caCrl is not combined with credentialName or SIMPLE"),
])
_rules("Gateway", [
    ("gw-port-name-protocol", "a port name's protocol prefix (`https-...`) agrees with the protocol"),
    ("gw-port-one-protocol", "servers sharing a port number agree on the protocol family"),
], policy=True)
_rules("VirtualService", [
    ("vs-routes", "http, tcp or tls routes are given"),
    ("vs-delegate", "a delegate VirtualService (no hosts) has no gateways, tls or tcp routes"),
    ("vs-gateway-name", "gateway references are `name`, `namespace/name` (DNS labels) or `mesh`"),
    ("vs-host", "hosts are (wildcard) domain names or IP addresses"),
    ("vs-host-mesh-wildcard", "host `*` is refused for a VirtualService bound to the mesh"),
    ("vs-host-duplicate", "no host twice, nor one covered by another host's wildcard"),
    ("vs-jwt-claim-mesh", "JWT claim routing (@request.auth.claims) only on gateways"),
    ("vs-http-action", "an HTTP route has one of route, redirect, directResponse (delegate for a root route)"),
    ("vs-http-conflict", "redirect/directResponse are not combined with route, fault, rewrite or each other"),
    ("vs-delegate-nested", "a delegate's route has no delegate; a root route has no route or redirect"),
    ("vs-mirror-both", "mirror and mirrors are not set together"),
    ("vs-mirror-percentage", "mirror percentages are within 0..100"),
    ("vs-mirror-destination", "each mirrors entry has a destination"),
    ("vs-destination-required", "each route entry has a destination"),
    ("vs-destination-host", "destination hosts are (wildcard) domain names, not `*`"),
    ("vs-subset-name", "destination subsets are DNS labels"),
    ("vs-port", "port numbers (destination, match, redirect, tls/tcp match) are 1..65535"),
    ("vs-weight-negative", "route weights are not negative"),
    ("vs-weight-zero", "a route with several destinations has a total weight above 0"),
    ("vs-header-name", "header names in matches are valid header names (or JWT claims)"),
    ("vs-string-match", "prefix and regex matches are not empty; regexes at most 1024 characters"),
    ("vs-source-namespace", "sourceNamespace is a DNS label"),
    ("vs-header-operation", "header operations name a header; no pseudo-headers, Host only via request add/set"),
    ("vs-header-value", "header values hold no control characters and only well-formed Envoy %VARIABLE% "
                        "expressions (`%%` for a literal %)"),
    ("vs-regex", "regexes (StringMatch regex, uriRegexRewrite.match, CORS origins) compile as RE2 and Go regexp"),
    ("vs-authority-once", "the authority is rewritten in one place only"),
    ("vs-cors-origin", "CORS allowOrigins entries have a non-empty exact, prefix or regex"),
    ("vs-cors-method", "CORS allowMethods are HTTP methods Go knows (GET, POST, ...)"),
    ("vs-cors-header", "CORS allow/expose headers are header names or `*`"),
    ("vs-cors-max-age", "CORS maxAge is whole seconds"),
    ("vs-fault", "a fault has an abort or a delay; no http2Error abort or exponentialDelay"),
    ("vs-fault-percentage", "fault percentages are 0 or within 0.0001..100"),
    ("vs-fault-status", "abort httpStatus is 200..600; grpcStatus a gRPC status name"),
    ("vs-redirect", "a redirect sets uri, authority, scheme or port; code 3xx; scheme http or https"),
    ("vs-direct-response", "directResponse status is 200..600 and its body at most 1 MB"),
    ("vs-retry-attempts", "retry attempts are not negative"),
    ("vs-retry-disabled", "no retry settings when attempts is 0 (retries disabled)"),
    ("vs-retry-on", "retryOn holds Envoy retry policies or HTTP status codes"),
    ("vs-rewrite", "a rewrite sets uri, uriRegexRewrite or authority; not uri and uriRegexRewrite"),
    ("vs-tls-match", "a tls route has matches, each with sniHosts"),
    ("vs-sni-host", "SNI hosts are domain names covered by the VirtualService's hosts"),
    ("vs-tls-tcp-route", "tls and tcp routes have a route"),
    ("vs-subnet", "destinationSubnets are IP addresses or CIDR blocks"),
])
_rules("VirtualService", [
    ("vs-weight-sum", "the weights of a route with several destinations sum to 100"),
    ("vs-header-name-token", "header names a route adds, sets or removes are RFC 7230 tokens (no HTTP peer can "
                             "carry another)"),
], policy=True)
_rules("DestinationRule", [
    ("dr-host", "host is a (wildcard) domain name"),
    ("dr-subset-name", "subset names are present, DNS labels and unique"),
    ("dr-traffic-policy-empty", "a trafficPolicy (and a portLevelSettings entry) sets at least one field"),
    ("dr-tunnel", "tunnel and proxyProtocol are not set together; tunnel protocol CONNECT/POST, target host and "
                  "port valid"),
    ("dr-outlier", "outlier percentages are 0..100; consecutiveLocalOriginFailures needs "
                   "splitExternalLocalOriginErrors"),
    ("dr-connection-pool", "connection pool limits are not negative; useClientProtocol not with UPGRADE; pool "
                           "sets http or tcp"),
    ("dr-load-balancer", "consistent hash: cookie name set, minimumRingSize not with ringHash/maglev, maglev "
                         "tableSize a prime below 5000011"),
    ("dr-locality", "locality load balancing: distribute xor failover, weights 1..100 summing to 100, "
                    "well-formed localities"),
    ("dr-tls-mutual", "client TLS MUTUAL without credentialName has clientCertificate and privateKey"),
    ("dr-tls-credential", "client TLS with credentialName sets no certificate, key, CA or CRL files"),
    ("dr-tls-insecure", "insecureSkipVerify is not combined with CA certificates or subjectAltNames"),
    ("dr-port-level", "each portLevelSettings entry has a port"),
    ("dr-selector-export", "a DestinationRule with a workloadSelector is exported to its own namespace only"),
])
_rules("ServiceEntry", [
    ("se-hosts", "at least one host; no host `*`; hosts are (wildcard) domain names"),
    ("se-selector-endpoints", "workloadSelector and endpoints are not set together"),
    ("se-address", "addresses are IP addresses or CIDR blocks"),
    ("se-address-cidr", "CIDR addresses only with resolution NONE or STATIC"),
    ("se-port-unique", "port names and numbers are unique"),
    ("se-port", "ports have a DNS-label name, a number (and targetPort) 1..65535 and a known or empty protocol"),
    ("se-none-endpoints", "resolution NONE takes no endpoints"),
    ("se-static-endpoint", "STATIC endpoints have an IP (or unix://) address; unix endpoints no ports and one "
                           "service port"),
    ("se-dns-hosts", "DNS resolution without endpoints needs fully qualified hosts (no wildcard)"),
    ("se-dns-round-robin", "DNS_ROUND_ROBIN takes at most one endpoint"),
    ("se-dns-endpoint", "DNS endpoints have an IP address or a fully qualified name"),
    ("se-endpoint-port", "endpoint ports name a port of the ServiceEntry and are 1..65535"),
    ("se-multi-host-tcp", "several hosts (resolution other than NONE) only with HTTP or TLS ports"),
])


_rules("Gateway", [
    ("gw-https-redirect-warn", "tls.httpsRedirect only on HTTP servers (istiod warns)"),
    ("gw-tls-old-version-warn", "minProtocolVersion below TLSV1_2 sets cipherSuites (istiod warns)"),
    ("gw-tls-passthrough-warn", "PASSTHROUGH/AUTO_PASSTHROUGH servers carry no certificates (istiod warns: ignored)"),
], warning=True)
_rules("VirtualService", [
    ("vs-mirror-percent-warn", "mirrorPercent is deprecated: mirrorPercentage (istiod warns)"),
    ("vs-abort-type-warn", "an abort sets httpStatus or grpcStatus (istiod warns)"),
    ("vs-direct-response-size-warn", "a directResponse body over 100 kB (istiod warns)"),
    ("vs-gateway-legacy-warn", "gateway references as `name.namespace` are legacy: `namespace/name` (istiod warns)"),
    ("vs-sni-ip-warn", "an IP address as SNI host (istiod warns)"),
    ("vs-unreachable-warn", "no route after a route without matches, nor one whose matches all repeat earlier "
                            "ones (istiod warns)"),
    ("vs-duplicate-match-warn", "no match that repeats one of an earlier route (istiod warns)"),
], warning=True)
_rules("DestinationRule", [
    ("dr-consecutive-errors-warn", "outlierDetection.consecutiveErrors is deprecated (istiod warns)"),
    ("dr-ring-size-warn", "consistentHash.minimumRingSize is deprecated (istiod warns)"),
    ("dr-failover-outlier-warn", "locality failover (or failoverPriority) comes with outlierDetection (istiod "
                                 "warns)"),
], warning=True)
_rules("any", [
    ("selector-empty-warn", "a workloadSelector has labels (istiod warns: it selects every workload)"),
], warning=True)
_rules("ServiceEntry", [
    ("se-partial-wildcard-warn", "no partial wildcard host (`*x.com`) unless resolution DYNAMIC_DNS (istiod warns)"),
    ("se-selector-none-warn", "no workloadSelector with resolution NONE (istiod warns)"),
    ("se-multi-host-address-warn", "addresses with a TCP port and several hosts (istiod warns)"),
], warning=True)


# ---------------------------------------------------------------- shared checks


def is_ip(text):
    if not isinstance(text, str):
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_ip_or_cidr(text):
    if not isinstance(text, str):
        return False
    if text.count("/") == 1:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            return False
        return "%" not in text
    return is_ip(text)


def _labels_problem(domain):
    labels = domain.split(".")
    if labels[-1].isdigit():
        return f"its top-level domain {labels[-1]!r} is all digits"
    for i, label in enumerate(labels):
        if i == len(labels) - 1 and label == "":
            return None  # `istio.io.`: a trailing dot is fine
        if len(label) > 63 or not ISTIO_LABEL.match(label):
            return f"label {label!r} is not a DNS label"
    return None


def domain_problem(domain, wildcard=True):
    """Why `domain` is no valid host name (a wildcard first label allowed
    when `wildcard`), or None."""
    if not isinstance(domain, str) or not domain:
        return "an empty host name"
    if len(domain) > 255:
        return "longer than 255 characters"
    if not wildcard:
        return _labels_problem(domain)
    first, _sep, rest = domain.partition(".")
    if len(first) > 63 or not WILDCARD_LABEL.match(first):
        return f"label {first!r} is not a DNS label (a wildcard `*` may only lead the first label)"
    return _labels_problem(rest) if rest else None


def partial_wildcard(host):
    return "*" in host and host != "*" and not host.startswith("*.")


def port_problem(number):
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
        return f"port {number!r} is outside 1..65535"
    return None


def label_key_problem(key):
    prefix, slash, name = key.rpartition("/") if "/" in key else ("", "", key)
    if slash and (not prefix or len(prefix) > 253 or not LABEL_PREFIX.match(prefix)):
        return f"label key {key!r} has an invalid prefix"
    if len(name) > 63 or not LABEL_NAME.match(name):
        return f"label key {key!r} is not a valid label name"
    return None


def labels_problems(found, labels, path):
    for key, value in (labels or {}).items():
        problem = label_key_problem(str(key))
        if problem:
            found.add("labels", f"{path}[{key}]", f"{problem} (letters, digits, '-', '_', '.', starting and ending "
                                                  "with a letter or digit, optionally prefix/)")
        if not isinstance(value, str) or not LABEL_VALUE.match(value):
            found.add("labels", f"{path}[{key}]", f"label value {value!r} is invalid (letters, digits, '-', '_', "
                                                  "'.', starting and ending with a letter or digit, or empty)")


def selector_problems(found, labels, path):
    if not labels:
        found.add("selector-empty-warn", path, "a workload selector without labels selects every workload in the "
                  "namespace: give labels, or remove the selector")
    for key, value in (labels or {}).items():
        if key == "":
            found.add("selector-label", f"{path}[]", "an empty key selects nothing: name a label")
        if "*" in str(key) or "*" in str(value):
            found.add("selector-label", f"{path}[{key}]", f"wildcard in selector {key}={value} is not supported: "
                                                          "give the exact label")


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|ms|s|m|h)")
_NANOS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def duration_nanos(text):
    """Nanoseconds of a Go duration ("1m30s", "500ms"), or None."""
    if not isinstance(text, str) or not text:
        return None
    total, position = 0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        whole, _sep, fraction = match.group(1).partition(".")
        unit = _NANOS[match.group(2)]
        total += int(whole or 0) * unit + (int(fraction) * unit // 10 ** len(fraction) if fraction else 0)
        position = match.end()
    return total if position == len(text) else None


def duration_problems(found, value, path):
    """A duration istiod takes: >= 1ms and whole milliseconds. Unparseable
    text is the CRD schema's to refuse."""
    nanos = duration_nanos(value)
    if nanos is None:
        return
    if nanos < 10**6:
        found.add("duration", path, f"{value!r} is shorter than 1ms: use at least 1ms")
    elif nanos % 10**6:
        found.add("duration", path, f"{value!r} is not whole milliseconds: round it to ms")


def export_to_problems(found, namespace, export_to, service_entry=False):
    entries = export_to or []
    seen = set()
    for i, entry in enumerate(entries):
        key = namespace if entry == "." else entry
        path = f"spec.exportTo[{i}]"
        if key in seen:
            found.add("export-to-duplicate", path, f"{entry!r} is already in exportTo"
                      + (f" ('.' is namespace {namespace})" if entry == "." or key == namespace else "")
                      + ": list it once")
            continue
        if entry == "~" and service_entry:
            seen.add(key)
        elif key in ("*", ".") or (isinstance(key, str) and len(key) <= 63 and ISTIO_LABEL.match(key)):
            seen.add(key)
        else:
            found.add("export-to-entry", path, f"{entry!r} is not an exportTo entry: use '.', '*' or a namespace"
                      + (", or '~' alone" if service_entry else ""))
    if len(entries) > 1 and "*" in seen:
        found.add("export-to-exclusive", "spec.exportTo", "'*' exports to every namespace: give it alone, or "
                  "only namespaces")
    if len(entries) > 1 and "~" in seen:
        found.add("export-to-exclusive", "spec.exportTo", "'~' exports to no namespace: give it alone")
    return seen


def header_name_problem(name, jwt=False):
    """istiod's header name in a match (`jwt`: JWT claims and the five
    pseudo-headers too) or a CORS list: an RFC 7230 token."""
    if not name:
        return "an empty header name"
    if jwt and (JWT_CLAIM_HEADER.match(name) or name in PSEUDO_HEADERS):
        return None
    if not HEADER_NAME.match(name):
        return (f"{name!r} is not a header name (an RFC 7230 token: letters, digits and punctuation such as - _ . "
                "! # $ %; no spaces, no ':' but in :authority, :path, :method, :scheme, :status)")
    return None


def header_value_problem(value):
    """Why Envoy would refuse a header value istiod passes on (a control
    character, or a malformed %VARIABLE% expression), or None."""
    if not isinstance(value, str) or not value:
        return None
    if HEADER_VALUE_CONTROL.search(value):
        return "the value holds a control character: remove it"
    state, i = "literal", 0
    while i < len(value):
        char = value[i]
        if state == "literal":
            if char == "%":
                if i + 1 == len(value):
                    return "an unescaped '%' ends the value: write '%%' for a literal %"
                if value[i + 1] == "%":
                    i += 1
                else:
                    state = "name"
        elif state == "name":
            state = {"%": "literal", "(": "args"}.get(char, "name")
        elif state == "args":  # %VAR(...)%: a JSON array of strings, or a bare argument
            state = "string_start" if char == "[" else ("args" if char == " " else "string")
        elif state == "string_start":
            if char == '"':
                state = "string"
            elif char != " ":
                return "expected '\"' to start a string argument of a %VARIABLE(...)% expression"
        elif state == "string":
            if char == "\\":
                if i + 1 == len(value):
                    return "a backslash ends a string argument of a %VARIABLE(...)% expression"
                i += 1
            elif char == ")":
                state = "var_end"
            elif char == '"':
                state = "delimiter"
        elif state == "delimiter":
            if char == ",":
                state = "string_start"
            elif char == "]":
                state = "args_end"
            elif char != " ":
                return "expected ',' or ']' between the arguments of a %VARIABLE(...)% expression"
        elif state == "args_end":
            if char == ")":
                state = "var_end"
            elif char != " ":
                return "expected ')' after the arguments of a %VARIABLE(...)% expression"
        elif state == "var_end":
            if char == "%":
                state = "literal"
            elif char != " ":
                return "expected '%' to close a %VARIABLE(...)% expression"
        i += 1
    if state != "literal":
        return "an unterminated %VARIABLE% expression: close it with '%', or write '%%' for a literal %"
    return None


HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"}
RETRY_POLICIES = {
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx", "refused-stream",
    "retriable-status-codes", "retriable-headers", "envoy-ratelimited", "http3-post-connect-failure",
    "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
}
GRPC_STATUSES = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
    "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}
HTTP_STATUS_CODES = {status.value for status in http.HTTPStatus}


def number(value, default=0):
    """A numeric field, or `default` when unset or not a number (the schema
    names a wrong type)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    return value


# ---------------------------------------------------------------- host matching


def hosts_overlap(a, b):
    """Istio's host.Name.Matches: equal names, or a wildcard (`*`,
    `*.example.com`) covering the other name or wildcard."""
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    a_wild, b_wild = a.startswith("*"), b.startswith("*")
    if a_wild and b_wild:
        return a[1:].endswith(b[1:]) or b[1:].endswith(a[1:])
    if a_wild:
        return b.endswith(a[1:])
    if b_wild:
        return a.endswith(b[1:])
    return False


def host_subset(a, b):
    """Istio's host.Name.SubsetOf: every name `a` covers, `b` covers too."""
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    if not b.startswith("*"):
        return False
    suffix = b[1:]
    return (a[1:] if a.startswith("*") else a).endswith(suffix)
