"""Config helpers: the ``${reconet.asset:...}`` resolver and the error type for bad configs.

``${reconet.asset:styles/candy.jpg}`` resolves to the absolute path of a file bundled in
``reconet/assets`` so the config files can name the bundled style images wherever the package
is installed.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from reconet.resources import asset_path

__all__ = ["ConfigError", "register_resolvers"]


class ConfigError(ValueError):
    """A configuration that cannot train; the message is one line naming the key and the problem."""


def register_resolvers() -> None:
    """Register ``reconet.asset`` with OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver("reconet.asset"):
        OmegaConf.register_new_resolver("reconet.asset", asset_path)


register_resolvers()
