"""Transforms keep frames, flow and mask consistent (known answers and real Sintel data)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from reconet.data import (
    CenterCrop,
    Compose,
    DatasetWarning,
    RandomCrop,
    RandomHorizontalFlip,
    Resize,
    ResizeToCover,
    SintelPairs,
    build_transform,
    make_sample,
)
from reconet.data.sample import make_meta
from reconet.flow.warp import warp


def _masked_error(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    error = (a - b).abs().mean(dim=0, keepdim=True)  # (1, H, W)
    return float((error * mask).sum() / mask.sum())


def _warp1(frame2: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    return warp(frame2.unsqueeze(0), flow.unsqueeze(0))[0]


def _constant_sample(height: int, width: int, u: float, v: float) -> dict:
    flow = torch.empty(2, height, width)
    flow[0], flow[1] = u, v
    frames = torch.rand(2, 3, height, width)
    return make_sample(frames[0], frames[1], flow, torch.ones(1, height, width), make_meta("test", "s", 0))


@pytest.fixture(scope="module")
def alley_0002(sintel_root: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        dataset = SintelPairs(sintel_root, passes="clean", scenes=["alley_1"])
    sample = dataset[1]
    assert sample["meta"]["frame"] == 2
    return sample


def test_resize_constant_flow_non_square() -> None:
    sample = _constant_sample(40, 60, u=3.0, v=-2.0)
    out = Resize((30, 90))(sample)
    assert out["frame1"].shape == (3, 30, 90) and out["mask"].shape == (1, 30, 90)
    # u *= W'/W = 90/60, v *= H'/H = 30/40.
    assert torch.allclose(out["flow"][0], torch.full((30, 90), 4.5))
    assert torch.allclose(out["flow"][1], torch.full((30, 90), -1.5))
    # The in-frame test is redone at the new size: columns whose target leaves the image drop out.
    assert out["mask"][0, :, -4:].sum() == 0 and out["mask"][0, 2:, :80].min() == 1


def test_resize_to_cover_keeps_aspect() -> None:
    # Sintel 1024x436 -> cover 360x640: scale 360/436, width 1024*360/436 = 845.5 -> 846.
    sample = _constant_sample(436, 1024, u=2.0, v=1.0)
    out = ResizeToCover((360, 640))(sample)
    assert out["frame1"].shape == (3, 360, 846)
    assert torch.allclose(out["flow"][0], torch.full((360, 846), 2.0 * 846 / 1024))
    assert torch.allclose(out["flow"][1], torch.full((360, 846), 1.0 * 360 / 436))


def test_resized_real_pair_still_warps(alley_0002: dict) -> None:
    out = Resize((218, 512))(alley_0002)
    warped = _masked_error(out["frame1"], _warp1(out["frame2"], out["flow"]), out["mask"])
    no_warp = _masked_error(out["frame1"], out["frame2"], out["mask"])
    assert warped < 0.012 and no_warp > 3 * warped
    # Sanity of the test itself: a flow left at full-resolution scale does not warp correctly.
    wrong = _masked_error(out["frame1"], _warp1(out["frame2"], out["flow"] * 2), out["mask"])
    assert wrong > 2 * warped


def test_hflip_negates_u_on_real_pair(alley_0002: dict) -> None:
    before = _masked_error(alley_0002["frame1"], _warp1(alley_0002["frame2"], alley_0002["flow"]), alley_0002["mask"])
    flipped = RandomHorizontalFlip(p=1.0)(alley_0002)
    assert torch.equal(flipped["frame1"], alley_0002["frame1"].flip(-1))
    assert torch.equal(flipped["mask"], alley_0002["mask"].flip(-1))
    after = _masked_error(flipped["frame1"], _warp1(flipped["frame2"], flipped["flow"]), flipped["mask"])
    assert after == pytest.approx(before, rel=1e-3)
    # Without the u negation the flipped pair no longer lines up.
    unnegated = flipped["flow"] * torch.tensor([-1.0, 1.0]).view(2, 1, 1)
    broken = _masked_error(flipped["frame1"], _warp1(flipped["frame2"], unnegated), flipped["mask"])
    assert broken > 2 * after
    # p = 0 is the identity.
    same = RandomHorizontalFlip(p=0.0)(alley_0002)
    assert all(torch.equal(same[k], alley_0002[k]) for k in ("frame1", "frame2", "flow", "mask"))


def _locate(window: torch.Tensor, full: torch.Tensor) -> tuple[int, int]:
    """Top-left corner of ``window`` (3, h, w) inside ``full`` (3, H, W), by exact row match."""
    row = window[0, 0]  # (w,)
    w = row.shape[0]
    candidates = full[0].unfold(1, w, 1)  # (H, W - w + 1, w)
    diff = (candidates - row).abs().sum(-1)  # (H, W - w + 1)
    flat = int(diff.argmin())
    return flat // diff.shape[1], flat % diff.shape[1]


def test_random_crop_keeps_everything_aligned(alley_0002: dict) -> None:
    crop = RandomCrop((96, 160), seed=3)(alley_0002)
    top, left = _locate(crop["frame1"], alley_0002["frame1"])
    window = (slice(None), slice(top, top + 96), slice(left, left + 160))
    for key in ("frame1", "frame2", "flow"):
        assert torch.equal(crop[key], alley_0002[key][window]), key
    # The crop mask is the full mask restricted to pixels whose target stays in the crop.
    assert torch.all(crop["mask"] <= alley_0002["mask"][window])
    assert float(crop["mask"].mean()) > 0.5
    # Warping inside the crop gives the same values as warping the full frame, on the mask.
    warped_crop = _warp1(crop["frame2"], crop["flow"])
    warped_full = _warp1(alley_0002["frame2"], alley_0002["flow"])[window]
    m = crop["mask"].bool().expand(3, -1, -1)
    assert torch.allclose(warped_crop[m], warped_full[m], atol=1e-5)
    assert _masked_error(crop["frame1"], warped_crop, crop["mask"]) == pytest.approx(
        _masked_error(crop["frame1"], warped_full, crop["mask"]), rel=1e-4
    )


def test_crop_mask_drops_targets_outside_the_crop() -> None:
    sample = _constant_sample(20, 30, u=5.0, v=0.0)  # everything moves 5 px right
    out = CenterCrop((10, 10))(sample)
    assert torch.equal(out["mask"][0, :, :5], torch.ones(10, 5))
    assert torch.equal(out["mask"][0, :, 5:], torch.zeros(10, 5))


def test_random_transforms_are_seeded() -> None:
    sample = _constant_sample(50, 70, u=1.0, v=1.0)
    a = RandomCrop((20, 20), seed=7)(sample)
    b = RandomCrop((20, 20), seed=7)(sample)
    assert torch.equal(a["frame1"], b["frame1"])
    tops = {tuple(RandomCrop((20, 20), seed=s)(sample)["frame1"][0, 0, :3].tolist()) for s in range(8)}
    assert len(tops) > 1
    flips = [bool(RandomHorizontalFlip(seed=s)(sample)["flow"][0, 0, 0] < 0) for s in range(16)]
    assert 0 < sum(flips) < 16


def test_transforms_do_not_modify_their_input() -> None:
    sample = _constant_sample(30, 40, u=2.0, v=-1.0)
    copy = {k: v.clone() for k, v in sample.items() if k != "meta"}
    for transform in (Resize((15, 50)), RandomCrop((10, 10), seed=0), CenterCrop(8), RandomHorizontalFlip(1.0)):
        out = transform(sample)
        out["meta"]["scene"] = "changed"
        for key, value in copy.items():
            assert torch.equal(sample[key], value), (transform, key)
        assert sample["meta"]["scene"] == "s"


def test_build_transform_modes() -> None:
    sample = _constant_sample(43, 102, u=1.0, v=0.5)
    train = build_transform((24, 32), crop="random", hflip=True, seed=0)
    val = build_transform((24, 32), crop="center")
    plain = build_transform((24, 32), crop=None)
    assert isinstance(train, Compose)
    for transform in (train, val, plain):
        assert transform(sample)["frame1"].shape == (3, 24, 32)
    # Center crop after ResizeToCover keeps the aspect ratio: u and v scaled by the same factor.
    out = val(sample)
    assert torch.allclose(out["flow"][0], torch.full((24, 32), 24 / 43), atol=1e-3)
    assert torch.allclose(out["flow"][1], torch.full((24, 32), 0.5 * 24 / 43), atol=1e-3)
    assert build_transform(None) is None
    with pytest.raises(ValueError, match="crop"):
        build_transform((8, 8), crop="corner")


def test_crop_larger_than_sample_names_sizes() -> None:
    with pytest.raises(ValueError, match="10x12"):
        RandomCrop((16, 16))(_constant_sample(10, 12, 0.0, 0.0))
