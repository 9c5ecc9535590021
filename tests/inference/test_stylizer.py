"""Stylizer backends, tiling and export parity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from reconet.inference import stylizer as st
from reconet.inference.export import export_model
from reconet.models import build_reconet, load_stylizer, save_artifact


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Two shared cores: OpenMP threads that wait on each other under load are far slower
    # than one thread. Restored afterwards (the CLI's --threads sets it process-wide).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_reconet("tiny").eval()


def reference(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).output


def test_torch_stylizer_on_cpu_is_the_model(tiny: torch.nn.Module) -> None:
    x = torch.rand(2, 3, 37, 53)  # odd sizes: the model pads and crops
    runner = st.TorchStylizer(tiny, device="cpu")
    y = runner(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    torch.testing.assert_close(y, reference(tiny, x), rtol=0, atol=1e-6)
    assert runner.info.device == "cpu" and runner.info.dtype == "float32"


def test_channels_last_gives_the_same_result(tiny: torch.nn.Module) -> None:
    x = torch.rand(1, 3, 33, 47)
    plain = st.TorchStylizer(build_reconet("tiny").eval(), device="cpu")
    plain.model.model.load_state_dict(tiny.state_dict())
    cl = st.TorchStylizer(build_reconet("tiny").eval(), device="cpu", channels_last=True)
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
    runner = st.load(path, device="cpu")
    assert isinstance(runner, st.TorchStylizer) and runner.meta["style"] == "x"
    x = torch.rand(1, 3, 29, 31)
    torch.testing.assert_close(runner(x), reference(tiny, x), rtol=0, atol=1e-6)


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
    pytest.importorskip("onnxruntime")  # optional extra: reconet[onnx]
    out = export_model(tiny, tmp_path / "m.onnx", "onnx")
    runner = st.load(out, device="cpu")
    assert isinstance(runner, st.OnnxStylizer)
    for shape in [(1, 3, 59, 83), (2, 3, 36, 41)]:
        x = torch.rand(shape)
        assert (runner(x) - reference(tiny, x)).abs().max() <= 1e-4


def test_onnx_backend_from_an_artifact(tiny: torch.nn.Module, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    path = save_artifact(tmp_path / "m.pt", tiny, {})
    runner = st.load(path, device="cpu", backend="onnx")
    assert runner.info.backend == "onnxruntime"
    x = torch.rand(1, 3, 45, 39)
    assert (runner(x) - reference(tiny, x)).abs().max() <= 1e-4


def test_export_refuses_to_overwrite(tiny: torch.nn.Module, tmp_path: Path) -> None:
    from reconet.inference.io import OutputError

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
