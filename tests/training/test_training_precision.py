"""trainer.precision: ``auto`` chosen from the hardware, and a bf16-mixed run that trains like
an fp32 one (the losses stay fp32: tests/losses/test_reconet_objective.py)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import compose_train, shrunk_training
from omegaconf import OmegaConf

import reconet.inference.precision as precision_module
import reconet.training.train as training
from reconet.inference.stylizer import load
from reconet.training.train import RESOLVED_CONFIG_NAME, resolve_trainer_precision, train


@pytest.mark.parametrize(
    ("accelerator", "cuda", "cuda_bf16", "native_bf16", "expected"),
    [
        ("cpu", False, False, True, "bf16-mixed"),  # AMX-BF16 / AVX512-BF16
        ("cpu", False, False, False, "32-true"),  # emulated bf16 is slower than fp32
        ("auto", False, False, True, "bf16-mixed"),
        ("auto", False, False, False, "32-true"),
        ("auto", True, True, False, "bf16-mixed"),  # Ampere and newer
        ("gpu", True, False, True, "16-mixed"),  # older GPUs: fp16 with a gradient scaler
        ("cuda", True, True, False, "bf16-mixed"),
        ("mps", False, False, True, "32-true"),
    ],
)
def test_auto_precision_follows_the_hardware(monkeypatch, accelerator, cuda, cuda_bf16, native_bf16, expected):
    monkeypatch.setattr(precision_module, "native_bf16_cpu", lambda: native_bf16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: cuda_bf16)
    assert resolve_trainer_precision("auto", accelerator) == expected


@pytest.mark.parametrize("explicit", ["32-true", "bf16-mixed", "16-mixed", "64-true"])
def test_an_explicit_precision_is_passed_to_lightning_unchanged(explicit):
    assert resolve_trainer_precision(explicit, "cpu") == explicit


def test_the_default_is_auto_and_the_run_records_what_auto_chose(tmp_path, monkeypatch):
    assert compose_train("output_dir=unused").trainer.precision == "auto"
    monkeypatch.setattr(precision_module, "native_bf16_cpu", lambda: True)
    cfg = compose_train(*shrunk_training(f"output_dir={tmp_path}", "debug=fdr", "trainer.precision=auto"))
    run = training.prepare(cfg)
    assert run.trainer.precision == "bf16-mixed"
    assert OmegaConf.load(tmp_path / RESOLVED_CONFIG_NAME).trainer.precision == "bf16-mixed"


@pytest.mark.slow  # two short training runs with the bundled VGG-19
@pytest.mark.usefixtures("one_thread")
def test_bf16_mixed_training_matches_fp32_at_step_one_and_exports_an_fp32_stylizer(tmp_path):
    """Same seed, same batch: the first step's loss agrees with fp32 (the networks ran in bf16,
    the losses in fp32), the weights Lightning keeps are fp32, and the exported stylizer runs."""
    metrics = {}
    for precision in ("32-true", "bf16-mixed"):
        out = tmp_path / precision
        metrics[precision], run = train(
            compose_train(
                *shrunk_training(
                    f"output_dir={out}", "debug=fdr", f"trainer.precision={precision}", "loss=vgg19", "loss.network.weights=auto", size=96
                )
            )
        )
        assert all(p.dtype == torch.float32 for p in run.module.network.parameters())
    reference, mixed = metrics["32-true"], metrics["bf16-mixed"]
    for name in ("train/content", "train/style", "train/tv", "train/temporal_feature", "train/temporal_output", "train/total"):
        assert math.isfinite(mixed[name]), name
        assert mixed[name] == pytest.approx(reference[name], rel=0.02), name
    stylizer = load(tmp_path / "bf16-mixed" / "stylizer.pt", device="cpu", precision="fp32", accelerate=False)
    stylized = stylizer(torch.rand(1, 3, 64, 64))
    assert stylized.dtype == torch.float32 and stylized.shape == (1, 3, 64, 64) and torch.isfinite(stylized).all()
