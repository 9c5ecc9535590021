"""How each dataset turns what it ships into the sample ``mask`` (1 = use pixel).

Polarity rule: occlusion / invalid / motion-boundary maps on disk are 255 where a pixel must
NOT be used; a ``mask`` is 1 where it MUST be used. Every conversion happens here.

- Ground-truth maps (Sintel, FlyingChairs2): ``mask = ~occluded & ~invalid & in_frame``.
  The in-frame term is not redundant: Sintel's occlusion maps do not mark every pixel whose
  flow target leaves the image (alley_1 frame 0002 has 3,650 such pixels), and warping them
  samples the padding, not their true counterpart.
- No occlusion map (FlyingChairs): :func:`photometric_mask`.
- Forward and backward flow (Scene Flow): ``reconet.flow.occlusion.mask_from_flows``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import torch

from reconet.data.errors import DatasetError, DatasetWarning
from reconet.flow.warp import in_frame_mask, warp

MISSING_OCCLUSION_POLICIES = ("in_frame", "skip", "error")

# Default of photometric_mask: a pixel is kept if no RGB channel of frame N differs from the
# warped frame N+1 by 0.1 or more (~25 of 255 grey levels). See docs/data.md for the numbers
# behind this choice.
PHOTOMETRIC_THRESHOLD = 0.1

P = TypeVar("P")


def mask_from_maps(
    flow: torch.Tensor,
    occluded: torch.Tensor | None = None,
    invalid: torch.Tensor | None = None,
) -> torch.Tensor:
    """(2, H, W) flow and optional (1, H, W) bool maps (True = exclude) -> (1, H, W) float mask.

    mask = in_frame(flow) AND NOT occluded AND NOT invalid.
    """
    mask = in_frame_mask(flow.unsqueeze(0))[0] > 0.5  # (1, H, W)
    for name, exclude in (("occlusion", occluded), ("invalid", invalid)):
        if exclude is None:
            continue
        if tuple(exclude.shape) != tuple(mask.shape):
            raise ValueError(
                f"{name} map {tuple(exclude.shape)} does not match flow {tuple(flow.shape)}"
            )
        mask = mask & ~exclude
    return mask.float()


def photometric_mask(
    frame1: torch.Tensor,
    frame2: torch.Tensor,
    flow: torch.Tensor,
    threshold: float = PHOTOMETRIC_THRESHOLD,
) -> torch.Tensor:
    """Mask for data with exact flow but no occlusion map (FlyingChairs).

    mask(p) = in_frame(p) AND max_c |I1_c(p) - warp(I2, F)_c(p)| < threshold

    With ground-truth flow, a visible pixel reappears at p + F(p) with the same colour
    (FlyingChairs renders rigid, unlit 2-D motion, so brightness constancy holds up to
    interpolation); a large difference means the pixel is covered in frame N+1 or left it.
    Occluded pixels whose cover happens to have the same colour are kept; the temporal
    losses ask for nothing there that the input frames contradict.

    Args:
        frame1, frame2: (3, H, W) or (B, 3, H, W) float in [0, 1].
        flow: (2, H, W) or (B, 2, H, W) forward flow frame1 -> frame2.
    Returns:
        (1, H, W) or (B, 1, H, W) float32 mask, 1 = use pixel.
    """
    batched = frame1.ndim == 4
    f1, f2, fl = (t if batched else t.unsqueeze(0) for t in (frame1, frame2, flow))
    if f1.shape != f2.shape or f1.shape[1] != 3 or fl.shape[1] != 2 or fl.shape[-2:] != f1.shape[-2:]:
        raise ValueError(
            f"photometric_mask expects frames (B, 3, H, W) and flow (B, 2, H, W), got "
            f"{tuple(frame1.shape)}, {tuple(frame2.shape)}, {tuple(flow.shape)}"
        )
    difference = (f1 - warp(f2, fl)).abs().amax(dim=1, keepdim=True)  # (B, 1, H, W)
    mask = (difference < threshold) & (in_frame_mask(fl) > 0.5)
    mask = mask.float()
    return mask if batched else mask[0]


def check_missing_policy(policy: str) -> str:
    if policy not in MISSING_OCCLUSION_POLICIES:
        raise ValueError(
            f"missing_occlusion must be one of {MISSING_OCCLUSION_POLICIES}, got {policy!r}"
        )
    return policy


def apply_missing_policy(
    pairs: Sequence[P],
    missing: Callable[[P], list[Path]],
    policy: str,
    dataset: str,
    root: Path,
) -> list[P]:
    """Apply ``missing_occlusion`` to pairs whose occlusion (or invalid) map is absent.

    ``missing(pair)`` lists the expected-but-absent map files of a pair.
    "in_frame": keep every pair (their mask falls back to the in-frame test, plus any map that
    does exist) and warn once with the count. "skip": drop them and warn once. "error": raise
    DatasetError naming the first missing file and the count.
    """
    check_missing_policy(policy)
    lacking = [(pair, missing(pair)) for pair in pairs]
    lacking = [(pair, files) for pair, files in lacking if files]
    if not lacking:
        return list(pairs)
    first = lacking[0][1][0]
    count = f"{len(lacking)} of {len(pairs)} pairs"
    if policy == "error":
        raise DatasetError(
            f"{dataset}: {count} under {root} lack an occlusion/invalid map, e.g. {first} "
            "(missing_occlusion='error'; use 'in_frame' or 'skip' for partial copies)"
        )
    if policy == "skip":
        warnings.warn(
            f"{dataset}: skipping {count} under {root} that lack an occlusion/invalid map, "
            f"e.g. {first} (missing_occlusion='skip')",
            DatasetWarning,
            stacklevel=3,
        )
        dropped = {id(pair) for pair, _ in lacking}
        return [pair for pair in pairs if id(pair) not in dropped]
    warnings.warn(
        f"{dataset}: {count} under {root} lack an occlusion/invalid map, e.g. {first}; their mask "
        "is the in-frame test plus whichever map exists (missing_occlusion='in_frame')",
        DatasetWarning,
        stacklevel=3,
    )
    return list(pairs)
