"""Known answers for the feature and output temporal losses (direction, masks, flow scaling)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from reconet.flow.io import read_flo
from reconet.flow.warp import in_frame_mask
from reconet.image import load_image
from reconet.losses import feature_temporal_loss, output_temporal_loss


def _sintel_frame(sintel_root: Path, index: int = 2) -> torch.Tensor:
    return load_image(sintel_root / "training" / "clean" / "alley_1" / f"frame_{index:04d}.png")  # (3, 436, 1024)


def _shifted_pair(image: torch.Tensor, size: tuple[int, int], dx: int, dy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two crops of ``image`` such that frame2(p + (dx, dy)) = frame1(p): the content moves by (dx, dy)."""
    h, w = size
    y0, x0 = 100, 300
    frame1 = image[:, y0 : y0 + h, x0 : x0 + w]
    frame2 = image[:, y0 - dy : y0 - dy + h, x0 - dx : x0 - dx + w]
    return frame1[None].contiguous(), frame2[None].contiguous()  # (1, 3, h, w)


def _constant_flow(dx: float, dy: float, size: tuple[int, int], batch: int = 1) -> torch.Tensor:
    return torch.tensor([dx, dy], dtype=torch.float32).view(1, 2, 1, 1).expand(batch, 2, *size).contiguous()


def _sintel_pair(sintel_root: Path) -> dict[str, torch.Tensor]:
    """alley_1 frames 0002/0003 (clean), GT forward flow, mask = not occluded and not invalid."""
    training = sintel_root / "training"
    flow = torch.from_numpy(read_flo(training / "flow" / "alley_1" / "frame_0002.flo")).permute(2, 0, 1)
    occluded = load_image(training / "occlusions" / "alley_1" / "frame_0002.png")[:1] > 0.5  # 255 = occluded
    invalid = load_image(training / "invalid" / "alley_1" / "frame_0002.png")[:1] > 0.5
    mask = (~occluded & ~invalid).float()
    return {
        "frame1": _sintel_frame(sintel_root, 2)[None],
        "frame2": _sintel_frame(sintel_root, 3)[None],
        "flow": flow[None].contiguous(),
        "mask": mask[None],
    }


# ----------------------------------------------------------------------------- feature temporal


def test_feature_loss_zero_for_identical_features_and_zero_flow():
    torch.manual_seed(3)
    features = torch.rand(2, 8, 9, 11)
    flow = torch.zeros(2, 2, 36, 44)
    mask = torch.ones(2, 1, 36, 44)
    assert feature_temporal_loss(features, features.clone(), flow, mask).item() < 1e-12
    assert feature_temporal_loss(features, torch.rand(2, 8, 9, 11), flow, mask).item() > 0.01


def test_feature_loss_normalizes_by_the_full_element_count():
    features1 = torch.zeros(1, 4, 6, 8)
    features2 = torch.ones(1, 4, 6, 8)  # ‖F1 − F2‖² = 1 per element
    flow = torch.zeros(1, 2, 24, 32)
    mask = torch.ones(1, 1, 24, 32)
    assert feature_temporal_loss(features1, features2, flow, mask).item() == pytest.approx(1.0)
    mask[..., :12, :] = 0  # top half unused: D stays C·H'·W', the sum halves
    assert feature_temporal_loss(features1, features2, flow, mask).item() == pytest.approx(0.5)


def test_feature_loss_ignores_masked_out_differences():
    torch.manual_seed(4)
    features1 = torch.rand(1, 5, 8, 8)
    features2 = features1.clone()
    features2[..., 2:4, 5:7] += 1.0  # feature pixels (2..3, 5..6) cover image pixels (8..15, 20..27)
    flow = torch.zeros(1, 2, 32, 32)
    mask = torch.ones(1, 1, 32, 32)
    assert feature_temporal_loss(features1, features2, flow, mask).item() > 0.01
    mask[..., 8:16, 20:28] = 0
    assert feature_temporal_loss(features1, features2, flow, mask).item() < 1e-12


def test_feature_loss_known_shift_on_real_image(sintel_root):
    # Full-resolution shift of (8, 4) px = (2, 1) px on the 4× average-pooled "features".
    frame1, frame2 = _shifted_pair(_sintel_frame(sintel_root), (64, 96), dx=8, dy=4)
    features1, features2 = F.avg_pool2d(frame1, 4), F.avg_pool2d(frame2, 4)  # (1, 3, 16, 24)
    flow = _constant_flow(8, 4, (64, 96))
    mask = in_frame_mask(flow)
    assert feature_temporal_loss(features1, features2, flow, mask).item() < 1e-10
    # not vacuous: without the flow, or with the direction reversed, the loss is large
    assert feature_temporal_loss(features1, features2, torch.zeros_like(flow), mask).item() > 1e-3
    assert feature_temporal_loss(features1, features2, -flow, mask).item() > 1e-3


def test_feature_loss_scales_u_by_width_ratio_and_v_by_height_ratio(sintel_root):
    # Non-square reduction: features are the image pooled by 2 vertically and 8 horizontally,
    # (64, 128) -> (32, 16). A flow of (16, 4) px becomes (2, 2) feature px. Scaling u by the
    # height ratio (1/2) would give 8 px and a large loss; scaling v by the width ratio 0.5 px.
    frame1, frame2 = _shifted_pair(_sintel_frame(sintel_root), (64, 128), dx=16, dy=4)
    features1 = F.avg_pool2d(frame1, kernel_size=(2, 8))  # (1, 3, 32, 16)
    features2 = F.avg_pool2d(frame2, kernel_size=(2, 8))
    flow = _constant_flow(16, 4, (64, 128))
    mask = in_frame_mask(flow)
    assert feature_temporal_loss(features1, features2, flow, mask).item() < 1e-10
    # Not vacuous: the feature-grid shifts that the swapped ratios would produce, expressed as the
    # image-space flows that the correct scaling maps onto them, give a clearly non-zero loss.
    h_ratio, w_ratio = 32 / 64, 16 / 128
    u_by_height = _constant_flow(16 * h_ratio / w_ratio, 4, (64, 128))  # feature u = 8 instead of 2
    v_by_width = _constant_flow(16, 4 * w_ratio / h_ratio, (64, 128))  # feature v = 0.5 instead of 2
    for wrong in (u_by_height, v_by_width):
        assert feature_temporal_loss(features1, features2, wrong, in_frame_mask(wrong)).item() > 1e-3


def test_feature_loss_accepts_features_of_padded_input():
    # ReCoNet features of a 30×42 frame are computed on a 32×44 padded input: (8, 11).
    torch.manual_seed(5)
    features = torch.rand(2, 6, 8, 11)
    flow = torch.zeros(2, 2, 30, 42)
    mask = torch.ones(2, 1, 30, 42)
    assert feature_temporal_loss(features, features, flow, mask).item() < 1e-12
    assert feature_temporal_loss(features, features + 1, flow, mask).item() == pytest.approx(1.0)


def test_feature_loss_on_sintel_ground_truth_flow(sintel_root):
    pair = _sintel_pair(sintel_root)
    features1, features2 = F.avg_pool2d(pair["frame1"], 4), F.avg_pool2d(pair["frame2"], 4)  # (1, 3, 109, 256)
    with_flow = feature_temporal_loss(features1, features2, pair["flow"], pair["mask"]).item()
    no_flow = feature_temporal_loss(features1, features2, torch.zeros_like(pair["flow"]), pair["mask"]).item()
    reversed_flow = feature_temporal_loss(features1, features2, -pair["flow"], pair["mask"]).item()
    assert with_flow * 3 < no_flow
    assert with_flow * 3 < reversed_flow


def test_feature_loss_shape_errors_name_the_shapes():
    f = torch.zeros(2, 4, 8, 8)
    flow = torch.zeros(2, 2, 32, 32)
    mask = torch.ones(2, 1, 32, 32)
    with pytest.raises(ValueError, match=r"\(2, 4, 8, 8\).*\(2, 4, 8, 9\)"):
        feature_temporal_loss(f, torch.zeros(2, 4, 8, 9), flow, mask)
    with pytest.raises(ValueError, match=r"\(2, 3, 32, 32\)"):
        feature_temporal_loss(f, f, torch.zeros(2, 3, 32, 32), mask)
    with pytest.raises(ValueError, match=r"\(2, 1, 16, 32\)"):
        feature_temporal_loss(f, f, flow, torch.ones(2, 1, 16, 32))
    with pytest.raises(ValueError, match=r"\(1, 2, 32, 32\)"):
        feature_temporal_loss(f, f, flow[:1], mask[:1])


# ----------------------------------------------------------------------------- output temporal


def test_output_loss_zero_when_output_change_follows_input_luminance(sintel_root):
    frame1 = _sintel_frame(sintel_root, 2)[None, :, 50:110, 200:280]
    frame2 = _sintel_frame(sintel_root, 3)[None, :, 50:110, 200:280]
    y_change = (0.2126 * (frame2[:, 0] - frame1[:, 0]) + 0.7152 * (frame2[:, 1] - frame1[:, 1])
                + 0.0722 * (frame2[:, 2] - frame1[:, 2])).unsqueeze(1)  # (1, 1, H, W)
    output1 = torch.rand(1, 3, 60, 80)
    output2 = output1 + y_change  # broadcast over the three channels
    flow = torch.zeros(1, 2, 60, 80)
    mask = torch.ones(1, 1, 60, 80)
    assert output_temporal_loss(output1, output2, frame1, frame2, flow, mask).item() < 1e-12
    # the same change in one colour channel only does not follow luminance
    recoloured = output1.clone()
    recoloured[:, :1] += y_change
    assert output_temporal_loss(output1, recoloured, frame1, frame2, flow, mask).item() > 1e-4


@pytest.mark.parametrize("channel, weight", [(0, 0.2126), (1, 0.7152), (2, 0.0722)])
def test_output_loss_uses_bt709_luminance_weights(channel, weight):
    # Unchanged output, input changed by δ in one channel: each output channel misses Y(δ) = w·δ,
    # L_o = (1/3HW) Σ_c Σ_p (w·δ)² = (w·δ)². A 0.7512 green weight would be 10 % off.
    delta = 0.1
    input1 = torch.full((1, 3, 6, 7), 0.4)
    input2 = input1.clone()
    input2[:, channel] += delta
    output = torch.rand(1, 3, 6, 7)
    loss = output_temporal_loss(output, output.clone(), input1, input2, torch.zeros(1, 2, 6, 7), torch.ones(1, 1, 6, 7))
    assert loss.item() == pytest.approx((weight * delta) ** 2, rel=1e-5)


def test_output_loss_ignores_masked_out_differences():
    torch.manual_seed(6)
    inputs = torch.rand(1, 3, 16, 16)
    output1 = torch.rand(1, 3, 16, 16)
    output2 = output1.clone()
    output2[..., 3:7, 9:12] = torch.rand(1, 3, 4, 3)
    flow = torch.zeros(1, 2, 16, 16)
    mask = torch.ones(1, 1, 16, 16)
    assert output_temporal_loss(output1, output2, inputs, inputs, flow, mask).item() > 1e-3
    mask[..., 3:7, 9:12] = 0
    assert output_temporal_loss(output1, output2, inputs, inputs, flow, mask).item() < 1e-12


def test_output_loss_known_shift_on_real_image(sintel_root):
    frame1, frame2 = _shifted_pair(_sintel_frame(sintel_root), (48, 64), dx=3, dy=-2)
    # a pointwise "stylization" that is not a function of luminance alone
    output1, output2 = frame1.flip(1) ** 2, frame2.flip(1) ** 2
    flow = _constant_flow(3, -2, (48, 64))
    mask = in_frame_mask(flow)
    assert output_temporal_loss(output1, output2, frame1, frame2, flow, mask).item() < 1e-12
    assert output_temporal_loss(output1, output2, frame1, frame2, -flow, in_frame_mask(-flow)).item() > 1e-3
    assert output_temporal_loss(output1, output2, frame1, frame2, torch.zeros_like(flow), mask).item() > 1e-3


def test_output_loss_zero_for_a_luminance_stylization_under_real_flow(sintel_root):
    # O = Y(I) on all channels: warping and Y are both linear, so O_1 − W(O_2) = Y(I_1 − W(I_2))
    # exactly, for any flow; the loss vanishes even where Sintel's GT flow is imperfect.
    pair = _sintel_pair(sintel_root)
    grey1 = (pair["frame1"] * torch.tensor([0.2126, 0.7152, 0.0722]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    grey2 = (pair["frame2"] * torch.tensor([0.2126, 0.7152, 0.0722]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    args = (pair["frame1"], pair["frame2"], pair["flow"], pair["mask"])
    assert output_temporal_loss(grey1.expand(-1, 3, -1, -1), grey2.expand(-1, 3, -1, -1), *args).item() < 1e-10
    # the unstylized frames themselves are not luminance-only: colour changes are penalized a little
    assert output_temporal_loss(pair["frame1"], pair["frame2"], *args).item() > 0


def test_output_loss_shape_errors_name_the_shapes():
    x = torch.zeros(2, 3, 8, 8)
    flow = torch.zeros(2, 2, 8, 8)
    mask = torch.ones(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"\(2, 3, 8, 8\).*\(2, 3, 8, 9\)"):
        output_temporal_loss(x, torch.zeros(2, 3, 8, 9), x, x, flow, mask)
    with pytest.raises(ValueError, match=r"\(2, 3, 8, 8\).*\(2, 3, 4, 4\)"):
        output_temporal_loss(x, x, torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), flow, mask)
    with pytest.raises(ValueError, match=r"\(2, 2, 4, 4\)"):
        output_temporal_loss(x, x, x, x, torch.zeros(2, 2, 4, 4), torch.ones(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"\(2, 1, 8, 4\)"):
        output_temporal_loss(x, x, x, x, flow, torch.ones(2, 1, 8, 4))


def test_temporal_losses_do_not_modify_their_inputs(sintel_root):
    torch.manual_seed(7)
    frame1, frame2 = _shifted_pair(_sintel_frame(sintel_root), (32, 40), dx=2, dy=1)
    output1, output2 = torch.rand(1, 3, 32, 40, requires_grad=True), torch.rand(1, 3, 32, 40, requires_grad=True)
    features1, features2 = torch.rand(1, 4, 8, 10, requires_grad=True), torch.rand(1, 4, 8, 10, requires_grad=True)
    flow = _constant_flow(2.5, 1.0, (32, 40))
    mask = in_frame_mask(flow)
    tensors = [frame1, frame2, output1, output2, features1, features2, flow, mask]
    before = [t.detach().clone() for t in tensors]
    loss = feature_temporal_loss(features1, features2, flow, mask)
    loss = loss + output_temporal_loss(output1, output2, frame1, frame2, flow, mask)
    loss.backward()
    for tensor, copy in zip(tensors, before):
        assert torch.equal(tensor.detach(), copy)
    for tensor in (output1, output2, features1, features2):  # both frames receive gradients (through warp)
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0
