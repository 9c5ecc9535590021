"""Where evaluation pairs come from: MPI Sintel ground truth, or any video with estimated flow.

Every source yields :class:`EvalPair` objects: two consecutive input frames, the forward flow
N -> N+1 on frame N's grid and the mask (1 = use pixel), at the evaluation resolution, plus
the identity of the pair (pass, scene, frame index N) and the frames' original size.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from reconet.data import SintelPairs
from reconet.data.transforms import Resize
from reconet.flow import build_flow_estimator, estimate_flows
from reconet.media import open_frames


class EvaluationError(ValueError):
    """A bad evaluation input (missing data, no pairs, size mismatch, unusable model or frames)."""


@dataclass
class EvalPair:
    scene: str
    frame: int  # index N of frame N
    pass_name: str | None  # "clean" / "final" for Sintel, None for videos
    frame1: torch.Tensor  # (1, 3, H, W) input frame N, [0, 1]
    frame2: torch.Tensor  # (1, 3, H, W) input frame N+1
    flow: torch.Tensor  # (1, 2, H, W) forward flow N -> N+1 on frame N's grid
    mask: torch.Tensor  # (1, 1, H, W) 1 = use pixel
    original_size: tuple[int, int]  # (H, W) of the frames before any downscaling

    @property
    def label(self) -> str:
        prefix = f"{self.pass_name}/" if self.pass_name else ""
        return f"{prefix}{self.scene}/{self.frame:04d}"


def target_size(original: tuple[int, int], size: tuple[int, int] | None, scale: float | None) -> tuple[int, int]:
    """Evaluation (H, W): an explicit size, a scale factor of the original, or the original."""
    if size is not None and scale is not None:
        raise EvaluationError("give either a size or a scale, not both")
    if size is not None:
        return int(size[0]), int(size[1])
    if scale is not None:
        return max(1, round(original[0] * scale)), max(1, round(original[1] * scale))
    return original


def resize_frame(frame: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 3, H, W) [0, 1] -> (B, 3, H', W'), antialiased bilinear, clamped back into [0, 1]."""
    if tuple(frame.shape[-2:]) == tuple(size):
        return frame
    resized = F.interpolate(frame, size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized.clamp(0.0, 1.0)


def _check_shapes(pair: EvalPair) -> EvalPair:
    height, width = pair.frame1.shape[-2:]
    for name, tensor, channels in (("frame N+1", pair.frame2, 3), ("flow", pair.flow, 2), ("mask", pair.mask, 1)):
        if tensor.ndim != 4 or tensor.shape[1] != channels or tuple(tensor.shape[-2:]) != (height, width):
            raise EvaluationError(
                f"{pair.label}: {name} has shape {tuple(tensor.shape)} but frame N is {tuple(pair.frame1.shape)}"
                f" (size mismatch between frames and flow/mask)"
            )
    return pair


class SintelPairSource:
    """Pairs of an MPI Sintel ``training`` tree with ground-truth flow, occlusion and invalid masks.

    Uses :class:`reconet.data.SintelPairs` (mask = not occluded and not invalid) and, for a
    smaller evaluation size, :class:`reconet.data.transforms.Resize` (flow u scaled by W'/W, v by
    H'/H, mask resized so that occluded pixels never leak in).
    """

    flow_info = {"source": "ground_truth", "method": "MPI Sintel .flo", "mask": "not occluded and not invalid"}

    def __init__(
        self,
        root: str | Path,
        passes: Sequence[str] = ("clean",),
        scenes: Sequence[str] | None = None,
        size: tuple[int, int] | None = None,
        scale: float | None = None,
        missing_occlusion: str = "skip",
    ) -> None:

        root = Path(root)
        if not root.exists():
            raise EvaluationError(f"Sintel root not found: {root}")
        self.root = root
        self.passes = tuple(passes)
        self.size = size
        self.scale = scale
        # The protocol needs occlusion and invalid maps; the full dataset has them for every
        # pair, partial copies may not. "skip" (default) drops such pairs with a warning
        # rather than scoring occluded pixels, "in_frame" keeps them with an in-frame mask.
        self.dataset = SintelPairs(
            root,
            passes=self.passes,
            scenes=list(scenes) if scenes else None,
            missing_occlusion=missing_occlusion,
        )
        if len(self.dataset) == 0:
            raise EvaluationError(f"{root}: no Sintel pairs found (passes {list(self.passes)}, scenes {scenes})")
        self.description = {
            "kind": "sintel",
            "root": str(root),
            "passes": list(self.passes),
            "scenes": list(scenes) if scenes else None,
            "missing_occlusion": missing_occlusion,
        }

    def expected_pairs(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[EvalPair]:

        for index in range(len(self.dataset)):
            sample = self.dataset[index]
            original = tuple(int(v) for v in sample["frame1"].shape[-2:])
            size = target_size(original, self.size, self.scale)
            if size != original:
                sample = Resize(size)(sample)
            meta = sample["meta"]
            yield _check_shapes(
                EvalPair(
                    scene=str(meta["scene"]),
                    frame=int(meta["frame"]),
                    pass_name=str(meta.get("pass")) if meta.get("pass") is not None else None,
                    frame1=sample["frame1"].unsqueeze(0),
                    frame2=sample["frame2"].unsqueeze(0),
                    flow=sample["flow"].unsqueeze(0),
                    mask=sample["mask"].unsqueeze(0),
                    original_size=original,
                )
            )


class VideoPairSource:
    """Consecutive frame pairs of videos (or frame folders) with estimated flow.

    Flow is estimated on the *input* frames at the evaluation resolution, forward N -> N+1 and
    backward N+1 -> N, and the mask comes from forward-backward consistency
    (:func:`reconet.flow.estimate_flows`); every method is scored with the same flow and mask.
    Scene name = file or folder name without suffix; frame N = 0-based index in the video.
    """

    def __init__(
        self,
        videos: Sequence[str | Path],
        *,
        flow_method: str = "auto",
        raft_weights: str | Path | None = None,
        device: torch.device | str = "cpu",
        size: tuple[int, int] | None = None,
        scale: float | None = None,
        max_frames: int | None = None,
    ) -> None:

        if not videos:
            raise EvaluationError("no video given")
        if max_frames is not None and max_frames < 2:
            raise EvaluationError(f"max_frames must be at least 2 (one pair), got {max_frames}")
        self.size = size
        self.scale = scale
        self.max_frames = max_frames
        self.device = torch.device(device)
        self.videos: list[tuple[str, object]] = []
        names: set[str] = set()
        for video in videos:
            path = Path(video)
            if not path.exists():
                raise EvaluationError(f"video not found: {path}")
            source = open_frames(path, max_frames=max_frames)
            name = path.stem if path.is_file() else path.name
            base, k = name, 2
            while name in names:  # two clips with the same stem stay apart
                name, k = f"{base}_{k}", k + 1
            names.add(name)
            self.videos.append((name, source))
        self.estimator = build_flow_estimator(flow_method, raft_weights=raft_weights, device=self.device)
        self.flow_info = {
            "source": "estimated",
            "method": str(self.estimator.name),
            "mask": "forward-backward consistency and target in frame",
        }
        self.description = {"kind": "video", "videos": [str(Path(v)) for v in videos], "max_frames": max_frames}

    def expected_pairs(self) -> int | None:
        """Number of pairs if every video knows its frame count (for the progress bar), else None."""
        total = 0
        for _, source in self.videos:
            count = getattr(source, "num_frames", None) or getattr(source, "frames_hint", None)
            if count is None:
                return None
            if self.max_frames is not None:
                count = min(count, self.max_frames)
            total += max(count - 1, 0)
        return total

    def __iter__(self) -> Iterator[EvalPair]:

        for name, source in self.videos:
            try:
                count = yield from self._pairs(name, source, estimate_flows)
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
            if count == 0:
                raise EvaluationError(f"{name}: fewer than two frames, no pair to evaluate")

    def _pairs(self, name: str, source, estimate_flows) -> Generator[EvalPair, None, int]:
        previous: torch.Tensor | None = None
        count = 0
        for index, frame in enumerate(source):
            if self.max_frames is not None and index >= self.max_frames:
                break
            original = tuple(int(v) for v in frame.shape[-2:])
            size = target_size(original, self.size, self.scale)
            current = resize_frame(frame.unsqueeze(0).to(self.device), size)  # (1, 3, H, W)
            if previous is not None:
                # flow of the INPUT frames, shared by every method scored on this pair
                forward, _, mask = estimate_flows(self.estimator, previous, current)
                count += 1
                yield _check_shapes(
                    EvalPair(
                        scene=name,
                        frame=index - 1,
                        pass_name=None,
                        frame1=previous,
                        frame2=current,
                        flow=forward,
                        mask=mask,
                        original_size=original,
                    )
                )
            previous = current
        return count
