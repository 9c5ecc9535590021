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


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"optimizer": "sgd"}, "optimizer"),
    ({"parametrization": "tanh"}, "parametrization"),
])
def test_unknown_choices_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        solve(_quadratic_to(torch.zeros(1, 3, 4, 4)), torch.zeros(1, 3, 4, 4), **kwargs)


def test_wrong_shape_is_rejected_with_the_shape():
    with pytest.raises(ValueError, match=r"\(3, 4, 4\)"):
        solve(_quadratic_to(torch.zeros(3, 4, 4)), torch.zeros(3, 4, 4))
