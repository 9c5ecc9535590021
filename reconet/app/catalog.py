"""What the web app offers to pick: the bundled styles, the bundled multi-style network and the
user's own models (``*.pt`` artifacts in the models folder), each with its style table.

Pure Python over :mod:`reconet.models` (no Gradio), so it is tested without a browser. Every
file is read with the same strict loader as ``reconet-stylize`` (``weights_only=True``); a file
that does not load is listed under :attr:`Catalog.skipped` with its one-line reason, never
offered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from reconet.models.artifact import ModelFileError, load_stylizer, style_table
from reconet.models.pretrained import BUNDLED_NETWORKS, bundled_network_path, list_styles

# A style name typed in the browser becomes a file name and a style-table row: keep it simple.
STYLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model list: ``label`` is what the page shows."""

    label: str
    path: Path
    styles: tuple[str, ...]  # rows of its style table, in order
    origin: str  # "bundled" | "yours"

    @property
    def multi_style(self) -> bool:
        return len(self.styles) > 1


@dataclass
class Catalog:
    models: dict[str, ModelChoice] = field(default_factory=dict)  # by label, in display order
    skipped: dict[str, str] = field(default_factory=dict)  # file name -> why it is not offered

    def get(self, label: str) -> ModelChoice:
        if label not in self.models:
            raise ValueError(f"unknown model {label!r}; refresh the page to see the current list")
        return self.models[label]


def _styles_of(path: Path) -> tuple[str, ...]:
    network, meta = load_stylizer(path)
    return tuple(str(row["name"]) for row in style_table(meta, network.num_styles))


def build_catalog(models_dir: Path | None) -> Catalog:
    """The bundled networks first (the multi-style network, then each single style), then every
    ``*.pt`` in ``models_dir`` (not recursive), sorted by name."""
    catalog = Catalog()
    for name in BUNDLED_NETWORKS:
        path = bundled_network_path(name)
        if path is not None:
            catalog.models[name] = ModelChoice(name, path, _styles_of(path), "bundled")
    for style in list_styles():
        catalog.models[style.name] = ModelChoice(style.name, style.path, (style.name,), "bundled")
    if models_dir is not None and models_dir.is_dir():
        for path in sorted(models_dir.glob("*.pt")):
            if path.name.startswith("."):  # a partial file of a copy in progress
                continue
            try:
                styles = _styles_of(path)
            except (ModelFileError, OSError, RuntimeError, ValueError) as error:
                catalog.skipped[path.name] = " ".join(str(error).split())
                continue
            catalog.models[path.name] = ModelChoice(path.name, path, styles, "yours")
    return catalog


def blend_spec(style: str | None, other: str | None, weight: float) -> str | None:
    """The ``--style`` text for ``style`` blended with ``other`` (``weight`` = other's share,
    0..1): the plain name when there is nothing to blend."""
    if style is None:
        return None
    if not other or other == style or weight <= 0.0:
        return style
    if weight >= 1.0:
        return other
    return f"{style}:{1.0 - weight:.3g},{other}:{weight:.3g}"


def check_style_name(name: str, taken: set[str]) -> str:
    """``name`` stripped, or a ValueError saying what is wrong with it."""
    name = (name or "").strip()
    if not STYLE_NAME.match(name):
        raise ValueError(
            f"style name {name!r}: use 1-40 letters, digits, '-' or '_', starting with a letter or digit"
        )
    if name in taken:
        raise ValueError(f"style name {name!r} is taken; choose another")
    return name
