"""``reconet-export``: files that run with dynamic sizes and match PyTorch, clean failures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import require_onnx

from reconet.cli.export import main
from reconet.cli.stylize import main as stylize_main
from reconet.models import build_reconet, load_stylizer, save_artifact


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # end to end


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_artifact(tmp_path_factory.mktemp("m") / "tiny.pt", build_reconet("tiny"), {})


def test_export_onnx_then_stylize_with_onnxruntime(
    artifact: Path, tmp_path: Path, videos_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    ort = require_onnx()  # optional extra: reconet[onnx]
    out = tmp_path / "tiny.onnx"
    assert main([str(artifact), str(out), "--format", "onnx"]) == 0
    assert "max |exported - PyTorch|" in capsys.readouterr().err
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    model, _ = load_stylizer(artifact)
    x = torch.rand(1, 3, 71, 45)
    (y,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        assert float((torch.from_numpy(y) - model(x).output).abs().max()) <= 1e-4
    video = tmp_path / "out.gif"
    code = stylize_main([str(videos_dir / "imageio_newtonscradle.gif"), str(video), "--model", str(out), "--max-side", "48", "--no-progress"])
    assert code == 0 and video.is_file()
    assert "onnxruntime" in capsys.readouterr().err


def test_export_torchscript(artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.ts"
    assert main([str(artifact), str(out), "--format", "torchscript"]) == 0
    module = torch.jit.load(str(out))
    model, _ = load_stylizer(artifact)
    x = torch.rand(2, 3, 33, 57)
    with torch.no_grad():
        assert float((module(x) - model(x).output).abs().max()) <= 1e-4


def test_export_of_a_non_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    assert main([str(bad), str(tmp_path / "x.onnx"), "--format", "onnx"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reconet-export: error:") and "not a reconet model" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]
