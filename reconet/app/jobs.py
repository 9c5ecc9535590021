"""The web app's work, as plain functions over the same pipeline as ``reconet-stylize``.

``preview_first_frame``, ``stylize_file`` and ``compare_models`` open frames with
:func:`reconet.media.open_frames`, run :func:`reconet.inference.pipeline.run` with the stylizer of
:func:`reconet.inference.stylizer.load`, and write with :func:`reconet.media.open_writer` (video
with its frame rate, timing and audio; images as PNG): no second implementation. The page
(:mod:`reconet.app.ui`) only turns their results and errors into components.

Every file the app makes lives under one :class:`Workspace` folder, removed when the app stops;
a job's result goes when it is older than ``keep_seconds`` or the app stops. A job that fails
leaves nothing: the writers put a file in place only when it is complete.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import reconet.media as media
from reconet.image import IMAGE_SUFFIXES, tensor_to_uint8, uint8_to_tensor
from reconet.media.frame import VIDEO_SUFFIXES

Progress = Callable[[int, "int | None"], None]  # (frames done, frames expected or None)


class Workspace:
    """The app's own temporary folder: uploads (Gradio's cache), add-a-style runs and results."""

    def __init__(self, root: Path | None = None, keep_seconds: float = 3600.0):
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="reconet-app-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep_seconds = keep_seconds
        self._lock = threading.Lock()

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    def result_dir(self) -> Path:
        """A new folder for one job's downloadable result; results older than keep_seconds go."""
        results = self.root / "results"
        with self._lock:
            results.mkdir(parents=True, exist_ok=True)
            now = time.time()
            for old in results.iterdir():
                try:
                    if now - old.stat().st_mtime > self.keep_seconds:
                        shutil.rmtree(old, ignore_errors=True)
                except FileNotFoundError:
                    pass
            folder = results / uuid.uuid4().hex[:12]
            folder.mkdir()
        return folder

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class StyleSettings:
    """Which model, which style of it (a name or a blend ``"a:0.6,b:0.4"``) and how to run it."""

    model: Path
    style: str | None = None  # None: a single-style model's only style
    max_side: int | None = None  # None: keep the input size
    precision: str = "auto"
    strength: float | None = None  # 0..1: cross-faded with the input; None: the full style

    @property
    def label(self) -> str:
        return _file_safe(self.style or self.model.stem)


@dataclass
class StylizeResult:
    path: Path
    kind: str  # "video" | "image"
    frames: int
    summary: str  # RunStats.summary(): frames, sizes and speeds
    precision_note: str | None = None


def _file_safe(name: str) -> str:
    """``name`` as a piece of a file name: letters, digits, '-' and '_' (a blend's ':' and ',' become '-')."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:60]


def input_kind(path: str | Path) -> str:
    """"video" or "image" from the suffix; anything else is a one-line ValueError (before decoding)."""
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    known = " ".join(sorted(set(VIDEO_SUFFIXES) | set(IMAGE_SUFFIXES)))
    raise ValueError(f"{Path(path).name}: not a video or image file reconet reads (suffixes: {known})")


def _size(settings: StyleSettings) -> media.SizeSpec:
    return media.SizeSpec(max_side=settings.max_side) if settings.max_side else media.SizeSpec()


def _load(settings: StyleSettings, expected_frames: int | None):
    from reconet.inference.stylizer import load

    return load(
        settings.model,
        precision=settings.precision,
        expected_frames=expected_frames,
        style=settings.style,
        strength=settings.strength,
    )


def preview_first_frame(input_path: str | Path, settings: StyleSettings) -> tuple[np.ndarray, np.ndarray]:
    """(input, stylized) first frame as (H, W, 3) uint8, at the chosen size. A single frame never
    times kernels or compiles, so this takes about as long as loading the model."""
    input_kind(input_path)
    with media.open_frames(input_path, size=_size(settings), max_frames=1) as source:
        from reconet.inference.pipeline import check_frame_size

        check_frame_size(source)
        frame = next(iter(source.frames()), None)
    if frame is None:
        raise media.MediaError(f"{Path(input_path).name}: no frames")
    stylizer = _load(settings, expected_frames=1)
    stylized = stylizer(uint8_to_tensor(frame.image).unsqueeze(0))  # (1, 3, H, W)
    return frame.image, tensor_to_uint8(stylized)[0]


def stylize_file(
    input_path: str | Path,
    out_dir: Path,
    settings: StyleSettings,
    *,
    max_frames: int | None = None,
    on_frame: Progress | None = None,
    audio: bool = True,
) -> StylizeResult:
    """Stylize a video (to MP4, frame rate, timing and audio kept) or a photo (to PNG) into
    ``out_dir``, exactly as ``reconet-stylize INPUT OUTPUT`` does."""
    from reconet.inference import pipeline

    kind = input_kind(input_path)
    stem = _file_safe(Path(input_path).stem) or "input"
    dest = out_dir / f"{stem}_{settings.label}{'.mp4' if kind == 'video' else '.png'}"
    with media.open_frames(input_path, size=_size(settings), max_frames=max_frames) as source:
        pipeline.check_frame_size(source)
        stylizer = _load(settings, expected_frames=source.frames_hint)
        with media.open_writer(dest, source, audio=audio) as writer:
            stats = pipeline.run(source, stylizer, writer, progress=False, on_frame=on_frame)
    choice = getattr(stylizer, "precision_choice", None)
    return StylizeResult(dest, kind, stats.frames, stats.summary(), choice.describe() if choice else None)


@dataclass
class Comparison:
    """Two models on one clip: their videos and reconet-evaluate's numbers for each."""

    videos: tuple[Path, Path]
    rows: list[dict] = field(default_factory=list)  # one per method: input, A, B


def compare_models(
    clip: str | Path,
    out_dir: Path,
    first: StyleSettings,
    second: StyleSettings,
    *,
    max_frames: int = 48,
    on_step: Callable[[str], None] | None = None,
) -> Comparison:
    """Stylize the first ``max_frames`` frames of ``clip`` with both models (at their max_side)
    and measure each with :func:`reconet.evaluation.runner.evaluate` on the same frames: the
    temporal error (flow-warped, occlusion-masked; ratio to the input's) and the content
    structure. Each model is evaluated as its own run, since each may use a different style of
    a multi-style model."""
    from reconet.evaluation.methods import MethodSpec
    from reconet.evaluation.runner import EvaluationConfig, evaluate

    if input_kind(clip) != "video":
        raise ValueError(f"{Path(clip).name}: comparing needs a video (temporal error is measured between frames)")
    videos = []
    rows: list[dict] = []
    for index, settings in enumerate((first, second)):
        tag = "AB"[index]
        if on_step:
            on_step(f"stylizing with model {tag}")
        result = stylize_file(clip, out_dir, settings, max_frames=max_frames, audio=False)
        named = result.path.with_name(f"{tag}_{result.path.name}")
        result.path.rename(named)
        videos.append(named)
        if on_step:
            on_step(f"measuring model {tag}")
        # the stylized MP4 is lossy: evaluate the model itself on the decoded input frames
        config = EvaluationConfig(
            data="video",
            videos=[Path(clip)],
            max_frames=max_frames,
            methods=[MethodSpec(name=tag, kind="model", path=settings.model)],
            quality=False,
            flow_method="dis",
            precision="fp32",
            model_style=settings.style,
            progress=False,
            scale=_scale_for(clip, settings.max_side),
        )
        report = evaluate(config).report
        entries = report["models"]
        if index == 0:
            rows.append(_row("input", entries["input"]["aggregate"]))
        label = f"{settings.model.name}" + (f" @ {settings.style}" if settings.style else "")
        rows.append(_row(f"{tag}: {label}", entries[tag]["aggregate"]))
    return Comparison((videos[0], videos[1]), rows)


def _scale_for(clip: str | Path, max_side: int | None) -> float | None:
    if not max_side:
        return None
    with media.open_frames(clip, max_frames=1) as source:
        width, height = source.size
    return min(1.0, max_side / max(width, height))


def _row(name: str, overall: dict) -> dict:
    return {
        "run": name,
        "temporal error (x input)": overall.get("temporal_error_ratio"),
        "temporal error": overall.get("temporal_error"),
        "content structure": overall.get("content_structure"),
        "pairs": overall.get("n_pairs"),
    }
