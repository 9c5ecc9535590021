"""What is evaluated: the unstylized input, a reconet model file, or a folder of stylized frames.

Each method turns an :class:`~reconet.evaluation.sources.EvalPair` into its two output frames
(frame N, frame N+1), (1, 3, H, W) RGB [0, 1] at the pair's resolution. Consecutive pairs share
a frame, so the last frame produced is cached and never stylized twice.

Stylized-frame folders (outputs of another tool) are looked up by the identity of the frame:

- Sintel: ``DIR/PASS/SCENE/frame_NNNN.EXT`` or ``DIR/SCENE/frame_NNNN.EXT`` (the Sintel frame
  names, any image suffix; the PASS level is needed only to tell passes apart);
- video: ``DIR/SCENE/*`` if that folder exists, else ``DIR/*``; image files in natural sort
  order (``frame_2`` before ``frame_10``), the k-th file is frame k (0-based).

A stylized frame must have the input frame's original size or the evaluation size; original
sized frames are downscaled exactly like the input frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from reconet.evaluation.sources import EvalPair, EvaluationError, resize_frame
from reconet.image import IMAGE_SUFFIXES, load_image
from reconet.media import list_image_files
from reconet.inference.stylizer import TorchStylizer
from reconet.models.artifact import load_stylizer
from reconet.models.style_mix import select_style

INPUT_NAME = "input"


@dataclass
class MethodSpec:
    """One entry of the comparison: ``kind`` is "baseline", "model" or "frames"."""

    name: str
    kind: str
    path: Path | None = None

    @classmethod
    def parse(cls, kind: str, text: str) -> MethodSpec:
        """``PATH`` or ``NAME=PATH``; the default name is the file or folder name without suffix."""
        name, sep, path = text.partition("=")
        if not sep:
            path, name = text, ""
        if not path:
            raise EvaluationError(f"empty path in {text!r} (expected PATH or NAME=PATH)")
        p = Path(path)
        return cls(name=name or (p.stem if p.suffix else p.name), kind=kind, path=p)


def _cache_key(pair: EvalPair, offset: int) -> tuple[str | None, str, int]:
    return (pair.pass_name, pair.scene, pair.frame + offset)


@dataclass
class _FrameCache:
    """Remembers the most recent frame so frame N+1 of one pair is reused as frame N of the next."""

    key: tuple | None = None
    value: torch.Tensor | None = None

    def get(self, key: tuple, make) -> torch.Tensor:
        if key != self.key:
            self.value = make()
            self.key = key
        return self.value


class InputBaseline:
    """The unstylized input frames: the reference level every ratio is taken against."""

    kind = "baseline"

    def __init__(self) -> None:
        self.name = INPUT_NAME

    def describe(self) -> dict:
        return {"kind": self.kind, "source": None, "meta": {}}

    def outputs(self, pair: EvalPair) -> tuple[torch.Tensor, torch.Tensor]:
        return pair.frame1, pair.frame2


class ModelMethod:
    """A reconet inference artifact or Lightning checkpoint, run frame by frame."""

    kind = "model"

    def __init__(
        self, name: str, path: Path, device: torch.device | str = "cpu", precision: str = "fp32", style: str | None = None
    ) -> None:
        """``precision``: fp32 (default: numbers comparable across machines), bf16, fp16 or auto.
        The model runs through the stylizer ``reconet-stylize`` uses (fp32 islands in low
        precision), without tuned kernels or compiling, so fp32 numbers are the plain network's.
        ``style``: which style (or blend) of a multi-style model, as ``reconet-stylize --style``."""
        if not path.is_file():
            raise EvaluationError(f"model file not found: {path}")
        self.name = name
        self.path = path
        model, meta = load_stylizer(path, map_location="cpu")
        try:  # a single-style model compared beside a multi-style one ignores the style
            model, meta = select_style(model, meta, style if model.num_styles > 1 else None, where=str(path))
        except ValueError as error:
            raise EvaluationError(str(error)) from None
        try:
            self.stylizer = TorchStylizer(model, device=device, precision=precision, accelerate=False, meta=meta)
        except ValueError as error:
            raise EvaluationError(str(error)) from None
        self.meta = meta
        self._cache = _FrameCache()

    def describe(self) -> dict:
        return {"kind": self.kind, "source": str(self.path), "meta": self.meta, "dtype": self.stylizer.info.dtype}

    def _stylize(self, frame: torch.Tensor) -> torch.Tensor:
        return self.stylizer(frame)  # (1, 3, H, W) float32 [0, 1], on the CPU

    def outputs(self, pair: EvalPair) -> tuple[torch.Tensor, torch.Tensor]:
        # pairs arrive in order, so frame N of this pair is usually frame N+1 of the last one
        first = self._cache.get(_cache_key(pair, 0), lambda: self._stylize(pair.frame1))
        second = self._stylize(pair.frame2)
        self._cache.key, self._cache.value = _cache_key(pair, 1), second
        return first, second


@dataclass
class FramesMethod:
    """Already-stylized frames in a folder (see the module docstring for the naming)."""

    name: str
    path: Path
    kind: str = "frames"
    _listings: dict = field(default_factory=dict)
    _cache: _FrameCache = field(default_factory=_FrameCache)

    def __post_init__(self) -> None:
        if not self.path.is_dir():
            raise EvaluationError(f"stylized frames folder not found: {self.path}")

    def describe(self) -> dict:
        return {"kind": self.kind, "source": str(self.path), "meta": {}}

    def _find(self, pair: EvalPair, index: int) -> Path:
        if pair.pass_name is not None:  # Sintel naming
            stem = f"frame_{index:04d}"
            folders = [self.path / pair.pass_name / pair.scene, self.path / pair.scene]
            for folder in folders:
                for suffix in IMAGE_SUFFIXES:
                    candidate = folder / f"{stem}{suffix}"
                    if candidate.is_file():
                        return candidate
            raise EvaluationError(
                f"{self.path}: no stylized frame {pair.pass_name}/{pair.scene}/{stem}.* "
                f"(expected {folders[0] / stem}.png or {folders[1] / stem}.png)"
            )
        folder = self.path / pair.scene if (self.path / pair.scene).is_dir() else self.path
        files = self._listings.get(folder)
        if files is None:

            files = self._listings[folder] = list_image_files(folder)
        if index >= len(files):
            raise EvaluationError(
                f"{folder}: no stylized frame for frame {index} of {pair.scene} ({len(files)} image files found)"
            )
        return files[index]

    def _load(self, pair: EvalPair, index: int) -> torch.Tensor:
        path = self._find(pair, index)
        image = load_image(path).unsqueeze(0)  # (1, 3, H, W)
        size = tuple(pair.frame1.shape[-2:])
        got = tuple(image.shape[-2:])
        if got == size:
            return image.to(pair.frame1.device)
        if got == tuple(pair.original_size):
            return resize_frame(image, size).to(pair.frame1.device)
        raise EvaluationError(
            f"{path}: stylized frame is {got[1]}x{got[0]} but the input frame is "
            f"{pair.original_size[1]}x{pair.original_size[0]} (evaluated at {size[1]}x{size[0]})"
        )

    def outputs(self, pair: EvalPair) -> tuple[torch.Tensor, torch.Tensor]:
        first = self._cache.get(_cache_key(pair, 0), lambda: self._load(pair, pair.frame))
        second = self._load(pair, pair.frame + 1)
        self._cache.key, self._cache.value = _cache_key(pair, 1), second
        return first, second


def build_method(spec: MethodSpec, device: torch.device | str = "cpu", precision: str = "fp32", model_style: str | None = None):
    """A method object for a :class:`MethodSpec` (``precision`` and, for multi-style models,
    ``model_style`` apply to models)."""
    if spec.kind == "baseline":
        if spec.name != INPUT_NAME:
            raise EvaluationError(f"unknown baseline {spec.name!r}; available: {INPUT_NAME!r}")
        return InputBaseline()
    if spec.path is None:
        raise EvaluationError(f"{spec.kind} {spec.name!r} needs a path")
    if spec.kind == "model":
        return ModelMethod(spec.name, spec.path, device, precision, model_style)
    if spec.kind == "frames":
        return FramesMethod(spec.name, spec.path)
    raise EvaluationError(f"unknown method kind {spec.kind!r}")
