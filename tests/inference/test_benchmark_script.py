"""scripts/benchmark.py runs end to end and counts the work right (no timing assertions)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: real commands, subprocesses or whole runs

ROOT = Path(__file__).resolve().parents[2]


def tiny_gmac(height: int, width: int) -> float:
    """Hand count for the tiny preset (24/48/96, 3 residual blocks), H and W multiples of 4."""
    full, half, quarter = height * width, height * width / 4, height * width / 16
    macs = (
        full * 24 * 3 * 81  # conv1 9x9
        + half * 48 * 24 * 9  # conv2 3x3 stride 2
        + quarter * 96 * 48 * 9  # conv3 3x3 stride 2
        + 6 * quarter * 96 * 96 * 9  # 3 residual blocks x 2 convs
        + half * 48 * 96 * 9  # up1
        + full * 24 * 48 * 9  # up2
        + full * 3 * 24 * 81  # output 9x9
    )
    return macs / 1e9


def test_benchmark_smoke(videos_dir: Path) -> None:
    command = [
        sys.executable,
        str(ROOT / "scripts" / "benchmark.py"),
        "--presets", "tiny",
        "--sizes", "320x180",
        "--rounds", "1",
        "--threads", "1",
        "--skip-variants",
        "--skip-runtimes",
        "--no-compile",
        "--clip", str(videos_dir / "imageio_newtonscradle.gif"),
        "--e2e-frames", "2",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # the default precision (auto) says what it ran in: fp32, or bf16 where bf16 is native and measured faster
    row = re.search(
        r"^\s+tiny\s+320x180\s+(?:float32|bfloat16)(?: \(auto, \w+\))?\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)%",
        out,
        re.MULTILINE,
    )
    assert row, out
    assert abs(float(row.group(1)) - 2 * tiny_gmac(180, 320)) < 0.05  # GFLOP = 2 x GMAC
    assert float(row.group(2)) > 0
    assert "ratio end-to-end / model-only" in out
    assert "NOT measured" in out and "SGEMM best" in out


@pytest.mark.parametrize("native", ["1", "0"])
def test_the_variants_section_names_every_precision_and_the_auto_choice(native: str) -> None:
    """Section 1 on any CPU, with bf16 detection forced either way: explicit precisions never
    meet auto's checks (which once stopped the script on a native-bf16 CPU), and the auto row
    says what it chose and by which timings."""
    command = [
        sys.executable, str(ROOT / "scripts" / "benchmark.py"),
        "--presets", "tiny", "--sizes", "64x48", "--rounds", "1", "--threads", "1", "--no-compile",
        "--variants-preset", "tiny", "--variants-size", "64x48", "--skip-e2e", "--skip-runtimes",
    ]  # fmt: skip
    env = {**os.environ, "RECONET_NATIVE_BF16": native}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in ("fp32 eager NCHW", "fp32 eager channels_last", "fp32 tuned kernels", "bf16 channels_last", "auto"):
        assert re.search(rf"^\s+{re.escape(name)}\s+[\d.]+\s+\d+", out, re.MULTILINE), (name, out)
    if native == "1":
        assert re.search(r"auto chose (float32|bfloat16) \(auto, measured\): (fp32|bf16) \(measured: fp32 [\d.e-]+ s, bf16", out), out
        assert "native bf16 (forced by RECONET_NATIVE_BF16=1)" in out
    else:
        assert "auto chose float32: nothing to choose (bf16 not native here)" in out, out
        assert "bf16 emulated (forced by RECONET_NATIVE_BF16=0)" in out


def test_the_runtimes_section_puts_reconet_beside_onnx_runtime_and_openvino() -> None:
    """Section 2b: reconet's fp32, bf16 and int8 rows next to ONNX Runtime fp32 and int8 (the
    CI installs the [onnx] and [int8] extras) and OpenVINO where installed, each with its PSNR
    against fp32 and its efficiency against the three measured matrix rates."""
    command = [
        sys.executable, str(ROOT / "scripts" / "benchmark.py"),
        "--presets", "fast", "--sizes", "64x48", "--rounds", "1", "--threads", "1", "--no-compile",
        "--skip-variants", "--skip-e2e", "--runtimes-size", "64x48",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"2b\. Runtimes side by side: fast \(.+\) at 64x48, batch 1, [\d.]+ GFLOP/frame", out), out
    assert re.search(r"matrix multiply \(2048\^3, best of 3\): fp32 \d+ GFLOP/s, bf16 \d+ GFLOP/s, int8 \d+ GOP/s", out), out
    rows = ["reconet fp32 (tuned + compile)", "reconet bf16 (compile)", "reconet int8 (compiled)"]
    try:
        import onnxruntime  # noqa: F401

        rows += ["ONNX Runtime fp32", "ONNX Runtime int8 (QDQ)"]
    except ImportError:
        assert "(ONNX Runtime rows: pip install 'reconet[onnx]')" in out
    try:
        import openvino  # noqa: F401

        rows += ["OpenVINO fp32", "OpenVINO int8 (QDQ)"]
    except ImportError:
        assert "(OpenVINO rows: pip install openvino)" in out
    for name in rows:
        row = re.search(rf"^\s+{re.escape(name)}\s+[\d.]+\s+[\d.]+\s+(exact|[\d.]+ dB)\s+\d+%\s+\d+%\s+\d+%$", out, re.M)
        assert row, (name, out)
    fp32 = re.search(r"reconet fp32 \(tuned \+ compile\)\s+[\d.]+\s+[\d.]+\s+(\S+)", out)
    assert fp32.group(1) == "exact" or float(fp32.group(1)) > 60  # the reference against itself


def test_matrix_rates_are_measured_in_fp32_and_bf16() -> None:
    import torch

    from reconet.inference.benchmark import Sgemm

    for dtype in (torch.float32, torch.bfloat16):
        gemm = Sgemm("cpu", size=256, dtype=dtype)
        assert gemm.a.dtype == dtype and gemm.measure() > 0 and gemm.best > 0
