"""The image optimizer: converges to a known constrained minimum, keeps [0, 1], never touches its input."""

from __future__ import annotations

import pytest
import torch

from reconet.optimize.solver import solve


def _quadratic_to(target: torch.Tensor):
    """loss(x) = mean((x - target)^2); over [0, 1] its minimizer is clamp(target, 0, 1)."""

    def loss(image: torch.Tensor) -> dict[str, torch.Tensor]:
        total = (image - target).square().mean()
        return {"fit": total, "total": total}

    return loss


@pytest.fixture
def target() -> torch.Tensor:
    # Values well outside [0, 1] as well as inside, so the bound is active on many pixels.
    generator = torch.Generator().manual_seed(1)
    return torch.rand(1, 3, 8, 10, generator=generator) * 2.0 - 0.5  # (1, 3, 8, 10) in [-0.5, 1.5)


@pytest.mark.parametrize(
    ("optimizer", "parametrization", "iterations", "lr", "tolerance"),
    [
        ("lbfgs", "clamp", 20, 1.0, 1e-4),
        ("adam", "clamp", 300, 0.02, 2e-2),
        ("lbfgs", "sigmoid", 60, 1.0, 2e-2),
        ("adam", "sigmoid", 400, 0.1, 3e-2),
    ],
)
def test_solve_reaches_the_clamped_minimizer(target, optimizer, parametrization, iterations, lr, tolerance):
    init = torch.full_like(target, 0.5)
    before = init.clone()
    result = solve(
        _quadratic_to(target), init, optimizer=optimizer, iterations=iterations, lr=lr, parametrization=parametrization
    )
    assert torch.equal(init, before), "the start image must not be modified"
    assert result.image.shape == target.shape
    assert result.image.min() >= 0.0 and result.image.max() <= 1.0
    # Known answer: the projection of the unconstrained minimizer onto the box.
    assert (result.image - target.clamp(0, 1)).abs().max() < tolerance
    assert result.iterations == iterations
    assert result.terms["total"] == pytest.approx(min(result.history))
    assert set(result.terms) == {"fit", "total"}


def test_zero_iterations_returns_the_clamped_start(target):
    init = target.clone()
    result = solve(_quadratic_to(torch.zeros_like(target)), init, iterations=0)
    assert torch.equal(result.image, target.clamp(0, 1))
    assert result.iterations == 0
    assert len(result.history) == 1


@pytest.mark.parametrize("parametrization", ["clamp", "sigmoid"])
def test_channels_last_start_image_works_with_lbfgs(target, parametrization):
    # Decoded frames arrive as permuted (H, W, 3) memory; L-BFGS needs contiguous gradients.
    init = torch.full((1, 8, 10, 3), 0.5).permute(0, 3, 1, 2)  # (1, 3, 8, 10), not contiguous
    assert not init.is_contiguous()
    result = solve(_quadratic_to(target), init, iterations=3, parametrization=parametrization)
    assert result.terms["total"] < (init - target).square().mean().item()


def test_lowest_loss_image_is_kept_when_a_step_diverges(target):
    # L-BFGS with a huge step overshoots; the best image seen (the start) must come back.
    init = target.clamp(0, 1)
    result = solve(_quadratic_to(target), init, optimizer="adam", iterations=5, lr=50.0)
    start_loss = (init - target).square().mean().item()
    assert result.terms["total"] <= start_loss + 1e-12


@pytest.mark.parametrize("parametrization", ["clamp", "sigmoid"])
@pytest.mark.parametrize("scale", [1e-3, 1e7])
def test_strong_wolfe_reaches_the_clamped_minimizer_within_its_evaluation_budget(target, parametrization, scale):
    def scaled(image: torch.Tensor) -> dict[str, torch.Tensor]:
        total = scale * (image - target).square().mean()
        return {"fit": total, "total": total}

    # The budgets and tolerances of the plain L-BFGS test above (sigmoid: saturated pixels
    # approach 0/1 slowly).
    budget, tolerance = (20, 1e-4) if parametrization == "clamp" else (60, 2e-2)
    init = torch.full_like(target, 0.5)
    result = solve(scaled, init, iterations=budget, line_search="strong_wolfe", parametrization=parametrization)
    assert (result.image - target.clamp(0, 1)).abs().max() < tolerance
    # The budget counts loss evaluations (a search makes several per iteration), plus the final one.
    assert result.evaluations == len(result.history) <= budget + 25 + 1  # torch's search: at most 25 per call
    assert result.iterations < result.evaluations
    # Trial points of the search are clamped before the loss sees them: every recorded loss is one
    # of an image in [0, 1], so the kept image's loss is the lowest recorded.
    assert result.terms["total"] == pytest.approx(min(result.history))
    assert result.terms["total"] == pytest.approx(scaled(result.image)["total"].item(), rel=1e-5)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"optimizer": "sgd"}, "optimizer"),
    ({"parametrization": "tanh"}, "parametrization"),
    ({"line_search": "armijo"}, "line_search"),
])
def test_unknown_choices_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        solve(_quadratic_to(torch.zeros(1, 3, 4, 4)), torch.zeros(1, 3, 4, 4), **kwargs)


def test_wrong_shape_is_rejected_with_the_shape():
    with pytest.raises(ValueError, match=r"\(3, 4, 4\)"):
        solve(_quadratic_to(torch.zeros(3, 4, 4)), torch.zeros(3, 4, 4))


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e7])
def test_lbfgs_converges_whatever_the_scale_of_the_loss(target, scale):
    # L-BFGS's first step and torch's curvature test (ys > 1e-10) are not scale-free; the solver
    # normalizes the loss by its start value so that the scale of the weights does not matter
    # (unnormalized, 1e-3 stops short here; the real objective at ~1e7 stalls, see the Sintel test
    # in test_optimize_sequence.py).
    def scaled(image: torch.Tensor) -> dict[str, torch.Tensor]:
        total = scale * (image - target).square().mean()
        return {"fit": total, "total": total}

    result = solve(scaled, torch.full_like(target, 0.5), iterations=20)
    assert (result.image - target.clamp(0, 1)).abs().max() < 1e-4
    assert result.terms["total"] == pytest.approx(min(result.history))  # reported unscaled


def test_tolerance_stops_early_once_the_loss_stops_falling(target):
    init = torch.full_like(target, 0.5)
    full = solve(_quadratic_to(target), init, iterations=60)
    early = solve(_quadratic_to(target), init, iterations=60, tolerance=1e-3, patience=3)
    assert early.converged and not full.converged
    assert early.iterations < 30 and full.iterations == 60
    assert early.evaluations == len(early.history) == early.iterations + 1
    # stopping early costs almost nothing here: the loss had stopped falling
    assert early.terms["total"] <= full.history[0] * 1e-3 + full.terms["total"]
    with pytest.raises(ValueError, match="tolerance"):
        solve(_quadratic_to(target), init, tolerance=-1.0)
