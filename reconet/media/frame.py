"""What every media module shares: the decoded :class:`Frame`, the media errors, the suffixes."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif")
WEBCAM_PREFIX = "webcam:"


class MediaError(ValueError):
    """An input or output file that cannot be used; the message is one line naming the file."""


class OutputError(MediaError):
    """The destination cannot be written (exists, unwritable folder, wrong kind of path)."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    ``image`` is (H, W, 3) uint8 RGB. ``time`` and ``duration`` are in seconds on the source's
    clock (None when the source has none, e.g. images); ``index`` counts from 0.
    """

    index: int
    image: np.ndarray
    time: Fraction | None = None
    duration: Fraction | None = None
