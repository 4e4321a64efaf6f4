"""The Envoy-like server the verification tests probe (tests/verify_envoy.py)."""

import http.client

import pytest

from tests.verify_envoy import Answer, EnvoyLikeServer


def get(server, host, path="/"):
    conn = http.client.HTTPConnection(server.address, server.port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.getheader("server"), response.read().decode()
    finally:
        conn.close()


def test_answers_like_envoy_per_host():
    routes = {
        "grafana-istio.kubernets.cn": 200,
        "zipkin-istio.kubernets.cn": 503,
        "*.apps.example": Answer(status=302, location="/kiali/"),
        "odd.example": {"status": 200, "server": "nginx"},
    }
    with EnvoyLikeServer("127.0.0.1", 0, routes) as envoy:
        assert get(envoy, "grafana-istio.kubernets.cn")[:2] == (200, "istio-envoy")
        assert get(envoy, "GRAFANA-istio.kubernets.cn:80")[:2] == (200, "istio-envoy")
        assert get(envoy, "zipkin-istio.kubernets.cn") == (503, "istio-envoy", "no healthy upstream")
        assert get(envoy, "a.apps.example")[:2] == (302, "istio-envoy")
        assert get(envoy, "odd.example")[:2] == (200, "nginx")
        # no VirtualService binds this host: Envoy's empty 404
        assert get(envoy, "other.kubernets.cn") == (404, "istio-envoy", "")
        assert envoy.requests[0] == ("GET", "grafana-istio.kubernets.cn", "/")


def test_catch_all_and_server_override():
    with EnvoyLikeServer("127.0.0.2", 0, {"*": 200, "exact.example": 503}, server="Apache") as other:
        assert other.address == "127.0.0.2"
        assert get(other, "anything.example")[:2] == (200, "Apache")
        assert get(other, "exact.example")[:2] == (503, "Apache")


def test_a_list_of_answers_is_served_in_turn():
    with EnvoyLikeServer("127.0.0.1", 0, {"late.example": [404, 503, 200]}) as envoy:
        assert [get(envoy, "late.example")[0] for _ in range(4)] == [404, 503, 200, 200]


def test_refuses_non_loopback_addresses():
    with pytest.raises(ValueError, match="loopback"):
        EnvoyLikeServer("0.0.0.0")
