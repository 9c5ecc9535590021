"""Precision chosen at run time (auto/fp32/bf16/fp16), the fp32 islands, and bf16 parity of the
trained bundled models on real photos: runs on any CPU (bf16 is emulated, slowly, where the
hardware lacks it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import force_native_bf16
from torch import nn

from reconet.image import load_image, tensor_to_uint8
import reconet.inference.stylizer as stylizer_module
from reconet.inference.precision import (
    AUTO_MIN_PSNR,
    PRECISIONS,
    Float32Island,
    auto_candidates,
    precision_key,
    resolve_precision,
    to_precision,
)
from reconet.inference.stylizer import load
from reconet.models import build_reconet
from reconet.tuning import TuningCache

ASSETS = Path(__file__).resolve().parents[2] / "reconet" / "assets"
# the six single-style models, and the bundled multi-style network in two of its styles
MODELS = sorted(p for p in (ASSETS / "models").glob("*.pt") if p.stem != "multistyle")
CASES = [(path, None) for path in MODELS] + [(ASSETS / "models" / "multistyle.pt", s) for s in ("starry_night", "wave")]
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    ("native", "candidates"), [(True, (torch.float32, torch.bfloat16)), (False, (torch.float32,))]
)
def test_auto_considers_bf16_only_on_a_cpu_with_native_bf16(monkeypatch, native, candidates):
    force_native_bf16(monkeypatch, native)
    assert auto_candidates(CPU) == candidates
    assert resolve_precision("auto", CPU) == torch.float32  # the reference; bf16 is measured
    assert resolve_precision("auto", CUDA) == torch.float16  # no GPU needed to decide
    assert resolve_precision("fp32", CPU) == torch.float32
    assert resolve_precision("bf16", CPU) == torch.bfloat16  # asked for: honoured, even emulated


def test_unknown_precision_and_fp16_on_the_cpu_are_refused():
    with pytest.raises(ValueError, match="auto, fp32, bf16 or fp16"):
        resolve_precision("int8", CPU)
    with pytest.raises(ValueError, match="fp16 is for CUDA"):
        resolve_precision("fp16", CPU)
    assert resolve_precision("fp16", CUDA) == torch.float16


def test_islands_keep_norms_and_the_output_layer_in_fp32_and_leave_the_model_alone():
    model = build_reconet("tiny").eval()
    low = to_precision(model, torch.bfloat16)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # a copy, not a conversion
    islands = [m for m in low.modules() if isinstance(m, Float32Island)]
    norms = [m for m in model.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(islands) == len(norms) + 1  # every norm + the output convolution
    assert low.decoder.output.module.conv.weight.dtype == torch.float32
    assert low.encoder.conv1.conv.weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for island in islands for p in island.parameters())
    x = torch.rand(1, 3, 20, 28)
    with torch.inference_mode():
        out = low(x.to(torch.bfloat16)).output
    assert out.dtype == torch.float32 and out.shape == (1, 3, 20, 28)
    assert to_precision(model, torch.float32) is model


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    frames = [load_image(ASSETS / "photos" / name)[None] for name in ("kodak_kodim23.jpg", "skimage_chelsea.jpg")]
    return torch.cat([F.interpolate(f, size=(96, 144), mode="area") for f in frames])  # (2, 3, 96, 144)


@pytest.mark.parametrize(("model", "style"), CASES, ids=[p.stem + (f"-{s}" if s else "") for p, s in CASES])
def test_bf16_matches_fp32_on_trained_models_and_real_photos(model: Path, style: str | None, photos: torch.Tensor):
    """The issue's parity bar: >= 45 dB PSNR and at most 4/255 on the 8-bit output."""
    assert len(MODELS) >= 6
    fp32 = load(model, device="cpu", precision="fp32", threads=1, style=style)
    bf16 = load(model, device="cpu", precision="bf16", threads=1, style=style)
    assert bf16.info.dtype == "bfloat16" and bf16.info.channels_last and not bf16.info.accelerated
    reference, low = fp32(photos), bf16(photos)
    assert low.dtype == torch.float32 and low.shape == reference.shape
    for a, b in zip(reference, low):
        a8, b8 = tensor_to_uint8(a), tensor_to_uint8(b)
        assert _psnr(a8, b8) >= 45.0
        assert int(np.abs(a8.astype(np.int16) - b8.astype(np.int16)).max()) <= 4
    # and bf16 is not secretly fp32: the outputs differ somewhere
    assert not torch.equal(reference, low)


def test_fp16_on_the_cpu_is_refused_by_load():
    with pytest.raises(ValueError, match="fp16 is for CUDA"):
        load(MODELS[0], device="cpu", precision="fp16")


def test_the_old_half_switch_still_means_fp16_or_fp32():
    fp32 = load(MODELS[0], device="cpu", half=False, precision="bf16")
    assert fp32.info.dtype == "float32"


def test_low_precision_with_the_onnx_backend_is_refused_not_ignored(tmp_path: Path):
    with pytest.raises(ValueError, match="onnx backend runs fp32 only"):
        load(MODELS[0], device="cpu", backend="onnx", precision="bf16")
    with pytest.raises(ValueError, match="onnx backend runs fp32 only"):
        load(tmp_path / "model.onnx", precision="bf16")


# -- auto by measurement ---------------------------------------------------------------------


def _key(model_path: Path, shape: tuple[int, ...]) -> str:
    from reconet.models.artifact import load_stylizer

    model, _ = load_stylizer(model_path, map_location="cpu")
    return precision_key(model.eval(), shape)


def test_auto_on_a_native_bf16_cpu_measures_both_on_the_first_frames_and_caches(monkeypatch, photos):
    force_native_bf16(monkeypatch, True)
    auto = load(MODELS[0], device="cpu")
    assert auto.info.dtype == "auto: float32 or bfloat16" and auto.warmup_calls >= 1
    out = auto(photos)
    choice = auto.precision_choice
    assert choice is not None and choice.how == "measured" and set(choice.measurements) == {"fp32", "bf16"}
    assert choice.measurements["bf16"].parity >= AUTO_MIN_PSNR and choice.measurements["bf16"].passed
    assert all(m.seconds > 0 for m in choice.measurements.values())
    assert auto.info.dtype == {"fp32": "float32", "bf16": "bfloat16"}[choice.name] + " (auto, measured)"
    explicit = load(MODELS[0], device="cpu", precision=choice.name)
    torch.testing.assert_close(out, explicit(photos), rtol=0, atol=1e-4)  # what the winner gives
    again = load(MODELS[0], device="cpu")
    again(photos)
    assert again.precision_choice.how == "cached" and again.precision_choice.name == choice.name


@pytest.mark.parametrize("cached", ["fp32", "bf16"])
def test_auto_runs_the_cached_choice_exactly(monkeypatch, photos, cached):
    force_native_bf16(monkeypatch, True)
    TuningCache.default().put(_key(MODELS[0], tuple(photos.shape)), cached)
    auto = load(MODELS[0], device="cpu")
    out = auto(photos)
    assert auto.precision_choice.how == "cached" and auto.dtype == PRECISIONS[cached]
    tolerance = 1e-4 if cached == "fp32" else 0  # tuned fp32 kernels: Winograd rounding
    torch.testing.assert_close(out, load(MODELS[0], device="cpu", precision=cached)(photos), rtol=0, atol=tolerance)
    if cached == "bf16":
        assert auto.info.channels_last and not auto.info.accelerated
    else:
        assert auto.info.accelerated


def test_auto_keeps_fp32_when_bf16_misses_the_parity_bar(monkeypatch, photos):
    force_native_bf16(monkeypatch, True)
    monkeypatch.setattr(stylizer_module, "AUTO_MIN_PSNR", 200.0)  # no bf16 result can pass this
    auto = load(MODELS[0], device="cpu")
    auto(photos)
    assert auto.precision_choice.name == "fp32" and not auto.precision_choice.measurements["bf16"].passed
    assert auto.dtype == torch.float32


def test_a_single_photo_never_times_precisions(monkeypatch, photos):
    force_native_bf16(monkeypatch, True)
    single = load(MODELS[0], device="cpu", expected_frames=1)
    out = single(photos[:1])
    assert single.precision_choice.how == "not measured" and single.dtype == torch.float32
    assert TuningCache.default().get(_key(MODELS[0], (1, 3, 96, 144))) is None
    torch.testing.assert_close(out, load(MODELS[0], device="cpu", precision="fp32", accelerate=False)(photos[:1]), rtol=0, atol=1e-4)


def test_auto_without_native_bf16_is_fp32_and_measures_nothing(monkeypatch, photos):
    force_native_bf16(monkeypatch, False)
    auto = load(MODELS[0], device="cpu")
    assert auto.info.dtype == "float32" and auto.dtype == torch.float32
    auto(photos)
    assert auto.precision_choice is None and auto.dtype == torch.float32


def test_a_multi_style_network_keeps_its_conditional_norms_in_fp32_islands():
    torch.manual_seed(0)
    multi = build_reconet("tiny", num_styles=3).eval()
    low = to_precision(multi, torch.bfloat16)
    islands = [m for m in low.modules() if isinstance(m, Float32Island)]
    assert len(islands) == 11 + 1 and all(p.dtype == torch.float32 for i in islands for p in i.parameters())
    x = torch.rand(3, 3, 24, 32)
    with torch.inference_mode():
        reference = multi(x, style=torch.eye(3)).output
        out = low(x.to(torch.bfloat16), style=torch.eye(3)).output
    assert out.dtype == torch.float32 and float((out - reference).abs().max()) < 4 / 255
