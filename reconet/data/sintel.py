"""MPI Sintel training pairs (Butler et al., ECCV 2012) with ground-truth flow and occlusion.

Layout (``root`` is the folder that contains ``training/``)::

    training/{clean,final}/SCENE/frame_NNNN.png   1024x436 RGB frames
    training/flow/SCENE/frame_NNNN.flo            forward flow N -> N+1 on frame N's grid
    training/occlusions/SCENE/frame_NNNN.png      255 = pixel of frame N not visible in N+1
    training/invalid/SCENE/frame_NNNN.png         255 = pixel whose flow is invalid

Pairs are driven by the ``.flo`` files that exist: flow ``frame_N.flo`` gives the pair
(frame N, frame N+1) when both frames exist in the requested pass. The sample mask is
``not occluded and not invalid and target inside the frame`` (see :mod:`reconet.data.masks`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from reconet.data.errors import DatasetError, DatasetWarning
from reconet.data.masks import apply_missing_policy, check_missing_policy, mask_from_maps
from reconet.data.sample import check_pair_headers, check_same_size, flow_to_tensor, load_binary_map, make_meta, make_sample
from reconet.flow.io import read_flo
from reconet.image import load_image

SINTEL_PASSES = ("clean", "final")
_FLOW_NAME = re.compile(r"^frame_(\d+)\.flo$")


@dataclass(frozen=True)
class SintelPair:
    """Files of one pair; ``occlusion``/``invalid`` are None when the file does not exist."""

    pass_: str
    scene: str
    frame: int
    frame1: Path
    frame2: Path
    flow: Path
    occlusion: Path | None
    invalid: Path | None


def normalize_passes(passes: str | Sequence[str], allowed: Sequence[str] = SINTEL_PASSES) -> tuple[str, ...]:
    """``"both"`` -> all passes; ``"clean"`` -> ("clean",); a sequence is validated and kept."""
    if isinstance(passes, str):
        passes = tuple(allowed) if passes == "both" else (passes,)
    passes = tuple(passes)
    unknown = [p for p in passes if p not in allowed]
    if unknown or not passes:
        raise ValueError(f"passes must be 'both' or a subset of {tuple(allowed)}, got {passes!r}")
    return passes


class SintelPairs(Dataset):
    """Consecutive-frame pairs of the MPI Sintel training set.

    Args:
        root: folder containing ``training/`` (e.g. ``MPI-Sintel-complete``).
        passes: ``"clean"``, ``"final"``, ``"both"`` or a sequence of them.
        scenes: restrict to these scene names (default: every scene with flow files).
        transform: callable applied to each sample dict (see :mod:`reconet.data.transforms`).
        missing_occlusion: what a pair whose occlusion or invalid map is absent means
            (only happens in partial copies; the full dataset has every file):
            ``"in_frame"`` (default) keeps the pair with mask = in-frame test AND NOT invalid
            (if the invalid map exists), and warns once with the number of such pairs;
            ``"skip"`` drops those pairs (warning once); ``"error"`` raises DatasetError.

    Raises:
        DatasetError: root or ``training/flow`` missing, unknown scene, or no pair found.
    """

    dataset_name = "sintel"

    def __init__(
        self,
        root: str | Path,
        passes: str | Sequence[str] = ("clean",),
        scenes: Sequence[str] | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        missing_occlusion: str = "in_frame",
    ) -> None:
        self.root = Path(root)
        self.passes = normalize_passes(passes)
        self.transform = transform
        self.missing_occlusion = check_missing_policy(missing_occlusion)
        training = self.root / "training"
        flow_dir = training / "flow"
        if not self.root.is_dir():
            raise DatasetError(f"SintelPairs: root {self.root} does not exist (expected the folder containing training/)")
        if not flow_dir.is_dir():
            raise DatasetError(
                f"SintelPairs: no {flow_dir} (root must be the MPI Sintel folder containing "
                "training/flow/<scene>/frame_NNNN.flo)"
            )
        available = sorted(p.name for p in flow_dir.iterdir() if p.is_dir())
        if scenes is not None:
            if isinstance(scenes, str):
                scenes = [scenes]
            unknown = sorted(set(scenes) - set(available))
            if unknown:
                raise DatasetError(f"SintelPairs: scenes {unknown} not found in {flow_dir} (available: {available})")
            available = [s for s in available if s in set(scenes)]

        pairs: list[SintelPair] = []
        without_frames: list[Path] = []
        for pass_ in self.passes:
            for scene in available:
                for flow_path in sorted((flow_dir / scene).glob("frame_*.flo")):
                    match = _FLOW_NAME.match(flow_path.name)
                    if match is None:
                        continue
                    digits = match.group(1)
                    frame = int(digits)
                    frame1 = training / pass_ / scene / f"frame_{digits}.png"
                    frame2 = training / pass_ / scene / f"frame_{frame + 1:0{len(digits)}d}.png"
                    if not (frame1.is_file() and frame2.is_file()):
                        without_frames.append(frame1 if not frame1.is_file() else frame2)
                        continue
                    occlusion = training / "occlusions" / scene / f"frame_{digits}.png"
                    invalid = training / "invalid" / scene / f"frame_{digits}.png"
                    pairs.append(
                        SintelPair(
                            pass_=pass_,
                            scene=scene,
                            frame=frame,
                            frame1=frame1,
                            frame2=frame2,
                            flow=flow_path,
                            occlusion=occlusion if occlusion.is_file() else None,
                            invalid=invalid if invalid.is_file() else None,
                        )
                    )
        if without_frames:
            warnings.warn(
                f"SintelPairs: {len(without_frames)} flow files under {training} have no matching "
                f"{'/'.join(self.passes)} frame pair and are skipped, e.g. missing {without_frames[0]}",
                DatasetWarning,
                stacklevel=2,
            )
        if not pairs:
            raise DatasetError(
                f"SintelPairs: no pairs under {training} for passes {list(self.passes)}: looked for "
                "flow/<scene>/frame_NNNN.flo with <pass>/<scene>/frame_NNNN.png and frame_NNNN+1.png"
            )

        def missing_maps(pair: SintelPair) -> list[Path]:
            digits = pair.flow.stem.split("_", 1)[1]
            return [
                training / kind / pair.scene / f"frame_{digits}.png"
                for kind, have in (("occlusions", pair.occlusion), ("invalid", pair.invalid))
                if have is None
            ]

        self.pairs = apply_missing_policy(pairs, missing_maps, self.missing_occlusion, "SintelPairs", training)
        if not self.pairs:
            raise DatasetError(
                f"SintelPairs: no pair under {training} has occlusion and invalid maps (missing_occlusion='skip')"
            )
        for pair in self.pairs:
            check_pair_headers("SintelPairs", (pair.frame1, pair.frame2, pair.occlusion, pair.invalid), (pair.flow,))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        frame1 = load_image(pair.frame1)  # (3, H, W)
        frame2 = load_image(pair.frame2)
        flow = flow_to_tensor(read_flo(pair.flow))  # (2, H, W)
        check_same_size("SintelPairs", (pair.frame1, pair.frame2, pair.flow), frame1, frame2, flow)
        occluded = _load_map(pair.occlusion, flow)
        invalid = _load_map(pair.invalid, flow)
        mask = mask_from_maps(flow, occluded, invalid)  # (1, H, W), 1 = use
        sample = make_sample(
            frame1, frame2, flow, mask, make_meta(self.dataset_name, pair.scene, pair.frame, pair.pass_)
        )
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return f"SintelPairs(root={str(self.root)!r}, passes={self.passes}, pairs={len(self)})"


def _load_map(path: Path | None, flow: torch.Tensor) -> torch.Tensor | None:
    if path is None:
        return None
    exclude = load_binary_map(path)  # (1, H, W) bool, True = occluded / invalid
    if exclude.shape[-2:] != flow.shape[-2:]:
        raise DatasetError(f"SintelPairs: {path} is {tuple(exclude.shape[-2:])}, flow is {tuple(flow.shape[-2:])}")
    return exclude
