# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that adjust upstream manifests before istio-lab applies them."""

import copy


def lab_env_from_secret(manifests, kind, name, env_name, secret_name, secret_key):
    """Make the container variable ``env_name`` of workload ``kind/name`` read
    ``secret_name[secret_key]`` instead of a literal value (the upstream Grafana
    addon ships its admin password as the literal "admin")."""
    reference = {"name": env_name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": secret_key}}}
    adjusted = []
    for manifest in manifests:
        metadata = manifest.get("metadata") or {}
        if manifest.get("kind") == kind and metadata.get("name") == name:
            manifest = copy.deepcopy(manifest)
            for container in manifest["spec"]["template"]["spec"].get("containers", []):
                env = [entry for entry in container.get("env", []) if entry.get("name") != env_name]
                container["env"] = env + [reference]
        adjusted.append(manifest)
    return adjusted


class FilterModule:
    def filters(self):
        return {"lab_env_from_secret": lab_env_from_secret}
