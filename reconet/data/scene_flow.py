"""Scene Flow datasets (Mayer et al., CVPR 2016): Monkaa, FlyingThings3D, Driving.

What the ReCoNet paper trained on. ``root`` is the folder holding the unpacked archives of one
dataset; scenes are found by globbing, so both layouts work::

    Monkaa / Driving:   frames_cleanpass/<scene>/left/0000.png
                        optical_flow/<scene>/into_future/left/OpticalFlowIntoFuture_0000_L.pfm
                        optical_flow/<scene>/into_past/left/OpticalFlowIntoPast_0000_L.pfm
                        motion_boundaries/<scene>/into_future/left/0000.pgm      (optional)
    FlyingThings3D:     the same with <scene> = TRAIN/A/0000, TEST/C/0149, ...

(``<scene>`` may be several folders deep, e.g. Driving's 15mm_focallength/scene_forwards/fast;
``frames_finalpass`` is the final pass; ``frames_*pass_webp`` folders with .webp frames work too.)

The datasets ship flow in both directions but no occlusion maps. The mask of pair (N, N+1) is
``reconet.flow.occlusion.mask_from_flows(into_future[N], into_past[N+1])``: forward-backward
consistency |w + ŵ|² <= 0.01(|w|² + |ŵ|²) + 0.5, no motion boundary of the forward flow, target
inside the frame; AND-ed with NOT the shipped motion boundary of frame N where that file exists.
``into_past[N+1]`` is the real backward flow on frame N+1's grid (never a negated forward flow).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from reconet.data.errors import DatasetError, DatasetWarning
from reconet.data.sample import check_pair_headers, check_same_size, flow_to_tensor, load_binary_map, make_meta, make_sample
from reconet.data.sintel import normalize_passes
from reconet.flow.io import read_flow
from reconet.flow.occlusion import mask_from_flows
from reconet.image import load_image

Transform = Callable[[dict[str, Any]], dict[str, Any]]

SCENE_FLOW_PASSES = ("clean", "final")
CAMERAS = {"left": "L", "right": "R"}
_SPLITS = ("train", "val", "test", "all")
_FRAME_SUFFIXES = (".png", ".webp")


@dataclass(frozen=True)
class SceneFlowPair:
    pass_: str
    scene: str  # path below optical_flow/, e.g. "TRAIN/A/0000" or "a_rain_of_stones_x2"
    camera: str
    frame: int
    frame1: Path
    frame2: Path
    forward: Path  # into_future of frame N
    backward: Path  # into_past of frame N+1
    boundary: Path | None  # shipped motion boundaries of frame N (into_future), if present


def _numbered(directory: Path, pattern: re.Pattern[str]) -> dict[int, tuple[str, Path]]:
    """Files of ``directory`` whose name matches ``pattern`` (group 1 = frame number)."""
    if not directory.is_dir():
        return {}
    found = {}
    for name in os.listdir(directory):
        match = pattern.match(name)
        if match is not None:
            found[int(match.group(1))] = (match.group(1), directory / name)
    return found


class SceneFlow(Dataset):
    """Consecutive-frame pairs of a Scene Flow dataset with a forward-backward-consistency mask.

    Args:
        root: the dataset folder containing ``optical_flow/`` and ``frames_<pass>pass/``.
        passes: ``"clean"``, ``"final"``, ``"both"`` or a sequence of them.
        split: FlyingThings3D has ``TRAIN``/``TEST`` folders: ``"train"`` uses TRAIN,
            ``"val"`` (or ``"test"``) uses TEST, ``"all"`` both. Monkaa and Driving have no such
            folders; there ``"val"`` holds out ``val_fraction`` of the scenes (evenly spaced in
            sorted order), ``"train"`` uses the others and ``"all"`` every scene.
        scenes: restrict to these scene paths (as found below ``optical_flow/``).
        cameras: ``"left"``, ``"right"`` or both.
        transform: callable applied to each sample dict.
        shipped_boundaries: also exclude the dataset's own motion boundaries
            (``motion_boundaries/<scene>/into_future/<camera>/NNNN.pgm``) where present.
        computed_boundaries: exclude motion boundaries computed from the forward flow
            (``mask_from_flows(..., motion_boundaries=True)``).
        val_fraction: share of scenes held out as ``"val"`` in layouts without TRAIN/TEST.
    """

    dataset_name = "sceneflow"

    def __init__(
        self,
        root: str | Path,
        passes: str | Sequence[str] = ("clean",),
        split: str = "train",
        scenes: Sequence[str] | None = None,
        cameras: str | Sequence[str] = ("left",),
        transform: Transform | None = None,
        shipped_boundaries: bool = True,
        computed_boundaries: bool = True,
        val_fraction: float = 0.1,
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"SceneFlow: split must be one of {_SPLITS}, got {split!r}")
        cameras = (cameras,) if isinstance(cameras, str) else tuple(cameras)
        if not cameras or any(c not in CAMERAS for c in cameras):
            raise ValueError(f"SceneFlow: cameras must be a subset of {tuple(CAMERAS)}, got {cameras!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"SceneFlow: val_fraction must be in (0, 1), got {val_fraction}")
        self.root = Path(root)
        self.passes = normalize_passes(passes, SCENE_FLOW_PASSES)
        self.split = "val" if split == "test" else split
        self.cameras = cameras
        self.transform = transform
        self.shipped_boundaries = bool(shipped_boundaries)
        self.computed_boundaries = bool(computed_boundaries)
        flow_root = self.root / "optical_flow"
        if not self.root.is_dir():
            raise DatasetError(f"SceneFlow: root {self.root} does not exist (expected the folder with optical_flow/)")
        if not flow_root.is_dir():
            raise DatasetError(
                f"SceneFlow: no {flow_root} (root must contain optical_flow/<scene>/into_future/left/*.pfm "
                "and frames_cleanpass/<scene>/left/*.png)"
            )
        all_scenes = sorted(p.parent.relative_to(flow_root).as_posix() for p in flow_root.glob("**/into_future"))
        if scenes is not None:
            scenes = [scenes] if isinstance(scenes, str) else list(scenes)
            unknown = sorted(set(scenes) - set(all_scenes))
            if unknown:
                raise DatasetError(f"SceneFlow: scenes {unknown} not found in {flow_root}")
            all_scenes = [s for s in all_scenes if s in set(scenes)]
        self.scenes = _split_scenes(all_scenes, self.split, val_fraction)

        pairs: list[SceneFlowPair] = []
        incomplete: list[Path] = []
        for pass_ in self.passes:
            frame_dirs = [self.root / f"frames_{pass_}pass", self.root / f"frames_{pass_}pass_webp"]
            if not any(d.is_dir() for d in frame_dirs):
                raise DatasetError(f"SceneFlow: no {frame_dirs[0]} for pass {pass_!r} under {self.root}")
            for scene in self.scenes:
                for camera in self.cameras:
                    letter = CAMERAS[camera]
                    futures = _numbered(
                        flow_root / scene / "into_future" / camera,
                        re.compile(rf"^OpticalFlowIntoFuture_(\d+)_{letter}\.pfm$"),
                    )
                    pasts = _numbered(
                        flow_root / scene / "into_past" / camera,
                        re.compile(rf"^OpticalFlowIntoPast_(\d+)_{letter}\.pfm$"),
                    )
                    frames: dict[int, tuple[str, Path]] = {}
                    for directory in frame_dirs:
                        for suffix in _FRAME_SUFFIXES:
                            pattern = re.compile(rf"^(\d+){re.escape(suffix)}$")
                            frames = frames or _numbered(directory / scene / camera, pattern)
                    boundaries = _numbered(
                        self.root / "motion_boundaries" / scene / "into_future" / camera,
                        re.compile(r"^(\d+)\.(?:pgm|png)$"),
                    )
                    for number in sorted(frames):
                        if number + 1 not in frames:
                            continue  # end of the sequence (the last into_future has no frame N+1)
                        if number not in futures or number + 1 not in pasts:
                            incomplete.append(frames[number][1])
                            continue
                        pairs.append(
                            SceneFlowPair(
                                pass_=pass_,
                                scene=scene,
                                camera=camera,
                                frame=number,
                                frame1=frames[number][1],
                                frame2=frames[number + 1][1],
                                forward=futures[number][1],
                                backward=pasts[number + 1][1],
                                boundary=boundaries[number][1] if number in boundaries else None,
                            )
                        )
        if incomplete:
            warnings.warn(
                f"SceneFlow: {len(incomplete)} frame pairs under {self.root} lack into_future of frame N or "
                f"into_past of frame N+1 and are skipped (e.g. the pair starting at {incomplete[0]})",
                DatasetWarning,
                stacklevel=2,
            )
        if not pairs:
            raise DatasetError(
                f"SceneFlow: no {self.split} pairs under {self.root} ({len(self.scenes)} scenes): looked for "
                f"frames_<pass>pass/<scene>/<camera>/NNNN.png with optical_flow/<scene>/into_future and "
                f"into_past .pfm files for passes {list(self.passes)}, cameras {list(self.cameras)}"
            )
        for pair in pairs:
            check_pair_headers("SceneFlow", (pair.frame1, pair.frame2, pair.boundary), (pair.forward, pair.backward))
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        frame1 = load_image(pair.frame1)  # (3, H, W)
        frame2 = load_image(pair.frame2)
        forward = flow_to_tensor(read_flow(pair.forward))  # (2, H, W) N -> N+1 on frame N's grid
        backward = flow_to_tensor(read_flow(pair.backward))  # (2, H, W) N+1 -> N on frame N+1's grid
        paths = (pair.frame1, pair.frame2, pair.forward, pair.backward)
        check_same_size("SceneFlow", paths, frame1, frame2, forward, backward)
        mask = mask_from_flows(
            forward.unsqueeze(0), backward.unsqueeze(0), motion_boundaries=self.computed_boundaries
        )[0]  # (1, H, W), 1 = use
        if self.shipped_boundaries and pair.boundary is not None:
            boundary = load_binary_map(pair.boundary)  # (1, H, W), True = motion boundary
            if tuple(boundary.shape[-2:]) != tuple(mask.shape[-2:]):
                raise DatasetError(f"SceneFlow: {pair.boundary} is {tuple(boundary.shape[-2:])}, flow {tuple(mask.shape[-2:])}")
            mask = mask * (~boundary).float()
        meta = make_meta(self.dataset_name, f"{pair.scene}/{pair.camera}", pair.frame, pair.pass_)
        sample = make_sample(frame1, frame2, forward, mask, meta)
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return f"SceneFlow(root={str(self.root)!r}, split={self.split!r}, passes={self.passes}, pairs={len(self)})"


def _split_scenes(scenes: list[str], split: str, val_fraction: float) -> list[str]:
    """Scenes of ``split`` (see :class:`SceneFlow`), in sorted order."""
    if split == "all":
        return scenes
    tagged = [s for s in scenes if s.split("/", 1)[0] in ("TRAIN", "TEST")]
    if tagged:
        wanted = "TRAIN" if split == "train" else "TEST"
        return [s for s in scenes if s.split("/", 1)[0] == wanted]
    count = len(scenes)
    held = max(1, round(count * val_fraction)) if count >= 2 else 0
    held_out = {int((j + 0.5) * count / held) for j in range(held)}
    return [s for i, s in enumerate(scenes) if (i in held_out) == (split == "val")]
