# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The argument spec the istio-lab modules share. Connection options read the
same K8S_AUTH_* environment variables as kubernetes.core. The modules'
DOCUMENTATION describes exactly these options (a unit test compares them)."""

from __future__ import annotations

import copy

from ansible.module_utils.basic import env_fallback
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab.resource import DEFAULT_API_VERSION

CONNECTION_ARGS = {
    "kubeconfig": {"type": "path", "fallback": (env_fallback, ["K8S_AUTH_KUBECONFIG"])},
    "context": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_CONTEXT"])},
    "host": {"type": "str", "fallback": (env_fallback, ["K8S_AUTH_HOST"])},
    "api_key": {"type": "str", "no_log": True, "fallback": (env_fallback, ["K8S_AUTH_API_KEY"])},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"], "fallback": (env_fallback, ["K8S_AUTH_VERIFY_SSL"])},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"], "fallback": (env_fallback, ["K8S_AUTH_SSL_CA_CERT"])},
    "client_cert": {"type": "path", "aliases": ["cert_file"], "fallback": (env_fallback, ["K8S_AUTH_CERT_FILE"])},
    "client_key": {
        "type": "path",
        "aliases": ["key_file"],
        "no_log": False,
        "fallback": (env_fallback, ["K8S_AUTH_KEY_FILE"]),
    },
}

_OBJECT_ARGS = {
    "name": {"type": "str"},
    "namespace": {"type": "str"},
    "spec": {"type": "dict"},
    "labels": {"type": "dict"},
    "annotations": {"type": "dict"},
    "state": {"type": "str", "choices": ["present", "absent"]},
}

RESOURCE_ARGS = {
    **copy.deepcopy(_OBJECT_ARGS),
    "api_version": {"type": "str", "default": DEFAULT_API_VERSION},
    "validate": {"type": "str", "choices": ["strict", "warn"], "default": "strict"},
    "adopt": {"type": "bool", "default": False},
    "definitions": {"type": "list", "elements": "dict", "options": {**copy.deepcopy(_OBJECT_ARGS),
                                                                    "name": {"type": "str", "required": True}}},
}
RESOURCE_ARGS["state"]["default"] = "present"

# istio_routes: one list per kind, each entry exactly as `definitions`, and
# the task-wide defaults of the resource modules.
ROUTES_ARGS = {
    **{key: copy.deepcopy(RESOURCE_ARGS[key])
       for key in ("namespace", "labels", "annotations", "state", "api_version", "validate", "adopt")},
    "check_services": {"type": "bool", "default": False},
    "src": {"type": "list", "elements": "path"},
    # the owned sets (issue 20, module_utils applyset)
    "applyset": {"type": "str"},
    "applyset_label": {"type": "str"},
    "prune": {"type": "bool"},
    "prune_other_sets": {"type": "bool", "default": False},
    **{option: copy.deepcopy(RESOURCE_ARGS["definitions"])
       for option in ("service_entries", "gateways", "virtual_services", "destination_rules")},
}

ROUTES_MODULE_KWARGS = {
    "required_one_of": [("service_entries", "gateways", "virtual_services", "destination_rules", "src")],
    "supports_check_mode": True,
}

RESOURCE_MODULE_KWARGS = {
    "mutually_exclusive": [("name", "definitions")],
    "required_one_of": [("name", "definitions")],
    "required_by": {"name": "namespace"},
    "supports_check_mode": True,
}

ROUTE_INFO_ARGS = {
    "namespaces": {"type": "list", "elements": "str", "aliases": ["namespace"]},
    "api_version": {"type": "str", "default": DEFAULT_API_VERSION},
}


def resource_argument_spec():
    return {**copy.deepcopy(CONNECTION_ARGS), **copy.deepcopy(RESOURCE_ARGS)}


def route_info_argument_spec():
    return {**copy.deepcopy(CONNECTION_ARGS), **copy.deepcopy(ROUTE_INFO_ARGS)}


def routes_argument_spec():
    return {**copy.deepcopy(CONNECTION_ARGS), **copy.deepcopy(ROUTES_ARGS)}


CLUSTER_INFO_ARGS = {
    "kube_proxy": {"type": "bool", "default": True},
    "nodes": {"type": "bool", "default": True},
}


def cluster_info_argument_spec():
    return {**copy.deepcopy(CONNECTION_ARGS), **copy.deepcopy(CLUSTER_INFO_ARGS)}
