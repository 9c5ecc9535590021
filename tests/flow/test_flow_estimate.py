"""Flow estimators: DIS on real frames with known motion; RAFT loading, padding and device handling.

RAFT accuracy cannot be tested here (no pretrained weights offline): the RAFT tests use a
randomly initialised torchvision raft_small saved to a temporary file, which exercises the
loading path, architecture detection, padding/cropping and the output contract, not the flow.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reconet.flow import (
    DISFlowEstimator,
    FarnebackFlowEstimator,
    FlowEstimatorError,
    RAFTFlowEstimator,
    RAFTWeightsNotFoundError,
    build_flow_estimator,
    estimate_flows,
    find_cached_raft_weights,
    load_raft,
)
from reconet.image import load_image

RAFT_SMALL_CACHE_NAME = "raft_small_C_T_V2-01064c6d.pth"  # torchvision's file name for these weights


@pytest.fixture(scope="module")
def sintel_crop(sintel_root: Path) -> torch.Tensor:
    """A 160x240 textured crop of Sintel alley_1 clean frame 0002, (1, 3, H, W)."""
    frame = load_image(sintel_root / "training/clean/alley_1/frame_0002.png")[None]
    return frame[:, :, 200:360, 200:440].contiguous()


@pytest.fixture(scope="module")
def raft_small_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("raft") / "random_raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), path)
    return path


@pytest.fixture
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, so a developer's cached weights cannot change the outcome."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


# --- DIS -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "kind"), [("dis", DISFlowEstimator), ("farneback", FarnebackFlowEstimator)])
@pytest.mark.parametrize("dx, dy", [(3, 2), (-4, 1)])
def test_classical_estimators_recover_a_known_translation(sintel_crop: torch.Tensor, method, kind, dx: int, dy: int) -> None:
    """frame2 = frame1 shifted by (dx, dy): every pixel moves by (dx, dy), the forward flow."""
    frame2 = torch.roll(sintel_crop, shifts=(dy, dx), dims=(-2, -1))
    estimator = build_flow_estimator(method)
    assert estimator.name == method and isinstance(estimator, kind)
    flow = estimator(sintel_crop, frame2)
    assert flow.shape == (1, 2, 160, 240) and flow.dtype == torch.float32
    interior = flow[0, :, 16:-16, 16:-16]  # away from the wrapped border
    assert interior[0].median().item() == pytest.approx(dx, abs=0.1)
    assert interior[1].median().item() == pytest.approx(dy, abs=0.1)
    assert ((interior - torch.tensor([dx, dy]).view(2, 1, 1)).norm(dim=0) < 0.5).float().mean() > 0.9
    # The reverse pair gives the reverse motion (direction, not just magnitude).
    backward = estimator(frame2, sintel_crop)[0, :, 16:-16, 16:-16]
    assert backward[0].median().item() == pytest.approx(-dx, abs=0.1)


def test_dis_batch_matches_single_and_keeps_inputs(sintel_crop: torch.Tensor) -> None:
    frame2 = torch.roll(sintel_crop, shifts=(1, 2), dims=(-2, -1))
    batch1 = torch.cat([sintel_crop, frame2])
    batch2 = torch.cat([frame2, sintel_crop])
    copies = batch1.clone(), batch2.clone()
    estimator = build_flow_estimator("dis")
    flows = estimator(batch1, batch2)
    assert flows.shape == (2, 2, 160, 240)
    torch.testing.assert_close(flows[1:], estimator(frame2, sintel_crop))
    assert torch.equal(batch1, copies[0]) and torch.equal(batch2, copies[1])


def test_dis_preset_and_input_errors(sintel_crop: torch.Tensor) -> None:
    assert build_flow_estimator("dis", dis_preset="ultrafast")(sintel_crop, sintel_crop).shape == (1, 2, 160, 240)
    with pytest.raises(FlowEstimatorError, match="unknown DIS preset 'slow'"):
        build_flow_estimator("dis", dis_preset="slow")
    estimator = build_flow_estimator("dis")
    with pytest.raises(ValueError, match=r"\(1, 3, 160, 240\) and \(1, 3, 160, 239\)"):
        estimator(sintel_crop, sintel_crop[..., :239])
    with pytest.raises(ValueError, match=r"\(3, 160, 240\)"):
        estimator(sintel_crop[0], sintel_crop[0])
    with pytest.raises(ValueError, match=r"at least 12 pixels.*\(1, 3, 8, 8\)"):
        estimator(sintel_crop[..., :8, :8], sintel_crop[..., :8, :8])


def test_estimate_flows_both_directions(sintel_crop: torch.Tensor) -> None:
    frame2 = torch.roll(sintel_crop, shifts=(0, 3), dims=(-2, -1))
    forward, backward, mask = estimate_flows(build_flow_estimator("dis"), sintel_crop, frame2)
    assert forward.shape == backward.shape == (1, 2, 160, 240) and mask.shape == (1, 1, 160, 240)
    assert forward[0, 0, 16:-16, 16:-16].median().item() == pytest.approx(3, abs=0.1)
    assert backward[0, 0, 16:-16, 16:-16].median().item() == pytest.approx(-3, abs=0.1)
    # the last 3 columns move out of the frame; the first 3 are wrapped-around content
    assert mask[0, 0, :, -3:].max() == 0
    assert mask[0, 0, 16:-16, 16:-16].mean() > 0.9


def test_unknown_method() -> None:
    with pytest.raises(FlowEstimatorError, match="unknown flow method 'flownet'; choose from auto, raft, dis, farneback"):
        build_flow_estimator("flownet")


# --- RAFT: weight discovery (never downloads) --------------------------------------------------------


def test_auto_without_weights_is_dis(empty_torch_home: Path) -> None:
    assert find_cached_raft_weights() is None
    assert build_flow_estimator("auto").name == "dis"


def test_raft_without_weights_is_a_clear_error(empty_torch_home: Path) -> None:
    with pytest.raises(RAFTWeightsNotFoundError) as info:
        build_flow_estimator("raft")
    message = str(info.value)
    assert "raft_weights" in message and str(empty_torch_home / "hub" / "checkpoints") in message
    assert "never downloads" in message
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)


def test_missing_weights_file_is_an_error_even_for_auto(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    for method in ("auto", "raft"):
        with pytest.raises(RAFTWeightsNotFoundError, match=f"{missing}: RAFT weights file not found"):
            build_flow_estimator(method, raft_weights=missing)


def test_auto_finds_weights_in_hub_cache(empty_torch_home: Path, raft_small_file: Path) -> None:
    checkpoints = empty_torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / RAFT_SMALL_CACHE_NAME).write_bytes(raft_small_file.read_bytes())
    assert find_cached_raft_weights() == checkpoints / RAFT_SMALL_CACHE_NAME
    estimator = build_flow_estimator("auto")
    assert estimator.name == "raft_small" and isinstance(estimator, RAFTFlowEstimator)


def test_load_raft_detects_architecture(raft_small_file: Path, tmp_path: Path) -> None:
    from torchvision.models.optical_flow import raft_large

    model, arch = load_raft(raft_small_file)
    assert arch == "raft_small"
    reference = torch.load(raft_small_file, weights_only=True)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)  # really loaded, not re-initialised

    large = tmp_path / "large.pth"
    torch.save({"state_dict": raft_large(weights=None).state_dict()}, large)  # wrapped form accepted too
    assert load_raft(large)[1] == "raft_large"


def test_load_raft_rejects_wrong_state_dict(raft_small_file: Path, tmp_path: Path) -> None:
    state = torch.load(raft_small_file, weights_only=True)
    del state["feature_encoder.convnormrelu.0.weight"]
    state["extra.weight"] = torch.zeros(1)
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(FlowEstimatorError) as info:
        load_raft(broken)
    message = str(info.value)
    assert str(broken) in message and "closest: raft_small" in message
    assert "feature_encoder.convnormrelu.0.weight" in message and "extra.weight" in message

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(FlowEstimatorError, match="not a readable torch checkpoint"):
        load_raft(garbage)

    not_a_state_dict = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_state_dict)
    with pytest.raises(FlowEstimatorError, match="expected a RAFT state dict"):
        load_raft(not_a_state_dict)


# --- RAFT: running it ----------------------------------------------------------------------------------


def test_raft_output_contract(raft_small_file: Path, sintel_crop: torch.Tensor) -> None:
    estimator = build_flow_estimator("raft", raft_weights=raft_small_file, device="cpu", num_flow_updates=2)
    assert estimator.name == "raft_small"
    frame1 = sintel_crop[..., :37, :53]  # odd size: padded to 128 x 128, cropped back
    frame2 = sintel_crop[..., 1:38, 2:55]
    copy = frame1.clone()
    flow = estimator(frame1, frame2)
    assert flow.shape == (1, 2, 37, 53) and flow.dtype == torch.float32 and flow.device == frame1.device
    assert torch.isfinite(flow).all() and not flow.requires_grad and not flow.is_inference()
    assert torch.equal(frame1, copy)
    assert all(p.device.type == "cpu" and not p.requires_grad for p in estimator.model.parameters())
    assert not estimator.model.training


class _SpyRAFT(torch.nn.Module):
    """Stands in for RAFT: records its inputs and returns image1's first two channels as the "flow"."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch.Tensor, torch.Tensor, int]] = []

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, num_flow_updates: int) -> list[torch.Tensor]:
        self.calls.append((image1.clone(), image2.clone(), num_flow_updates))
        return [torch.zeros_like(image1[:, :2]), image1[:, :2]]


@pytest.mark.parametrize("size, padded", [((37, 53), (128, 128)), ((130, 230), (136, 232)), ((160, 240), (160, 240))])
def test_raft_padding_scaling_and_crop_are_aligned(sintel_crop: torch.Tensor, size: tuple, padded: tuple) -> None:
    spy = _SpyRAFT()
    estimator = RAFTFlowEstimator(spy, "spy", num_flow_updates=5)
    frame1 = sintel_crop[..., : size[0], : size[1]]
    frame2 = 1.0 - frame1
    flow = estimator(frame1, frame2)
    image1, image2, updates = spy.calls[0]
    assert image1.shape[-2:] == padded and image2.shape[-2:] == padded
    assert updates == 5
    # Symmetric replicate padding: the frame sits at (top, left), the margins repeat its edges.
    top, left = (padded[0] - size[0]) // 2, (padded[1] - size[1]) // 2
    inner = (..., slice(top, top + size[0]), slice(left, left + size[1]))
    torch.testing.assert_close(image1[inner], frame1 * 2 - 1)  # [0, 1] -> [-1, 1]
    torch.testing.assert_close(image2[inner], frame2 * 2 - 1)
    rows, cols = slice(top, top + size[0]), slice(left, left + size[1])
    torch.testing.assert_close(image1[..., 0, cols], image1[..., top, cols])
    torch.testing.assert_close(image1[..., rows, -1], image1[..., rows, left + size[1] - 1])
    # The last prediction, cropped back, must be exactly the un-padded pixels of frame 1.
    torch.testing.assert_close(flow, frame1[:, :2] * 2 - 1)


def test_estimate_flows_batches_both_directions_in_one_call(sintel_crop: torch.Tensor) -> None:
    spy = _SpyRAFT()
    frame2 = sintel_crop.flip(-1)
    forward, backward, mask = estimate_flows(RAFTFlowEstimator(spy, "spy"), sintel_crop, frame2)
    assert len(spy.calls) == 1
    image1, image2, _ = spy.calls[0]
    assert image1.shape[0] == 2
    torch.testing.assert_close(image1, image2.flip(0))  # (frame1, frame2) paired with (frame2, frame1)
    torch.testing.assert_close(forward, sintel_crop[:, :2] * 2 - 1)
    torch.testing.assert_close(backward, frame2[:, :2] * 2 - 1)
    assert mask.shape == (1, 1, 160, 240)
