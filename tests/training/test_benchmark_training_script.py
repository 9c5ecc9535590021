"""scripts/benchmark_training.py runs end to end and its three step variants compute the same
loss (no timing assertions: speed is measured by running the script, see docs/training.md)."""

from __future__ import annotations

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
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = dict(re.findall(r"^(reconet|one-batch|naive)\s+(\d+\.\d+)\s", result.stdout, flags=re.M))
    assert set(rows) == {"reconet", "one-batch", "naive"}, result.stdout
    losses = re.findall(r"^(?:reconet|one-batch|naive)\s.*GiB\s+(\S+)\s", result.stdout, flags=re.M)
    assert len(losses) == 3 and len({round(float(value), 3) for value in losses}) == 1, result.stdout
    assert "same loss value: yes" in result.stdout
    # FLOP counts are exact, unlike times: reconet's step must do the least work
    work = dict(re.findall(r"reconet speed-up over (one-batch|naive): .* (\d+\.\d+)x in work", result.stdout))
    assert set(work) == {"one-batch", "naive"}, result.stdout
    assert float(work["one-batch"]) > 1.1 and float(work["naive"]) > 1.3, work
