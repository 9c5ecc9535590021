"""ReCoNet architecture: presets, parameter and MAC counts by hand formula, shapes, padding, errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from reconet.models import PRESETS, ReCoNet, ReCoNetOutput, build_reconet
from reconet.models.complexity import conv_macs, conv_macs_per_frame

# Values stated in the project's technical notes for each preset (widths, residual blocks):
# parameters in millions and GMAC per 640x360 frame; fast (docs/models.md) is the CPU-first design
# with 3x3 outer layers and a budget of 8 GFLOP = 4 GMAC per 640x360 frame.
NOTES = {
    "paper": ((48, 96, 192), 4, 3.10, 67.5),
    "small": ((32, 64, 128), 5, 1.68, 35.4),
    "tiny": ((24, 48, 96), 3, 0.62, 15.8),
    "fast": ((16, 32, 48), 2, 0.12, 3.7),
}
OUTER_KERNEL = {"fast": 3}  # the others: 9


def expected_parameters(c1: int, c2: int, c3: int, blocks: int, k: int = 9) -> int:
    """Hand count: conv = k*k*in*out weights + out biases; affine instance norm = 2 per channel."""

    def conv(i: int, o: int, k: int) -> int:
        return k * k * i * o + o

    def norm(c: int) -> int:
        return 2 * c

    encoder = conv(3, c1, k) + norm(c1) + conv(c1, c2, 3) + norm(c2) + conv(c2, c3, 3) + norm(c3)
    residual = blocks * 2 * (conv(c3, c3, 3) + norm(c3))
    decoder = conv(c3, c2, 3) + norm(c2) + conv(c2, c1, 3) + norm(c1) + conv(c1, 3, k)
    return encoder + residual + decoder


def expected_macs(c1: int, c2: int, c3: int, blocks: int, height: int, width: int, k: int = 9) -> int:
    """Hand count for H, W multiples of 4: MACs = pixels_out * C_in * C_out * k * k per conv."""
    full, half, quarter = height * width, (height // 2) * (width // 2), (height // 4) * (width // 4)
    return (
        full * 3 * c1 * k * k  # kxk input conv
        + half * c1 * c2 * 9  # stride-2 conv
        + quarter * c2 * c3 * 9  # stride-2 conv
        + blocks * 2 * quarter * c3 * c3 * 9  # residual blocks
        + half * c3 * c2 * 9  # upsample conv 1
        + full * c2 * c1 * 9  # upsample conv 2
        + full * c1 * 3 * k * k  # kxk output conv
    )


@pytest.mark.parametrize("preset", sorted(NOTES))
def test_preset_parameter_counts_match_hand_formula_and_notes(preset: str) -> None:
    channels, blocks, notes_millions, _ = NOTES[preset]
    model = build_reconet(preset)
    k = OUTER_KERNEL.get(preset, 9)
    outer = {"outer_kernel": k} if k != 9 else {}  # written only when not the paper's 9
    assert model.config == {"channels": list(channels), "num_residual_blocks": blocks, "norm": "instance", **outer}
    expected = expected_parameters(*channels, blocks, k)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert round(expected / 1e6, 2) == notes_millions


@pytest.mark.parametrize("preset", sorted(NOTES))
def test_preset_macs_per_640x360_frame_match_hand_formula_and_notes(preset: str) -> None:
    channels, blocks, _, notes_gmac = NOTES[preset]
    expected = expected_macs(*channels, blocks, 360, 640, OUTER_KERNEL.get(preset, 9))
    assert conv_macs_per_frame(build_reconet(preset), 360, 640) == expected
    assert round(expected / 1e9, 1) == notes_gmac


def test_the_fast_preset_fits_the_cpu_budget_of_8_gflop_per_640x360_frame() -> None:
    fast = conv_macs_per_frame(build_reconet("fast"), 360, 640)
    assert 2 * fast <= 8e9
    assert conv_macs_per_frame(build_reconet("tiny"), 360, 640) > 4 * fast  # under a quarter of tiny's work


@pytest.mark.parametrize("size", [(5, 5), (33, 47), (360, 640)])
def test_the_fast_preset_keeps_any_size_range_and_feature_grid(size: tuple[int, int]) -> None:
    model = build_reconet("fast").eval()
    with torch.no_grad():
        result = model(torch.rand(1, 3, *size))
    assert result.output.shape == (1, 3, *size)
    assert result.features.shape == (1, 48, math.ceil(size[0] / 4), math.ceil(size[1] / 4))
    assert 0 <= float(result.output.min()) and float(result.output.max()) <= 1


def test_outer_kernel_survives_styles_blends_and_growing() -> None:
    model = build_reconet("fast", num_styles=3)
    assert model.encoder.conv1.conv.kernel_size == (3, 3) and model.decoder.output.conv.kernel_size == (3, 3)
    assert model.for_style(1).config["outer_kernel"] == 3
    assert model.with_styles(4).config == {**model.config, "num_styles": 4}
    assert ReCoNet(**build_reconet("fast").config).config == build_reconet("fast").config
    for bad in (4, 0, True):
        with pytest.raises(ValueError, match="outer_kernel must be an odd int"):
            ReCoNet(outer_kernel=bad)


def test_mac_counter_agrees_with_torch_flop_counter_on_padded_input() -> None:
    # An odd size exercises the internal padding; torch's own counter reports 2 FLOPs per MAC.
    model = build_reconet("tiny")
    x = torch.rand(1, 3, 21, 30)
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert conv_macs(model, x) == counter.get_total_flops() // 2
    assert conv_macs(model, x) == expected_macs(24, 48, 96, 3, 24, 32)  # padded to 24 x 32


def test_layer_structure_follows_the_paper() -> None:
    model = build_reconet("tiny")
    convs = [(m.kernel_size, m.stride, m.in_channels, m.out_channels) for m in model.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert convs[:3] == [((9, 9), (1, 1), 3, 24), ((3, 3), (2, 2), 24, 48), ((3, 3), (2, 2), 48, 96)]
    assert convs[3:] == [((3, 3), (1, 1), 96, 96)] * 6  # 3 residual blocks x 2 convs
    decoder_convs = [(m.kernel_size, m.in_channels, m.out_channels) for m in model.decoder.modules() if isinstance(m, nn.Conv2d)]
    assert decoder_convs == [((3, 3), 96, 48), ((3, 3), 48, 24), ((9, 9), 24, 3)]
    upsamples = [m for m in model.decoder.modules() if isinstance(m, nn.Upsample)]
    assert [(u.mode, u.scale_factor) for u in upsamples] == [("nearest", 2.0)] * 2
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    # Every convolution is preceded by reflection padding of k // 2 (no zero borders).
    pads = [m.padding for m in model.modules() if isinstance(m, nn.ReflectionPad2d)]
    all_convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert pads == [(k.kernel_size[0] // 2,) * 4 for k in all_convs]
    assert all(c.padding == (0, 0) for c in all_convs)
    norms = [m for m in model.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 3 + 2 * 3 + 2 and all(n.affine for n in norms)


def test_residual_block_is_identity_when_its_last_norm_outputs_zero() -> None:
    block = build_reconet("tiny").encoder.res1
    with torch.no_grad():
        block.norm2.weight.zero_()
        block.norm2.bias.zero_()
    x = torch.randn(2, 96, 5, 7)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


@pytest.mark.parametrize("size", [(5, 5), (7, 13), (37, 23), (32, 48), (6, 9)])
def test_any_size_keeps_its_shape_and_range(size: tuple[int, int]) -> None:
    model = build_reconet("tiny")
    x = torch.rand(2, 3, *size)
    result = model(x)
    assert isinstance(result, ReCoNetOutput)
    assert result.output.shape == x.shape
    assert result.features.shape == (2, 96, math.ceil(size[0] / 4), math.ceil(size[1] / 4))
    assert result.output.dtype == torch.float32
    assert 0.0 <= result.output.min() and result.output.max() <= 1.0


def test_odd_size_equals_network_on_reflect_padded_input_cropped() -> None:
    # Known answer for the padding convention: bottom/right reflection to a multiple of 4,
    # padded independently with numpy here.
    model = build_reconet("tiny").eval()
    x = torch.rand(1, 3, 13, 18)
    padded = torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0), (0, 3), (0, 2)), mode="reflect"))
    with torch.no_grad():
        odd = model(x)
        reference = model(padded)
    torch.testing.assert_close(odd.output, reference.output[..., :13, :18], rtol=0, atol=1e-6)
    torch.testing.assert_close(odd.features, reference.features, rtol=0, atol=1e-6)


def test_output_depends_on_input_and_is_not_constant() -> None:
    model = build_reconet("tiny")
    a = model(torch.rand(1, 3, 16, 16)).output
    b = model(torch.rand(1, 3, 16, 16)).output
    assert (a - b).abs().max() > 1e-3
    assert a.std() > 1e-4


def test_input_tensor_is_not_modified() -> None:
    model = build_reconet("tiny")
    x = torch.rand(1, 3, 11, 10)
    before = x.clone()
    model(x)
    assert torch.equal(x, before)


@pytest.mark.parametrize(
    "shape",
    [(3, 16, 16), (1, 1, 16, 16), (1, 4, 16, 16), (1, 3, 4, 16), (1, 3, 16, 3), (2, 3, 16, 16, 1)],
)
def test_bad_shapes_raise_value_error_naming_the_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        build_reconet("tiny")(torch.rand(shape))


def test_integer_input_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"dtype torch.uint8"):
        build_reconet("tiny")(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_channels_last_gives_the_same_output() -> None:
    model = build_reconet("tiny").eval()
    x = torch.rand(2, 3, 20, 28)
    with torch.no_grad():
        reference = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        result = model_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(result.output, reference.output, rtol=0, atol=1e-5)
    torch.testing.assert_close(result.features, reference.features, rtol=0, atol=1e-4)


def test_config_is_json_and_rebuilds_the_same_network() -> None:
    model = build_reconet("small", num_residual_blocks=2, norm="batch").eval()
    config = json.loads(json.dumps(model.config))
    assert config == {"channels": [32, 64, 128], "num_residual_blocks": 2, "norm": "batch"}
    rebuilt = ReCoNet(**config)
    rebuilt.load_state_dict(model.state_dict())  # strict: same keys and shapes
    rebuilt.eval()
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x).output, model(x).output, rtol=0, atol=0)


def test_presets_and_overrides() -> None:
    assert set(PRESETS) == {"paper", "small", "tiny", "fast"}
    assert build_reconet().config == ReCoNet().config  # paper is the default
    assert build_reconet("tiny", channels=(8, 16, 32)).config["channels"] == [8, 16, 32]
    with pytest.raises(ValueError, match="fast.*paper.*small.*tiny"):
        build_reconet("huge")


def test_norm_registry() -> None:
    batch = build_reconet("tiny", norm="batch")
    assert any(isinstance(m, nn.BatchNorm2d) for m in batch.modules())
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in batch.modules())
    plain = build_reconet("tiny", norm="none")
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in plain.modules())
    assert plain(torch.rand(1, 3, 8, 8)).output.shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        ReCoNet(norm="group")


@pytest.mark.parametrize("kwargs", [{"channels": (8, 16)}, {"channels": (8, 16, 0)}, {"num_residual_blocks": -1}])
def test_bad_constructor_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ReCoNet(**kwargs)


def test_every_parameter_receives_a_gradient() -> None:
    model = build_reconet("tiny")
    result = model(torch.rand(2, 3, 12, 12))
    (result.output.mean() + result.features.mean()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_presets_are_the_model_configs():
    """One source: reconet.models.PRESETS is read from reconet/conf/model/*.yaml."""
    import yaml

    folder = Path(__file__).resolve().parents[2] / "reconet" / "conf" / "model"
    configs = {path.stem: yaml.safe_load(path.read_text()) for path in folder.glob("*.yaml")}
    assert set(PRESETS) == set(configs) == {"paper", "small", "tiny", "fast"}
    for name, config in configs.items():
        model = build_reconet(name)
        assert model.config["channels"] == list(config["channels"])
        assert model.config["num_residual_blocks"] == config["num_residual_blocks"]
        assert model.encoder.conv1.conv.kernel_size[0] == config.get("outer_kernel", 9)
    # the paper's network has ~3.1 M parameters (docs/training.md)
    assert 3.0e6 < sum(p.numel() for p in build_reconet("paper").parameters()) < 3.2e6
