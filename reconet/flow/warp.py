"""Backward warping and flow resizing.

Direction rule (followed everywhere in reconet):
    ``flow`` is the *forward* flow from frame N to frame N+1, defined on frame N's grid:
    pixel p of frame N moves to p + flow(p) in frame N+1. ``warp(x_{N+1}, flow)`` samples
    frame N+1 at p + flow(p), i.e. it brings frame N+1 (or its stylization, or its
    features) back onto frame N's grid, where it can be compared with frame N on pixels
    that are visible in both (Sintel: not occluded, not invalid).
    A negated forward flow is NOT a backward flow (it lives on the wrong grid); never use
    one in its place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(x: torch.Tensor, flow: torch.Tensor) -> None:
    if x.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(
            f"warp expects x (B, C, H, W) and flow (B, 2, H, W), got {tuple(x.shape)} and {tuple(flow.shape)}"
        )
    if x.shape[0] != flow.shape[0] or x.shape[-2:] != flow.shape[-2:]:
        raise ValueError(
            f"warp: x {tuple(x.shape)} and flow {tuple(flow.shape)} differ in batch or spatial size"
        )


def _sample_grid(flow: torch.Tensor) -> torch.Tensor:
    """Normalized grid_sample coordinates of p + flow(p): (B, 2, H, W) -> (B, H, W, 2)."""
    _, _, height, width = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=flow.device, dtype=flow.dtype),
        torch.arange(width, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    x = xs + flow[:, 0]  # (B, H, W)
    y = ys + flow[:, 1]
    # align_corners=True: -1 and +1 are the centres of the first and last pixels, so an
    # integer flow samples pixel centres exactly. Guard 1-pixel-wide dimensions.
    x = 2.0 * x / max(width - 1, 1) - 1.0
    y = 2.0 * y / max(height - 1, 1) - 1.0
    return torch.stack((x, y), dim=-1)


def warp(x: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Backward warp: ``out(p) = x(p + flow(p))``, bilinear.

    Args:
        x: (B, C, H, W) the later frame (N+1), its stylization or its features.
        flow: (B, 2, H, W) forward flow N -> N+1 in pixels on x's grid (u = x, v = y).
        padding_mode: value for samples that fall outside the frame: ``"border"`` (default,
            the nearest edge pixel) or ``"zeros"``. Pixels whose target is outside the frame
            have no counterpart in frame N+1; losses and metrics exclude them with
            :func:`in_frame_mask` (Sintel's occlusion maps already do). Border padding
            matters for visible pixels within one pixel of the edge, which bilinear
            sampling would otherwise blend with black.

    Returns:
        (B, C, H, W) x resampled onto frame N's grid, same dtype as x.
    """
    _check(x, flow)
    grid = _sample_grid(flow.to(x.dtype) if x.is_floating_point() else flow.float())
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def in_frame_mask(flow: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) flow -> (B, 1, H, W) float, 1 where p + flow(p) lies inside the frame."""
    _, _, height, width = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=flow.device, dtype=flow.dtype),
        torch.arange(width, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return inside.unsqueeze(1).to(flow.dtype)


def resize_flow(flow: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize a (B, 2, H, W) flow field to ``size = (H', W')`` and rescale its vectors.

    u is multiplied by W'/W and v by H'/H: flow is measured in pixels of the image it
    belongs to. (Two earlier ReCoNet implementations scaled u by the height ratio, which is
    only right when both ratios happen to be equal.)
    """
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"resize_flow expects (B, 2, H, W), got {tuple(flow.shape)}")
    height, width = flow.shape[-2:]
    new_h, new_w = int(size[0]), int(size[1])
    if (new_h, new_w) == (height, width):
        return flow
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    resized = F.interpolate(flow, size=(new_h, new_w), mode=mode, **kwargs)
    scale = flow.new_tensor([new_w / width, new_h / height]).view(1, 2, 1, 1)
    return resized * scale


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a (B, 1, H, W) validity mask (1 = use pixel) to ``size = (H', W')``, conservatively.

    Output pixel (i, j) covers the input window rows [floor(i H / H'), ceil((i + 1) H / H')) and
    columns [floor(j W / W'), ceil((j + 1) W / W')) (the windows of ``area`` interpolation and
    adaptive pooling). It is 1 only if every input pixel in its window is 1:

        out = 1 - adaptive_max_pool(1 - mask) thresholded at 1,

    so occlusion never leaks into a loss, whether a dimension shrinks, grows, or one shrinks
    while the other grows. The result is binary (0/1); soft inputs count as valid only where 1.
    """
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"resize_mask expects (B, 1, H, W), got {tuple(mask.shape)}")
    size = (int(size[0]), int(size[1]))
    if tuple(mask.shape[-2:]) == size:
        return mask
    # Max-pooling the *invalid* map keeps a pixel invalid if any pixel it covers is invalid.
    # (Area averaging + "== 1" does the same when both dimensions shrink, but nearest
    # interpolation, needed once a dimension grows, would drop invalid rows of the other one.)
    invalid = F.adaptive_max_pool2d(1.0 - mask.float(), size)  # (B, 1, H', W')
    valid = invalid < 1e-6
    return valid.to(mask.dtype if mask.is_floating_point() else torch.float32)
