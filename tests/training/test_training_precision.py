"""trainer.precision: ``auto`` measured where the hardware gives a choice, and a bf16-mixed run
that trains like an fp32 one (the losses stay fp32: tests/losses/test_reconet_objective.py)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import compose_train, force_native_bf16, shrunk_training
from omegaconf import OmegaConf

import reconet.training.train as training
from reconet.inference.stylizer import load
from reconet.training.precision import auto_training_candidates
from reconet.training.train import RESOLVED_CONFIG_NAME, resolve_trainer_precision, train
from reconet.tuning import Choice


@pytest.mark.parametrize(
    ("accelerator", "cuda", "cuda_bf16", "native", "expected"),
    [
        ("cpu", False, False, True, ("32-true", "bf16-mixed")),  # AMX-BF16 / AVX512-BF16: measured
        ("cpu", False, False, False, ("32-true",)),  # emulated bf16 is slower than fp32
        ("auto", False, False, True, ("32-true", "bf16-mixed")),
        ("auto", False, False, False, ("32-true",)),
        ("auto", True, True, False, ("bf16-mixed",)),  # Ampere and newer
        ("gpu", True, False, True, ("16-mixed",)),  # older GPUs: fp16 with a gradient scaler
        ("cuda", True, True, False, ("bf16-mixed",)),
        ("mps", False, False, True, ("32-true",)),
    ],
)
def test_auto_candidates_follow_the_hardware(monkeypatch, accelerator, cuda, cuda_bf16, native, expected):
    force_native_bf16(monkeypatch, native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: cuda_bf16)
    assert auto_training_candidates(accelerator) == expected
    measured: list[tuple[str, ...]] = []

    def measure(candidates):
        measured.append(candidates)
        return Choice(candidates[-1], "measured")

    # a choice is measured only where there is one to make
    assert resolve_trainer_precision("auto", accelerator, measure) == expected[-1]
    assert measured == ([expected] if len(expected) > 1 else [])
    assert resolve_trainer_precision("auto", accelerator) == expected[0]  # nothing to measure with


@pytest.mark.parametrize("explicit", ["32-true", "bf16-mixed", "16-mixed", "64-true"])
def test_an_explicit_precision_is_passed_to_lightning_unchanged(explicit):
    assert resolve_trainer_precision(explicit, "cpu", lambda candidates: pytest.fail("measured")) == explicit


def test_the_default_is_auto_and_the_run_records_what_auto_measured(tmp_path, monkeypatch):
    assert compose_train("output_dir=unused").trainer.precision == "auto"
    force_native_bf16(monkeypatch, True)
    calls = []
    real = training.choose_training_precision
    monkeypatch.setattr(training, "choose_training_precision", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    overrides = shrunk_training("debug=fdr", "trainer.precision=auto")
    torch.manual_seed(0)
    run = training.prepare(compose_train(*overrides, f"output_dir={tmp_path / 'a'}"))
    after_measuring = torch.rand(4)
    assert calls == [("32-true", "bf16-mixed")]
    chosen = run.trainer.precision
    assert chosen in ("32-true", "bf16-mixed")
    assert OmegaConf.load(tmp_path / "a" / RESOLVED_CONFIG_NAME).trainer.precision == chosen
    again = training.prepare(compose_train(*overrides, f"output_dir={tmp_path / 'b'}"))
    assert again.trainer.precision == chosen  # from the cache: the same machine and recipe
    # measuring drew no random numbers: the run continues as an explicitly set one would
    torch.manual_seed(0)
    training.prepare(compose_train(*shrunk_training("debug=fdr", "trainer.precision=32-true"), f"output_dir={tmp_path / 'c'}"))
    assert torch.equal(torch.rand(4), after_measuring)


def test_auto_without_native_bf16_trains_in_fp32_without_measuring(tmp_path, monkeypatch):
    force_native_bf16(monkeypatch, False)
    monkeypatch.setattr(training, "choose_training_precision", lambda *a, **k: pytest.fail("measured"))
    run = training.prepare(compose_train(*shrunk_training(f"output_dir={tmp_path}", "debug=fdr", "trainer.precision=auto")))
    assert run.trainer.precision == "32-true"


def test_the_measurement_is_one_real_training_step_in_each_precision(monkeypatch):
    """bf16-mixed on the tiny network meets the gradient parity bar against fp32 (the losses
    stay fp32), and the step leaves no gradients behind."""
    from reconet.training.precision import choose_training_precision

    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1))
    batch = {"frame1": torch.rand(2, 3, 32, 32)}
    step = lambda b: (network(b["frame1"]).float() - b["frame1"]).square().mean()  # noqa: E731
    choice = choose_training_precision(("32-true", "bf16-mixed"), step, network, batch, "key", None)
    assert choice.how == "measured" and choice.measurements["bf16-mixed"].passed
    assert choice.measurements["bf16-mixed"].parity > 0.99  # gradient cosine
    assert all(p.grad is None for p in network.parameters())


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
