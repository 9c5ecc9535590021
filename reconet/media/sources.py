"""Frame sources: video files, single images, frame folders and webcams.

Sources decode to (H, W, 3) uint8 RGB :class:`~reconet.media.frame.Frame` records (cheap to
queue between threads); iterating a source directly yields (3, H, W) float tensors in [0, 1]
through :func:`reconet.image.uint8_to_tensor`, the package's one conversion point.
"""

from __future__ import annotations

import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from reconet.image import IMAGE_SUFFIXES, image_size, read_image, uint8_to_tensor
from reconet.media.frame import WEBCAM_PREFIX, Frame, MediaError
from reconet.media.sizes import SizeSpec, resize_uint8


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


def ffmpeg_message(err: BaseException) -> str:
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
            raise MediaError(f"{path}: not a readable video ({ffmpeg_message(err)})") from None
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
                f"{self.path}: corrupt video stream after {index} frames ({ffmpeg_message(err)})"
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
        yield Frame(0, resize_uint8(read_image(self.path), self.size))


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
            yield Frame(index, resize_uint8(image, self.size))


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

    ``latest_only`` (what reconet-stylize uses for a camera): a capture thread reads the camera
    at its own rate and keeps only the newest frame; :meth:`frames` yields the newest one not
    yet yielded, so a consumer slower than the camera drops frames instead of falling behind
    (a camera's driver queue would otherwise hand out ever older frames). :attr:`dropped`
    counts the frames skipped. Without it every frame is read in turn (fakes and tests).
    """

    kind = "webcam"

    def __init__(
        self,
        index: int = 0,
        size: SizeSpec | None = None,
        max_frames: int | None = None,
        capture_factory: CaptureFactory | None = None,
        latest_only: bool = False,
    ):
        self.latest_only = latest_only
        self.dropped = 0
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
        if self.latest_only:
            yield from self._latest_frames()
            return
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
            yield Frame(index, resize_uint8(image, self.size), now)
            image = None
            index += 1
        self.num_frames = index

    def _latest_frames(self) -> Iterator[Frame]:
        """:meth:`frames` with a capture thread that keeps only the newest frame."""
        start = time.monotonic()
        newest = threading.Condition()
        state: dict[str, Any] = {"image": self._first, "time": 0.0, "count": 1, "done": False, "error": None}

        def capture() -> None:
            try:
                while not self._stop and not state["done"]:
                    ok, raw = self._capture.read()  # blocks until the camera's next frame
                    if not ok or raw is None:
                        break
                    image, now = self._bgr_to_rgb(raw), time.monotonic() - start
                    with newest:
                        state.update(image=image, time=now, count=state["count"] + 1)
                        newest.notify()
            except BaseException as error:  # re-raised by the consumer
                state["error"] = error
            finally:
                with newest:
                    state["done"] = True
                    newest.notify()

        thread = threading.Thread(target=capture, name="reconet-camera", daemon=True)
        thread.start()
        taken = 0  # frames the capture had delivered when we last took one
        index = 0
        try:
            while not self._stop:
                if self.max_frames is not None and index >= self.max_frames:
                    self.truncated = True
                    break
                with newest:
                    while state["count"] == taken and not state["done"] and not self._stop:
                        newest.wait(timeout=0.1)
                    if state["count"] == taken:
                        break  # the camera stopped (or stop() was called) with nothing new
                    self.dropped += state["count"] - taken - 1
                    taken, image, when = state["count"], state["image"], state["time"]
                yield Frame(index, resize_uint8(image, self.size), Fraction(round(when * 1000), 1000))
                index += 1
            if state["error"] is not None:
                raise state["error"]
        finally:
            state["done"] = True
            thread.join(timeout=2.0)
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
    latest_only: bool = False,
) -> FrameSource:
    """Open a frame source: ``webcam:N``, a folder of frames, an image file or a video file.
    ``latest_only`` applies to webcams (see :class:`WebcamSource`).

    Raises FileNotFoundError for a missing path and :class:`MediaError` for a file that is
    not a usable image or video.
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    if is_webcam_spec(spec):
        index_text = str(spec)[len(WEBCAM_PREFIX) :]
        if not index_text.isdigit():
            raise MediaError(f"webcam spec must be {WEBCAM_PREFIX}N with a camera number, got {spec!r}")
        return WebcamSource(int(index_text), size, max_frames, capture_factory, latest_only)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.is_dir():
        return FolderSource(path, size, max_frames)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path, size)
    return VideoSource(path, size, max_frames)
