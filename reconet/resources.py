"""Files bundled with the package (``reconet/assets``): style images, photos, the demo clip, the
pretrained styles. One lookup, so configs (``${reconet.asset:...}``), the CLI and the library
find them wherever the package is installed."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def asset_path(relative: str) -> str:
    """Absolute path of ``reconet/assets/<relative>`` (the file need not exist)."""
    root = resources.files("reconet") / "assets"
    return str(Path(str(root)) / relative)
