"""scripts/benchmark_training.py runs end to end, its three fp32 step variants compute the same
loss and the bf16-mixed step a loss within 2 % of it (no timing assertions: speed is measured
by running the script, see docs/training.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: real commands, subprocesses or whole runs

ROOT = Path(__file__).resolve().parents[2]


def test_training_benchmark_smoke() -> None:
    command = [
        sys.executable,
        str(ROOT / "scripts" / "benchmark_training.py"),
        "--size", "24", "32",
        "--model", "tiny",
        "--weights", "random",
        "--style-size", "32",
        "--rounds", "1",
        "--warmup", "0",
    ]  # fmt: skip
    # as on a native-bf16 CPU, on any machine: the auto line then shows a real measurement
    env = {**os.environ, "RECONET_NATIVE_BF16": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = dict(re.findall(r"^(reconet|one-batch|naive)\s+fp32\s+(\d+\.\d+)\s", result.stdout, flags=re.M))
    assert set(rows) == {"reconet", "one-batch", "naive"}, result.stdout
    losses = dict(re.findall(r"^(reconet|reconet-bf16|one-batch|naive)\s.*GiB\s+(\S+)\s", result.stdout, flags=re.M))
    assert len(losses) == 4, result.stdout
    fp32 = {round(float(value), 3) for name, value in losses.items() if name != "reconet-bf16"}
    assert len(fp32) == 1, result.stdout
    assert float(losses["reconet-bf16"]) == pytest.approx(float(losses["reconet"]), rel=0.02), result.stdout
    assert re.search(r"^reconet-bf16\s+bf16-mixed\s+\d+\.\d+\s", result.stdout, flags=re.M), result.stdout
    assert re.search(r"^bf16-mixed speed-up over fp32: \d+\.\d+x in time .*step-1 loss \d+\.\d+% from fp32$", result.stdout, flags=re.M)
    assert re.search(r"device cpu \(.+; native bf16 \(forced by RECONET_NATIVE_BF16=1\)\)", result.stdout), result.stdout
    auto = r"^trainer.precision=auto here: (32-true|bf16-mixed) \(measured: 32-true [\d.e-]+ s, bf16-mixed ([\d.e-]+ s|failed parity \([^)]*\))\)$"
    assert re.search(auto, result.stdout, flags=re.M), result.stdout
    assert "same loss value: yes" in result.stdout
    # FLOP counts are exact, unlike times: reconet's step must do the least work
    work = dict(re.findall(r"reconet speed-up over (one-batch|naive): .* (\d+\.\d+)x in work", result.stdout))
    assert set(work) == {"one-batch", "naive"}, result.stdout
    assert float(work["one-batch"]) > 1.1 and float(work["naive"]) > 1.3, work
