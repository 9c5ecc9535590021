"""Which style(s) of a multi-style network to run: names and blends as mixing weights.

A style spec is what a user types after ``--style``: one name of the model's style table
(``udnie``), or a blend of several with weights (``udnie:0.6,wave:0.4``). Blends interpolate the
conditional-norm rows (Dumoulin et al., ICLR 2017, section 4: convex combinations of the
per-style gamma, beta give smooth blends), so the weights are normalized to sum to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["StyleSpecError", "identity_row", "parse_style_mix", "select_style", "with_strength"]


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


def identity_row(rows: Sequence[dict]) -> int | None:
    """The row of a style table trained to reproduce its input (``experiment=add_identity``), if any."""
    for index, row in enumerate(rows):
        if row.get("identity"):
            return index
    return None


def with_strength(mixing: torch.Tensor, strength: float, identity: int) -> torch.Tensor:
    """Mixing weights ``strength`` of the way from the identity row to ``mixing``: 0 is the
    network's reproduction of the input, 1 the full style. Interpolating the conditional-norm
    rows (as blends do) rather than the output pixels keeps brushwork whole at every strength:
    a pixel cross-fade overlays a faded painting on a sharp photo."""
    if not 0.0 <= float(strength) <= 1.0:
        raise StyleSpecError(f"strength must be in [0, 1], got {strength}")
    toward = torch.zeros_like(mixing)
    toward[identity] = 1.0
    return float(strength) * mixing + (1.0 - float(strength)) * toward


def select_style(model, meta: dict, spec: str | None, where: str = "model", strength: float | None = None) -> tuple:
    """(single-style network, meta) for style ``spec`` of ``model`` (a
    :class:`~reconet.models.reconet.ReCoNet`) whose style table is in ``meta``.

    A multi-style network needs a spec (the error lists its styles); a single-style one accepts
    none or its own name. The meta of the result records the mix as ``{"style": spec,
    "style_mix": {name: weight}}``. ``strength`` (0..1, None = 1) moves toward the model's
    identity row (:func:`with_strength`); a model without one cannot take it.
    """
    from reconet.models.artifact import style_table

    rows = style_table(meta, model.num_styles)
    names = [row["name"] for row in rows]
    if strength is not None and float(strength) != 1.0:
        identity = identity_row(rows)
        if identity is None:
            raise StyleSpecError(
                f"{where} has no identity row, so it cannot take a strength: add one with "
                "reconet-train experiment=add_identity init_from=<model> (docs/training.md)"
            )
        if spec is None:
            raise StyleSpecError(f"{where}: a strength needs a style (--style NAME or a blend)")
        mixing = with_strength(parse_style_mix(spec, names), float(strength), identity)
        chosen = {name: round(float(w), 6) for name, w in zip(names, mixing) if w > 0}
        meta = {**meta, "style": spec, "strength": float(strength), "style_mix": chosen}
        return model.for_style(mixing), meta
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
