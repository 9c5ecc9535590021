"""Decode -> stylize -> encode with the three stages overlapping.

::

    reader thread          main thread                 writer thread
    source.frames() --q_in--> batch, stylizer(...) --q_out--> writer.write(frame)
                                   (+ preview window)

Decoding and encoding run in C with the GIL released (PyAV), so they proceed while the model
computes; the bounded queues keep memory flat and let the slowest stage (the model, when the
device is busy) set the pace. End-to-end throughput is then the model's throughput minus the
CPU time the codecs take away from it. The main thread owns the model and the preview window
(GUI toolkits want the main thread) and is the one that receives Ctrl-C: it then stops the
reader, lets the writer thread finish its current frame, and re-raises, so the caller can
discard the temporary output.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from reconet.image import tensor_to_uint8, uint8_to_tensor
from reconet.media import Frame, FrameSource, FrameWriter, MediaError, VideoWriter
from reconet.inference.stylizer import COMPILE_MIN_FRAMES, Stylizer
from reconet.models.reconet import MIN_INPUT_SIZE

_END = object()
_POLL = 0.1  # seconds: how often blocked threads look at the stop flag


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class Preview(Protocol):
    """A live view: ``show`` returns False when the user asked to stop (key q / Esc)."""

    def show(self, image: np.ndarray, fps: float) -> bool: ...

    def close(self) -> None: ...


class OpenCVPreview:
    """An OpenCV window showing the stylized frames with the current fps."""

    def __init__(self, title: str = "reconet (q to stop)"):
        import cv2

        self._cv2 = cv2
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise MediaError(
                "--preview needs OpenCV with GUI support (pip install opencv-python; "
                "opencv-python-headless has no windows)"
            ) from None

    def show(self, image: np.ndarray, fps: float) -> bool:
        cv2 = self._cv2
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        cv2.putText(bgr, f"{fps:5.1f} fps", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
        cv2.imshow(self.title, bgr)
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27)

    def close(self) -> None:
        try:
            self._cv2.destroyWindow(self.title)
        except self._cv2.error:
            pass


@dataclass
class RunStats:
    """What a run did.

    ``model_seconds`` is the time spent inside the stylizer for ``model_frames`` frames, not
    counting its warm-up calls (kernel tuning, compiling: ``setup_seconds``) unless those were
    all there was; end-to-end fps counts everything.
    """

    frames: int
    wall_seconds: float
    model_seconds: float
    size: tuple[int, int]
    output: Path | None
    model_frames: int | None = None
    setup_seconds: float = 0.0

    @property
    def model_fps(self) -> float:
        frames = self.frames if self.model_frames is None else self.model_frames
        return frames / self.model_seconds if self.model_seconds > 0 else float("nan")

    @property
    def end_to_end_fps(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    def summary(self) -> str:
        width, height = self.size
        target = f" -> {self.output}" if self.output is not None else ""
        setup = f" (+{self.setup_seconds:.1f} s one-off tuning/compiling)" if self.setup_seconds >= 0.05 else ""
        return (
            f"{self.frames} frame{'s' if self.frames != 1 else ''} at {width}x{height}: model {self.model_fps:.2f} fps{setup}, "
            f"end-to-end {self.end_to_end_fps:.2f} fps ({self.wall_seconds:.1f} s){target}"
        )


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Blocking put that gives up when ``stop`` is set; False if it gave up."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event | None = None) -> Any:
    while True:
        try:
            return q.get(timeout=_POLL)
        except queue.Empty:
            if stop is not None and stop.is_set():
                return _END


def _make_progress(source: FrameSource, enabled: bool) -> Any:
    if not enabled:
        return None
    import shutil

    from tqdm import tqdm

    # a terminal that reports 0 columns (some pseudo-terminals) would get an invisible bar
    sized = shutil.get_terminal_size(fallback=(0, 0)).columns > 0
    return tqdm(
        total=source.frames_hint,
        unit="frame",
        dynamic_ncols=sized,
        ncols=None if sized else 100,
        smoothing=0.1,
        leave=True,
        disable=None,  # no bar when stderr is not a terminal (logs, CI)
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"
        if source.frames_hint
        else "{desc}{n_fmt} frames [{elapsed}, {rate_fmt}]",
    )


def stop_requested(source: FrameSource) -> bool:
    return bool(getattr(source, "_stop", False))


def check_frame_size(source: FrameSource) -> None:
    """Frames smaller than the network's minimum fail here, naming the input, before an output
    is opened (not later, inside the model, with only a tensor shape to show)."""
    width, height = source.size
    if min(width, height) < MIN_INPUT_SIZE:
        raise MediaError(
            f"{source.name}: frames are {width}x{height} pixels; reconet needs at least "
            f"{MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} (enlarge them with --size or --scale)"
        )


# What a live stream without a frame limit counts as for load(expected_frames=...): long enough
# to compile (and, in auto, to measure the compiled precisions), which a camera repays in seconds.
LIVE_EXPECTED_FRAMES = COMPILE_MIN_FRAMES


def run_live(
    source: FrameSource,
    stylizer: Stylizer | Callable[[torch.Tensor], torch.Tensor],
    writer: FrameWriter | None = None,
    *,
    progress: bool = True,
    preview: Preview | None = None,
) -> RunStats:
    """:func:`run` for a camera opened with ``latest_only`` (reconet-stylize webcam:N): one
    frame per model call and queues of one frame, so a frame shown is at most two frames older
    than the camera's newest (one queued, one in the model); the capture thread drops the rest."""
    return run(source, stylizer, writer, batch_size=1, progress=progress, preview=preview, queue_batches=1)


def run(
    source: FrameSource,
    stylizer: Stylizer | Callable[[torch.Tensor], torch.Tensor],
    writer: FrameWriter | None = None,
    *,
    batch_size: int = 1,
    progress: bool = True,
    preview: Preview | None = None,
    queue_batches: int = 3,
    on_frame: Callable[[int, int | None], None] | None = None,
) -> RunStats:
    """Stylize every frame of ``source`` into ``writer`` (and/or ``preview``).

    ``on_frame(done, total)`` is called from the writer thread after each frame is written
    (``total`` is the source's frame-count estimate, or None): progress for a caller that is
    not a terminal, such as the web app. It must be quick and must not raise.

    The writer is neither committed nor aborted here (the caller owns it, typically as a
    context manager); when this function returns, no thread touches it any more.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    check_frame_size(source)
    stop = threading.Event()
    q_in: queue.Queue = queue.Queue(maxsize=batch_size * queue_batches)
    q_out: queue.Queue = queue.Queue(maxsize=batch_size * queue_batches)
    writer_error: list[BaseException] = []
    written = [0]  # frames handed to the writer (the writer thread's count)
    bar = _make_progress(source, progress)

    def read() -> None:
        try:
            for frame in source.frames():
                if not _put(q_in, frame, stop):
                    return
            _put(q_in, _END, stop)
        except BaseException as error:  # handed to the main thread, which re-raises it
            _put(q_in, _Failure(error), stop)

    def write() -> None:
        try:
            while True:
                item = _get(q_out, stop)
                if item is _END:
                    return
                if writer is not None:
                    writer.write(item)
                written[0] += 1
                if bar is not None:
                    bar.update(1)
                if on_frame is not None:
                    on_frame(written[0], source.frames_hint)
        except BaseException as error:
            writer_error.append(error)
            stop.set()
            source.stop()

    reader = threading.Thread(target=read, name="reconet-reader", daemon=True)
    sink = threading.Thread(target=write, name="reconet-writer", daemon=True)
    start = time.perf_counter()
    calls: list[tuple[int, float]] = []  # (frames, seconds) per stylizer call
    warmup_calls = int(getattr(stylizer, "warmup_calls", 0))
    frames = 0
    reader.start()
    sink.start()
    try:
        finished = False
        while not finished:
            batch: list[Frame] = []
            while len(batch) < batch_size:
                item = _get(q_in, stop)
                if item is _END:
                    finished = True
                    break
                if isinstance(item, _Failure):
                    raise item.error
                batch.append(item)
            if writer_error:
                raise writer_error[0]
            if not batch:
                break
            x = torch.stack([uint8_to_tensor(frame.image) for frame in batch])  # (B, 3, H, W)
            t0 = time.perf_counter()
            y = stylizer(x)  # (B, 3, H, W)
            if hasattr(stylizer, "synchronize"):
                stylizer.synchronize()
            calls.append((len(batch), time.perf_counter() - t0))
            images = tensor_to_uint8(y)  # (B, H, W, 3)
            for frame, image in zip(batch, images):
                done = replace(frame, image=image)
                if not _put(q_out, done, stop):
                    break
                if preview is not None:
                    elapsed = time.perf_counter() - start
                    if not preview.show(image, (frames + 1) / elapsed if elapsed > 0 else 0.0):
                        source.stop()  # the reader ends after its current frame
                frames += 1
        _put(q_out, _END, stop)
        while sink.is_alive():
            sink.join(timeout=_POLL)
        if writer_error:
            raise writer_error[0]
    except BaseException:
        stop.set()
        source.stop()
        while sink.is_alive():  # never abort a writer that a thread is still using
            sink.join(timeout=_POLL)
        raise
    finally:
        stop.set()
        reader.join(timeout=5.0)
        if bar is not None:
            if bar.total is not None and bar.n != bar.total and not stop_requested(source):
                bar.total = bar.n  # the header's frame count was an estimate
                bar.refresh()
            bar.close()
    if frames == 0:
        raise MediaError(f"{source.name}: no frames to stylize")
    if isinstance(writer, VideoWriter) and source.truncated:
        writer.finish_audio_at(writer.end_time())
    wall = time.perf_counter() - start
    steady = calls[warmup_calls:] or calls  # all warm-up (a short run): report it as it was
    setup = sum(seconds for _, seconds in calls[:warmup_calls]) if steady is not calls else 0.0
    model_seconds = sum(seconds for _, seconds in steady)
    return RunStats(
        frames,
        wall,
        model_seconds,
        source.size,
        writer.dest if writer is not None else None,
        model_frames=sum(count for count, _ in steady),
        setup_seconds=setup,
    )
