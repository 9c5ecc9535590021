"""scripts/benchmark.py runs end to end and counts the work right (no timing assertions)."""

from __future__ import annotations

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
        "--no-compile",
        "--clip", str(videos_dir / "imageio_newtonscradle.gif"),
        "--e2e-frames", "2",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    row = re.search(r"^\s+tiny\s+320x180\s+float32\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)%", out, re.MULTILINE)
    assert row, out
    assert abs(float(row.group(1)) - 2 * tiny_gmac(180, 320)) < 0.05  # GFLOP = 2 x GMAC
    assert float(row.group(2)) > 0
    assert "ratio end-to-end / model-only" in out
    assert "NOT measured" in out and "SGEMM best" in out


def test_matrix_rates_are_measured_in_fp32_and_bf16() -> None:
    import torch

    from reconet.inference.benchmark import Sgemm

    for dtype in (torch.float32, torch.bfloat16):
        gemm = Sgemm("cpu", size=256, dtype=dtype)
        assert gemm.a.dtype == dtype and gemm.measure() > 0 and gemm.best > 0
