"""A client with a budget (the classroom status probe's, issue 27): a dead or blackholed API is reported within
the budget, each request's connect and read timeouts cut to what is left; without one, nothing changes."""

import socket
import time

import pytest
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.client import (
    REQUEST_TIMEOUT,
    KubeClient,
    KubeError,
)

from tests.helpers import free_port


def test_a_port_nothing_listens_on_is_retried_only_within_the_budget():
    made = KubeClient(host=f"http://127.0.0.1:{free_port()}", api_key="x", budget=1, timeout=300)
    started = time.monotonic()
    with pytest.raises(KubeError) as failure:
        made.request("get", "GET", "/api/v1/namespaces")
    took = time.monotonic() - started
    assert 0.5 < took < 3, took  # retried (backoff 0.2, 0.4 ...) until the budget, not wait_timeout's 300 s
    assert made.counts["get"] >= 2
    assert "127.0.0.1" in str(failure.value)


def test_an_api_that_accepts_and_never_answers_costs_the_budget_not_the_read_timeout():
    # The kernel completes the handshake of a listening socket nobody accepts from: the request's read hangs,
    # as behind a blackholing firewall that lets the SYN through.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        made = KubeClient(host=f"http://127.0.0.1:{silent.getsockname()[1]}", api_key="x", budget=1)
        started = time.monotonic()
        with pytest.raises(KubeError) as failure:
            made.request("get", "GET", "/api/v1/namespaces")
        took = time.monotonic() - started
    assert took < 3, took  # REQUEST_TIMEOUT's read timeout is 60 s
    assert "within 1 s" in str(failure.value) or "cannot reach" in str(failure.value), failure.value


def test_the_timeouts_are_cut_to_the_budget_left_and_unchanged_without_one():
    now = [100.0]
    budgeted = KubeClient(host="http://127.0.0.1:9", api_key="x", budget=10, clock=lambda: now[0])
    assert budgeted._request_timeout(now[0], 0) == (10, 10)
    now[0] += 7
    assert budgeted._request_timeout(now[0], 1) == (3, 3)
    now[0] += 3
    with pytest.raises(KubeError, match="within 10 s"):
        budgeted._request_timeout(100.0, 2)
    plain = KubeClient(host="http://127.0.0.1:9", api_key="x", timeout=5, clock=lambda: now[0])
    now[0] += 100  # past its wait_timeout: a build module's late requests keep their full timeouts
    assert plain._request_timeout(now[0], 0) == REQUEST_TIMEOUT
