"""Files bundled with the package (``reconet/assets``): style images, photos, the demo clip, the
pretrained styles. One lookup, so configs (``${reconet.asset:...}``), the CLI and the library
find them wherever the package is installed. :func:`config_defaults` reads the packaged config
files, which are the one place model presets and default loss weights are written."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml


def asset_path(relative: str) -> str:
    """Absolute path of ``reconet/assets/<relative>`` (the file need not exist)."""
    root = resources.files("reconet") / "assets"
    return str(Path(str(root)) / relative)


def config_defaults(group: str) -> dict[str, dict[str, Any]]:
    """Every option of the config group ``reconet/conf/<group>/`` as plain data, by option name.

    Plain YAML (no Hydra): the pure-torch modules read their defaults from the same files the
    training configs compose, so a preset or a weight is changed in one place.
    """
    folder = resources.files("reconet") / "conf" / group
    return {
        entry.name.removesuffix(".yaml"): yaml.safe_load(entry.read_text(encoding="utf-8")) or {}
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml")
    }
