"""Occlusion maps and validity masks from a forward and a backward flow.

For data that ships (or an estimator that produces) flows in both directions but no occlusion
map: Scene Flow (Monkaa, FlyingThings3D), estimated flow on real video.

Conventions (see :mod:`reconet.flow.warp`):
    ``forward``  (B, 2, H, W): flow N -> N+1 on frame N's grid, w.
    ``backward`` (B, 2, H, W): flow N+1 -> N on frame N+1's grid. It must be a flow actually
    computed in that direction; a negated forward flow lives on the wrong grid and is
    consistent with ``forward`` by construction, so it would hide every occlusion.
    Occlusion map: 1 = pixel of frame N NOT visible in frame N+1 (Sintel's polarity).
    Mask: 1 = use the pixel (the opposite polarity), what losses and metrics take.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reconet.flow.warp import in_frame_mask, warp

__all__ = ["occlusion_from_flows", "mask_from_flows", "motion_boundaries", "agreement_mask"]


def _check_pair(forward: torch.Tensor, backward: torch.Tensor) -> None:
    if forward.ndim != 4 or forward.shape[1] != 2 or forward.shape != backward.shape:
        raise ValueError(
            "expected forward and backward flows of the same shape (B, 2, H, W), got "
            f"{tuple(forward.shape)} and {tuple(backward.shape)}"
        )
    if not (forward.is_floating_point() and backward.is_floating_point()):
        raise ValueError(f"flows must be floating point, got {forward.dtype} and {backward.dtype}")


def _squared_norm(flow: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) -> (B, 1, H, W) |w|^2 = u^2 + v^2."""
    return flow.pow(2).sum(dim=1, keepdim=True)


def motion_boundaries(flow: torch.Tensor) -> torch.Tensor:
    """Motion boundaries of a (B, 2, H, W) flow w = (u, v): (B, 1, H, W) float, 1 = boundary.

        |∇u|² + |∇v|² > 0.01 |w|² + 0.002

    (Sundaram, Brox & Keutzer, ECCV 2010; Ruder, Dosovitskiy & Brox, GCPR 2016). Gradients are
    central differences (f(x+1) - f(x-1)) / 2 with replicated borders, the 3-tap derivative of
    the reference implementation by Ruder et al. Flow near a motion boundary is unreliable
    (the estimator smooths across it), so those pixels are excluded even if they are visible.
    """
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"motion_boundaries expects (B, 2, H, W), got {tuple(flow.shape)}")
    padded = F.pad(flow, (1, 1, 1, 1), mode="replicate")  # (B, 2, H+2, W+2)
    grad_x = (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]) / 2.0  # (B, 2, H, W)
    grad_y = (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]) / 2.0
    gradient = grad_x.pow(2).sum(dim=1, keepdim=True) + grad_y.pow(2).sum(dim=1, keepdim=True)
    return (gradient > 0.01 * _squared_norm(flow) + 0.002).to(flow.dtype)


def occlusion_from_flows(
    forward: torch.Tensor,
    backward: torch.Tensor,
    *,
    alpha1: float = 0.01,
    alpha2: float = 0.5,
    motion_boundaries: bool = True,
) -> torch.Tensor:
    """Occlusion map of frame N by forward-backward consistency: (B, 1, H, W) float, 1 = occluded.

    With w = ``forward`` (N -> N+1, frame N's grid) and ŵ(p) = ``backward``(p + w(p)), the
    backward flow sampled where p lands in frame N+1 (``warp(backward, forward)``), a visible
    pixel goes there and comes back, so w + ŵ ≈ 0. Pixel p is marked occluded where

        |w + ŵ|² > alpha1 (|w|² + |ŵ|²) + alpha2

    (Sundaram, Brox & Keutzer, "Dense point trajectories by GPU-accelerated large displacement
    optical flow", ECCV 2010; used for video style transfer by Ruder, Dosovitskiy & Brox,
    "Artistic style transfer for videos", GCPR 2016, and by ReCoNet for Scene Flow data).
    The relative term tolerates the larger errors of large motions, the constant 0.5 px²
    the estimator's sub-pixel noise.

    With ``motion_boundaries=True`` pixels where

        |∇u|² + |∇v|² > 0.01 |w|² + 0.002

    are marked too (see :func:`motion_boundaries`). The gradient is taken of the forward flow,
    the flow defined on frame N's grid, as in Sundaram et al. and in Ruder et al.'s reference
    code (there that flow is called ŵ because they warp frame i-1 onto frame i).

    Pixels whose target p + w(p) leaves the frame are not decided here (ŵ is sampled from the
    border there); :func:`mask_from_flows` removes them with :func:`in_frame_mask`.

    Args:
        forward: (B, 2, H, W) flow N -> N+1 on frame N's grid, in pixels.
        backward: (B, 2, H, W) flow N+1 -> N on frame N+1's grid, estimated in that direction
            (never a negated forward flow).
        alpha1, alpha2: relative and absolute tolerance of the consistency test.
        motion_boundaries: also mark motion boundaries of the forward flow.

    Returns:
        (B, 1, H, W) float (forward's dtype), 1 = occluded / unreliable, 0 = visible.
    """
    _check_pair(forward, backward)
    backward_on_n = warp(backward, forward)  # ŵ: (B, 2, H, W) on frame N's grid
    mismatch = _squared_norm(forward + backward_on_n)  # (B, 1, H, W)
    tolerance = alpha1 * (_squared_norm(forward) + _squared_norm(backward_on_n)) + alpha2
    occluded = (mismatch > tolerance).to(forward.dtype)
    if motion_boundaries:
        occluded = torch.maximum(occluded, _motion_boundaries(forward))
    return occluded


# The keyword argument of occlusion_from_flows shadows the function name inside it.
_motion_boundaries = motion_boundaries


def mask_from_flows(
    forward: torch.Tensor,
    backward: torch.Tensor,
    *,
    alpha1: float = 0.01,
    alpha2: float = 0.5,
    motion_boundaries: bool = True,
) -> torch.Tensor:
    """Validity mask of frame N: (B, 1, H, W) float, 1 = use the pixel.

        mask = (1 - occlusion_from_flows(forward, backward, ...)) * in_frame_mask(forward)

    i.e. the pixel passes the forward-backward test (and is no motion boundary) and its target
    p + w(p) lies inside frame N+1. Arguments as in :func:`occlusion_from_flows`.
    """
    occluded = occlusion_from_flows(
        forward, backward, alpha1=alpha1, alpha2=alpha2, motion_boundaries=motion_boundaries
    )
    return (1.0 - occluded) * in_frame_mask(forward)  # (B, 1, H, W)


def agreement_mask(flow: torch.Tensor, other: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Where two estimates of the same flow agree: (B, 1, H, W) float, 1 = |flow - other| <= tolerance.

    Forward-backward consistency cannot see an estimator that is wrong in both directions in the
    same way (fog, motion blur, displacements beyond its coarsest scale: DIS on Sintel ambush_4
    at 192 px passes the test on 25 % of the pixels, all of them more than 2 px wrong;
    docs/optimize.md). Two different algorithms rarely fail identically, so their disagreement
    flags flow that should not be trusted. ``tolerance`` is in pixels of the flows' grid.
    """
    _check_pair(flow, other)
    return (torch.linalg.vector_norm(flow - other, dim=1, keepdim=True) <= tolerance).to(flow.dtype)
