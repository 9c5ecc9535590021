"""FlyingShapes: exact flow and occlusion, determinism, any size."""

from __future__ import annotations

import pytest
import torch
from conftest import masked_mean, warp_errors

from reconet.data import FlyingShapes, build_transform
from reconet.flow.warp import in_frame_mask


@pytest.mark.parametrize("size", [(64, 64), (96, 160)])
def test_warp_reproduces_frame1_on_the_mask(size: tuple[int, int]) -> None:
    dataset = FlyingShapes(6, size=size, seed=11)
    warped_sum = plain_sum = pixels = 0.0
    for sample in dataset:
        mask = sample["mask"]
        assert 0.5 < float(mask.mean()) < 0.995, "mask must be neither empty nor trivially full"
        warped, plain = warp_errors(sample)
        # Bilinear interpolation of smooth textures, plus layer mixing at shape edges.
        assert masked_mean(warped, mask) < 0.01, sample["meta"]
        assert masked_mean(plain, mask) > 3 * masked_mean(warped, mask), sample["meta"]
        warped_sum += float((warped * mask).sum())
        plain_sum += float((plain * mask).sum())
        pixels += float(mask.sum())
    assert warped_sum / pixels < 0.005
    assert plain_sum > 8 * warped_sum


def test_mask_zeros_are_real_occlusions() -> None:
    dataset = FlyingShapes(6, size=(96, 128), seed=4)
    occluded_error = visible_error = 0.0
    occluded_pixels = visible_pixels = 0.0
    for sample in dataset:
        in_frame = in_frame_mask(sample["flow"].unsqueeze(0))[0]
        mask = sample["mask"]
        assert torch.all(mask <= in_frame)  # leaving the frame always means masked
        occluded = in_frame * (1 - mask)  # inside the frame but hidden by a shape in frame N+1
        warped, _ = warp_errors(sample)
        occluded_error += float((warped * occluded).sum())
        occluded_pixels += float(occluded.sum())
        visible_error += float((warped * mask).sum())
        visible_pixels += float(mask.sum())
    assert occluded_pixels > 100
    # An inverted or shifted occlusion test would not separate these two populations.
    assert occluded_error / occluded_pixels > 10 * visible_error / visible_pixels


def test_no_motion_gives_identical_frames_zero_flow_full_mask() -> None:
    still = FlyingShapes(2, size=(40, 50), seed=1, max_shift=0.0, max_rotation=0.0, max_zoom=0.0)
    sample = still[1]
    assert torch.equal(sample["frame1"], sample["frame2"])
    assert torch.count_nonzero(sample["flow"]) == 0
    assert torch.all(sample["mask"] == 1)


def test_pure_translation_flow_is_piecewise_constant() -> None:
    # Without rotation and zoom every layer moves by one vector: at most 1 + num_shapes
    # distinct flow vectors, and the static background has exactly zero flow.
    dataset = FlyingShapes(3, size=(48, 64), seed=2, num_shapes=3, max_rotation=0.0, max_zoom=0.0, background_motion=0.0)
    for sample in dataset:
        vectors = torch.unique(sample["flow"].reshape(2, -1).T, dim=0)
        assert len(vectors) <= 4
        assert (vectors.abs().sum(dim=1) == 0).any()


def test_deterministic_in_seed_and_index() -> None:
    a = FlyingShapes(5, size=(32, 48), seed=3)[2]
    b = FlyingShapes(500, size=(32, 48), seed=3)[2]  # length does not matter
    for key in ("frame1", "frame2", "flow", "mask"):
        assert torch.equal(a[key], b[key]), key
    other_index = FlyingShapes(5, size=(32, 48), seed=3)[3]
    other_seed = FlyingShapes(5, size=(32, 48), seed=4)[2]
    assert not torch.equal(a["frame1"], other_index["frame1"])
    assert not torch.equal(a["frame1"], other_seed["frame1"])


@pytest.mark.parametrize("size", [(5, 7), (37, 81)])
def test_any_size_and_format(size: tuple[int, int]) -> None:
    sample = FlyingShapes(1, size=size, seed=0)[0]
    height, width = size
    assert sample["frame1"].shape == (3, height, width) and sample["frame2"].shape == (3, height, width)
    assert sample["flow"].shape == (2, height, width) and sample["mask"].shape == (1, height, width)
    assert all(sample[k].dtype == torch.float32 for k in ("frame1", "frame2", "flow", "mask"))
    assert 0.0 <= float(sample["frame1"].min()) and float(sample["frame1"].max()) <= 1.0
    assert sample["meta"] == {"dataset": "flyingshapes", "scene": "seed0", "frame": 0, "pass": ""}


def test_transform_and_bad_arguments() -> None:
    dataset = FlyingShapes(3, size=(40, 60), seed=0, transform=build_transform((32, 32), crop="center"))
    assert dataset[0]["frame1"].shape == (3, 32, 32)
    with pytest.raises(IndexError):
        dataset[3]
    with pytest.raises(ValueError, match="size"):
        FlyingShapes(3, size=(1, 10))
    with pytest.raises(ValueError, match="num_samples"):
        FlyingShapes(0)
