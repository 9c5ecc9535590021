"""Inference: read frames (video, image, folder, webcam), stylize them with the encoder-decoder
only, write them back (video with its frame rate, duration and audio; image; folder).

Only :mod:`reconet.models` (network + artifact loader) is used: no loss network, no Lightning.
"""

from reconet.media import (
    Frame,
    FrameSource,
    FrameWriter,
    MediaError,
    OutputError,
    SizeSpec,
    open_frames,
    open_writer,
)
from reconet.inference.pipeline import RunStats, run
from reconet.inference.stylizer import Stylizer, load, stylize_tiled

__all__ = [
    "Frame",
    "FrameSource",
    "FrameWriter",
    "MediaError",
    "OutputError",
    "RunStats",
    "SizeSpec",
    "Stylizer",
    "load",
    "open_frames",
    "open_writer",
    "run",
    "stylize_tiled",
]
