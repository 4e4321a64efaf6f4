"""Which failed `istioctl install` runs the Istio stage tries again (plugins/filter/istioctl.py, issue 21).

The messages are those istioctl (client-go underneath) prints for each cause."""

import pytest
from ansible_collections.istio_lab.lab.plugins.filter.istioctl import istioctl_failure

TRANSIENT = [
    'Error: failed to get Kubernetes version: Get "https://127.0.0.1:6443/version?timeout=5s": dial tcp '
    "127.0.0.1:6443: connect: connection refused",
    "Error: failed to install manifests: failed to update resource with server-side apply for obj "
    "CustomResourceDefinition//wasmplugins.extensions.istio.io: the server is currently unable to handle the request",
    "Error: failed to install manifests: the server has received too many requests and has asked us to try again "
    "later (post serviceaccounts)",
    "Error: failed to install manifests: Internal error occurred: resource quota evaluation timed out",
    'Error: failed to install manifests: Patch "https://10.0.0.1:6443/apis/apps/v1/namespaces/istio-system/'
    'deployments/istiod?fieldManager=istio-operator": net/http: TLS handshake timeout',
    "Error: failed to install manifests: etcdserver: leader changed",
    'Error: failed to install manifests: Patch "https://127.0.0.1:6443/apis/apps/v1/namespaces/istio-system/'
    'deployments/istiod?fieldManager=istio-operator": EOF',
    "Error: failed to install manifests: http2: client connection lost",
    "Error: failed to install manifests: the server was unable to return a response in the time allotted, but may "
    "still be processing the request",
    "Error: failed to install manifests: read tcp 127.0.0.1:51234->127.0.0.1:6443: read: connection reset by peer",
    'Error: failed calling webhook "validation.istio.io": Post "https://istiod.istio-system.svc:443/validate": '
    "dial tcp 10.96.0.12:443: connect: connection refused",
]
PERMANENT = [
    'Error: generate config: unknown field "appProtocol" in v1alpha1.ServicePort',
    "Error: istioctl test double: unknown field(s) appProtocol in spec.components.ingressGateways[0].k8s.service.ports",
    'Error: failed to install manifests: admission webhook "validation.istio.io" denied the request: configuration '
    "is invalid: port name must be set",
    'Error: failed to install manifests: deployments.apps "istiod" is forbidden: User "student" cannot patch',
    "Error: failed to install manifests: Unauthorized",
    "Error: failed to wait for resource: resources not ready after 5m0s: context deadline exceeded\n"
    "  Deployment/istio-system/istio-ingressgateway (container failed to start: ImagePullBackOff)",
    "Error: could not read file: open /tmp/op.yaml: no such file or directory",
    "Error: something else entirely",
]


@pytest.mark.parametrize("stderr", TRANSIENT)
def test_transient_failures_are_tried_again(stderr):
    assert istioctl_failure({"rc": 1, "failed": True, "stderr": stderr, "stdout": ""}) == "transient"


@pytest.mark.parametrize("stderr", PERMANENT)
def test_other_failures_stop_at_once(stderr):
    assert istioctl_failure({"rc": 1, "failed": True, "stderr": stderr, "stdout": ""}) == "permanent"


def test_a_success_is_no_failure():
    assert istioctl_failure({"rc": 0, "stderr": "", "stdout": "✔ Installation complete"}) == ""
    assert istioctl_failure({"rc": 2, "failed": True, "msg": "[Errno 2] No such file or directory: b'istioctl'"}) \
        == "permanent"
