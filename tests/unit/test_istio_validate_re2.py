"""validate_re2.re2_problem, the pure-Python check of the regexes istiod
compiles with Go's regexp and Envoy with RE2, from one table: each pattern
with whether RE2 and Go's regexp compile it. The check must take a pattern
exactly when both do; the table's RE2 column is held against the real RE2
(google-re2, a test-only dependency) and Python's `re` is shown to differ
both ways (why the check cannot be `re.compile`)."""

import re
import warnings

import pytest
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate_re2 import (
    UNICODE_CLASSES,
    re2_problem,
)

# (pattern, RE2 compiles it, Go's regexp compiles it); written from RE2's
# syntax page and Go's regexp/syntax documentation.
TABLE = [
    # what the lab's routes use
    (r"^/api/v[0-9]+/.*$", True, True),
    (r"/productpage|/static/.*", True, True),
    (r"(foo|bar)+baz?", True, True),
    (r"\d+\.\d+", True, True),
    (r"(?i)^bearer\s+\S+$", True, True),
    (r"(?s).", True, True),
    (r"(?m)^a$", True, True),
    (r"(?U)a+", True, True),
    (r"(?i-s:a.)", True, True),
    (r"(?i)(?-i)", True, True),
    (r"(?)", True, True),
    (r"(?i:)", True, True),
    (r"()", True, True),
    (r"(|a)", True, True),
    (r".*", True, True),
    (r"\A\z", True, True),
    (r"\bword\B", True, True),
    (r"^*", True, True),
    (r"a*?", True, True),
    (r"a{2}?", True, True),
    (r"a{1000}", True, True),
    (r"a{0,1000}", True, True),
    (r"(a{2}){500}", True, True),
    (r"a{,3}", True, True),  # not a repeat: literal text
    (r"{01}", True, True),  # a leading zero: literal text too
    (r"a{01}{2}", True, True),
    (r"a{", True, True),
    (r"a{1,2", True, True),
    (r"\Q*+?\E", True, True),
    (r"\Q*", True, True),
    (r"\t\n\r\f\a\v", True, True),
    (r"\0\07\077\12", True, True),
    (r"\x41\x{10FFFF}", True, True),
    (r"\$\#\~\%\_\ \-", True, True),
    (r"[]a]", True, True),
    (r"[^]a]", True, True),
    (r"[a-]", True, True),
    (r"[-a]", True, True),
    (r"[a-b-c]", True, True),
    (r"[\d-z]", True, True),
    (r"[\v]", True, True),
    (r"[[:foo]", True, True),  # not a POSIX class: literal characters
    (r"(?P<name_1>x)", True, True),
    (r"(?<x>a)", True, True),
    # RE2 takes, Python's re refuses
    (r"\pL", True, True),
    (r"\PL", True, True),
    (r"\pN+", True, True),
    (r"\p{Greek}", True, True),
    (r"\p{^Greek}", True, True),
    (r"\P{^L}", True, True),
    (r"\p{Lu}\p{Any}", True, True),
    (r"[\p{Greek}\d]", True, True),
    (r"[\pL-z]", True, True),
    (r"[[:alpha:]]+", True, True),
    (r"[[:^alpha:]]", True, True),
    (r"[[:word:]]", True, True),
    # Python's re takes, RE2 refuses
    (r"foo(?=bar)", False, False),
    (r"foo(?!bar)", False, False),
    (r"(?<=a)b", False, False),
    (r"(?<!a)b", False, False),
    (r"(?>a+)b", False, False),
    (r"(?#comment)a", False, False),
    (r"(a)\1", False, False),
    (r"(?P<n>a)(?P=n)", False, False),
    (r"a\Z", False, False),
    (r"\G", False, False),
    (r"\e", False, False),
    (r"[\b]", False, False),
    (r"(?x) a", False, False),
    (r"(?a)a", False, False),
    (r"\u0041", False, False),
    (r"\N{DASH}", False, False),
    (r"a{1001}", False, False),
    (r"x{2,1}", False, False),
    (r"\8", False, False),
    (r"\y", False, False),
    (r"a*+", False, False),
    (r"a++", False, False),
    (r"a**", False, False),
    (r"a{2}{3}", False, False),
    # both refuse
    (r"(a", False, False),
    (r"a)", False, False),
    (r"((a)", False, False),
    (r"[a", False, False),
    (r"[]", False, False),
    ("a\\", False, False),
    (r"*a", False, False),
    (r"a|*", False, False),
    (r"(*)", False, False),
    (r"{2}", False, False),
    (r"[z-a]", False, False),
    (r"[a-\d]", False, False),
    (r"[[:foo:]]", False, False),
    (r"\p{Foo}", False, False),
    (r"\pX", False, False),
    (r"\p", False, False),
    (r"\x4", False, False),
    (r"\xZZ", False, False),
    (r"\x{110000}", False, False),
    (r"(?-)", False, False),
    (r"(?i-)", False, False),
    (r"(?P<>a)", False, False),
    (r"(?P<n", False, False),
    (r"(a{100}){100}", False, False),  # nested counts multiply past 1000
    (r"(a{2}){501}", False, False),
    (r"(?P<n>a)(?P<n>b)", True, True),  # a name twice is no error in either
    # Go's regexp refuses, RE2 takes: istiod refuses
    (r"\C", True, False),
    (r"(?P<é>a)", True, False),
]
IDS = [repr(pattern) for pattern, _re2, _go in TABLE]


@pytest.mark.parametrize(("pattern", "in_re2", "in_go"), TABLE, ids=IDS)
def test_the_check_takes_exactly_what_both_istiod_and_envoy_compile(pattern, in_re2, in_go):
    problem = re2_problem(pattern)
    if in_re2 and in_go:
        assert problem is None
    else:
        assert problem and "RE2 syntax" in problem


@pytest.mark.parametrize(("pattern", "in_re2", "_in_go"), TABLE, ids=IDS)
def test_the_table_says_what_the_real_re2_does(pattern, in_re2, _in_go):
    re2 = pytest.importorskip("re2", reason="google-re2 (requirements.txt) is not installed")
    try:
        re2.compile(pattern)
    except re2.error:
        compiled = False
    else:
        compiled = True
    assert compiled is in_re2


def test_pythons_re_differs_both_ways_so_it_cannot_be_the_check():
    def python_takes(pattern):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # [[:alpha:]] reads as a nested set
                re.compile(pattern)
        except re.error:
            return False
        return True

    python_only = [p for p, in_re2, in_go in TABLE if python_takes(p) and not (in_re2 and in_go)]
    re2_only = [p for p, in_re2, in_go in TABLE if in_re2 and in_go and not python_takes(p)]
    assert r"foo(?=bar)" in python_only and r"a\Z" in python_only
    assert r"\pL" in re2_only and r"\p{Greek}" in re2_only


def test_every_unicode_class_the_check_knows_is_one_re2_knows():
    re2 = pytest.importorskip("re2", reason="google-re2 (requirements.txt) is not installed")
    refused = []
    for name in sorted(UNICODE_CLASSES):
        try:
            re2.compile(rf"\p{{{name}}}")
        except re2.error:
            refused.append(name)
    assert refused == []


def test_deep_nesting_is_refused_and_the_message_says_why():
    assert re2_problem("(" * 1001 + ")" * 1001).startswith("expression nests too deeply")
    assert re2_problem("(" * 50 + "a" + ")" * 50) is None
    assert "lookahead" in re2_problem("foo(?=bar)")
    assert "backreference" in re2_problem(r"(a)\1")
    assert "\\z" in re2_problem(r"a\Z")
