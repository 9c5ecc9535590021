"""Which style(s) of a multi-style network to run: names and blends as mixing weights.

A style spec is what a user types after ``--style``: one name of the model's style table
(``udnie``), or a blend of several with weights (``udnie:0.6,wave:0.4``). Blends interpolate the
conditional-norm rows (Dumoulin et al., ICLR 2017, section 4: convex combinations of the
per-style gamma, beta give smooth blends), so the weights are normalized to sum to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["StyleSpecError", "parse_style_mix", "select_style"]


class StyleSpecError(ValueError):
    """A malformed style spec or a name the model does not hold; the message lists the names."""


def parse_style_mix(spec: str, names: Sequence[str]) -> torch.Tensor:
    """``spec`` -> (N,) mixing weights over the N styles called ``names`` (row order), summing to 1.

    >>> parse_style_mix("b", ["a", "b"]).tolist()
    [0.0, 1.0]
    >>> parse_style_mix("a:3, b:1", ["a", "b"]).tolist()
    [0.75, 0.25]
    """
    names = list(names)
    known = ", ".join(names)
    weights = torch.zeros(len(names))
    parts = [part.strip() for part in str(spec).split(",")]
    if not spec or not all(parts):
        raise StyleSpecError(f"malformed style {spec!r}: use NAME or NAME:WEIGHT,NAME:WEIGHT (styles: {known})")
    for part in parts:
        name, sep, value = (piece.strip() for piece in part.partition(":"))
        if name not in names:
            raise StyleSpecError(f"unknown style {name!r} in {spec!r}; this model's styles: {known}")
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            raise StyleSpecError(f"malformed weight {value!r} for style {name!r} in {spec!r} (a number >= 0)") from None
        if not weight >= 0 or weight == float("inf"):
            raise StyleSpecError(f"malformed weight {value!r} for style {name!r} in {spec!r} (a number >= 0)")
        if weights[names.index(name)] != 0:
            raise StyleSpecError(f"style {name!r} given twice in {spec!r}")
        weights[names.index(name)] = weight
    total = float(weights.sum())
    if total <= 0:
        raise StyleSpecError(f"style weights in {spec!r} add up to 0")
    return weights / total


def select_style(model, meta: dict, spec: str | None, where: str = "model") -> tuple:
    """(single-style network, meta) for style ``spec`` of ``model`` (a
    :class:`~reconet.models.reconet.ReCoNet`) whose style table is in ``meta``.

    A multi-style network needs a spec (the error lists its styles); a single-style one accepts
    none or its own name. The meta of the result records the mix as ``{"style": spec,
    "style_mix": {name: weight}}``.
    """
    from reconet.models.artifact import style_table

    names = [row["name"] for row in style_table(meta, model.num_styles)]
    if spec is None:
        if model.num_styles > 1:
            raise StyleSpecError(
                f"{where} holds {model.num_styles} styles ({', '.join(names)}): choose one with --style NAME "
                "or blend them with --style NAME:WEIGHT,NAME:WEIGHT"
            )
        return model, meta
    mixing = parse_style_mix(spec, names)
    chosen = {name: round(float(w), 6) for name, w in zip(names, mixing) if w > 0}
    meta = {**meta, "style": spec, "style_mix": chosen}
    if model.num_styles == 1:
        return model, meta
    return model.for_style(mixing), meta
