"""The lab_verify module (the whole verification in one process): its
documentation matches its arguments; its behaviour is tested through the role
in tests/api/test_routes_verify.py and test_site_chapters_5_6.py."""

from plugins.modules import lab_verify
from tests.helpers import documented_options


def test_lab_verify_documents_exactly_its_arguments():
    documented = documented_options("lab_verify")
    assert set(documented) == set(lab_verify.ARGUMENT_SPEC)
    for name, arg in lab_verify.ARGUMENT_SPEC.items():
        for field in ("type", "default", "elements"):
            assert documented[name].get(field) == arg.get(field), (name, field)
        assert bool(documented[name].get("required")) == bool(arg.get("required")), name
