"""A kube-apiserver v1.36 test double for istio-lab's API tests (see docs/testing.md)."""

from .errors import ApiError
from .schema import load_crd_file
from .server import DEFAULT_TOKEN, KubeDouble

__all__ = ["ApiError", "DEFAULT_TOKEN", "KubeDouble", "load_crd_file"]
