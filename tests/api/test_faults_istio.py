"""The Istio install rides out a transient istioctl failure (issue 21).

The istioctl stand-in (tests/bin/istioctl) is told to fail its first N
installs, after validating the IstioOperator, with what istioctl prints when
the API server answers 503 (ISTIOCTL_DOUBLE_FAIL_TIMES, a counter file), or
with a refusal another try cannot change. The Istio stage must try again after
a transient failure, within istio_install_retries, then stop with istioctl's
own message and what to do; a permanent failure stops at the first try.
Against the API double only (the istioctl stand-in and a loopback MetalLB
pool); what a real istioctl prints is the boundary (the patterns of
plugins/filter/istioctl.py are unit-tested on its messages).
"""

import os

import pytest

from tests.api.test_platform import forget_the_install, istioctl_calls, stage
from tests.conftest import _make_double_target, shared_path

pytestmark = pytest.mark.api

RETRIES = {"istio_install_retries": 2, "istio_install_retry_delay": 1}


@pytest.fixture(scope="module")
def metallb_ready(tmp_path_factory):
    """A fresh API double with MetalLB installed (the ingress gateway gets its IP)."""
    if os.environ.get("ISTIO_LAB_TEST_KUBECONFIG"):
        pytest.skip("installs Istio through the istioctl test double: API double only")
    if not (shared_path() / "upstream").is_dir():
        pytest.skip(f"shared upstream manifests not found under {shared_path()} (set ISTIO_LAB_SHARED)")
    workdir = tmp_path_factory.mktemp("faults-istio")
    double, kube = _make_double_target(workdir, [])
    try:
        result = stage("metallb", kube, workdir)
        assert result.rc == 0, result
        yield kube, workdir
    finally:
        double.stop()


def faulty(workdir, times, message=None):
    counter = workdir / f"istioctl-failures-{times}-{bool(message)}"
    counter.unlink(missing_ok=True)
    env = {"ISTIOCTL_DOUBLE_FAIL_TIMES": str(times), "ISTIOCTL_DOUBLE_FAIL_COUNTER": str(counter)}
    if message:
        env["ISTIOCTL_DOUBLE_FAIL_MESSAGE"] = message
    return env


def installs(workdir):
    return [call for call in istioctl_calls(workdir) if call["argv"][0] == "install"]


def install_record(kube):
    return kube.get("v1", "ConfigMap", "istio-lab-install", "istio-system")


def test_a_transient_failure_is_tried_again_and_the_install_completes(metallb_ready):
    kube, workdir = metallb_ready
    before = len(installs(workdir))
    result = stage("istio", kube, workdir, env=faulty(workdir, 2), **RETRIES)
    assert result.rc == 0 and result.failed == 0, result
    assert len(installs(workdir)) - before == 3  # two 503s, then the install
    assert "FAILED - RETRYING: [lab]: Install Istio with istioctl (2 retries left)" in result.stdout
    assert install_record(kube)["data"]["version"] == "1.30.3"
    again = stage("istio", kube, workdir, **RETRIES)
    assert again.rc == 0 and again.changed == 0, again


def test_past_the_bound_it_stops_with_istioctls_message_and_what_to_do(metallb_ready):
    kube, workdir = metallb_ready
    forget_the_install(kube)
    before = len(installs(workdir))
    result = stage("istio", kube, workdir, env=faulty(workdir, 5), **RETRIES)
    assert result.rc != 0 and result.failed == 1, result
    assert len(installs(workdir)) - before == 3  # the first try and two more
    text = " ".join(result.stdout.split())
    assert "istioctl install failed 3 times: Error: failed to install manifests" in text, text[-3000:]
    assert "the server is currently unable to handle the request" in text
    assert "check that it answers (kubectl get --raw=/readyz), then rerun this playbook" in text
    assert install_record(kube) is None  # not recorded: the next run installs


def test_a_permanent_failure_stops_at_the_first_try(metallb_ready):
    kube, workdir = metallb_ready
    message = 'admission webhook "validation.istio.io" denied the request: configuration is invalid'
    forget_the_install(kube) if install_record(kube) else None
    before = len(installs(workdir))
    result = stage("istio", kube, workdir, env=faulty(workdir, 5, message), **RETRIES)
    assert result.rc != 0 and result.failed == 1, result
    assert len(installs(workdir)) - before == 1
    text = " ".join(result.stdout.split())
    assert f"istioctl install failed: Error: {message}" in text, text[-3000:]
    assert "istioctl refused the install, which another try would not change" in text
    assert "FAILED - RETRYING" not in result.stdout


def test_an_invalid_operator_file_is_refused_at_once(metallb_ready):
    kube, workdir = metallb_ready
    forget_the_install(kube) if install_record(kube) else None
    ports = [{"name": "http2", "port": 80, "targetPort": 8080, "appProtocol": "http"}]  # istioctl knows no appProtocol
    result = stage("istio", kube, workdir, istio_ingress_ports=ports, **RETRIES)
    assert result.rc != 0 and result.failed == 1, result
    text = " ".join(result.stdout.split())
    assert "istioctl install failed: Error: istioctl test double: unknown field(s) appProtocol" in text, text[-3000:]
    assert "istioctl refused the install, which another try would not change" in text
    assert "FAILED - RETRYING" not in result.stdout
