"""Config helpers: the ``${reconet.asset:...}`` resolver and the error type for bad configs.

``${reconet.asset:styles/candy.jpg}`` resolves to the absolute path of a file bundled in
``reconet/assets`` so the config files can name the bundled style images wherever the package
is installed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from omegaconf import OmegaConf


class ConfigError(ValueError):
    """A configuration that cannot train; the message is one line naming the key and the problem."""


def asset_path(relative: str) -> str:
    """Absolute path of ``reconet/assets/<relative>`` (the file need not exist)."""
    root = resources.files("reconet") / "assets"
    return str(Path(str(root)) / relative)


def register_resolvers() -> None:
    """Register ``reconet.asset`` with OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver("reconet.asset"):
        OmegaConf.register_new_resolver("reconet.asset", asset_path)


register_resolvers()
