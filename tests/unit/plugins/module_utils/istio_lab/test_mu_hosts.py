"""Istio host rules of the collection's module_utils (validate): self-contained,
so that they run under `ansible-test units` on the installed collection as
well as under the project's pytest suite."""

from __future__ import annotations

import pytest
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.validate import (
    host_subset,
    hosts_overlap,
    server_admits,
)


@pytest.mark.parametrize(
    "a, b, overlap",
    [
        ("*", "grafana-istio.kubernets.cn", True),
        ("*.kubernets.cn", "grafana-istio.kubernets.cn", True),
        ("*.kubernets.cn", "kubernets.cn", False),
        ("*.cn", "*.kubernets.cn", True),
        ("a.example.com", "b.example.com", False),
        ("Grafana-Istio.kubernets.cn", "grafana-istio.kubernets.cn", True),
    ],
)
def test_hosts_overlap_like_istio(a, b, overlap):
    for pair in ((a, b), (b, a)):  # both ways
        assert hosts_overlap(*pair) is overlap


def test_host_subset_is_directional():
    assert host_subset("grafana.kubernets.cn", "*")
    assert not host_subset("*", "grafana.kubernets.cn")
    assert host_subset("*.a.kubernets.cn", "*.kubernets.cn")


@pytest.mark.parametrize(
    "server_host, vs_namespace, vs_host, effective",
    [
        ("*", "microservice", "*", "*"),
        ("*", "istio-system", "grafana-istio.kubernets.cn", "grafana-istio.kubernets.cn"),
        ("prometheus-istio.kubernets.cn", "istio-system", "*", "prometheus-istio.kubernets.cn"),
        ("./*", "istio-system", "kiali.kubernets.cn", "kiali.kubernets.cn"),
        ("./*", "microservice", "kiali.kubernets.cn", None),
        ("microservice/*", "microservice", "tomcat.kubernets.cn", "tomcat.kubernets.cn"),
        ("microservice/*", "default", "tomcat.kubernets.cn", None),
        ("*/tomcat.kubernets.cn", "default", "tomcat.kubernets.cn", "tomcat.kubernets.cn"),
        ("~/*", "istio-system", "x.kubernets.cn", None),
        ("grafana.kubernets.cn", "istio-system", "kiali.kubernets.cn", None),
    ],
)
def test_a_gateway_server_admits_a_virtual_service_host(server_host, vs_namespace, vs_host, effective):
    assert server_admits("istio-system", server_host, vs_namespace, vs_host) == effective
