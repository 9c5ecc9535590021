"""Temporal-consistency metrics for video style transfer.

The one definition of temporal error in the package (training validation and
``reconet-evaluate`` both call :func:`temporal_error`):

    E = sum_p M(p) * || O_N(p) - warp(O_{N+1}, F)(p) ||^2  /  (3 * sum_p M(p))

with O the frames (stylized or not) as RGB in [0, 1], F the forward flow N -> N+1 on
frame N's grid, ``warp`` the package's backward warp (:func:`reconet.flow.warp.warp`,
bilinear, border padding) and M the mask (1 = pixel visible in both frames and valid;
Sintel: not occluded and not invalid). E is the mean squared error per colour channel
over the masked pixels; its square root is an RMSE in [0, 1] units.

Empty mask: when sum_p M(p) = 0 the pair carries no information. :func:`temporal_error`
then returns NaN for that sample (never 0, which would look like perfect coherence);
callers detect it with ``torch.isnan`` and exclude the pair from aggregates, counting it
(the evaluation report lists such pairs as ``"valid": false``).
"""

from __future__ import annotations

import torch

from reconet.flow.warp import warp


def _masked_mean(error: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) error and weights -> (B,) float64 weighted mean; NaN where the weights sum to 0."""
    numerator = (error * weight).sum(dim=(1, 2, 3), dtype=torch.float64)  # (B,)
    denominator = weight.sum(dim=(1, 2, 3), dtype=torch.float64)  # (B,)
    nan = torch.full_like(numerator, float("nan"))
    # clamp only keeps the unused branch of where() finite; empty masks give NaN
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), nan)


def _check_pair(
    output1: torch.Tensor, output2: torch.Tensor, flow: torch.Tensor | None, mask: torch.Tensor | None
) -> None:
    if output1.ndim != 4 or output1.shape[1] != 3 or output1.shape != output2.shape:
        raise ValueError(
            f"temporal_error expects output1 and output2 of equal shape (B, 3, H, W), "
            f"got {tuple(output1.shape)} and {tuple(output2.shape)}"
        )
    batch, _, height, width = output1.shape
    if flow is not None and (flow.ndim != 4 or tuple(flow.shape) != (batch, 2, height, width)):
        raise ValueError(
            f"temporal_error: flow must be (B, 2, H, W) = {(batch, 2, height, width)}, got {tuple(flow.shape)}"
        )
    if mask is not None and (mask.ndim != 4 or tuple(mask.shape) != (batch, 1, height, width)):
        raise ValueError(
            f"temporal_error: mask must be (B, 1, H, W) = {(batch, 1, height, width)}, got {tuple(mask.shape)}"
        )


def temporal_error_map(output1: torch.Tensor, output2: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Per-pixel squared warping error, averaged over the colour channels.

    e(p) = || O_N(p) - warp(O_{N+1}, F)(p) ||^2 / 3

    Args:
        output1: (B, 3, H, W) frame N in [0, 1].
        output2: (B, 3, H, W) frame N+1 in [0, 1].
        flow: (B, 2, H, W) forward flow N -> N+1 on frame N's grid.

    Returns:
        (B, 1, H, W) error map (unmasked; multiply by the mask to see what the metric uses).
    """
    _check_pair(output1, output2, flow, None)
    warped = warp(output2, flow)  # (B, 3, H, W) frame N+1 on frame N's grid
    return (output1 - warped).pow(2).mean(dim=1, keepdim=True)  # (B, 1, H, W)


def temporal_error(
    output1: torch.Tensor, output2: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Masked warping error E per sample (see the module docstring for the formula).

    Args:
        output1: (B, 3, H, W) frame N (stylized or input) in [0, 1].
        output2: (B, 3, H, W) frame N+1 in [0, 1].
        flow: (B, 2, H, W) forward flow N -> N+1 in pixels of this resolution.
        mask: (B, 1, H, W) 1 = use pixel (not occluded, not invalid, target in frame).
            Fractional values act as weights.

    Returns:
        (B,) tensor, dtype of ``output1``; NaN for a sample whose mask sums to 0.
        Sums are accumulated in float64 so a 1024x436 frame loses no precision.
    """
    _check_pair(output1, output2, flow, mask)
    error = temporal_error_map(output1, output2, flow)  # (B, 1, H, W), already / 3
    return _masked_mean(error, mask.to(error.dtype)).to(output1.dtype)


def frame_difference_error(
    output1: torch.Tensor, output2: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Flow-free short-range change between consecutive frames.

    D = sum_p M(p) * || O_N(p) - O_{N+1}(p) ||^2 / (3 * sum_p M(p))   (M = 1 everywhere by default)

    Without motion compensation this measures flicker plus motion, so it is only meaningful
    relative to the same number for the unstylized input (the ratio cancels most of the
    motion part); it needs no flow, so it cannot be fooled by a bad flow estimate.

    Args:
        output1, output2: (B, 3, H, W) consecutive frames in [0, 1].
        mask: optional (B, 1, H, W) weights.

    Returns:
        (B,) tensor; NaN where the mask sums to 0.
    """
    _check_pair(output1, output2, None, mask)
    error = (output1 - output2).pow(2).mean(dim=1, keepdim=True)  # (B, 1, H, W)
    weight = torch.ones_like(error) if mask is None else mask.to(error.dtype)
    return _masked_mean(error, weight).to(output1.dtype)
