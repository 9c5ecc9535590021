"""Geometric transforms applied consistently to a sample's frames, flow and mask.

Each transform is a callable ``sample -> new sample`` (the input dict and its tensors are
never modified). What each one does to the flow, because that is where earlier ReCoNet code
went wrong:

- resize to (H', W'): u *= W'/W, v *= H'/H (``reconet.flow.warp.resize_flow``); the mask is
  resized with ``resize_mask`` (a low-resolution pixel is kept only if all it covers is).
- crop: flow vectors are unchanged, but a pixel whose target p + F(p) leaves the crop has no
  counterpart in the cropped frame N+1, so the mask is AND-ed with the in-frame test again.
- horizontal flip: everything is mirrored and u is negated (a point moving right moves left
  in the mirror); v is unchanged.

Random transforms draw from ``generator`` (a ``torch.Generator``) or, if ``seed`` is given,
from a private generator seeded with it; otherwise from torch's global RNG, which
``DataLoader`` seeds differently in every worker. A seeded generator is copied into each
worker process unchanged, so keep ``seed=None`` for multi-worker training and use ``seed``
for reproducible evaluation and tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from reconet.data.sample import check_sample
from reconet.flow.warp import in_frame_mask, resize_flow, resize_mask

Sample = dict[str, Any]
Transform = Callable[[Sample], Sample]


def _size(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"{name}: size must be a positive (H, W), got {size!r}")
    return size  # type: ignore[return-value]


def _generator(generator: torch.Generator | None, seed: int | None) -> torch.Generator | None:
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both")
    if seed is not None:
        return torch.Generator().manual_seed(int(seed))
    return generator


def _with(sample: Sample, **tensors: torch.Tensor) -> Sample:
    """A new sample dict with some tensors replaced and a copied meta."""
    out = dict(sample)
    out.update(tensors)
    out["meta"] = dict(sample["meta"])
    return out


def _in_frame(flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mask AND (p + flow(p) inside the frame); (2, H, W), (1, H, W) -> (1, H, W)."""
    return mask * in_frame_mask(flow.unsqueeze(0))[0]


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Iterable[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for transform in self.transforms:
            sample = transform(sample)
        return sample

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class Resize:
    """Resize a sample to ``size = (H', W')`` (aspect ratio not kept; see :class:`ResizeToCover`).

    Frames: bilinear with antialiasing (no aliasing when shrinking 1024x436 to 640x360).
    Flow: ``resize_flow`` (u *= W'/W, v *= H'/H). Mask: ``resize_mask``, then AND in-frame.
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size(size, "Resize")

    def __call__(self, sample: Sample) -> Sample:
        check_sample(sample)
        if tuple(sample["frame1"].shape[-2:]) == self.size:
            return _with(sample)
        frames = torch.stack([sample["frame1"], sample["frame2"]])  # (2, 3, H, W)
        frames = F.interpolate(frames, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        flow = resize_flow(sample["flow"].unsqueeze(0), self.size)[0]  # (2, H', W')
        mask = resize_mask(sample["mask"].unsqueeze(0), self.size)[0]  # (1, H', W')
        return _with(sample, frame1=frames[0], frame2=frames[1], flow=flow, mask=_in_frame(flow, mask))

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class ResizeToCover:
    """Scale uniformly (aspect ratio kept) to the smallest size that covers ``(H', W')``.

    Follow it with a crop to get exactly (H', W'): e.g. Sintel 1024x436 -> 846x360 -> crop
    640x360. A sample that already has the target size is left untouched.
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size(size, "ResizeToCover")

    def __call__(self, sample: Sample) -> Sample:
        check_sample(sample)
        height, width = sample["frame1"].shape[-2:]
        scale = max(self.size[0] / height, self.size[1] / width)
        # ceil (minus a rounding guard) so both sides are at least the target.
        new_size = (
            max(self.size[0], math.ceil(height * scale - 1e-6)),
            max(self.size[1], math.ceil(width * scale - 1e-6)),
        )
        return Resize(new_size)(sample)

    def __repr__(self) -> str:
        return f"ResizeToCover({self.size})"


def _crop(sample: Sample, top: int, left: int, size: tuple[int, int]) -> Sample:
    h, w = size
    cut = {key: sample[key][:, top : top + h, left : left + w] for key in ("frame1", "frame2", "flow", "mask")}
    cut["mask"] = _in_frame(cut["flow"], cut["mask"])
    return _with(sample, **cut)


def _check_fits(sample: Sample, size: tuple[int, int], name: str) -> tuple[int, int]:
    height, width = sample["frame1"].shape[-2:]
    if height < size[0] or width < size[1]:
        raise ValueError(
            f"{name}{size}: sample is only {height}x{width} (H x W); resize first (e.g. ResizeToCover)"
        )
    return height, width


class RandomCrop:
    """Crop a random ``(H', W')`` window (the same window for frames, flow and mask)."""

    def __init__(
        self, size: int | Sequence[int], generator: torch.Generator | None = None, seed: int | None = None
    ) -> None:
        self.size = _size(size, "RandomCrop")
        self.generator = _generator(generator, seed)

    def __call__(self, sample: Sample) -> Sample:
        check_sample(sample)
        height, width = _check_fits(sample, self.size, "RandomCrop")
        top = int(torch.randint(0, height - self.size[0] + 1, (), generator=self.generator))
        left = int(torch.randint(0, width - self.size[1] + 1, (), generator=self.generator))
        return _crop(sample, top, left, self.size)

    def __repr__(self) -> str:
        return f"RandomCrop({self.size})"


class CenterCrop:
    """Crop the central ``(H', W')`` window."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size(size, "CenterCrop")

    def __call__(self, sample: Sample) -> Sample:
        check_sample(sample)
        height, width = _check_fits(sample, self.size, "CenterCrop")
        return _crop(sample, (height - self.size[0]) // 2, (width - self.size[1]) // 2, self.size)

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class RandomHorizontalFlip:
    """Mirror the sample left-right with probability ``p``; the flow's u is negated."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None, seed: int | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.generator = _generator(generator, seed)

    def __call__(self, sample: Sample) -> Sample:
        check_sample(sample)
        # Always draw, so the random stream does not depend on p being 0 or 1.
        flip = bool(torch.rand((), generator=self.generator) < self.p)
        if not flip:
            return _with(sample)
        flow = sample["flow"].flip(-1) * sample["flow"].new_tensor([-1.0, 1.0]).view(2, 1, 1)
        return _with(
            sample,
            frame1=sample["frame1"].flip(-1),
            frame2=sample["frame2"].flip(-1),
            flow=flow,
            mask=sample["mask"].flip(-1),
        )

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


CROP_MODES = ("random", "center", "none")


def build_transform(
    size: int | Sequence[int] | None = None,
    crop: str | None = "random",
    hflip: bool | float = False,
    seed: int | None = None,
) -> Compose | None:
    """The usual training / validation pipeline.

    Args:
        size: output (H, W); None keeps each sample's own size (then ``crop`` is ignored).
        crop: ``"random"`` (training): :class:`ResizeToCover` then :class:`RandomCrop`;
            ``"center"`` (validation): ResizeToCover then :class:`CenterCrop`;
            ``"none"``/None: plain :class:`Resize` to ``size`` (aspect ratio not kept).
        hflip: False, True (p = 0.5) or a probability.
        seed: seed for the random crop and flip (see the module docstring about workers).

    Returns:
        A :class:`Compose`, or None when there is nothing to do.
    """
    crop = "none" if crop is None else crop
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES} or None, got {crop!r}")
    generator = _generator(None, seed)
    steps: list[Transform] = []
    if size is not None:
        size = _size(size, "build_transform")
        if crop == "none":
            steps.append(Resize(size))
        else:
            steps.append(ResizeToCover(size))
            steps.append(RandomCrop(size, generator=generator) if crop == "random" else CenterCrop(size))
    probability = 0.5 if hflip is True else float(hflip)
    if probability > 0:
        steps.append(RandomHorizontalFlip(probability, generator=generator))
    return Compose(steps) if steps else None
