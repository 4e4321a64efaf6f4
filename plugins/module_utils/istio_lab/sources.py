# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifests read from files by the modules themselves, and the adjustments
istio-lab makes to upstream ones.

A module that opens its YAML files keeps hundreds of kilobytes of upstream
manifests (MetalLB's CRDs, Grafana's dashboards) out of Ansible's variables:
read by a task, they would be templated, copied into every later fork of
the controller and sent to the module as arguments, for every lab.

- ``yaml_documents``: the non-empty documents of files, or of the .yaml/.yml
  files of directories (sorted), with where each came from.
- ``mirror_image`` / ``mirror_images``: pull images through a registry
  mirror (a classroom's ``lab_registry_mirror``): the registry host is
  replaced by the mirror and the repository path kept
  (``quay.io/metallb/controller:v0.16.1`` -> ``<mirror>/metallb/controller:v0.16.1``;
  Docker Hub short names gain their implicit ``library/``).
- ``env_from_secret``: make a container variable read a Secret's key instead
  of a literal (the upstream Grafana addon ships its admin password as the
  literal "admin").
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping

# The fields of a pod spec that list containers.
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


class SourceError(Exception):
    """A file of `src` cannot be read or is not YAML."""


def yaml_files(paths):
    """The files of `paths`: a directory stands for its .yaml and .yml files, sorted."""
    for path in paths:
        if os.path.isdir(path):
            yield from sorted(os.path.join(path, name) for name in os.listdir(path)
                              if name.endswith((".yaml", ".yml")))
        else:
            yield path


def yaml_documents(paths):
    """(path, index, document) of every non-empty YAML document of `paths`."""
    import yaml  # a dependency of the kubernetes client

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for path in yaml_files(paths):
        try:
            with open(path, encoding="utf-8") as handle:
                documents = [doc for doc in yaml.load_all(handle, Loader=loader) if doc]
        except (OSError, yaml.YAMLError) as exc:
            raise SourceError(f"src: cannot read {path}: {exc}") from None
        for index, document in enumerate(documents):
            yield path, index, document


def mirror_image(image, mirror=""):
    """`image` pulled through `mirror` (unchanged when mirror is empty)."""
    mirror = str(mirror or "").strip().rstrip("/")
    if not mirror:
        return image
    head, _sep, rest = str(image).partition("/")
    if rest and ("." in head or ":" in head or head == "localhost"):
        path = rest  # drop the registry host
    elif rest:
        path = str(image)  # Docker Hub "user/repo"
    else:
        path = f"library/{image}"  # Docker Hub official image
    return f"{mirror}/{path}"


def _mirror_containers(node, mirror):
    if isinstance(node, Mapping):
        result = {}
        for key, value in node.items():
            if key in CONTAINER_LISTS and isinstance(value, list):
                value = [{**c, "image": mirror_image(c["image"], mirror)} if isinstance(c, Mapping) and "image" in c
                         else c for c in value]
            result[key] = _mirror_containers(value, mirror)
        return result
    if isinstance(node, list):
        return [_mirror_containers(item, mirror) for item in node]
    return node


def mirror_images(manifests, mirror=""):
    """Every container image of `manifests` pulled through `mirror`."""
    if not str(mirror or "").strip():
        return list(manifests)
    return [_mirror_containers(manifest, mirror) for manifest in manifests]


def env_from_secret(manifests, kind, name, env, secret, key):
    """The container variable `env` of workload `kind/name` read from `secret[key]`
    instead of a literal; the other manifests, and the input, as they were."""
    reference = {"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
    adjusted = []
    for manifest in manifests:
        metadata = manifest.get("metadata") or {}
        if manifest.get("kind") == kind and metadata.get("name") == name:
            manifest = copy.deepcopy(manifest)
            for container in manifest["spec"]["template"]["spec"].get("containers", []):
                container["env"] = [entry for entry in container.get("env", []) if entry.get("name") != env] \
                    + [reference]
        adjusted.append(manifest)
    return adjusted
