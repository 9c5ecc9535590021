"""Known answers for the temporal-error metric.

The numpy reference below is written independently of the package: its own .flo parser,
PNG decoding and bilinear sampling (border clamping), so a bug in reconet's warp, flow
reader or image conversion cannot hide in both sides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reconet.evaluation.temporal import frame_difference_error, temporal_error, temporal_error_map
from reconet.flow.io import read_flo
from reconet.flow.warp import warp
from reconet.image import load_image

# ----------------------------------------------------------------------------- numpy reference


def np_read_flo(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    assert np.frombuffer(raw, "<f4", count=1)[0] == np.float32(202021.25)
    width, height = np.frombuffer(raw, "<i4", count=2, offset=4)
    return np.frombuffer(raw, "<f4", offset=12).reshape(height, width, 2).astype(np.float64)


def np_read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0  # (H, W, 3)


def np_bilinear_backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """out[i, j] = image sampled at (j + u, i + v), bilinear, coordinates clamped to the frame."""
    height, width = image.shape[:2]
    ii, jj = np.mgrid[0:height, 0:width].astype(np.float64)
    x = np.clip(jj + flow[..., 0], 0, width - 1)
    y = np.clip(ii + flow[..., 1], 0, height - 1)
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    wx = (x - x0)[..., None]
    wy = (y - y0)[..., None]
    top = image[y0, x0] * (1 - wx) + image[y0, x1] * wx
    bottom = image[y1, x0] * (1 - wx) + image[y1, x1] * wx
    return top * (1 - wy) + bottom * wy


def np_temporal_error(frame1: np.ndarray, frame2: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    warped = np_bilinear_backward_warp(frame2, flow)
    squared = ((frame1 - warped) ** 2).sum(axis=2)  # (H, W), summed over RGB
    return float((squared * mask).sum() / (3.0 * mask.sum()))


# ----------------------------------------------------------------------------- helpers


def to_batch(array: np.ndarray) -> torch.Tensor:
    """(H, W, C) numpy -> (1, C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).unsqueeze(0).float()


@pytest.fixture(scope="module")
def alley_0002(sintel_root: Path) -> dict:
    training = sintel_root / "training"
    occlusion = np.asarray(Image.open(training / "occlusions/alley_1/frame_0002.png"))
    invalid = np.asarray(Image.open(training / "invalid/alley_1/frame_0002.png"))
    return {
        "paths": {
            "frame1": training / "clean/alley_1/frame_0002.png",
            "frame2": training / "clean/alley_1/frame_0003.png",
            "flow": training / "flow/alley_1/frame_0002.flo",
        },
        # 255 = occluded / invalid in the files; the metric's mask is 1 = use pixel
        "not_occluded": (occlusion < 128).astype(np.float64),
        "mask": ((occlusion < 128) & (invalid < 128)).astype(np.float64),
    }


def shifted_pair(height: int, width: int, dx: int, dy: int, dtype: torch.dtype):
    """Frame 2 = frame 1 moved by the integer vector (dx, dy): frame2(p + s) = frame1(p)."""
    generator = torch.Generator().manual_seed(1)
    frame1 = torch.rand(1, 3, height, width, generator=generator, dtype=dtype)
    frame2 = torch.roll(frame1, shifts=(dy, dx), dims=(2, 3))
    flow = torch.zeros(1, 2, height, width, dtype=dtype)
    flow[:, 0], flow[:, 1] = dx, dy
    # pixels whose target p + s wraps around the border are not really visible in frame 2
    mask = torch.zeros(1, 1, height, width, dtype=dtype)
    mask[..., max(0, -dy) : height - max(0, dy), max(0, -dx) : width - max(0, dx)] = 1
    return frame1, frame2, flow, mask


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("dx, dy", [(0, 0), (3, -2), (-5, 7), (11, 4)])
def test_zero_for_frame_moved_by_its_exact_flow(dx: int, dy: int) -> None:
    frame1, frame2, flow, mask = shifted_pair(40, 56, dx, dy, torch.float64)
    error = temporal_error(frame1, frame2, flow, mask)
    assert error.shape == (1,)
    # zero up to the rounding of grid_sample's coordinate normalization (~1e-31 in float64)
    assert error.item() < 1e-25
    assert temporal_error(frame1.float(), frame2.float(), flow.float(), mask.float()).item() < 1e-10
    if (dx, dy) != (0, 0):
        # the same data with the flow's direction wrong is far from zero (uniform noise: ~1/6)
        assert temporal_error(frame1, frame2, -flow, mask).item() > 0.1


def test_matches_numpy_reference_on_sintel_alley_1_0002(alley_0002: dict) -> None:
    paths = alley_0002["paths"]
    frame1_np, frame2_np = np_read_rgb(paths["frame1"]), np_read_rgb(paths["frame2"])
    flow_np = np_read_flo(paths["flow"])
    mask_np = alley_0002["mask"]
    expected = np_temporal_error(frame1_np, frame2_np, flow_np, mask_np)

    frame1 = load_image(paths["frame1"]).unsqueeze(0)
    frame2 = load_image(paths["frame2"]).unsqueeze(0)
    flow = torch.from_numpy(read_flo(paths["flow"])).permute(2, 0, 1).unsqueeze(0)
    mask = torch.from_numpy(mask_np).float()[None, None]
    got = temporal_error(frame1, frame2, flow, mask).item()
    assert got == pytest.approx(expected, rel=1e-4)
    # and the warp really matters on this pair: without it the error is many times larger
    unwarped = np_temporal_error(frame1_np, frame2_np, np.zeros_like(flow_np), mask_np)
    assert unwarped > 10 * expected


def test_project_warp_reproduces_published_l1_figures(alley_0002: dict) -> None:
    """The sample-data README measured 0.0406 / 0.0109 / 0.0075 (mean |I_N - I_N+1|, after warping,
    after warping on non-occluded pixels) on clean alley_1/0002."""
    paths = alley_0002["paths"]
    frame1 = load_image(paths["frame1"]).unsqueeze(0)  # (1, 3, H, W)
    frame2 = load_image(paths["frame2"]).unsqueeze(0)
    flow = torch.from_numpy(read_flo(paths["flow"])).permute(2, 0, 1).unsqueeze(0)  # (1, 2, H, W)
    not_occluded = torch.from_numpy(alley_0002["not_occluded"]).float()[None, None]  # (1, 1, H, W)

    difference = (frame1 - frame2).abs()
    warped_difference = (frame1 - warp(frame2, flow)).abs()
    plain = difference.mean().item()
    warped = warped_difference.mean().item()
    warped_visible = ((warped_difference * not_occluded).sum() / (3 * not_occluded.sum())).item()
    assert plain == pytest.approx(0.0406, rel=0.02)
    assert warped == pytest.approx(0.0109, rel=0.02)
    assert warped_visible == pytest.approx(0.0075, rel=0.02)


def test_empty_mask_gives_nan_not_zero() -> None:
    frame1, frame2, flow, mask = shifted_pair(16, 20, 2, 1, torch.float32)
    batch = lambda t: torch.cat([t, t])  # noqa: E731
    masks = torch.cat([mask, torch.zeros_like(mask)])
    error = temporal_error(batch(frame1), batch(torch.rand_like(frame2)), batch(flow), masks)
    assert torch.isfinite(error[0]) and error[0] > 0
    assert torch.isnan(error[1])


def test_mask_weights_only_the_masked_pixels() -> None:
    frame1 = torch.zeros(1, 3, 8, 10)
    frame2 = torch.zeros(1, 3, 8, 10)
    frame2[..., :, 5:] = 1.0  # right half differs by 1 in every channel
    flow = torch.zeros(1, 2, 8, 10)
    left = torch.zeros(1, 1, 8, 10)
    left[..., :, :5] = 1
    assert temporal_error(frame1, frame2, flow, left).item() == 0.0
    assert temporal_error(frame1, frame2, flow, 1 - left).item() == pytest.approx(1.0)
    assert temporal_error(frame1, frame2, flow, torch.ones_like(left)).item() == pytest.approx(0.5)
    # the map is the per-pixel version of the same quantity
    error_map = temporal_error_map(frame1, frame2, flow)
    assert error_map.shape == (1, 1, 8, 10)
    assert error_map[..., :5].max().item() == 0.0 and error_map[..., 5:].min().item() == pytest.approx(1.0)


def test_frame_difference_is_flow_free_mean_square() -> None:
    frame1 = torch.zeros(2, 3, 6, 6)
    frame2 = torch.full((2, 3, 6, 6), 0.5)
    frame2[1] = 0.0
    result = frame_difference_error(frame1, frame2)
    assert result.tolist() == pytest.approx([0.25, 0.0])


def test_inputs_are_not_modified() -> None:
    frame1, frame2, flow, mask = shifted_pair(12, 14, 1, 1, torch.float32)
    copies = [t.clone() for t in (frame1, frame2, flow, mask)]
    temporal_error(frame1, frame2, flow, mask)
    for original, copy in zip((frame1, frame2, flow, mask), copies, strict=True):
        assert torch.equal(original, copy)


@pytest.mark.parametrize(
    "shapes, fragment",
    [
        (((1, 3, 8, 8), (1, 3, 8, 9), (1, 2, 8, 8), (1, 1, 8, 8)), "(1, 3, 8, 9)"),
        (((1, 3, 8, 8), (1, 3, 8, 8), (1, 2, 4, 4), (1, 1, 8, 8)), "(1, 2, 4, 4)"),
        (((1, 3, 8, 8), (1, 3, 8, 8), (1, 2, 8, 8), (1, 3, 8, 8)), "(1, 3, 8, 8)"),
        (((3, 8, 8), (3, 8, 8), (2, 8, 8), (1, 8, 8)), "(3, 8, 8)"),
    ],
)
def test_shape_errors_name_the_shapes(shapes, fragment: str) -> None:
    tensors = [torch.zeros(s) for s in shapes]
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        temporal_error(*tensors)


def test_evaluation_run_on_sintel_follows_the_protocol(sintel_root: Path, alley_0002: dict) -> None:
    """The whole pipeline (Sintel loader, masks, runner) gives the numpy reference's number for
    the unstylized input on alley_1/0002 at full resolution."""
    from reconet.evaluation import EvaluationConfig, MethodSpec, evaluate

    paths = alley_0002["paths"]
    flow = np_read_flo(paths["flow"])
    height, width = flow.shape[:2]
    ii, jj = np.mgrid[0:height, 0:width]
    x, y = jj + flow[..., 0], ii + flow[..., 1]
    # Sintel's loader also drops pixels whose target leaves the frame (a few not marked occluded)
    in_frame = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    mask = alley_0002["mask"] * in_frame
    expected = np_temporal_error(np_read_rgb(paths["frame1"]), np_read_rgb(paths["frame2"]), flow, mask)
    config = EvaluationConfig(
        data="sintel",
        root=sintel_root,
        passes=("clean",),
        scenes=("alley_1",),
        methods=[MethodSpec(name="input", kind="baseline")],
        quality=False,
        device="cpu",
        progress=False,
    )
    with pytest.warns(UserWarning, match="occlusion"):  # alley_1 0001/0003 have no maps in the sample copy
        report = evaluate(config).report
    pairs = report["models"]["input"]["pairs"]
    assert [(p["scene"], p["frame"], p["pass"]) for p in pairs] == [("alley_1", 2, "clean")]
    assert pairs[0]["temporal_error"] == pytest.approx(expected, rel=1e-4)
    assert pairs[0]["mask_fraction"] == pytest.approx(mask.mean(), rel=1e-6)
