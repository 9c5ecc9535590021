"""Stylizer backends, tiling and export parity."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from conftest import require_onnx

from reconet.inference import stylizer as st
from reconet.inference.export import export_model
from reconet.models import build_reconet, load_stylizer, save_artifact


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_reconet("tiny").eval()


def reference(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).output


def test_torch_stylizer_on_cpu_is_the_model(tiny: torch.nn.Module) -> None:
    x = torch.rand(2, 3, 37, 53)  # odd sizes: the model pads and crops
    plain = st.TorchStylizer(tiny, device="cpu", precision="fp32", accelerate=False)
    y = plain(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    torch.testing.assert_close(y, reference(tiny, x), rtol=0, atol=1e-6)
    assert plain.info.device == "cpu" and plain.info.dtype == "float32"
    # default CPU path: tuned kernels (Winograd/FFT rounding differs, far below 1/255)
    fast = st.TorchStylizer(tiny, device="cpu", precision="fp32")
    assert fast.info.accelerated
    torch.testing.assert_close(fast(x), reference(tiny, x), rtol=0, atol=1e-4)


class FakeCompiled:
    """Stands in for torch.compile: records the batch shapes it is called with."""

    def __init__(self, module: torch.nn.Module, fail: bool = False):
        self.module, self.fail, self.shapes = module, fail, []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail:
            raise RuntimeError("no C compiler")
        self.shapes.append(tuple(x.shape))
        return self.module(x)


def test_compile_starts_after_the_first_batch_and_pads_short_batches(
    tiny: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[FakeCompiled] = []
    monkeypatch.setattr(st, "_compile", lambda module: made.append(FakeCompiled(module)) or made[-1])
    runner = st.TorchStylizer(tiny, device="cpu", precision="fp32", compile=True)
    first, second, last = torch.rand(3, 3, 20, 24), torch.rand(3, 3, 20, 24), torch.rand(2, 3, 20, 24)
    outputs = [runner(b) for b in (first, second, last)]
    assert len(made) == 1
    assert made[0].shapes == [(3, 3, 20, 24), (3, 3, 20, 24)]  # the short batch was padded to 3
    for batch, out in zip((first, second, last), outputs):
        torch.testing.assert_close(out, reference(tiny, batch), rtol=0, atol=1e-4)
    other = torch.rand(1, 3, 28, 20)  # another frame size: runs uncompiled, no recompile
    torch.testing.assert_close(runner(other), reference(tiny, other), rtol=0, atol=1e-4)
    assert made[0].shapes[-1] == (3, 3, 20, 24)


def test_a_failing_compiler_falls_back_with_a_warning(tiny: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(st, "_compile", lambda module: FakeCompiled(module, fail=True))
    runner = st.TorchStylizer(tiny, device="cpu", precision="fp32", compile=True)
    x = torch.rand(1, 3, 16, 16)
    runner(x)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        y = runner(x)
    torch.testing.assert_close(y, reference(tiny, x), rtol=0, atol=1e-4)
    assert not runner.info.compiled


@pytest.mark.slow  # torch.compile: ~30 s
def test_real_compile_of_the_tuned_network(tiny: torch.nn.Module) -> None:
    """inductor keeps the NNPACK custom op as an external kernel and fuses the rest."""
    runner = st.TorchStylizer(tiny, device="cpu", precision="fp32", compile=True)
    x = torch.rand(1, 3, 24, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a compile failure would only warn
        runner(x)
        y = runner(x)
    assert runner.info.compiled
    torch.testing.assert_close(y, reference(tiny, x), rtol=0, atol=1e-4)


def test_channels_last_gives_the_same_result(tiny: torch.nn.Module) -> None:
    x = torch.rand(1, 3, 33, 47)
    plain = st.TorchStylizer(build_reconet("tiny").eval(), device="cpu", precision="fp32")
    plain.model.model.load_state_dict(tiny.state_dict())
    cl = st.TorchStylizer(build_reconet("tiny").eval(), device="cpu", precision="fp32", channels_last=True)
    cl.model.model.load_state_dict(tiny.state_dict())
    torch.testing.assert_close(cl(x), plain(x), rtol=0, atol=1e-5)


def test_stylizer_rejects_bad_batches(tiny: torch.nn.Module) -> None:
    runner = st.TorchStylizer(tiny, device="cpu")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        runner(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="at least 5x5"):
        runner(torch.rand(1, 3, 4, 32))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no CUDA GPU"):
        st.resolve_device("cuda")
    assert st.resolve_device("auto") == torch.device("cpu")


def lively_conv_net() -> torch.nn.Module:
    """ReCoNet without normalization, He-initialized (scaled so the residual stack stays
    bounded), so that its output really varies with the input (std ~0.04 here)."""
    torch.manual_seed(1)
    model = build_reconet("tiny", norm="none").eval()
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            module.weight.data.mul_(0.7)
    return model


def test_tiles_reproduce_a_convolution_only_network_exactly() -> None:
    """Without instance norm the output depends on a 49 px window only; tiles with 64 px of
    context and 4-aligned origins must reproduce the full frame to float rounding."""
    model = lively_conv_net()
    x = torch.rand(1, 3, 150, 203)
    full = reference(model, x)
    tiled = st.stylize_tiled(lambda t: reference(model, t), x, tile=48, context=64)
    assert tiled.shape == full.shape
    torch.testing.assert_close(tiled, full, rtol=0, atol=1e-5)


def test_tiles_with_too_little_context_are_not_exact() -> None:
    """The same check fails without enough context, so the test above can fail."""
    model = lively_conv_net()
    x = torch.rand(1, 3, 150, 203)
    tiled = st.stylize_tiled(lambda t: reference(model, t), x, tile=48, context=8)
    assert (tiled - reference(model, x)).abs().max() > 1e-2


def test_tiles_with_instance_norm_are_an_approximation(tiny: torch.nn.Module) -> None:
    x = torch.rand(1, 3, 120, 160)
    tiled = st.stylize_tiled(lambda t: reference(tiny, t), x, tile=64)
    error = (tiled - reference(tiny, x)).abs()
    assert error.max() > 1e-4  # per-tile statistics differ from the frame's ...
    assert error.mean() < 0.05  # ... but the picture stays close


def test_load_artifact_on_cpu(tiny: torch.nn.Module, tmp_path: Path) -> None:
    path = save_artifact(tmp_path / "m.pt", tiny, {"style": "x"})
    runner = st.load(path, device="cpu", precision="fp32")
    assert isinstance(runner, st.TorchStylizer) and runner.meta["style"] == "x"
    assert not runner.info.compiled  # unknown length: no compile by default
    x = torch.rand(1, 3, 29, 31)
    torch.testing.assert_close(runner(x), reference(tiny, x), rtol=0, atol=1e-4)
    assert st.load(path, device="cpu", precision="fp32", expected_frames=st.COMPILE_MIN_FRAMES).info.compiled


def test_a_single_image_never_times_kernels_a_video_does(tiny: torch.nn.Module, tmp_path: Path) -> None:
    """Timing cannot pay back on one frame (scripts/first_frame.py): a single image uses the
    kernel cache's choices only; a video, or an unknown length (webcam), tunes."""
    from reconet.inference.accelerate import TunedConv2d

    def tunes(runner) -> set[bool]:
        return {m.tune for m in runner.model.modules() if isinstance(m, TunedConv2d)}

    path = save_artifact(tmp_path / "m.pt", tiny, {"style": "x"})
    single = st.load(path, device="cpu", precision="fp32", expected_frames=1)
    assert single.info.accelerated and tunes(single) == {False}
    assert tunes(st.load(path, device="cpu", precision="fp32", expected_frames=st.TUNE_MIN_FRAMES)) == {True}
    assert tunes(st.load(path, device="cpu", precision="fp32")) == {True}  # unknown length
    x = torch.rand(1, 3, 29, 31)
    torch.testing.assert_close(single(x), reference(tiny, x), rtol=0, atol=1e-4)


def test_onnx_file_needs_the_onnx_backend(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="onnx backend"):
        st.load(tmp_path / "m.onnx", backend="torch")


def test_torchscript_export_parity_on_an_odd_frame(tiny: torch.nn.Module, tmp_path: Path) -> None:
    out = export_model(tiny, tmp_path / "m.ts", "torchscript")
    scripted = torch.jit.load(str(out))
    for shape in [(1, 3, 59, 83), (2, 3, 36, 41)]:  # neither is the export example's shape
        x = torch.rand(shape)
        with torch.no_grad():
            diff = (scripted(x) - reference(tiny, x)).abs().max()
        assert diff <= 1e-4


def test_onnx_export_parity_on_an_odd_frame(tiny: torch.nn.Module, tmp_path: Path) -> None:
    require_onnx()  # optional extra: reconet[onnx]
    out = export_model(tiny, tmp_path / "m.onnx", "onnx")
    runner = st.load(out, device="cpu")
    assert isinstance(runner, st.OnnxStylizer)
    for shape in [(1, 3, 59, 83), (2, 3, 36, 41)]:
        x = torch.rand(shape)
        assert (runner(x) - reference(tiny, x)).abs().max() <= 1e-4


def test_onnx_backend_from_an_artifact(tiny: torch.nn.Module, tmp_path: Path) -> None:
    require_onnx()
    path = save_artifact(tmp_path / "m.pt", tiny, {})
    runner = st.load(path, device="cpu", backend="onnx")
    assert runner.info.backend == "onnxruntime"
    x = torch.rand(1, 3, 45, 39)
    assert (runner(x) - reference(tiny, x)).abs().max() <= 1e-4


def test_export_refuses_to_overwrite(tiny: torch.nn.Module, tmp_path: Path) -> None:
    from reconet.media import OutputError

    dest = tmp_path / "m.ts"
    dest.write_bytes(b"keep")
    with pytest.raises(OutputError, match="exists"):
        export_model(tiny, dest, "torchscript")
    assert dest.read_bytes() == b"keep"
    assert [p.name for p in tmp_path.iterdir()] == ["m.ts"]


def test_loaded_model_round_trip_has_no_pickled_objects(tiny: torch.nn.Module, tmp_path: Path) -> None:
    path = save_artifact(tmp_path / "m.pt", tiny, {})
    payload = torch.load(path, weights_only=True)  # would raise if any object needed a GLOBAL
    assert set(payload) == {"format", "version", "model_config", "state_dict", "meta"}
    model, _ = load_stylizer(path)
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(reference(model, x), reference(tiny, x))
