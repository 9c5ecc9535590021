"""scripts/precision_curves.py compares two runs' CSV logs: the numbers it prints are the ones
in the files (known answers), and a run without a CSV log is a one-line error."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: real commands, subprocesses or whole runs

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "precision_curves.py"
TERMS = ("content", "style", "tv", "temporal_feature", "temporal_output")


def write_run(folder: Path, totals: list[float], val: dict[int, float]) -> Path:
    """A run folder whose csv/metrics.csv logs ``totals`` (terms = total / 5) and val/total."""
    (folder / "csv").mkdir(parents=True)
    names = ["epoch", "step", *(f"train/{t}" for t in TERMS), "train/total", "val/total"]
    with open(folder / "csv" / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for step, total in enumerate(totals):
            writer.writerow({"epoch": 0, "step": step, **{f"train/{t}": total / 5 for t in TERMS}, "train/total": total})
        for step, value in val.items():
            writer.writerow({"epoch": 0, "step": step, "val/total": value})
    return folder


def test_known_differences_and_a_plot(tmp_path: Path) -> None:
    steps = 40
    reference = write_run(tmp_path / "fp32", [10.0] * steps, {39: 8.0})
    # 2 % above the reference everywhere, 10 % above at step 0
    other = write_run(tmp_path / "bf16", [11.0] + [10.2] * (steps - 1), {39: 8.5})
    plot = tmp_path / "curves.png"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(reference), str(other), "--plot", str(plot)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"{steps} common training steps" in out
    assert "total loss at step 1: +10.000% from the reference" in out
    # 20-step running means: 10 % off at step 0, falling to 2.4 % at step 19 ((11 + 19 * 10.2) / 20
    # = 10.24) and exactly 2 % from step 20 on; the median of the 40 is (2.0 + 2.4) / 2 = 2.2 %.
    assert "median |difference| 2.2%, largest 10.0% (step 0); final 10 vs 10.2" in out
    assert "val/total: step 39: 8 vs 8.5" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_without_a_csv_log_is_a_one_line_error(tmp_path: Path) -> None:
    reference = write_run(tmp_path / "fp32", [10.0, 9.0], {})
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(reference), str(tmp_path / "empty")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'empty' / 'csv' / 'metrics.csv'} not found (train with logger=many or logger=csv)"]
