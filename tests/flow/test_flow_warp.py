"""Backward warping, in-frame masks and resizing: synthetic known answers and real Sintel /
FlyingChairs ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from reconet.flow import build_flow_estimator, in_frame_mask, mask_from_flows, read_flo, resize_flow, resize_mask, warp
from reconet.image import load_image

CHAIRS_PAIRS = [f"{i:05d}" for i in range(1, 10)]


def _flow_tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_flo(path)).permute(2, 0, 1).unsqueeze(0)  # (1, 2, H, W)


def _constant_flow(u: float, v: float, height: int, width: int, batch: int = 1) -> torch.Tensor:
    flow = torch.empty(batch, 2, height, width)
    flow[:, 0], flow[:, 1] = u, v
    return flow


def _mean_abs(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean |a - b| over channels and the pixels where mask == 1 (all pixels without a mask)."""
    error = (a - b).abs()  # (B, C, H, W)
    if mask is None:
        return error.mean().item()
    return ((error * mask).sum() / (mask.sum() * a.shape[1])).item()


@pytest.fixture(scope="module")
def alley(sintel_root: Path) -> dict[str, torch.Tensor]:
    """Sintel alley_1 clean, pair 0002 -> 0003 with its ground truth."""
    training = sintel_root / "training"

    def read_binary(path: Path) -> torch.Tensor:
        return torch.from_numpy(np.array(Image.open(path)) > 127).float()[None, None]  # (1, 1, H, W)

    occluded = read_binary(training / "occlusions/alley_1/frame_0002.png")
    invalid = read_binary(training / "invalid/alley_1/frame_0002.png")
    return {
        "frame2": load_image(training / "clean/alley_1/frame_0002.png")[None],
        "frame3": load_image(training / "clean/alley_1/frame_0003.png")[None],
        "flow": _flow_tensor(training / "flow/alley_1/frame_0002.flo"),
        "occluded": occluded,  # 1 = occluded (Sintel polarity)
        "mask": (1 - occluded) * (1 - invalid),  # 1 = use pixel
    }


# --- synthetic known answers ------------------------------------------------------------------


@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
def test_zero_flow_is_identity(padding_mode: str) -> None:
    x = torch.rand(2, 5, 9, 13)
    out = warp(x, torch.zeros(2, 2, 9, 13), padding_mode=padding_mode)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def test_integer_shift_equals_roll_on_interior() -> None:
    x = torch.rand(2, 3, 12, 17)
    u, v = 3, -2
    out = warp(x, _constant_flow(u, v, 12, 17, batch=2))
    # out(y, x) = x(y + v, x + u)  <=>  roll by (-v, -u)
    expected = torch.roll(x, shifts=(-v, -u), dims=(-2, -1))
    interior = (slice(None), slice(None), slice(-v, None), slice(0, 17 - u))
    torch.testing.assert_close(out[interior], expected[interior], atol=1e-5, rtol=0)
    assert not torch.allclose(out, expected, atol=1e-3), "rows/columns wrapped by roll must differ"


def test_out_of_frame_convention() -> None:
    """Samples beyond the frame: "border" repeats the edge pixel, "zeros" gives 0; in_frame_mask marks them."""
    x = torch.rand(1, 2, 6, 8)
    flow = _constant_flow(2, 0, 6, 8)  # the last two columns sample x = 8 and x = 9, outside
    border = warp(x, flow, padding_mode="border")
    zeros = warp(x, flow, padding_mode="zeros")
    edge = x[..., 7:8].expand(-1, -1, -1, 2)
    torch.testing.assert_close(border[..., 6:], edge, atol=1e-6, rtol=0)
    assert zeros[..., 6:].abs().max() == 0
    torch.testing.assert_close(zeros[..., :6], x[..., 2:], atol=1e-6, rtol=0)
    mask = in_frame_mask(flow)
    assert mask.shape == (1, 1, 6, 8)
    expected = torch.ones(1, 1, 6, 8)
    expected[..., 6:] = 0
    torch.testing.assert_close(mask, expected)


def test_in_frame_mask_upward_motion() -> None:
    mask = in_frame_mask(_constant_flow(0, -1.5, 5, 4))
    # y - 1.5 >= 0 only from row 2 on
    assert mask[0, 0, :, 0].tolist() == [0, 0, 1, 1, 1]


def test_warp_does_not_modify_inputs_and_keeps_dtype() -> None:
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    flow = torch.randn(1, 2, 8, 8)
    x_copy, flow_copy = x.clone(), flow.clone()
    out = warp(x, flow)
    assert out.dtype == torch.float64 and out.shape == x.shape
    assert torch.equal(x, x_copy) and torch.equal(flow, flow_copy)


def test_warp_is_differentiable_in_x() -> None:
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    warp(x, _constant_flow(1, 1, 8, 8)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "x_shape, flow_shape",
    [
        ((1, 3, 8, 8), (1, 2, 8, 9)),
        ((2, 3, 8, 8), (1, 2, 8, 8)),
        ((1, 3, 8, 8), (1, 3, 8, 8)),
        ((3, 8, 8), (1, 2, 8, 8)),
    ],
)
def test_warp_shape_mismatch_names_shapes(x_shape: tuple, flow_shape: tuple) -> None:
    with pytest.raises(ValueError) as info:
        warp(torch.zeros(x_shape), torch.zeros(flow_shape))
    assert str(tuple(x_shape)) in str(info.value) and str(tuple(flow_shape)) in str(info.value)


def test_resize_flow_scales_u_by_width_and_v_by_height() -> None:
    flow = _constant_flow(4, 2, 8, 16)  # H = 8, W = 16
    resized = resize_flow(flow, (4, 4))  # u * 4/16, v * 4/8
    assert resized.shape == (1, 2, 4, 4)
    torch.testing.assert_close(resized[:, 0], torch.full((1, 4, 4), 1.0))
    torch.testing.assert_close(resized[:, 1], torch.full((1, 4, 4), 1.0))
    upscaled = resize_flow(flow, (24, 16))  # width unchanged, height x3
    torch.testing.assert_close(upscaled[:, 0], torch.full((1, 24, 16), 4.0))
    torch.testing.assert_close(upscaled[:, 1], torch.full((1, 24, 16), 6.0))


def test_resize_flow_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"\(1, 3, 4, 4\)"):
        resize_flow(torch.zeros(1, 3, 4, 4), (2, 2))


def test_resize_mask_downscale_is_conservative() -> None:
    mask = torch.ones(1, 1, 8, 8)
    mask[0, 0, 5, 2] = 0  # one invalid pixel
    small = resize_mask(mask, (4, 4))
    expected = torch.ones(1, 1, 4, 4)
    expected[0, 0, 2, 1] = 0  # the 2x2 block that covers (5, 2)
    torch.testing.assert_close(small, expected)
    odd = resize_mask(mask, (3, 3))  # non-integer ratio: every window containing (5, 2) is invalid
    assert odd[0, 0, 1:, 0:2].sum() == 0 and odd.sum() == 9 - 4


def test_resize_mask_mixed_up_and_down_is_conservative() -> None:
    mask = torch.ones(1, 1, 8, 4)
    mask[0, 0, 1, :] = 0  # an invalid row
    resized = resize_mask(mask, (4, 8))  # height shrinks, width grows
    assert resized[0, 0, 0].sum() == 0, "the invalid row must survive"
    assert resized[0, 0, 1:].min() == 1


def test_resize_mask_upscale_and_shape_error() -> None:
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    up = resize_mask(mask, (4, 4))
    expected = torch.ones(1, 1, 4, 4)
    expected[0, 0, :2, 2:] = 0
    torch.testing.assert_close(up, expected)
    with pytest.raises(ValueError, match=r"\(1, 2, 4, 4\)"):
        resize_mask(torch.ones(1, 2, 4, 4), (2, 2))


# --- real data: Sintel ground truth -------------------------------------------------------------


def test_sintel_gt_warp_reproduces_documented_errors(alley: dict) -> None:
    """Values of the shared data README (0.0406 / 0.0109 / 0.0075) within 2 %."""
    no_warp = _mean_abs(alley["frame2"], alley["frame3"])
    warped = warp(alley["frame3"], alley["flow"])
    all_pixels = _mean_abs(alley["frame2"], warped)
    visible = _mean_abs(alley["frame2"], warped, alley["mask"])
    assert no_warp == pytest.approx(0.0406, rel=0.02)
    assert all_pixels == pytest.approx(0.0109, rel=0.02)
    assert visible == pytest.approx(0.0075, rel=0.02)
    assert no_warp >= 3 * all_pixels
    assert visible < 0.8 * all_pixels


def test_sintel_occlusion_polarity(alley: dict) -> None:
    """The occlusion map un-inverted selects exactly the pixels the warp cannot explain."""
    warped = warp(alley["frame3"], alley["flow"])
    right = _mean_abs(alley["frame2"], warped, alley["mask"])
    wrong = _mean_abs(alley["frame2"], warped, alley["occluded"])
    assert wrong > 10 * right


def test_sintel_flow_direction(alley: dict) -> None:
    correct = _mean_abs(alley["frame2"], warp(alley["frame3"], alley["flow"]), alley["mask"])
    negated = _mean_abs(alley["frame2"], warp(alley["frame3"], -alley["flow"]), alley["mask"])
    wrong_frame = _mean_abs(alley["frame3"], warp(alley["frame2"], alley["flow"]), alley["mask"])
    no_warp = _mean_abs(alley["frame2"], alley["frame3"], alley["mask"])
    assert negated > 4 * correct and wrong_frame > 4 * correct
    assert negated > no_warp and wrong_frame > no_warp  # the wrong way is worse than not warping


def test_sintel_resized_flow_warps_resized_frames(alley: dict) -> None:
    """Non-uniform resize (H / 2, W / 4): u scaled by W'/W and v by H'/H beats swapped factors
    (an earlier public implementation's bug) and unscaled vectors.

    Measured mean errors on the resized visible pixels: no warp 0.0249, right 0.0113,
    swapped factors 0.0238, unscaled 0.0486.
    """
    size = (218, 256)
    frame2 = F.interpolate(alley["frame2"], size=size, mode="area")
    frame3 = F.interpolate(alley["frame3"], size=size, mode="area")
    mask = resize_mask(alley["mask"] * in_frame_mask(alley["flow"]), size)
    flow = resize_flow(alley["flow"], size)
    assert flow.shape == (1, 2, 218, 256)
    swapped = flow * torch.tensor([(218 / 436) / (256 / 1024), (256 / 1024) / (218 / 436)]).view(1, 2, 1, 1)
    unscaled = F.interpolate(alley["flow"], size=size, mode="bilinear", align_corners=False)
    no_warp = _mean_abs(frame2, frame3, mask)
    right = _mean_abs(frame2, warp(frame3, flow), mask)
    assert no_warp > 1.8 * right
    assert _mean_abs(frame2, warp(frame3, swapped), mask) > 1.6 * right
    assert _mean_abs(frame2, warp(frame3, unscaled), mask) > 3 * right


def test_sintel_dis_flow_reduces_warp_error(alley: dict) -> None:
    estimator = build_flow_estimator("dis")
    flow = estimator(alley["frame2"], alley["frame3"])
    no_warp = _mean_abs(alley["frame2"], alley["frame3"])
    dis = _mean_abs(alley["frame2"], warp(alley["frame3"], flow))
    assert no_warp > 3 * dis  # measured: 0.0406 vs 0.0091
    endpoint_error = (flow - alley["flow"]).norm(dim=1).mean().item()
    assert endpoint_error < 1.0  # measured: 0.34 px against the ground truth


# --- real data: FlyingChairs ground truth ---------------------------------------------------------


@pytest.mark.parametrize("pair", CHAIRS_PAIRS)
def test_flyingchairs_gt_warp(chairs_root: Path, pair: str) -> None:
    """Ground-truth flow on every FlyingChairs sample.

    The chairs are rendered 3-D objects that rotate (their shading changes) and occlude each
    other; FlyingChairs has no occlusion maps. Over all pixels the warp cuts the error 1.8x to
    5.7x on these nine pairs, so 3x cannot be asserted there; it is asserted on the pixels that
    pass the forward-backward check (ground-truth forward flow, DIS backward flow), where the
    warp must explain the image (measured 3.0x to 18.5x).
    """
    data = chairs_root / "data"
    frame1 = load_image(data / f"{pair}_img1.ppm")[None]
    frame2 = load_image(data / f"{pair}_img2.ppm")[None]
    flow = _flow_tensor(data / f"{pair}_flow.flo")
    assert frame1.shape == (1, 3, 384, 512) and flow.shape == (1, 2, 384, 512)
    warped = warp(frame2, flow)

    no_warp, correct = _mean_abs(frame1, frame2), _mean_abs(frame1, warped)
    assert no_warp > 1.5 * correct
    wrong_way = min(_mean_abs(frame1, warp(frame2, -flow)), _mean_abs(frame2, warp(frame1, flow)))
    assert wrong_way > 1.8 * correct

    backward = build_flow_estimator("dis")(frame2, frame1)
    mask = mask_from_flows(flow, backward)  # 1 = use pixel
    assert 0.3 < mask.mean().item() < 0.95
    assert _mean_abs(frame1, frame2, mask) > 2.5 * _mean_abs(frame1, warped, mask)
    assert _mean_abs(frame1, warped, mask) < 0.035
