# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every istio-lab module (as kubernetes.core's k8s_auth_options)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to the kubeconfig of the lab's cluster.
      - Defaults to the E(K8S_AUTH_KUBECONFIG) environment variable, then E(KUBECONFIG), then C(~/.kube/config).
    type: path
  context:
    description:
      - Context of O(kubeconfig) to use; defaults to E(K8S_AUTH_CONTEXT), then the current context.
    type: str
  host:
    description:
      - URL of the API server, overriding the kubeconfig's (E(K8S_AUTH_HOST)).
    type: str
  api_key:
    description:
      - Bearer token to authenticate with (E(K8S_AUTH_API_KEY)).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's certificate (E(K8S_AUTH_VERIFY_SSL)). Defaults to the kubeconfig's setting.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - CA bundle that signed the API server's certificate (E(K8S_AUTH_SSL_CA_CERT)).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Client certificate to authenticate with (E(K8S_AUTH_CERT_FILE)).
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Key of O(client_cert) (E(K8S_AUTH_KEY_FILE)).
    type: path
    aliases: [key_file]
"""
