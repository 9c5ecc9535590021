"""Frame sources and sinks: video files, single images, frame folders and webcams.

Sources decode to (H, W, 3) uint8 RGB :class:`Frame` records (cheap to queue between
threads); iterating a source directly yields (3, H, W) float tensors in [0, 1] through
:func:`reconet.image.uint8_to_tensor`, the package's one conversion point.

Video timing. A stylized video must have exactly the source's frames at exactly the
source's times, otherwise audio drifts and motion stutters. Writers therefore set every
frame's presentation timestamp (PTS) explicitly:

* constant-rate sources (``fps`` known): PTS_i = PTS_0 + i * ticks_per_frame in a time base
  in which one frame is a whole number of ticks (1/30000 s for 30000/1001 fps), so no
  rounding error accumulates; a source timestamp more than half a frame away from that grid
  (a real gap) is kept as it is;
* variable-rate sources (GIF delays): each frame keeps its source timestamp and duration.

Audio is demuxed from the source file a second time and interleaved with the video by
time: packets are copied unchanged when the output container accepts the codec (AAC into
MP4/MKV, Vorbis/Opus into WebM/MKV), otherwise decoded and re-encoded (e.g. Vorbis -> AAC
for MP4, AAC -> Opus for WebM).

Every writer works on a temporary name next to its destination and renames it into place
only in :meth:`FrameWriter.commit`; :meth:`FrameWriter.abort` (also called on any
exception, including KeyboardInterrupt, by the context manager) deletes it. The destination
is never touched before the output is complete, and an existing destination is replaced
only with ``overwrite=True``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image

from reconet.fileio import PartialOutput, remove_stale_partials
from reconet.image import IMAGE_SUFFIXES, image_size, read_image, uint8_to_tensor

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif")
WEBCAM_PREFIX = "webcam:"

# Containers that accept a codec only in theory: FFmpeg can put Vorbis into MP4 or AVI, but
# players cannot play it, so such audio is transcoded instead of copied.
_AUDIO_COPY_DENYLIST = {
    "mp4": {"vorbis"},
    "mov": {"vorbis"},
    "ipod": {"vorbis"},
    "avi": {"vorbis"},
}
# Audio encoder used when the source codec cannot be copied into the container.
_AUDIO_TRANSCODE = {
    "mp4": "aac",
    "mov": "aac",
    "ipod": "aac",
    "matroska": "aac",
    "webm": "libopus",
    "avi": "libmp3lame",
}
# AVI stores one tick per video frame and cannot start a stream before zero: an audio packet
# that ends before time zero (AAC encoder priming, hidden by an MP4 edit list) would make the
# muxer shift the video by a whole frame, so such packets are left out there.
_DROP_PRE_ROLL = {"avi"}
# libopus only runs at these sample rates; anything else is resampled to 48 kHz.
_OPUS_RATES = (48000, 24000, 16000, 12000, 8000)


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


# ----------------------------------------------------------------------------------------
# sizes


def parse_size(text: str) -> tuple[int, int]:
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
    """At most one of ``size`` (W, H), ``max_side`` (longest side, only ever shrinks) or ``scale``.

    Sizes derived from ``max_side``/``scale`` keep the aspect ratio and are rounded to even
    numbers, which 4:2:0 video codecs need; an explicit ``size`` is used exactly as given.
    """

    size: tuple[int, int] | None = None
    max_side: int | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        given = [v is not None for v in (self.size, self.max_side, self.scale)]
        if sum(given) > 1:
            raise ValueError("give at most one of size, max_side and scale")
        if self.max_side is not None and self.max_side < 2:
            raise ValueError(f"max_side must be >= 2, got {self.max_side}")
        if self.scale is not None and not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"scale must be a positive number, got {self.scale}")

    def resolve(self, width: int, height: int) -> tuple[int, int]:
        """Output (W, H) for a (W, H) source."""
        if self.size is not None:
            return self.size
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


def _resize_uint8(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8 array to (W, H) with area averaging (down) or bicubic (up)."""
    width, height = size
    if image.shape[1] == width and image.shape[0] == height:
        return image
    import cv2  # local: only needed when resizing images/webcam frames

    shrinking = width * height < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interpolation)


# ----------------------------------------------------------------------------------------
# sources


class FrameSource:
    """Iterable of (3, H, W) float [0, 1] tensors with ``fps``, ``num_frames`` and ``size``.

    ``fps`` is a Fraction (None for images, folders and webcams that report none),
    ``num_frames`` the exact count when known in advance (else None), ``size`` the (W, H)
    of the frames it yields (after any resize). :meth:`frames` yields :class:`Frame` records
    with uint8 pixels and timestamps; :meth:`stop` asks a running iteration to end early.
    """

    kind = "frames"

    def __init__(self, name: str, size: tuple[int, int], source_size: tuple[int, int]):
        self.name = name
        self.size = size
        self.source_size = source_size
        self.fps: Fraction | None = None
        self.num_frames: int | None = None
        self.frames_hint: int | None = None  # best guess for progress bars
        self.truncated = False  # True when max_frames cut the source short
        self._stop = False

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[torch.Tensor]:
        for frame in self.frames():
            yield uint8_to_tensor(frame.image)  # (3, H, W)

    def stop(self) -> None:
        self._stop = True

    def close(self) -> None:
        pass

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        width, height = self.size
        parts = [f"{self.kind} {self.name}", f"{width}x{height}"]
        if self.fps is not None:
            parts.append(f"{float(self.fps):.3f} fps")
        if self.num_frames is not None:
            parts.append(f"{self.num_frames} frames")
        return ", ".join(parts)


def _ffmpeg_message(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return " ".join(str(text).split())


# VP8/VP9/AV1 packets may carry alt-ref frames that are decoded but never shown.
_HIDDEN_FRAME_CODECS = ("vp8", "vp9", "av1", "libvpx", "libvpx-vp9", "libdav1d", "libaom-av1")


class VideoSource(FrameSource):
    """Any video PyAV decodes (mp4, webm, mkv, avi, mov, gif, ...)."""

    kind = "video"

    def __init__(
        self, path: str | Path, size: SizeSpec | None = None, max_frames: int | None = None
    ):
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"input not found: {path}")
        if path.is_dir():
            raise MediaError(f"{path}: is a folder, not a video")
        try:
            self._container = av.open(str(path))
        except (av.FFmpegError, UnicodeDecodeError) as err:
            raise MediaError(f"{path}: not a readable video ({_ffmpeg_message(err)})") from None
        if not self._container.streams.video:
            self._container.close()
            raise MediaError(f"{path}: contains no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads: decoding keeps up with the model
        self._stream = stream
        source_size = (stream.codec_context.width, stream.codec_context.height)
        if source_size[0] <= 0 or source_size[1] <= 0:
            self._container.close()
            raise MediaError(f"{path}: video stream has no frame size (corrupt header?)")
        super().__init__(str(path), (size or SizeSpec()).resolve(*source_size), source_size)
        self.path = path
        self.max_frames = max_frames
        self.time_base: Fraction | None = stream.time_base
        # average_rate is FFmpeg's estimate of the constant rate (None for variable-rate GIFs).
        self.fps = stream.average_rate or None
        count = stream.frames or 0
        if count <= 0 and self.fps is not None and stream.duration and stream.time_base:
            self.frames_hint = round(stream.duration * stream.time_base * self.fps)
        elif count <= 0 and self.fps is not None and self._container.duration:
            self.frames_hint = round(Fraction(self._container.duration, 1_000_000) * self.fps)
        if count > 0:
            # Headers count packets; VP8/VP9 hidden alt-ref frames make that an upper bound,
            # so it is only a hint for the progress bar.
            self.frames_hint = count
        if max_frames is not None and self.frames_hint is not None:
            self.frames_hint = min(self.frames_hint, max_frames)
        audio = self._container.streams.audio
        self.audio_codec: str | None = audio[0].codec_context.name if audio else None

    def frames(self) -> Iterator[Frame]:
        width, height = self.size
        index = 0
        packets = 0
        video_end: Fraction | None = None  # end time of the last demuxed packet, seconds
        cut_short = False
        try:
            for packet in self._container.demux(self._stream):
                if packet.size and packet.pts is not None and packet.time_base is not None:
                    packets += 1
                    end = (packet.pts + (packet.duration or 0)) * packet.time_base
                    video_end = end if video_end is None else max(video_end, end)
                for decoded in packet.decode():
                    if self._stop:
                        cut_short = True
                        break
                    if self.max_frames is not None and index >= self.max_frames:
                        self.truncated = cut_short = True
                        break
                    image = decoded.to_ndarray(
                        width=width, height=height, format="rgb24", interpolation="AREA"
                    )
                    time_base = decoded.time_base or self.time_base
                    when = None if decoded.pts is None or time_base is None else decoded.pts * time_base
                    duration = None
                    if decoded.duration and time_base is not None:
                        duration = decoded.duration * time_base
                    yield Frame(index, image, when, duration)
                    index += 1
                if cut_short:
                    break
        except av.FFmpegError as err:
            raise MediaError(
                f"{self.path}: corrupt video stream after {index} frames ({_ffmpeg_message(err)})"
            ) from None
        if index == 0 and not self._stop:
            raise MediaError(f"{self.path}: no video frames could be decoded")
        if not cut_short:
            self._check_complete(index, packets, video_end)
        self.num_frames = index

    def _check_complete(self, decoded: int, packets: int, video_end: Fraction | None) -> None:
        """Refuse a stream that ended before the length its header declares.

        A file cut short with its index at the front (an interrupted download of a
        "faststart" MP4) demuxes without an error up to the cut, and frame-threaded decoding
        drops the broken last packets silently; only the declared length reveals it.
        """
        stream = self._stream
        if video_end is None:
            return
        if not stream.duration or stream.time_base is None:
            # No per-stream length (Matroska/WebM): the container's covers audio too, so a
            # shortfall is only a warning, and only a clear one (over a second and 10 %).
            container = Fraction(self._container.duration or 0, 1_000_000)
            if container - video_end > max(1, container / 10):
                warnings.warn(
                    f"{self.path}: the video stream ends at {float(video_end):.2f} s but the file declares "
                    f"{float(container):.2f} s ({decoded} frames decoded); it may be truncated",
                    stacklevel=2,
                )
            return
        declared = stream.duration * stream.time_base
        rate = self.fps or Fraction(25)
        # Timestamps are exact; one frame of slack covers rounding in the header's duration.
        if video_end + 1 / rate < declared:
            expected = stream.frames or round(declared * rate)
            raise MediaError(
                f"{self.path}: truncated or corrupt video: decoded {decoded} of {expected} frames "
                f"(the stream ends at {float(video_end):.2f} s of {float(declared):.2f} s)"
            )
        # Frame threads hide decoding errors; a frame per packet is the rule except for the
        # codecs with hidden (never shown) frames.
        if stream.codec_context.name not in _HIDDEN_FRAME_CODECS and decoded < packets:
            raise MediaError(
                f"{self.path}: corrupt video: {packets - decoded} of {packets} frames could not be decoded"
            )

    def close(self) -> None:
        self._container.close()


class ImageSource(FrameSource):
    """A single image file: one frame."""

    kind = "image"

    def __init__(self, path: str | Path, size: SizeSpec | None = None):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"input not found: {path}")
        source_size = image_size(path)
        super().__init__(str(path), (size or SizeSpec()).resolve(*source_size), source_size)
        self.path = path
        self.num_frames = self.frames_hint = 1

    def frames(self) -> Iterator[Frame]:
        yield Frame(0, _resize_uint8(read_image(self.path), self.size))


def _natural_key(path: Path) -> list[Any]:
    # frame_2.png before frame_10.png
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_image_files(folder: Path) -> list[Path]:
    """Image files in ``folder`` (not hidden), in natural order."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=_natural_key)


class FolderSource(FrameSource):
    """A folder of frames, read in natural name order; every frame is resized to ``size``."""

    kind = "folder"

    def __init__(
        self, path: str | Path, size: SizeSpec | None = None, max_frames: int | None = None
    ):
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"input folder not found: {path}")
        files = list_image_files(path)
        if not files:
            raise MediaError(f"{path}: folder contains no image files ({', '.join(IMAGE_SUFFIXES)})")
        self.truncated_files = files
        if max_frames is not None and len(files) > max_frames:
            files = files[:max_frames]
        source_size = image_size(files[0])
        super().__init__(str(path), (size or SizeSpec()).resolve(*source_size), source_size)
        self.truncated = len(files) < len(self.truncated_files)
        self.path = path
        self.files = files
        self.num_frames = self.frames_hint = len(files)

    @property
    def names(self) -> list[str]:
        """Frame file stems, so a folder written from this source keeps the names."""
        return [p.stem for p in self.files]

    def frames(self) -> Iterator[Frame]:
        warned = False
        for index, file in enumerate(self.files):
            if self._stop:
                break
            image = read_image(file)
            if (image.shape[1], image.shape[0]) != self.source_size and not warned:
                warnings.warn(
                    f"{file.name} is {image.shape[1]}x{image.shape[0]}, the first frame is "
                    f"{self.source_size[0]}x{self.source_size[1]}: resizing to "
                    f"{self.size[0]}x{self.size[1]}",
                    stacklevel=2,
                )
                warned = True
            yield Frame(index, _resize_uint8(image, self.size))


CaptureFactory = Callable[[int], Any]


def _opencv_capture(index: int) -> Any:
    import cv2

    return cv2.VideoCapture(index)


class WebcamSource(FrameSource):
    """A camera through an OpenCV-style capture object (``read() -> (ok, BGR uint8)``).

    ``capture_factory(index)`` builds the capture (``cv2.VideoCapture`` by default; tests
    inject a fake). Frames are timestamped with the wall clock, so a recording plays at the
    speed it was captured even when stylization is slower than the camera. The stream ends
    when the camera stops delivering, after ``max_frames``, or on :meth:`stop`.
    """

    kind = "webcam"

    def __init__(
        self,
        index: int = 0,
        size: SizeSpec | None = None,
        max_frames: int | None = None,
        capture_factory: CaptureFactory | None = None,
    ):
        factory = capture_factory or _opencv_capture
        self._capture = factory(index)
        opened = getattr(self._capture, "isOpened", lambda: True)()
        ok, first = self._capture.read() if opened else (False, None)
        if not ok or first is None:
            self._release()
            raise MediaError(f"{WEBCAM_PREFIX}{index}: cannot read from camera {index}")
        self._first = self._bgr_to_rgb(first)
        source_size = (self._first.shape[1], self._first.shape[0])
        super().__init__(f"{WEBCAM_PREFIX}{index}", (size or SizeSpec()).resolve(*source_size), source_size)
        self.max_frames = max_frames
        reported = 0.0
        if hasattr(self._capture, "get"):
            try:
                import cv2

                reported = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
            except (ImportError, TypeError, ValueError):
                reported = 0.0
        # Only used as the nominal rate of a recording; timestamps come from the clock.
        self.fps = Fraction(reported).limit_denominator(1001) if reported > 0 else None
        self.frames_hint = max_frames

    @staticmethod
    def _bgr_to_rgb(image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise MediaError(
                f"camera returned a {image.dtype} array of shape {image.shape}, expected (H, W, 3) uint8"
            )
        return np.ascontiguousarray(image[:, :, ::-1])

    def frames(self) -> Iterator[Frame]:
        start = time.monotonic()
        index = 0
        image: np.ndarray | None = self._first
        while not self._stop:
            if self.max_frames is not None and index >= self.max_frames:
                self.truncated = True
                break
            if image is None:
                ok, raw = self._capture.read()
                if not ok or raw is None:
                    break
                image = self._bgr_to_rgb(raw)
            now = Fraction(round((time.monotonic() - start) * 1000), 1000)
            yield Frame(index, _resize_uint8(image, self.size), now)
            image = None
            index += 1
        self.num_frames = index

    def _release(self) -> None:
        release = getattr(self._capture, "release", None)
        if release is not None:
            release()

    def close(self) -> None:
        self._release()


def is_webcam_spec(spec: str | Path) -> bool:
    return isinstance(spec, str) and spec.lower().startswith(WEBCAM_PREFIX)


def open_frames(
    spec: str | Path,
    *,
    size: SizeSpec | None = None,
    max_frames: int | None = None,
    capture_factory: CaptureFactory | None = None,
) -> FrameSource:
    """Open a frame source: ``webcam:N``, a folder of frames, an image file or a video file.

    Raises FileNotFoundError for a missing path and :class:`MediaError` for a file that is
    not a usable image or video.
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if is_webcam_spec(spec):
        index_text = str(spec)[len(WEBCAM_PREFIX) :]
        if not index_text.isdigit():
            raise MediaError(f"webcam spec must be {WEBCAM_PREFIX}N with a camera number, got {spec!r}")
        return WebcamSource(int(index_text), size, max_frames, capture_factory)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.is_dir():
        return FolderSource(path, size, max_frames)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path, size)
    return VideoSource(path, size, max_frames)


# ----------------------------------------------------------------------------------------
# atomic destinations


def _temp_sibling(dest: Path, kind: str) -> Path:
    # Hidden, unique, next to the destination (same file system, so the final rename is
    # atomic), and keeping the suffix so the container format is still guessed from it.
    return dest.with_name(f".{dest.stem}.{kind}-{uuid.uuid4().hex[:8]}{dest.suffix}")


def check_not_input(dest: str | Path, input_path: str | Path | None) -> None:
    """Refuse an output that is the input or contains it: --overwrite would destroy the input."""
    if input_path is None or is_webcam_spec(str(input_path)):
        return
    dest, source = Path(dest).resolve(), Path(input_path).resolve()
    if dest == source or dest in source.parents:
        raise OutputError(f"{dest}: this is {'the input' if dest == source else 'a folder holding the input'} {input_path}; choose another output")


def check_destination(dest: Path, *, overwrite: bool, folder: bool = False) -> None:
    """Fail early (before any work) if ``dest`` cannot become the output."""
    parent = dest.parent
    if not parent.exists():
        raise OutputError(f"{dest}: output folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{dest}: {parent} is not a folder")
    if folder:
        if dest.exists() and not dest.is_dir():
            raise OutputError(f"{dest}: exists and is not a folder")
        if dest.is_dir() and any(dest.iterdir()) and not overwrite:
            raise OutputError(f"{dest}: folder exists and is not empty (use --overwrite to replace it)")
    else:
        if dest.is_dir():
            raise OutputError(f"{dest}: is a folder; give a file name")
        if dest.exists() and not overwrite:
            raise OutputError(f"{dest}: exists (use --overwrite to replace it)")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{dest}: output folder {parent} is not writable")


def _set_aside(temp: Path, dest: Path) -> Path:
    """Give a finished output that cannot take its name a visible one beside it."""
    kept = dest.with_name(f"{dest.stem}.new-{uuid.uuid4().hex[:8]}{dest.suffix}")
    os.replace(temp, kept)
    return kept


def commit_file(temp: Path, dest: Path, overwrite: bool) -> None:
    """Rename the finished ``temp`` to ``dest``; without ``overwrite`` never replace an existing file."""
    if overwrite:
        os.replace(temp, dest)
        return
    try:
        # link() refuses to replace an existing name: a file that appeared at the
        # destination while we were working is never clobbered.
        os.link(temp, dest)
    except FileExistsError:
        raise OutputError(f"{dest}: appeared while writing; output left at {_set_aside(temp, dest)}") from None
    except OSError:  # file systems without hard links
        if dest.exists():
            raise OutputError(f"{dest}: appeared while writing; output left at {_set_aside(temp, dest)}") from None
        os.replace(temp, dest)
    else:
        temp.unlink()


def commit_folder(temp: Path, dest: Path, overwrite: bool) -> None:
    """Move the finished folder ``temp`` to ``dest`` (an empty ``dest`` is replaced)."""
    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()
    if not dest.exists():
        os.replace(temp, dest)
        return
    if not overwrite:
        raise OutputError(f"{dest}: appeared while writing; output left at {_set_aside(temp, dest)}")
    # Swap in two renames so that a failure in between leaves both folders intact.
    backup = _temp_sibling(dest, "old")
    os.replace(dest, backup)
    os.replace(temp, dest)
    shutil.rmtree(backup, ignore_errors=True)


# ----------------------------------------------------------------------------------------
# writers


class FrameWriter:
    """Base of all sinks: ``write(frame)`` then ``commit()``; ``abort()`` removes all traces.

    Used as a context manager, leaving the block normally commits and any exception aborts.
    """

    def __init__(self, dest: str | Path, *, overwrite: bool = False, folder: bool = False):
        self.dest = Path(dest)
        self.overwrite = overwrite
        check_destination(self.dest, overwrite=overwrite, folder=folder)
        self._folder = folder
        self._partial: PartialOutput | None = None  # created by the first write
        stale = remove_stale_partials(self.dest, folder=folder)
        if stale:
            names = ", ".join(p.name for p in stale)
            warnings.warn(f"{self.dest}: removed the partial output of an interrupted run ({names})", stacklevel=2)
        self.frames_written = 0
        self._done = False

    @property
    def temp(self) -> Path:
        """The hidden partial output (locked while this writer lives), created on first use."""
        if self._partial is None:
            try:
                self._partial = PartialOutput(self.dest, folder=self._folder)
            except OSError as err:
                raise OutputError(f"{self.dest}: cannot create output ({err.strerror})") from None
        return self._partial.path

    def write(self, frame: Frame) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush everything into ``self.temp``."""

    def _commit(self) -> None:
        commit_file(self.temp, self.dest, self.overwrite)

    def _discard(self) -> None:
        if self._partial is None:
            return
        if self.temp.is_dir():
            shutil.rmtree(self.temp, ignore_errors=True)
        elif self.temp.exists():
            self.temp.unlink()
        self._partial.release()

    def commit(self) -> Path:
        if self._done:
            return self.dest
        if self.frames_written == 0:
            self.abort()
            raise MediaError("no frames were written; output not created")
        try:
            self._finish()
            self._commit()
        except BaseException:
            self.abort()
            raise
        self._done = True
        if self._partial is not None:
            self._partial.release()
        return self.dest

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._close_quietly()
        finally:
            self._discard()

    def _close_quietly(self) -> None:
        pass

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class ImageWriter(FrameWriter):
    """A single image file (format from the suffix)."""

    def __init__(self, dest: str | Path, *, overwrite: bool = False, quality: int = 95):
        super().__init__(dest, overwrite=overwrite)
        if self.dest.suffix.lower() not in IMAGE_SUFFIXES:
            raise OutputError(f"{self.dest}: unknown image suffix (use one of {', '.join(IMAGE_SUFFIXES)})")
        self.quality = quality

    def write(self, frame: Frame) -> None:
        if self.frames_written:
            raise OutputError(
                f"{self.dest}: an image holds one frame but the input has more; "
                "give a video file or a folder as output"
            )
        _save_uint8(self.temp, frame.image, self.quality)
        self.frames_written = 1


def _save_uint8(path: Path, image: np.ndarray, quality: int) -> None:
    params: dict[str, Any] = {}
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt == "JPEG":
        params["quality"] = quality
    Image.fromarray(image).save(path, format=fmt, **params)


class FolderWriter(FrameWriter):
    """A folder of numbered frames (``frame_000001.png``...) or of the given names."""

    def __init__(
        self,
        dest: str | Path,
        *,
        overwrite: bool = False,
        suffix: str = ".png",
        names: list[str] | None = None,
        quality: int = 95,
    ):
        super().__init__(dest, overwrite=overwrite, folder=True)
        suffix = suffix if suffix.startswith(".") else f".{suffix}"
        if suffix.lower() not in IMAGE_SUFFIXES:
            raise OutputError(f"frame format {suffix!r} is not one of {', '.join(IMAGE_SUFFIXES)}")
        self.suffix = suffix
        self.names = names
        self.quality = quality

    def write(self, frame: Frame) -> None:
        index = self.frames_written
        if self.names is not None and index < len(self.names):
            stem = self.names[index]
        else:
            stem = f"frame_{index + 1:06d}"
        _save_uint8(self.temp / f"{stem}{self.suffix}", frame.image, self.quality)
        self.frames_written += 1

    def _commit(self) -> None:
        commit_folder(self.temp, self.dest, self.overwrite)


def _lcm(a: int, b: int) -> int:
    return a * b // math.gcd(a, b)


class _Timeline:
    """Turns source times into output PTS (see the module docstring)."""

    def __init__(self, fps: Fraction | None, *, frame_based: bool = False):
        self.fps = fps
        if fps is not None and frame_based:
            # AVI stores one tick per frame: its time base must be exactly 1/fps.
            self.time_base = 1 / fps
            self.ticks_per_frame = 1
        elif fps is not None:
            # One frame = an integer number of ticks, ticks no coarser than 1 ms.
            denominator = _lcm(fps.numerator, 1000)
            self.time_base = Fraction(1, denominator)
            self.ticks_per_frame = denominator * fps.denominator // fps.numerator
        else:
            self.time_base = Fraction(1, 1000)
            self.ticks_per_frame = None
        self.origin: int | None = None
        self.last_pts: int | None = None
        self.last_duration: int | None = None

    def pts(self, index: int, when: Fraction | None, duration: Fraction | None) -> tuple[int, int]:
        """(pts, duration) in ticks of ``time_base`` for frame ``index`` shown at ``when``."""
        source_ticks = None if when is None else round(when / self.time_base)
        if self.origin is None:
            self.origin = source_ticks if source_ticks is not None else 0
            self.index_origin = index
        if self.ticks_per_frame is not None:
            expected = self.origin + (index - self.index_origin) * self.ticks_per_frame
            if source_ticks is None or abs(source_ticks - expected) * 2 <= self.ticks_per_frame:
                pts = expected
            else:
                pts = source_ticks  # a real gap in the source: keep it
            length = self.ticks_per_frame
        else:
            pts = source_ticks if source_ticks is not None else (
                0 if self.last_pts is None else self.last_pts + (self.last_duration or 40)
            )
            if duration is not None and duration > 0:
                length = max(1, round(duration / self.time_base))
            elif self.last_pts is not None:
                length = max(1, pts - self.last_pts)
            else:
                length = 40  # 25 fps until we learn better
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1  # timestamps must increase strictly
        self.last_pts, self.last_duration = pts, length
        return pts, length

    def end_time(self) -> Fraction | None:
        if self.last_pts is None:
            return None
        return (self.last_pts + (self.last_duration or 0)) * self.time_base


@dataclass(frozen=True)
class _VideoCodec:
    name: str
    pix_fmt: str
    options: dict[str, str]


def _video_codec(container_format: str, size: tuple[int, int], crf: int | None) -> _VideoCodec:
    odd = size[0] % 2 or size[1] % 2
    if container_format == "gif":
        return _VideoCodec("gif", "pal8", {})
    if container_format == "webm":
        # VP9 at constant quality; "good" + cpu-used 4 is several times faster than the
        # default and keeps encoding well below the model's cost.
        return _VideoCodec(
            "libvpx-vp9",
            "yuv420p",
            {"crf": str(31 if crf is None else crf), "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
        )
    if container_format == "avi":
        return _VideoCodec("mpeg4", "yuv420p", {"qscale": "3"})
    # mp4, mov, mkv, ...: H.264. x264's 4:2:0 needs even sizes; odd sizes get 4:4:4.
    return _VideoCodec(
        "libx264",
        "yuv444p" if odd else "yuv420p",
        {"crf": str(18 if crf is None else crf), "preset": "medium"},
    )


class _AudioTrack:
    """Audio of the source file, copied or transcoded into the output, interleaved by time."""

    def __init__(self, source_path: Path, output: Any, container_format: str):
        self._input = av.open(str(source_path))
        self._in_stream = self._input.streams.audio[0]
        codec = self._in_stream.codec_context.name
        supported = getattr(output, "supported_codecs", set())
        denied = _AUDIO_COPY_DENYLIST.get(container_format, set())
        self.copy = codec in supported and codec not in denied
        if self.copy:
            self._out_stream = output.add_stream_from_template(self._in_stream)
            self.description = f"{codec} copied"
        else:
            encoder = _AUDIO_TRANSCODE.get(container_format, "aac")
            rate = self._in_stream.codec_context.sample_rate or 48000
            if encoder == "libopus" and rate not in _OPUS_RATES:
                rate = 48000
            self._out_stream = output.add_stream(encoder, rate=rate)
            layout = self._in_stream.codec_context.layout
            if layout is not None and layout.nb_channels <= 2:
                self._out_stream.layout = layout.name
            else:
                self._out_stream.layout = "stereo"
            if encoder == "aac":
                self._out_stream.bit_rate = 192_000
            self.description = f"{codec} -> {self._out_stream.codec_context.name}"
        self._packets = self._input.demux(self._in_stream)
        self._drop_pre_roll = container_format in _DROP_PRE_ROLL
        self._pending: Any = None
        self._exhausted = False

    def _next_packet(self) -> Any:
        if self._pending is None and not self._exhausted:
            for packet in self._packets:
                if packet.pts is None or packet.size == 0:  # demuxer flush packets
                    continue
                if self._drop_pre_roll and packet.pts + (packet.duration or 0) <= 0:
                    continue
                self._pending = packet
                break
            else:
                self._exhausted = True
        return self._pending

    def mux_until(self, output: Any, limit: Fraction | None, *, cut: bool = False) -> None:
        """Mux every audio packet starting before ``limit`` seconds (all of them if None).

        With ``cut`` the packets from ``limit`` on are dropped (trimmed output).
        """
        while True:
            packet = self._next_packet()
            if packet is None:
                break
            start = packet.pts * packet.time_base
            if limit is not None and start >= limit:
                break
            self._pending = None
            self._mux_packet(output, packet)
        if cut:
            self._exhausted = True
            self._pending = None

    def _mux_packet(self, output: Any, packet: Any) -> None:
        if self.copy:
            packet.stream = self._out_stream
            output.mux(packet)
            return
        try:
            frames = packet.decode()
        except av.FFmpegError:
            return  # a damaged audio packet: skip it rather than lose the whole video
        for frame in frames:
            frame.pts = None  # the encoder numbers samples itself
            output.mux(self._out_stream.encode(frame))

    def finish(self, output: Any) -> None:
        if not self.copy:
            output.mux(self._out_stream.encode(None))
        self._input.close()

    def close(self) -> None:
        self._input.close()


class VideoWriter(FrameWriter):
    """A video file; container and codec from the suffix, audio from ``audio_from``.

    ``fps`` None means variable rate: frames keep their own times (``Frame.time``).
    """

    def __init__(
        self,
        dest: str | Path,
        *,
        size: tuple[int, int],
        fps: Fraction | None,
        audio_from: str | Path | None = None,
        overwrite: bool = False,
        crf: int | None = None,
    ):
        super().__init__(dest, overwrite=overwrite)
        if self.dest.suffix.lower() not in VIDEO_SUFFIXES:
            raise OutputError(
                f"{self.dest}: unknown video suffix (use one of {', '.join(VIDEO_SUFFIXES)})"
            )
        self.size = size
        frame_based = self.dest.suffix.lower() == ".avi"
        self.timeline = _Timeline(Fraction(fps) if fps else None, frame_based=frame_based)
        self.audio: _AudioTrack | None = None
        try:
            self._output = av.open(str(self.temp), "w")
        except (av.FFmpegError, OSError) as err:
            raise OutputError(f"{self.dest}: cannot create output ({_ffmpeg_message(err)})") from None
        try:
            self._setup(fps, audio_from, crf)
        except BaseException:
            self.abort()
            raise

    def _setup(self, fps: Fraction | None, audio_from: str | Path | None, crf: int | None) -> None:
        self.container_format = self._output.format.name.split(",")[0]
        codec = _video_codec(self.container_format, self.size, crf)
        self.pix_fmt = codec.pix_fmt
        stream = self._output.add_stream(codec.name, rate=fps if fps else None)
        stream.width, stream.height = self.size
        stream.pix_fmt = codec.pix_fmt
        stream.time_base = self.timeline.time_base
        stream.codec_context.time_base = self.timeline.time_base
        stream.options = codec.options
        self._stream = stream
        if self.pix_fmt == "yuv444p":
            warnings.warn(
                f"{self.dest.name}: odd frame size {self.size[0]}x{self.size[1]} is encoded as "
                "H.264 4:4:4, which some players cannot show; pick an even --size for 4:2:0",
                stacklevel=3,
            )
        if audio_from is not None:
            if self.container_format == "gif":
                warnings.warn(f"{self.dest.name}: GIF has no audio; the soundtrack is dropped", stacklevel=3)
            else:
                with av.open(str(audio_from)) as probe:
                    has_audio = bool(probe.streams.audio)
                if has_audio:
                    self.audio = _AudioTrack(Path(audio_from), self._output, self.container_format)

    def _make_frame(self, image: np.ndarray) -> av.VideoFrame:
        if self.pix_fmt == "pal8":
            # GIF: a 256-colour palette per frame (median cut) looks far better than the
            # fixed 3-3-2 palette a plain pixel-format conversion would use.
            quantized = Image.fromarray(image).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
            palette = np.asarray(quantized.getpalette()[: 256 * 3], dtype=np.uint8).reshape(-1, 3)
            palette = np.pad(palette, ((0, 256 - len(palette)), (0, 0)))
            argb = np.concatenate([np.full((256, 1), 255, np.uint8), palette], axis=1)  # (256, 4)
            return av.VideoFrame.from_ndarray((np.asarray(quantized), argb), format="pal8")
        return av.VideoFrame.from_ndarray(image, format="rgb24")

    def write(self, frame: Frame) -> None:
        image = frame.image
        if (image.shape[1], image.shape[0]) != tuple(self.size):
            raise ValueError(
                f"frame is {image.shape[1]}x{image.shape[0]} but the video is {self.size[0]}x{self.size[1]}"
            )
        pts, duration = self.timeline.pts(frame.index, frame.time, frame.duration)
        video_frame = self._make_frame(image)
        video_frame.pts = pts
        video_frame.time_base = self.timeline.time_base
        video_frame.duration = duration
        try:
            if self.audio is not None:
                self.audio.mux_until(self._output, pts * self.timeline.time_base)
            self._output.mux(self._stream.encode(video_frame))
        except av.FFmpegError as err:
            raise OutputError(f"{self.dest}: writing failed ({_ffmpeg_message(err)})") from None
        self.frames_written += 1

    def finish_audio_at(self, end: Fraction | None) -> None:
        """Trimmed input: end the soundtrack with the last video frame."""
        self._audio_end = end

    def _finish(self) -> None:
        try:
            self._output.mux(self._stream.encode(None))
            if self.audio is not None:
                end = getattr(self, "_audio_end", None)
                self.audio.mux_until(self._output, end, cut=end is not None)
                self.audio.finish(self._output)
            self._output.close()
        except av.FFmpegError as err:
            raise OutputError(f"{self.dest}: writing failed ({_ffmpeg_message(err)})") from None

    def _close_quietly(self) -> None:
        for closable in (self.audio, self._output if hasattr(self, "_output") else None):
            if closable is None:
                continue
            try:
                closable.close()
            except (av.FFmpegError, OSError, ValueError):
                pass  # aborting: the temporary file is deleted next anyway

    def end_time(self) -> Fraction | None:
        return self.timeline.end_time()


def output_kind(dest: str | Path) -> str:
    """"video", "image" or "folder" from the destination's suffix."""
    path = Path(dest)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix == "" or path.is_dir() or str(dest).endswith(("/", os.sep)):
        return "folder"
    raise OutputError(
        f"{path}: unknown output suffix {suffix!r} (video: {', '.join(VIDEO_SUFFIXES)}; "
        f"image: {', '.join(IMAGE_SUFFIXES)}; or a folder name without suffix)"
    )


def open_writer(
    dest: str | Path,
    source: FrameSource,
    *,
    overwrite: bool = False,
    fps: Fraction | None = None,
    audio: bool = True,
    crf: int | None = None,
    frame_suffix: str = ".png",
) -> FrameWriter:
    """The writer matching ``dest`` for frames from ``source``.

    ``fps`` overrides the source's rate (needed for images/folders written as video;
    ``source.fps`` is used when it is None, and 25 fps as a last resort).
    """
    kind = output_kind(dest)
    check_not_input(dest, getattr(source, "path", None))
    if kind == "image":
        count = source.num_frames or source.frames_hint or 0
        if count > 1 or source.kind == "webcam":
            raise OutputError(
                f"{dest}: an image holds one frame but the input has {count or 'many'}; "
                "give a video file or a folder as output"
            )
        return ImageWriter(dest, overwrite=overwrite)
    if kind == "folder":
        names = source.names if isinstance(source, FolderSource) else None
        return FolderWriter(dest, overwrite=overwrite, suffix=frame_suffix, names=names)
    rate = fps if fps is not None else source.fps
    if rate is None and source.kind in ("image", "folder"):
        rate = Fraction(25)
    if source.kind == "webcam" and fps is None:
        rate = None  # wall-clock timestamps: plays back at the captured speed
    audio_from = source.path if audio and isinstance(source, VideoSource) and source.audio_codec else None
    return VideoWriter(dest, size=source.size, fps=rate, audio_from=audio_from, overwrite=overwrite, crf=crf)
