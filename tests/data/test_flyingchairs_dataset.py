"""FlyingChairs on the real sample (nine pairs + the full official split file) and
FlyingChairs2 on a tiny folder in its naming, written from FlyingShapes (exact occlusion)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from reconet.data import DatasetError, DatasetWarning, FlyingChairs, FlyingChairs2, FlyingShapes, photometric_mask
from reconet.flow.io import write_flo
from reconet.flow.warp import in_frame_mask, warp
from reconet.image import load_image, save_image


def _quiet_chairs(*args, **kwargs) -> FlyingChairs:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        return FlyingChairs(*args, **kwargs)


def _warp1(frame2: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    return warp(frame2.unsqueeze(0), flow.unsqueeze(0))[0]


def _masked_error(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    error = (a - b).abs().mean(dim=0, keepdim=True)  # (1, H, W)
    return float((error * mask).sum() / mask.sum())


# -- FlyingChairs, real files -------------------------------------------------------------


def test_official_split_with_partial_copy(chairs_root: Path) -> None:
    # The official split: 22,232 training and 640 validation pairs; the sample has pairs 1-9,
    # all listed as training.
    with pytest.warns(DatasetWarning, match=r"lists 22,232 pairs, 9 are present"):
        train = FlyingChairs(chairs_root, split="train")
    assert [p.pair_id for p in train.pairs] == list(range(1, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every listed pair is present: no warning
        with pytest.raises(DatasetError, match=r"no val pairs .*data.*640 pairs"):
            FlyingChairs(chairs_root, split="val")
    assert len(_quiet_chairs(chairs_root, split="all")) == 9
    with pytest.raises(ValueError, match="split"):
        FlyingChairs(chairs_root, split="test")


def _copy_pairs(chairs_root: Path, destination: Path, ids: list[int]) -> Path:
    (destination / "data").mkdir(parents=True)
    for i in ids:
        for suffix in ("img1.ppm", "img2.ppm", "flow.flo"):
            shutil.copy(chairs_root / "data" / f"{i:05d}_{suffix}", destination / "data" / f"{i:05d}_{suffix}")
    return destination


def test_split_line_i_is_pair_i_plus_1(chairs_root: Path, tmp_path: Path) -> None:
    root = _copy_pairs(chairs_root, tmp_path / "FlyingChairs_release", [1, 2, 3])
    (root / "FlyingChairs_train_val.txt").write_text("1\n1\n2\n1\n")  # pair 3 is validation
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)  # pair 4 is listed but absent
        assert [p.pair_id for p in FlyingChairs(root, split="train").pairs] == [1, 2]
    assert [p.pair_id for p in FlyingChairs(root, split="val").pairs] == [3]
    (root / "FlyingChairs_train_val.txt").write_text("1\n3\n")
    with pytest.raises(DatasetError, match="line 2"):
        FlyingChairs(root, split="train")


def test_missing_split_file_or_root(chairs_root: Path, tmp_path: Path) -> None:
    root = _copy_pairs(chairs_root, tmp_path / "FlyingChairs_release", [2])
    with pytest.raises(DatasetError, match="FlyingChairs_train_val.txt"):
        FlyingChairs(root, split="train")
    assert [p.pair_id for p in FlyingChairs(root, split="all").pairs] == [2]
    with pytest.raises(DatasetError, match="nowhere"):
        FlyingChairs(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"data"):
        FlyingChairs(tmp_path)


def test_every_chairs_sample_warps_and_mask_is_sane(chairs_root: Path) -> None:
    dataset = _quiet_chairs(chairs_root, split="train")
    for sample in dataset:
        frame1, frame2, flow, mask = sample["frame1"], sample["frame2"], sample["flow"], sample["mask"]
        assert frame1.shape == (3, 384, 512) and flow.shape == (2, 384, 512) and mask.shape == (1, 384, 512)
        warped = _warp1(frame2, flow)
        everywhere = torch.ones_like(mask)
        # Whole frame: the warp helps everywhere, but chairs occlude a lot (measured 1.8x-5.7x).
        assert _masked_error(frame1, frame2, everywhere) > 1.5 * _masked_error(frame1, warped, everywhere)
        # On the mask: at least 3x (measured 3.2x-27x), while keeping most pixels (83-93%).
        assert _masked_error(frame1, frame2, mask) > 3 * _masked_error(frame1, warped, mask), sample["meta"]
        assert 0.8 < float(mask.mean()) < 1.0
        assert torch.all(mask <= in_frame_mask(flow.unsqueeze(0))[0])
    assert dataset[0]["meta"] == {"dataset": "flyingchairs", "scene": "00001", "frame": 1, "pass": ""}


def test_photometric_mask_finds_exact_occlusions() -> None:
    """The FlyingChairs mask rule, checked where the true occlusion is known."""
    dataset = FlyingShapes(8, size=(128, 192), seed=21)
    rejected = occluded_total = kept = visible_total = 0.0
    for sample in dataset:
        exact = sample["mask"]
        occluded = in_frame_mask(sample["flow"].unsqueeze(0))[0] * (1 - exact)
        guess = photometric_mask(sample["frame1"], sample["frame2"], sample["flow"])
        rejected += float((occluded * (1 - guess)).sum())
        occluded_total += float(occluded.sum())
        kept += float((exact * guess).sum())
        visible_total += float(exact.sum())
    assert occluded_total > 500
    assert rejected / occluded_total > 0.9  # measured 0.96
    assert kept / visible_total > 0.99  # measured 0.996


# -- FlyingChairs2, synthetic folder in its naming ------------------------------------------


def _write_chairs2(root: Path, split: str, stem: str, sample: dict, backward: dict) -> None:
    """One FlyingChairs2 entry. ``backward`` supplies distinct flow_10/occ_10 content."""
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    save_image(folder / f"{stem}-img_0.png", sample["frame1"])
    save_image(folder / f"{stem}-img_1.png", sample["frame2"])
    write_flo(folder / f"{stem}-flow_01.flo", sample["flow"].permute(1, 2, 0).numpy())
    write_flo(folder / f"{stem}-flow_10.flo", backward["flow"].permute(1, 2, 0).numpy())
    occluded = (1 - sample["mask"]).expand(3, -1, -1)  # 1 (255 on disk) = occluded
    save_image(folder / f"{stem}-occ_01.png", occluded)
    save_image(folder / f"{stem}-occ_10.png", (1 - backward["mask"]).expand(3, -1, -1))
    # Motion boundaries must never be read: make them unreadable.
    (folder / f"{stem}-mb_01.png").write_bytes(b"not an image")
    (folder / f"{stem}-mb_10.png").write_bytes(b"not an image")


@pytest.fixture()
def chairs2_root(tmp_path: Path) -> tuple[Path, FlyingShapes]:
    shapes = FlyingShapes(4, size=(48, 64), seed=9)
    root = tmp_path / "FlyingChairs2"
    _write_chairs2(root, "train", "0000000", shapes[0], shapes[3])
    _write_chairs2(root, "train", "0000001", shapes[1], shapes[3])
    _write_chairs2(root, "val", "0000000", shapes[2], shapes[3])
    return root, shapes


def test_chairs2_mask_is_inverted_occ_not_mb(chairs2_root: tuple[Path, FlyingShapes]) -> None:
    root, shapes = chairs2_root
    dataset = FlyingChairs2(root, split="train")
    assert len(dataset) == 2
    sample, truth = dataset[0], shapes[0]
    assert torch.equal(sample["mask"], truth["mask"])  # exactly the inverted occ_01
    assert torch.allclose(sample["flow"], truth["flow"])
    assert sample["meta"] == {"dataset": "flyingchairs2", "scene": "train/0000000", "frame": 0, "pass": ""}
    # Polarity on the frames themselves: the mask selects the pixels that warp well.
    warped = _warp1(sample["frame2"], sample["flow"])
    occluded_in_frame = in_frame_mask(sample["flow"].unsqueeze(0))[0] * (1 - sample["mask"])
    assert _masked_error(sample["frame1"], warped, sample["mask"]) < 0.01
    assert _masked_error(sample["frame1"], warped, occluded_in_frame) > 5 * _masked_error(
        sample["frame1"], warped, sample["mask"]
    )


def test_chairs2_splits_and_backward_pairs(chairs2_root: tuple[Path, FlyingShapes]) -> None:
    root, shapes = chairs2_root
    assert len(FlyingChairs2(root, split="val")) == 1
    assert len(FlyingChairs2(root, split="all")) == 3
    both = FlyingChairs2(root, split="val", backward_pairs=True)
    assert [(p.stem, p.direction) for p in both.pairs] == [("0000000", "01"), ("0000000", "10")]
    reverse = both[1]
    # The reversed pair uses img_1 -> img_0 with the shipped flow_10 / occ_10, not a negated flow.
    assert torch.equal(reverse["frame1"], both[0]["frame2"]) and torch.equal(reverse["frame2"], both[0]["frame1"])
    assert torch.allclose(reverse["flow"], shapes[3]["flow"])
    assert torch.equal(reverse["mask"], shapes[3]["mask"])
    assert reverse["meta"]["frame"] == 1


def test_chairs2_missing_occ_and_bad_root(chairs2_root: tuple[Path, FlyingShapes], tmp_path: Path) -> None:
    root, _ = chairs2_root
    (root / "val" / "0000000-occ_01.png").unlink()
    with pytest.warns(DatasetWarning, match="1 of 1 pairs"):
        dataset = FlyingChairs2(root, split="val")
    flow = dataset[0]["flow"]
    assert torch.equal(dataset[0]["mask"], in_frame_mask(flow.unsqueeze(0))[0])
    with pytest.raises(DatasetError, match="occ_01"):
        FlyingChairs2(root, split="val", missing_occlusion="error")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"no .*train"):
        FlyingChairs2(empty)
    with pytest.raises(DatasetError, match="missing_root"):
        FlyingChairs2(tmp_path / "missing_root")


def test_photometric_mask_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(3, 4, 5\)"):
        photometric_mask(torch.zeros(3, 4, 5), torch.zeros(3, 4, 5), torch.zeros(2, 4, 6))
    batch = photometric_mask(torch.zeros(2, 3, 4, 5), torch.zeros(2, 3, 4, 5), torch.zeros(2, 2, 4, 5))
    assert batch.shape == (2, 1, 4, 5) and bool(torch.all(batch == 1))
    assert np.isclose(float(batch.mean()), 1.0)


def test_chairs_frames_are_loaded_unchanged(chairs_root: Path) -> None:
    sample = _quiet_chairs(chairs_root, split="train")[4]
    assert torch.equal(sample["frame1"], load_image(chairs_root / "data/00005_img1.ppm"))
    assert torch.equal(sample["frame2"], load_image(chairs_root / "data/00005_img2.ppm"))
