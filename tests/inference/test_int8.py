"""Int8 inference (reconet.inference.quantize): calibrated on real frames, the RGB layers and the
norms in higher precision, PSNR >= 38 dB against fp32 on frames it was not calibrated on; the
--precision int8 path, and auto's int8 candidate, measured and cached."""

from __future__ import annotations

import glob
import os

import pytest
import torch
import torch.nn.functional as F
from conftest import force_native_bf16, require_int8

from reconet.image import load_image
from reconet.inference.precision import psnr
from reconet.inference.quantize import INT8_MIN_PSNR, Int8Network, calibration_frames, int8_unavailable, quantize_int8
from reconet.inference.stylizer import TorchStylizer, load
from reconet.models.artifact import load_stylizer
from reconet.models.pretrained import pretrained_path
from reconet.resources import asset_path

SIZE = (96, 160)  # (H, W): small enough for the suite, large enough for the networks' statistics


def photos(names: list[str]) -> torch.Tensor:
    """Bundled photos resized to SIZE: (N, 3, H, W)."""
    images = [load_image(os.path.join(asset_path("photos"), name))[None] for name in names]
    return torch.cat([F.interpolate(i, size=SIZE, mode="bilinear", antialias=True).clamp(0, 1) for i in images])


def test_calibration_uses_the_frames_and_bundled_photos_at_the_frame_size():
    frames = torch.rand(2, 3, 37, 53)
    inputs = calibration_frames(frames, photos=3)
    assert len(inputs) == 5 and all(x.shape == (1, 3, 37, 53) for x in inputs)
    assert torch.equal(inputs[0][0], frames[0]) and torch.equal(inputs[1][0], frames[1])
    assert all(0 <= float(x.min()) and float(x.max()) <= 1 for x in inputs)
    assert len(glob.glob(os.path.join(asset_path("photos"), "*.jpg"))) >= 3


def test_int8_is_for_the_cpu_and_names_its_extra(monkeypatch):
    assert "CPU" in int8_unavailable(torch.device("cuda"))
    import builtins

    real_import = builtins.__import__

    def no_torchao(name, *args, **kwargs):
        if name.startswith("torchao"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchao)
    assert int8_unavailable(torch.device("cpu")) == "int8 needs torchao: pip install 'reconet[int8]'"
    with pytest.raises(ValueError, match=r"pip install 'reconet\[int8\]'"):
        TorchStylizer(load_stylizer(pretrained_path("candy"))[0], device="cpu", precision="int8")


@pytest.mark.slow  # quantizes and compiles the bundled candy network
def test_int8_candy_meets_the_parity_bar_on_photos_it_was_not_calibrated_on():
    require_int8()
    model, _ = load_stylizer(pretrained_path("candy"))
    model.eval()
    calibration = photos(["kodak_kodim01.jpg"])
    network = quantize_int8(model, calibration_frames(calibration))
    assert isinstance(network, Int8Network)
    unseen = photos(["kodak_kodim09.jpg", "kodak_kodim23.jpg"])  # not among the calibration photos
    with torch.no_grad():
        expected = model(unseen).output
    got = network(unseen)
    assert got.shape == expected.shape and got.dtype == torch.float32
    for reference, output in zip(expected, got):
        assert psnr(reference, output) >= INT8_MIN_PSNR
    # the convolutions in between really are int8: the result is not the float network's
    assert psnr(expected[0], got[0]) < 80
    odd = torch.rand(1, 3, 50, 70)  # another size runs the (uncompiled) quantized graph
    assert network(odd).shape == (1, 3, 50, 70)


@pytest.mark.slow
def test_precision_int8_stylizes_batches_and_says_so():
    require_int8()
    stylizer = load(pretrained_path("candy"), device="cpu", precision="int8")
    frames = photos(["kodak_kodim03.jpg", "kodak_kodim05.jpg"])
    out = stylizer(frames)
    assert out.shape == frames.shape and "int8" in str(stylizer.info) and "compiled" in str(stylizer.info)
    reference = load(pretrained_path("candy"), device="cpu", precision="fp32")(frames)
    assert min(psnr(r, o) for r, o in zip(reference, out)) >= INT8_MIN_PSNR
    with pytest.raises(ValueError, match="fp32 only"):
        load(pretrained_path("candy"), device="cpu", precision="int8", backend="onnx")


@pytest.mark.slow
def test_auto_measures_int8_against_the_compiled_float_choice_and_caches_it(monkeypatch):
    require_int8()
    monkeypatch.setenv("RECONET_NATIVE_INT8", "1")
    frames = photos(["kodak_kodim03.jpg"])
    first = load(pretrained_path("candy"), device="cpu", precision="auto", compile=True, expected_frames=100)
    first(frames)
    choice = first.precision_choice
    assert choice.how == "measured" and set(choice.measurements) >= {"fp32", "int8"}
    assert choice.name in choice.measurements and choice.measurements[choice.name].passed
    assert choice.measurements["int8"].parity >= INT8_MIN_PSNR  # the real network on a real photo passes
    second = load(pretrained_path("candy"), device="cpu", precision="auto", compile=True, expected_frames=100)
    second(frames)
    assert second.precision_choice.how == "cached" and second.precision_choice.name == choice.name
    assert ("int8" in str(second.info)) == (choice.name == "int8")


def test_auto_never_considers_int8_without_int8_units_or_compiling(monkeypatch):
    model, _ = load_stylizer(pretrained_path("candy"))
    monkeypatch.setenv("RECONET_NATIVE_INT8", "0")
    assert TorchStylizer(model, device="cpu", precision="auto", compile=True)._int8 is None
    monkeypatch.setenv("RECONET_NATIVE_INT8", "1")
    assert TorchStylizer(model, device="cpu", precision="auto", compile=False)._int8 is None
    if int8_unavailable(torch.device("cpu")) is None:
        assert TorchStylizer(model, device="cpu", precision="auto", compile=True)._int8 == "auto"


def test_a_failing_compiler_leaves_auto_and_int8_working_with_a_warning(monkeypatch):
    """auto for a compiled job measures compiled candidates; when compiling fails it warns and
    runs the eager float choice. An int8 network whose compile fails runs its quantized graph."""
    import reconet.inference.stylizer as st

    def broken_compile(module):
        def run(x):
            raise RuntimeError("no C compiler")

        return run

    monkeypatch.setattr(st, "_compile", broken_compile)
    force_native_bf16(monkeypatch, True)  # auto has a choice to make on every machine
    model, _ = load_stylizer(pretrained_path("candy"))
    frames = photos(["kodak_kodim03.jpg"])
    stylizer = TorchStylizer(model, device="cpu", precision="auto", compile=True)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        out = stylizer(frames)
    assert out.shape == frames.shape and not stylizer.info.compiled
    reference = TorchStylizer(model, device="cpu", precision="fp32")(frames)
    assert psnr(reference, out) >= 45  # fp32 or bf16 (eager auto), never a broken result
    assert "int8" not in str(stylizer.info)


@pytest.mark.slow
def test_an_int8_network_whose_compile_fails_runs_uncompiled(monkeypatch):
    require_int8()

    def broken(*args, **kwargs):
        def run(x):
            raise RuntimeError("no C compiler")

        return run

    model, _ = load_stylizer(pretrained_path("candy"))
    frames = photos(["kodak_kodim03.jpg"])
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match="running it uncompiled"):
        network = quantize_int8(model, calibration_frames(frames))
    with torch.no_grad():
        assert psnr(model(frames).output, network(frames)) >= INT8_MIN_PSNR
