"""The pretrained styles bundled with the package (``reconet/assets/models``).

Each style is an inference artifact (:mod:`reconet.models.artifact`, float16 weights) plus its
entry in ``styles.json``: the model preset, the training resolution, steps and data, the
command that trained it and what it measured (docs/pretrained.md has the full model cards).
A name resolves to its file; anything else is taken as a path, so ``--style candy`` and
``--model runs/x/stylizer.pt`` go through one function.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconet.resources import asset_path

__all__ = ["PretrainedStyle", "UnknownStyleError", "list_styles", "pretrained_path", "resolve_model"]

INDEX = "models/styles.json"


class UnknownStyleError(ValueError):
    """A style name that is not bundled; the message lists the bundled ones."""


@dataclass(frozen=True)
class PretrainedStyle:
    name: str
    path: Path
    preset: str
    trained_size: tuple[int, int]  # (H, W) of the training pairs
    steps: int
    data: str
    command: str
    metrics: dict[str, Any] = field(default_factory=dict)  # measured by reconet-evaluate


def _index() -> dict[str, Any]:
    path = Path(asset_path(INDEX))
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def list_styles() -> list[PretrainedStyle]:
    """The bundled styles, in the order of the index."""
    styles = []
    for name, entry in _index().items():
        styles.append(
            PretrainedStyle(
                name=name,
                path=Path(asset_path(f"models/{entry['file']}")),
                preset=str(entry["preset"]),
                trained_size=(int(entry["trained_size"][0]), int(entry["trained_size"][1])),
                steps=int(entry["steps"]),
                data=str(entry["data"]),
                command=str(entry["command"]),
                metrics=dict(entry.get("metrics") or {}),
            )
        )
    return styles


def pretrained_path(name: str) -> Path:
    """The artifact of the bundled style ``name``; :class:`UnknownStyleError` lists the styles."""
    styles = {style.name: style for style in list_styles()}
    if name not in styles:
        names = ", ".join(styles) or "none are installed"
        raise UnknownStyleError(f"unknown style {name!r}; bundled styles: {names} (or give a model file with --model)")
    return styles[name].path


# Bundled multi-style networks, by name (reconet/assets/models/<name>.pt): their styles are
# chosen with --style (docs/pretrained.md), so they are not rows of styles.json.
BUNDLED_NETWORKS = ("multistyle", "fast")


def bundled_network_path(name: str) -> Path | None:
    """The file of the bundled multi-style network ``name``, or None if there is none."""
    if name not in BUNDLED_NETWORKS:
        return None
    path = Path(asset_path(f"models/{name}.pt"))
    return path if path.is_file() else None


def resolve_model(model: str | os.PathLike) -> Path:
    """A bundled style name ("candy") or bundled network name ("multistyle") -> its artifact;
    a path -> itself.

    A bare word that is neither a bundled style nor an existing file is an unknown style.
    """
    if isinstance(model, str) and model in {style.name for style in list_styles()}:
        return pretrained_path(model)
    network = bundled_network_path(model) if isinstance(model, str) else None
    if network is not None:
        return network
    path = Path(model)
    if isinstance(model, str) and not path.exists() and not path.suffix and os.sep not in model:
        pretrained_path(model)  # raises UnknownStyleError with the list
    return path
