"""Minimize a loss over an image that must stay in [0, 1] RGB: L-BFGS or Adam.

Two ways to respect the range (``parametrization``):

* ``"clamp"`` (default): the pixels themselves are the variables; after every optimizer
  iteration they are projected back onto [0, 1] (projected gradient). Pixels that want to be
  saturated stay exactly at 0 or 1 and keep full gradients inside the range. With L-BFGS the
  projection makes the curvature history slightly inconsistent; in practice this is harmless
  and it is what most Gatys implementations do.
* ``"sigmoid"``: the variables are logits z and the image is sigmoid(z), so it can never leave
  (0, 1) and L-BFGS sees a smooth unconstrained problem. Saturated pixels learn slowly
  (sigmoid'(z) -> 0), and the start image is clamped to [1e-3, 1 - 1e-3] before the logit.

L-BFGS runs one iteration per ``step`` call (``max_iter=1``, no line search, step 1 as in
Gatys et al.), so ``iterations`` counts loss-network evaluations for both optimizers and the
projection can be applied between iterations. Both optimizers see the loss divided by its
value at the start (see ``scale`` in :func:`solve` for why L-BFGS needs it).

``line_search="strong_wolfe"`` (L-BFGS only) runs torch's strong-Wolfe search instead. A search evaluates the
loss several times per iteration and only makes sense inside one ``step`` call of several
iterations (with ``max_iter=1`` the search restarts every call and stalled at 0.851 of the
start on ambush_4; docs/optimize.md), so L-BFGS then runs in chunks of ``_LINE_SEARCH_CHUNK``
iterations with the [0, 1] projection between chunks, and ``iterations`` is a budget of loss
evaluations, the unit that costs time, so the two settings compare at equal cost.

``tolerance`` > 0 stops early once the lowest loss seen has improved by less than that fraction
over the last ``patience`` iterations, so easy frames (a warm start close to its optimum) stop
and hard ones use their budget. The image with the lowest loss seen is returned, so a diverging
step can never make the result worse than the start.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

LossFn = Callable[[torch.Tensor], dict[str, torch.Tensor]]

_SIGMOID_EPS = 1e-3
_LINE_SEARCH_CHUNK = 10  # L-BFGS iterations per step call with a line search (module docstring)
LINE_SEARCHES = ("none", "strong_wolfe")


@dataclass
class SolveResult:
    image: torch.Tensor  # (1, 3, H, W) in [0, 1], detached: the lowest-loss image seen
    terms: dict[str, float]  # weighted loss terms of ``image`` (keys of the loss dict)
    history: list[float] = field(default_factory=list)  # total loss per evaluation
    iterations: int = 0
    evaluations: int = 0  # loss evaluations (= len(history))
    converged: bool = False  # stopped by the tolerance before the iteration budget was spent


def solve(
    loss_fn: LossFn,
    init: torch.Tensor,
    *,
    optimizer: str = "lbfgs",
    iterations: int = 100,
    lr: float = 1.0,
    parametrization: str = "clamp",
    tolerance: float = 0.0,
    patience: int = 5,
    history_size: int = 50,
    line_search: str = "none",
) -> SolveResult:
    """Minimize ``loss_fn(image)["total"]`` starting from ``init`` (1, 3, H, W) in [0, 1].

    ``init`` is never modified. With ``iterations == 0`` the start image is returned (clamped)
    together with its loss terms. ``history_size`` and ``line_search`` apply to L-BFGS;
    ``tolerance`` and ``patience`` to both optimizers (module docstring).
    """
    if init.ndim != 4 or init.shape[1] != 3:
        raise ValueError(f"init must be (B, 3, H, W), got {tuple(init.shape)}")
    if parametrization == "clamp":
        # contiguous_format: frames decoded as (H, W, 3) arrive channels-last, and L-BFGS
        # flattens gradients with view(), which needs a standard layout.
        variable = init.detach().clamp(0.0, 1.0).clone(memory_format=torch.contiguous_format).requires_grad_(True)

        def to_image(v: torch.Tensor) -> torch.Tensor:
            # A line search evaluates trial points between projections, which may leave [0, 1]:
            # it then sees the loss of the image that would be kept (clamped; zero gradient
            # outside), so every recorded loss belongs to a valid image.
            return v.clamp(0.0, 1.0) if line_search != "none" else v

    elif parametrization == "sigmoid":
        variable = (
            torch.logit(init.detach().clamp(_SIGMOID_EPS, 1.0 - _SIGMOID_EPS))
            .clone(memory_format=torch.contiguous_format)
            .requires_grad_(True)
        )
        to_image = torch.sigmoid
    else:
        raise ValueError(f"parametrization must be 'clamp' or 'sigmoid', got {parametrization!r}")

    if not tolerance >= 0.0 or patience < 1:
        raise ValueError(f"tolerance must be >= 0 and patience >= 1, got {tolerance}, {patience}")
    if line_search not in LINE_SEARCHES:
        raise ValueError(f"line_search must be 'none' or 'strong_wolfe', got {line_search!r}")
    chunk = 1
    if optimizer == "lbfgs":
        chunk = _LINE_SEARCH_CHUNK if line_search != "none" else 1
        opt: torch.optim.Optimizer = torch.optim.LBFGS(
            [variable],
            lr=lr,
            max_iter=chunk,
            max_eval=chunk + chunk // 4,  # torch's default ratio
            history_size=history_size,
            line_search_fn=None if line_search == "none" else line_search,
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )
    elif optimizer == "adam":
        opt = torch.optim.Adam([variable], lr=lr)
    else:
        raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")

    best_loss = float("inf")
    best_image = to_image(variable).detach().clone()
    best_terms: dict[str, float] = {}
    history: list[float] = []

    def evaluate(image: torch.Tensor) -> torch.Tensor:
        nonlocal best_loss, best_image, best_terms
        terms = loss_fn(image)
        total = terms["total"]
        value = float(total.detach())
        history.append(value)
        # Optimizers evaluate before they step, so this is the loss of the current image.
        if value < best_loss:
            best_loss = value
            best_image = image.detach().clone()
            best_terms = {k: float(v.detach()) for k, v in terms.items()}
        return total

    # The optimizer sees the loss divided by its value at the start. Gatys-type losses are
    # ~1e6-1e7 at these weights, so L-BFGS's first step (length 1 / |g|_1) is negligible, the
    # curvature pair it yields falls below torch's ys > 1e-10 test, and the next step -g (lr 1)
    # throws every pixel onto the [0, 1] bounds: measured on Sintel ambush_4 from the content
    # frame, the loss stayed at 0.997 of its start for 40 iterations (docs/optimize.md). The
    # minimizer is unchanged; Adam is invariant to the scale anyway. The scale is taken from the
    # first evaluation (the start image), so it costs no extra loss-network pass.
    scale: float | None = None

    def closure() -> torch.Tensor:
        nonlocal scale
        opt.zero_grad(set_to_none=True)
        total = evaluate(to_image(variable))  # (1, 3, H, W) image
        if scale is None:
            start = abs(float(total.detach()))
            scale = start if math.isfinite(start) and start > 0.0 else 1.0
        (total / scale).backward()
        return total / scale

    done = 0
    converged = False
    lowest: list[float] = []  # lowest loss after each evaluation, for the tolerance test
    # Without a line search one step is one iteration and one evaluation; with one, a step is a
    # chunk of iterations and ``iterations`` budgets evaluations (module docstring).
    while (done if chunk == 1 else len(history)) < iterations:
        if chunk > 1:
            remaining = iterations - len(history)
            opt.param_groups[0].update(max_iter=min(chunk, remaining), max_eval=remaining)
        opt.step(closure)
        done = done + 1 if chunk == 1 else opt.state[variable]["n_iter"]
        if parametrization == "clamp":
            with torch.no_grad():
                variable.clamp_(0.0, 1.0)  # projection; ``variable`` is our own leaf, not the caller's
        if not torch.isfinite(variable).all():
            break  # diverged: keep the best image seen so far
        for value in history[len(lowest) :]:
            lowest.append(min(value, lowest[-1]) if lowest else value)
        if tolerance > 0 and len(lowest) > patience:
            before = lowest[-1 - patience]
            if before - lowest[-1] <= tolerance * abs(before):
                converged = True
                break
    # The last step's result has not been evaluated yet.
    with torch.no_grad():
        evaluate(to_image(variable))
    return SolveResult(
        image=best_image.clamp(0.0, 1.0),
        terms=best_terms,
        history=history,
        iterations=done,
        evaluations=len(history),
        converged=converged,
    )
