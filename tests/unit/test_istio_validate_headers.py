"""Header names and values as istiod 1.30 checks them (validate_common):
names in matches and CORS lists are RFC 7230 tokens (plus the pseudo-headers
and JWT claims in matches); values hold no control character and only
well-formed Envoy %VARIABLE% expressions. One table each."""

import pytest
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate_common import (
    header_name_problem,
    header_value_problem,
)

# (value, accepted)
VALUES = [
    ("", True),
    ("plain text", True),
    ("tab\tinside", True),
    ("100%%", True),
    ("%%%%", True),
    ("%HOSTNAME%", True),
    ("node %HOSTNAME% says hi", True),
    ("%START_TIME(%s)%", True),
    ("%REQ(x-request-id)%", True),
    ('%REQ(["x-a", "x-b"])%', True),
    ('%PER_REQUEST_STATE( ["key"] ) %', True),
    ('%DYNAMIC_METADATA(["ns", "key\\"quoted"])%', True),
    ("100%", False),
    ("abc%123", False),
    ("%START_TIME%%", False),
    ("%HOSTNAME", False),
    ("%REQ(x-a", False),
    ('%REQ(["x-a" x])%', False),
    ("%REQ([x-a])%", False),
    ('%REQ(["x-a"] x)%', False),
    ("%REQ(x-a) x%", False),
    ('%REQ(["x-a\\', False),
    ("bell\x07", False),
    ("new\nline", False),
    ("del\x7f", False),
]

# (name, accepted in a match, accepted in a CORS list)
NAMES = [
    ("x-request-id", True, True),
    ("X_Legacy_Header", True, True),
    ("funky!$#_", True, True),
    ("x-b3-*", True, True),
    (":authority", True, False),
    (":path", True, False),
    ("@request.auth.claims.groups", True, False),
    ("@request.auth.claims[nested][key]", True, False),
    ("", False, False),
    ("end user", False, False),
    ("x:id", False, False),
    ("::", False, False),
    (":host", False, False),
    ('illegal"quote', False, False),
    ("x-ü", False, False),
]


@pytest.mark.parametrize(("value", "accepted"), VALUES, ids=[repr(v) for v, _ in VALUES])
def test_header_values_as_envoy_parses_them(value, accepted):
    problem = header_value_problem(value)
    assert (problem is None) is accepted, problem


@pytest.mark.parametrize(("name", "in_match", "in_cors"), NAMES, ids=[repr(n) for n, _m, _c in NAMES])
def test_header_names_in_matches_and_cors_lists(name, in_match, in_cors):
    assert (header_name_problem(name, jwt=True) is None) is in_match
    assert (header_name_problem(name) is None) is in_cors
