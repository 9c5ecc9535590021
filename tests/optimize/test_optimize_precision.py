"""The loss network of the optimization in bf16: auto measured where bf16 is native, fp16 refused, the
resume fingerprint names it, and the terms and gradient match fp32 (losses and image stay fp32)."""

from __future__ import annotations

import pytest
import torch
from conftest import force_native_bf16

from reconet.image import load_image
from reconet.models.loss_network import build_loss_network
from reconet.optimize.config import OptimizeConfig
from reconet.optimize.objective import GatysObjective, auto_optimize_candidates, resolve_optimize_precision
from reconet.optimize.sequence import VideoOptimizer


@pytest.mark.parametrize(
    ("device", "cuda_bf16", "native", "expected"),
    [
        ("cpu", False, True, (torch.float32, torch.bfloat16)),  # a choice: measured on the first frame
        ("cpu", False, False, (torch.float32,)),
        ("cuda", True, False, (torch.bfloat16,)),
        ("cuda", False, True, (torch.float32,)),
    ],
)
def test_auto_considers_bf16_only_where_it_is_native(monkeypatch, device, cuda_bf16, native, expected):
    force_native_bf16(monkeypatch, native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: device == "cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: cuda_bf16)
    assert auto_optimize_candidates(torch.device(device)) == expected
    assert resolve_optimize_precision("auto", torch.device(device)) == expected[0]
    assert resolve_optimize_precision("fp32", torch.device(device)) == torch.float32
    assert resolve_optimize_precision("bf16", torch.device(device)) == torch.bfloat16


@pytest.mark.parametrize("native", [True, False])
def test_auto_measures_on_the_first_frame_only_where_bf16_is_native(monkeypatch, native):
    force_native_bf16(monkeypatch, native)
    style, frame = torch.rand(3, 32, 32), torch.rand(3, 40, 48)
    network = build_loss_network("vgg19", layers=OptimizeConfig().layers, weights="random")
    optimizer = VideoOptimizer(style, loss_network=network, flow_estimator=object(), precision="auto")
    assert optimizer.dtype == torch.float32  # the reference until measured
    fingerprint = optimizer.fingerprint(frame)
    choice = optimizer.precision_choice
    if not native:
        assert choice is None and optimizer.dtype == torch.float32 and "precision" not in fingerprint
        return
    assert choice.how == "measured" and set(choice.measurements) == {"fp32", "bf16"}
    assert choice.measurements["bf16"].passed  # gradient cosine >= 0.95, loss within 2 %
    assert optimizer.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[choice.name]
    assert fingerprint.get("precision") == (None if choice.name == "fp32" else "bfloat16")
    again = VideoOptimizer(style, loss_network=network, flow_estimator=object(), precision="auto")
    assert again.fingerprint(frame) == fingerprint and again.precision_choice.how == "cached"


def test_fp16_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="no loss scaling"):
        resolve_optimize_precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="must be fp32, bf16, auto, got 'half'"):
        resolve_optimize_precision("half", torch.device("cpu"))


def test_the_fingerprint_names_a_low_precision_and_leaves_fp32_as_it_was():
    style = torch.rand(3, 32, 32)
    frame = torch.rand(3, 32, 32)
    network = build_loss_network("vgg19", layers=OptimizeConfig().layers, weights="random")
    fp32 = VideoOptimizer(style, loss_network=network, flow_estimator=object()).fingerprint(frame)
    bf16 = VideoOptimizer(style, loss_network=network, flow_estimator=object(), precision="bf16").fingerprint(frame)
    assert "precision" not in fp32  # work directories from before still resume
    assert bf16["precision"] == "bfloat16" and {k: v for k, v in bf16.items() if k != "precision"} == fp32


def test_in_bf16_the_terms_and_the_gradient_match_fp32(sintel_root, styles_dir):
    """One evaluation on a noisy start with every term active, the bundled VGG-19, real frames.

    Measured: style 1.0 %, content 0.4 %, feature temporal 0.14 % from fp32, the pixel temporal
    term exact (it sees no VGG); gradient cosine 0.998. Whole optimizations (docs/optimize.md):
    80 L-BFGS iterations at 128x96 ended 0.3 % from the fp32 run's loss, 100 at 256x109 0.7 %.
    """
    config = OptimizeConfig()
    network = build_loss_network("vgg19", layers=config.layers)
    scene = sintel_root / "training" / "clean" / "alley_1"
    frame = load_image(scene / "frame_0002.png")[None, :, 150:246, 400:528]  # (1, 3, 96, 128)
    previous = load_image(scene / "frame_0001.png")[None, :, 150:246, 400:528]
    style = load_image(styles_dir / "candy.jpg")
    size = tuple(frame.shape[-2:])
    image = (frame + 0.1 * torch.randn(frame.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    mask = torch.ones(1, 1, *size)
    terms, gradients = {}, {}
    for dtype in (torch.float32, torch.bfloat16):
        objective = GatysObjective(network, style, config, size, dtype)
        x = image.clone().requires_grad_(True)
        terms[dtype] = objective(x, objective.targets(frame, previous, mask))
        terms[dtype]["total"].backward()
        gradients[dtype] = x.grad.flatten()
    reference, low = terms[torch.float32], terms[torch.bfloat16]
    assert all(value.dtype == torch.float32 for value in low.values())
    for name in ("content", "style", "temporal", "temporal_feature", "total"):
        assert reference[name] > 0, name
        assert low[name].item() == pytest.approx(reference[name].item(), rel=0.02), name
    assert low["temporal"].item() == pytest.approx(reference["temporal"].item(), rel=1e-6)
    assert torch.nn.functional.cosine_similarity(gradients[torch.bfloat16], gradients[torch.float32], dim=0) > 0.99
