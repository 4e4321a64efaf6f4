"""The ApplySet tooling annotation names the collection's version (galaxy.yml)."""

from pathlib import Path

import yaml
from ansible_collections.istio_lab.lab.plugins.module_utils.istio_lab import applyset

REPO = Path(__file__).resolve().parents[2]


def test_tooling_names_the_collection_version():
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    assert applyset.TOOLING == f"istio-lab/{version}"
