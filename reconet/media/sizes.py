"""Output sizes: ``WxH`` text, a fixed size, a scale or a longest side, resolved per source."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np


def parse_size_wh(text: str) -> tuple[int, int]:
    """``"640x360"`` -> (640, 360) as (W, H)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"size must look like WIDTHxHEIGHT (e.g. 640x360), got {text!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {text!r}")
    return width, height


@dataclass(frozen=True)
class SizeSpec:
    """At most one of ``size_wh`` (W, H), ``max_side`` (longest side, only ever shrinks) or ``scale``.

    Naming rule of the package: a size's name says its order where both meet. ``_wh`` = (width,
    height), as sizes are written on command lines and by video libraries; ``_hw`` or a plain
    tensor/config ``size`` = (height, width), the order of (B, C, H, W) tensors and of the
    training configs (``data.size=[360,640]``).

    Sizes derived from ``max_side``/``scale`` keep the aspect ratio and are rounded to even
    numbers, which 4:2:0 video codecs need; an explicit ``size`` is used exactly as given.
    """

    size_wh: tuple[int, int] | None = None
    max_side: int | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        given = [v is not None for v in (self.size_wh, self.max_side, self.scale)]
        if sum(given) > 1:
            raise ValueError("give at most one of size_wh, max_side and scale")
        if self.max_side is not None and self.max_side < 2:
            raise ValueError(f"max_side must be >= 2, got {self.max_side}")
        if self.scale is not None and not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"scale must be a positive number, got {self.scale}")

    def resolve(self, width: int, height: int) -> tuple[int, int]:
        """Output (W, H) for a (W, H) source."""
        if self.size_wh is not None:
            return self.size_wh
        if self.max_side is not None:
            factor = min(1.0, self.max_side / max(width, height))
        elif self.scale is not None:
            factor = self.scale
        else:
            return width, height
        if factor == 1.0:
            return width, height
        return _even(width * factor), _even(height * factor)


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def resize_uint8(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8 array to (W, H) with area averaging (down) or bicubic (up)."""
    width, height = size
    if image.shape[1] == width and image.shape[0] == height:
        return image
    import cv2  # local: only needed when resizing images/webcam frames

    shrinking = width * height < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interpolation)
