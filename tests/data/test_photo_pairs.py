"""PhotoPairs: exact flow and occlusion on real photos, determinism, transforms, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import masked_mean, warp_errors
from PIL import Image

from reconet.data import DatasetError, PhotoPairs, build_transform
from reconet.data.photos import bundled_photos_dir, find_photos
from reconet.flow.warp import in_frame_mask


@pytest.fixture(scope="module")
def smooth_photos(tmp_path_factory) -> Path:
    """Three smooth 'photos' (bicubic upsampled noise, features of ~60 px, so 15 px and more in
    the smallest frames): bilinear interpolation reproduces them to ~1e-3, so the flow's
    exactness is tested, not the photos' sharpness."""
    root = tmp_path_factory.mktemp("smooth_photos")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(300, 400), (420, 360), (256, 512)]):
        coarse = rng.uniform(0, 255, size=(h // 60 + 2, w // 60 + 2, 3)).astype(np.uint8)
        image = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
        image.save(root / f"photo_{i}.png")
    (root / "notes.txt").write_text("not a photo")
    return root


def test_bundled_photos_are_there_with_attribution() -> None:
    photos = find_photos(bundled_photos_dir())
    assert len(photos) >= 20
    attribution = (bundled_photos_dir() / "ATTRIBUTION.md").read_text()
    for photo in photos:
        assert photo.name in attribution, f"{photo.name} has no attribution row"
        assert photo.name.startswith(("kodak_", "skimage_")), "only public-domain / CC0 photos are bundled"


@pytest.mark.parametrize("size", [(64, 64), (96, 160)])
def test_warp_reproduces_frame1_on_the_mask_exactly_for_smooth_photos(smooth_photos: Path, size) -> None:
    dataset = PhotoPairs(6, size=size, root=smooth_photos, seed=5, num_layers=(1, 2))
    for sample in dataset:
        mask = sample["mask"]
        assert 0.5 < float(mask.mean()) < 0.999, "mask must be neither empty nor trivially full"
        warped, plain = warp_errors(sample)
        # two bilinear interpolations of a smooth image, plus layer mixing at cut-out edges
        assert masked_mean(warped, mask) < 0.004, sample["meta"]
        assert masked_mean(plain, mask) > 4 * masked_mean(warped, mask), sample["meta"]


def test_warp_reproduces_frame1_on_the_bundled_photos() -> None:
    dataset = PhotoPairs(8, size=(128, 160), seed=2)
    warped_sum = plain_sum = pixels = 0.0
    for sample in dataset:
        mask = sample["mask"]
        warped, plain = warp_errors(sample)
        warped_sum += float((warped * mask).sum())
        plain_sum += float((plain * mask).sum())
        pixels += float(mask.sum())
    # real photos have detail at the pixel scale, which two bilinear resamplings blur a little
    assert warped_sum / pixels < 0.02
    assert plain_sum > 4 * warped_sum


def test_mask_zeros_are_real_occlusions(smooth_photos: Path) -> None:
    dataset = PhotoPairs(8, size=(96, 128), root=smooth_photos, seed=4, num_layers=2, layer_motion=3.0)
    occluded_error = visible_error = occluded_pixels = visible_pixels = 0.0
    for sample in dataset:
        in_frame = in_frame_mask(sample["flow"].unsqueeze(0))[0]
        mask = sample["mask"]
        assert torch.all(mask <= in_frame)  # leaving the frame always means masked
        occluded = in_frame * (1 - mask)  # inside the frame, but hidden by a cut-out in frame N+1
        warped, _ = warp_errors(sample)
        occluded_error += float((warped * occluded).sum())
        occluded_pixels += float(occluded.sum())
        visible_error += float((warped * mask).sum())
        visible_pixels += float(mask.sum())
    assert occluded_pixels > 100
    # an inverted or shifted occlusion test would not separate these two populations
    assert occluded_error / occluded_pixels > 8 * visible_error / visible_pixels


def test_still_camera_without_layers_gives_an_exact_crop(smooth_photos: Path) -> None:
    still = dict(max_shift=0.0, max_rotation=0.0, max_zoom=0.0, num_layers=0)
    dataset = PhotoPairs(3, size=(40, 50), root=smooth_photos, **still)
    sample = dataset[1]
    assert torch.equal(sample["frame1"], sample["frame2"])
    assert torch.count_nonzero(sample["flow"]) == 0
    assert torch.all(sample["mask"] == 1)
    assert sample["meta"]["scene"].startswith("photo_")  # the photo's name; notes.txt is no photo


def test_pure_translation_flow_is_one_vector_per_layer(smooth_photos: Path) -> None:
    dataset = PhotoPairs(4, size=(48, 64), root=smooth_photos, seed=1, max_rotation=0.0, max_zoom=0.0, num_layers=2)
    for sample in dataset:
        vectors = torch.unique(sample["flow"].reshape(2, -1).T, dim=0)
        assert 1 <= len(vectors) <= 3


def test_deterministic_in_seed_and_index(smooth_photos: Path) -> None:
    a = PhotoPairs(5, size=(32, 48), root=smooth_photos, seed=3)[2]
    b = PhotoPairs(500, size=(32, 48), root=smooth_photos, seed=3)[2]  # length does not matter
    for key in ("frame1", "frame2", "flow", "mask"):
        assert torch.equal(a[key], b[key]), key
    assert a["meta"] == b["meta"]
    assert not torch.equal(a["frame1"], PhotoPairs(5, size=(32, 48), root=smooth_photos, seed=3)[3]["frame1"])
    assert not torch.equal(a["frame1"], PhotoPairs(5, size=(32, 48), root=smooth_photos, seed=4)[2]["frame1"])


def test_photometric_changes_are_optional_and_keep_the_geometry(smooth_photos: Path) -> None:
    plain = PhotoPairs(2, size=(48, 64), root=smooth_photos, seed=6)[1]
    changed = PhotoPairs(2, size=(48, 64), root=smooth_photos, seed=6, brightness=0.2, noise=0.02)[1]
    assert torch.equal(plain["flow"], changed["flow"]) and torch.equal(plain["mask"], changed["mask"])
    assert not torch.equal(plain["frame2"], changed["frame2"])
    assert 0.005 < float((plain["frame1"] - changed["frame1"]).abs().mean()) < 0.05  # noise of sigma 0.02
    assert 0.0 <= float(changed["frame2"].min()) and float(changed["frame2"].max()) <= 1.0


@pytest.mark.parametrize("size", [(5, 7), (37, 81), (360, 640)])
def test_any_size_and_the_sample_format(size) -> None:
    sample = PhotoPairs(1, size=size, seed=0)[0]
    height, width = size
    assert sample["frame1"].shape == (3, height, width) and sample["frame2"].shape == (3, height, width)
    assert sample["flow"].shape == (2, height, width) and sample["mask"].shape == (1, height, width)
    assert all(sample[k].dtype == torch.float32 for k in ("frame1", "frame2", "flow", "mask"))
    assert 0.0 <= float(sample["frame1"].min()) and float(sample["frame1"].max()) <= 1.0
    assert set(sample["meta"]) == {"dataset", "scene", "frame", "pass"}
    assert sample["meta"]["dataset"] == "photos"


def test_transforms_keep_flow_and_mask_consistent(smooth_photos: Path) -> None:
    transform = build_transform((48, 48), crop="random", hflip=1.0)
    dataset = PhotoPairs(4, size=(64, 96), root=smooth_photos, seed=8, transform=transform)
    for sample in dataset:
        assert sample["frame1"].shape == (3, 48, 48)
        warped, plain = warp_errors(sample)
        mask = sample["mask"]
        assert masked_mean(warped, mask) < 0.004 and masked_mean(plain, mask) > 3 * masked_mean(warped, mask)


def test_pickles_for_spawned_workers_after_use(smooth_photos: Path) -> None:
    import pickle

    dataset = PhotoPairs(3, size=(32, 32), root=smooth_photos, seed=2)
    first = dataset[1]  # fills the decoded-photo cache
    copy = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(copy[1]["frame2"], first["frame2"])


def test_bad_arguments_and_folders(tmp_path: Path, smooth_photos: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        PhotoPairs(3, root=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no image files"):
        PhotoPairs(3, root=tmp_path / "empty")
    with pytest.raises(ValueError, match="size"):
        PhotoPairs(3, size=(1, 10), root=smooth_photos)
    with pytest.raises(ValueError, match="num_samples"):
        PhotoPairs(0, root=smooth_photos)
    with pytest.raises(ValueError, match="zoom"):
        PhotoPairs(3, root=smooth_photos, zoom=(0.5, 2.0))
    with pytest.raises(IndexError):
        PhotoPairs(3, root=smooth_photos)[3]


def test_broken_photos_are_found_when_the_dataset_is_built_all_in_one_message(tmp_path):
    from PIL import Image

    from reconet.data import PhotoPairs
    from reconet.data.errors import DatasetError

    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(tmp_path / name)
    PhotoPairs(num_samples=2, size=(32, 32), root=tmp_path)  # all good: builds
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.jpg").write_text("not a photo")
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(DatasetError) as caught:
        PhotoPairs(num_samples=2, size=(32, 32), root=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"PhotoPairs: 3 unusable photo(s) in {tmp_path}: ") and "\n" not in message
    assert "cut.jpg (" in message and "truncated" in message and "notes.jpg (" in message
    assert "dot.png (1x1 pixels: too small)" in message
