"""End-to-end job behind ``reconet-optimize``: read, stylize frame by frame (resumable), write.

1. The input is opened with the shared reader (:func:`reconet.media.open_frames`:
   videos, image files, frame folders) and resized as asked; the destination is checked
   before any work (:func:`reconet.media.check_destination`).
2. Every finished frame goes to the work directory ``OUTPUT.parts/`` (see
   :mod:`reconet.optimize.parts`); an interrupted run started again with the same settings
   continues after the last finished frame.
3. When all frames are done, the input is read once more for its frame timestamps and the
   stylized frames are written through the shared writer (:func:`reconet.media.open_writer`:
   same frame rate and timing, the source's audio track, temporary name renamed on success),
   then the work directory is deleted (unless asked to keep it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch

from reconet.devices import resolve_device
from reconet.image import load_image, tensor_to_uint8
from reconet.media import (
    Frame,
    MediaError,
    SizeSpec,
    VideoWriter,
    check_destination,
    check_not_input,
    is_webcam_spec,
    open_frames,
    open_writer,
    output_kind,
)
from reconet.optimize.config import OptimizeConfig
from reconet.optimize.objective import resolve_optimize_precision
from reconet.optimize.parts import PartsDir, parts_dir_for
from reconet.optimize.sequence import FrameResult, VideoOptimizer


@dataclass
class Progress:
    """Passed to the progress callback after every frame."""

    result: FrameResult
    done: int  # frames finished so far (including resumed ones)
    total: int | None  # expected number of frames (None if unknown)
    eta_seconds: float | None  # estimated time to finish the remaining frames
    elapsed: float  # seconds since the run started


@dataclass
class RunSummary:
    output: Path
    frames: int
    optimized: int  # frames optimized in this run (the rest were resumed)
    seconds: float
    loss_network: str
    flow_estimator: str
    work_dir: Path
    kept_work_dir: bool
    size: tuple[int, int]  # (W, H) of the output
    mean_terms: dict[str, float] = field(default_factory=dict)


def optimize_video(
    input_path: str | Path,
    output_path: str | Path,
    style_path: str | Path,
    config: OptimizeConfig | None = None,
    *,
    size: SizeSpec | None = None,
    max_frames: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
    work_dir: str | Path | None = None,
    flow_cache: str | Path | None = None,
    restart: bool = False,
    keep_work_dir: bool = False,
    overwrite: bool = False,
    audio: bool = True,
    fps: Fraction | None = None,
    crf: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    loss_network: torch.nn.Module | None = None,
    flow_estimator=None,
) -> RunSummary:
    """Stylize ``input_path`` with the style image ``style_path`` into ``output_path``.

    Args:
        input_path: a video file, an image file or a folder of frames.
        output_path: a video file (container from the suffix), an image file or a folder.
        style_path: the style image.
        config: optimization settings (:class:`OptimizeConfig`).
        size: resize the frames before stylizing (``SizeSpec(max_side=512)`` etc.).
        max_frames: only the first N frames.
        device: "auto", "cpu", "cuda", "cuda:N".
        precision: "fp32", "bf16" or "auto": what the loss network runs in
            (:func:`reconet.optimize.objective.resolve_optimize_precision`).
        work_dir: where finished frames are kept (default ``OUTPUT.parts`` next to the output).
        flow_cache: folder of the flow cache (default ``<work_dir>/flows``).
        restart: discard a work directory made with other settings instead of refusing.
        keep_work_dir: keep the work directory after the output was written.
        overwrite: replace an existing output.
        audio: copy the source's audio track into a video output.
        fps: frame rate of a video made from images or a folder (default 25).
        crf: video quality (codec default when None).
        progress: called after every frame with a :class:`Progress`.
        loss_network, flow_estimator: injected components (tests); default from the config.

    Raises:
        FileNotFoundError, ValueError (MediaError, OutputError, ResumeMismatchError, ...):
        one-line messages naming the file and the problem. Nothing is written at the output
        unless the whole run succeeds.
    """
    config = config or OptimizeConfig()
    input_spec = str(input_path)
    output_path = Path(output_path)
    if is_webcam_spec(input_spec):
        raise MediaError(f"{input_spec}: optimization takes seconds per frame; record a clip and stylize the file")
    kind = output_kind(output_path)  # unknown suffix -> OutputError before any work
    check_destination(output_path, overwrite=overwrite, folder=kind == "folder")
    check_not_input(output_path, input_spec)
    style = load_image(style_path)  # (3, H, W); missing or unreadable -> one-line error
    torch_device = resolve_device(device)
    resolve_optimize_precision(precision, torch_device)  # a bad name fails before any work
    parts = PartsDir(work_dir if work_dir is not None else parts_dir_for(output_path))
    parts_existed = parts.path.exists()
    try:
        return _run(input_spec, output_path, kind, style, config, torch_device, parts, precision=precision, size=size,
                    max_frames=max_frames, restart=restart, flow_cache=flow_cache,
                    keep_work_dir=keep_work_dir, overwrite=overwrite, audio=audio, fps=fps, crf=crf,
                    progress=progress, loss_network=loss_network, flow_estimator=flow_estimator)
    except BaseException:
        # A run that failed before finishing any frame leaves nothing to resume: no work folder.
        if not parts_existed and not parts.finished():
            parts.remove()
        raise


def _run(
    input_spec: str,
    output_path: Path,
    kind: str,
    style: torch.Tensor,
    config: OptimizeConfig,
    torch_device: torch.device,
    parts: PartsDir,
    *,
    precision: str,
    size: SizeSpec | None,
    max_frames: int | None,
    restart: bool,
    flow_cache: str | Path | None,
    keep_work_dir: bool,
    overwrite: bool,
    audio: bool,
    fps: Fraction | None,
    crf: int | None,
    progress: Callable[[Progress], None] | None,
    loss_network: torch.nn.Module | None,
    flow_estimator,
) -> RunSummary:
    # Every frame is decoded once up front (seconds): a truncated or broken input fails
    # before the optimization (seconds to minutes per frame), not after it.
    with open_frames(input_spec, size=size, max_frames=max_frames) as probe:
        for _ in probe.frames():
            pass
    source = open_frames(input_spec, size=size, max_frames=max_frames)
    with source:
        total = source.num_frames if source.num_frames is not None else source.frames_hint
        if kind == "image" and (total or 1) > 1:
            raise MediaError(
                f"{output_path}: an image holds one frame but {input_spec} has {total}; "
                "give a video file or a folder as output"
            )
        optimizer = VideoOptimizer(
            style, config, device=torch_device, loss_network=loss_network, flow_estimator=flow_estimator,
            precision=precision,
        )
        width, height = source.size
        min_side = getattr(optimizer.loss_network, "min_side", 1)
        if min(width, height) < min_side:
            raise MediaError(
                optimizer.loss_network.too_small_message(f"{input_spec}: a {width}x{height} frame")
                + "; give a larger --size or --max-side 0"
            )
        source_id = f"{Path(input_spec).resolve()}|{width}x{height}|max_frames={max_frames}"
        started = time.perf_counter()
        count = optimized = 0
        warm_seconds: list[float] = []
        cold_seconds: list[float] = []
        term_sums: dict[str, float] = {}
        for result in optimizer.stylize(
            source, parts=parts, source=source_id, restart=restart, flow_cache=flow_cache
        ):
            count += 1
            if not result.resumed:
                optimized += 1
                (warm_seconds if result.warm else cold_seconds).append(result.seconds)
                for key, value in result.terms.items():
                    term_sums[key] = term_sums.get(key, 0.0) + value
            if progress is not None:
                remaining = None if total is None else max(0, total - count)
                # Later frames are warm-started: estimate with their time once one is known.
                per_frame = _mean(warm_seconds) or _mean(cold_seconds)
                eta = None if remaining is None or per_frame is None else remaining * per_frame
                progress(Progress(result, count, total, eta, time.perf_counter() - started))
        if count == 0:
            raise MediaError(f"{input_spec}: no frames")
    loss_network_name = str(getattr(optimizer.loss_network, "name", ""))
    flow_name = str(getattr(optimizer.flow_estimator, "name", "")) if optimizer.flow_estimator is not None else ""

    _assemble(input_spec, output_path, parts, count, size=size, max_frames=max_frames,
              overwrite=overwrite, audio=audio, fps=fps, crf=crf)
    if not keep_work_dir:
        parts.remove()
    return RunSummary(
        output=output_path,
        frames=count,
        optimized=optimized,
        seconds=time.perf_counter() - started,
        loss_network=loss_network_name,
        flow_estimator=flow_name,
        work_dir=parts.path,
        kept_work_dir=keep_work_dir,
        size=(width, height),
        mean_terms={k: v / optimized for k, v in term_sums.items()} if optimized else {},
    )


def _assemble(
    input_spec: str,
    output_path: Path,
    parts: PartsDir,
    count: int,
    *,
    size: SizeSpec | None,
    max_frames: int | None,
    overwrite: bool,
    audio: bool,
    fps: Fraction | None,
    crf: int | None,
) -> None:
    """Write the finished frames with the source's timing (and audio) through the shared writer."""
    # The source is read again only for its frame records (timestamps, durations, names);
    # decoding is negligible next to the optimization.
    with open_frames(input_spec, size=size, max_frames=max_frames) as source:
        writer = open_writer(output_path, source, overwrite=overwrite, fps=fps, audio=audio, crf=crf)
        with writer:
            for record in source.frames():
                if record.index >= count:
                    break
                stylized = parts.load(record.index)
                if stylized is None:
                    raise MediaError(f"{parts.frame_path(record.index)}: finished frame missing; run again to redo it")
                writer.write(Frame(record.index, tensor_to_uint8(stylized), record.time, record.duration))
            if source.truncated and isinstance(writer, VideoWriter):
                writer.finish_audio_at(writer.end_time())  # --max-frames: end the sound with the picture
            if writer.frames_written != count:
                raise MediaError(
                    f"{input_spec}: decoded {writer.frames_written} frames the second time, {count} the first"
                )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
