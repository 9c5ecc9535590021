"""SceneFlow on tiny folders in the Monkaa and FlyingThings3D layouts.

The scene is analytic: a textured 12x12 square moves 3 px to the right per frame over a static
textured background. Known answers: forward flow (3, 0) on the square, 0 elsewhere; backward
flow (-3, 0) on the square of frame N+1; the background strip the square covers in frame N+1
(3 columns right of it) is occluded; with integer motion the warp is exact on the mask.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from reconet.data import DatasetError, DatasetWarning, SceneFlow
from reconet.flow.io import write_pfm
from reconet.flow.warp import warp
from reconet.image import save_image

H, W = 30, 40
TOP, SIDE, STEP, START = 8, 12, 3, 8  # square rows TOP..TOP+SIDE-1, left edge START + STEP * t


def _left(t: int) -> int:
    return START + STEP * t


def _frame(t: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    background = torch.stack([0.5 + 0.3 * torch.sin(2 * math.pi * xs / 9 + c) * torch.cos(2 * math.pi * ys / 7) for c in (0, 1, 2)])
    u = xs - _left(t)  # square texture moves with the square
    square = torch.stack([0.5 + 0.4 * torch.cos(2 * math.pi * (u + 2 * ys) / 6 + c) for c in (0, 2, 4)])
    inside = ((ys >= TOP) & (ys < TOP + SIDE) & (u >= 0) & (u < SIDE)).unsqueeze(0)
    return torch.where(inside, square, background).float()


def _square_flow(t: int, u: float) -> np.ndarray:
    flow = np.zeros((H, W, 2), np.float32)
    flow[TOP : TOP + SIDE, _left(t) : _left(t) + SIDE, 0] = u
    return flow


def _write_pgm(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"P5\n%d %d\n255\n" % (array.shape[1], array.shape[0]) + array.astype(np.uint8).tobytes())


def _write_scene(root: Path, scene: str, first: int = 0, frames: int = 3, camera: str = "left") -> None:
    letter = camera[0].upper()
    for t in range(frames):
        number = f"{first + t:04d}"
        frame_dir = root / "frames_cleanpass" / scene / camera
        frame_dir.mkdir(parents=True, exist_ok=True)
        save_image(frame_dir / f"{number}.png", _frame(t))
        for direction, name, u in (("into_future", "IntoFuture", STEP), ("into_past", "IntoPast", -STEP)):
            flow_dir = root / "optical_flow" / scene / direction / camera
            flow_dir.mkdir(parents=True, exist_ok=True)
            write_pfm(flow_dir / f"OpticalFlow{name}_{number}_{letter}.pfm", _square_flow(t, u))


def _strip(t: int) -> torch.Tensor:
    """Background pixels of frame t covered by the square in frame t+1: (1, H, W) bool."""
    strip = torch.zeros(1, H, W, dtype=torch.bool)
    strip[0, TOP : TOP + SIDE, _left(t) + SIDE : _left(t + 1) + SIDE] = True
    return strip


def _square_interior(t: int, margin: int) -> torch.Tensor:
    """Pixels at least ``margin`` away from the square's outline (inside or outside it)."""
    near = torch.zeros(1, H, W, dtype=torch.bool)
    near[0, TOP - margin : TOP + SIDE + margin, _left(t) - margin : _left(t) + SIDE + margin] = True
    core = torch.zeros_like(near)
    core[0, TOP + margin : TOP + SIDE - margin, _left(t) + margin : _left(t) + SIDE - margin] = True
    return ~near | core


@pytest.fixture()
def monkaa(tmp_path: Path) -> Path:
    root = tmp_path / "Monkaa"
    for scene in ("a_rain_of_stones_x2", "eating_naked_camera2_x2", "treeflight_x2"):
        _write_scene(root, scene)
    return root


def test_monkaa_pairs_and_exact_masks(monkaa: Path) -> None:
    dataset = SceneFlow(monkaa, split="all", scenes=["a_rain_of_stones_x2"], computed_boundaries=False)
    assert [(p.scene, p.frame) for p in dataset.pairs] == [("a_rain_of_stones_x2", 0), ("a_rain_of_stones_x2", 1)]
    for t, sample in enumerate(dataset):
        assert sample["meta"] == {"dataset": "sceneflow", "scene": "a_rain_of_stones_x2/left", "frame": t, "pass": "clean"}
        assert torch.equal(sample["flow"].permute(1, 2, 0), torch.from_numpy(_square_flow(t, STEP)))
        # Forward-backward consistency finds exactly the covered strip (polarity: 0 = occluded).
        assert torch.equal(sample["mask"].bool(), ~_strip(t))
        warped = warp(sample["frame2"].unsqueeze(0), sample["flow"].unsqueeze(0))[0]
        error = (sample["frame1"] - warped).abs().mean(dim=0, keepdim=True)
        assert float((error * sample["mask"]).sum()) < 1e-4  # integer motion: exact on the mask
        assert float(error[_strip(t)].mean()) > 0.05


def test_motion_boundaries_computed_and_shipped(monkaa: Path) -> None:
    boundary = np.zeros((H, W), np.uint8)
    boundary[0:4, 0:6] = 255
    _write_pgm(monkaa / "motion_boundaries/a_rain_of_stones_x2/into_future/left/0000.pgm", boundary)
    sample = SceneFlow(monkaa, split="all", scenes=["a_rain_of_stones_x2"])[0]
    mask = sample["mask"].bool()
    assert not mask[_strip(0)].any()
    assert not mask[0, 0:4, 0:6].any()  # shipped boundary, 255 = excluded
    # Computed boundaries: a thin ring around the square's outline; everything else is kept.
    keep = _square_interior(0, margin=2) & ~_strip(0)
    keep[0, 0:4, 0:6] = False
    assert mask[keep].all()
    assert not mask[0, TOP + 5, _left(0) - 1] and not mask[0, TOP + 5, _left(0)]  # left edge of the square
    without = SceneFlow(monkaa, split="all", scenes=["a_rain_of_stones_x2"], shipped_boundaries=False)[0]
    assert without["mask"][0, 0:4, 0:6].all()


def test_monkaa_scene_holdout(monkaa: Path) -> None:
    # No TRAIN/TEST folders: val holds out val_fraction of the sorted scenes (at least one).
    assert SceneFlow(monkaa, split="val").scenes == ["eating_naked_camera2_x2"]
    assert SceneFlow(monkaa, split="train").scenes == ["a_rain_of_stones_x2", "treeflight_x2"]
    assert len(SceneFlow(monkaa, split="all")) == 6


def test_flyingthings3d_layout(tmp_path: Path) -> None:
    root = tmp_path / "FlyingThings3D"
    _write_scene(root, "TRAIN/A/0000", first=6)
    _write_scene(root, "TRAIN/B/0001", first=6)
    _write_scene(root, "TEST/A/0000", first=6)
    _write_scene(root, "TEST/A/0000", first=6, camera="right")
    train = SceneFlow(root, split="train")
    assert train.scenes == ["TRAIN/A/0000", "TRAIN/B/0001"]
    assert [p.frame for p in train.pairs] == [6, 7, 6, 7]
    test = SceneFlow(root, split="val", cameras=("left", "right"))
    assert [(p.camera, p.frame) for p in test.pairs] == [("left", 6), ("left", 7), ("right", 6), ("right", 7)]
    sample = test[3]
    assert sample["meta"]["scene"] == "TEST/A/0000/right" and sample["meta"]["frame"] == 7
    assert not sample["mask"].bool()[_strip(1)].any()


def test_partial_copies_and_bad_roots(monkaa: Path, tmp_path: Path) -> None:
    (monkaa / "optical_flow/treeflight_x2/into_past/left/OpticalFlowIntoPast_0002_L.pfm").unlink()
    with pytest.warns(DatasetWarning, match="1 frame pairs"):
        dataset = SceneFlow(monkaa, split="all", scenes=["treeflight_x2"])
    assert [p.frame for p in dataset.pairs] == [0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        with pytest.raises(DatasetError, match="frames_finalpass"):
            SceneFlow(monkaa, passes="final")
    with pytest.raises(DatasetError, match="optical_flow"):
        SceneFlow(tmp_path)
    with pytest.raises(DatasetError, match="nowhere"):
        SceneFlow(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="flying_chairs"):
        SceneFlow(monkaa, scenes=["flying_chairs"])
    with pytest.raises(ValueError, match="split"):
        SceneFlow(monkaa, split="training")
