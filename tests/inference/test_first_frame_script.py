"""scripts/first_frame.py runs end to end and reports every configuration (no timing
assertions: speed is measured by running the script, see docs/inference.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # end to end: real commands, subprocesses or whole runs

ROOT = Path(__file__).resolve().parents[2]


def test_first_frame_smoke() -> None:
    command = [sys.executable, str(ROOT / "scripts" / "first_frame.py"), "--rounds", "1", "--size", "64x48"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in ("empty cache", "filled cache"):
        assert re.search(rf"^\s+reconet-stylize \(precision auto\), {name}\s+\d+\.\d+ s", out, re.M), out
    for config in ("fp32 tuned, cold cache", "fp32 tuned, cached", "fp32 untuned", "bf16", "auto, one photo"):
        assert re.search(rf"^\s+{re.escape(config)}(\s+\d+\.\d+ s){{4}}$", out, re.M), out
    assert re.search(r"^first frame / fp32 untuned: tuned cold \d+\.\dx, tuned cached \d+\.\dx$", out, re.M), out
    assert re.search(r"^one photo, candy at 64x48, cpu \(.+; (native bf16|bf16 emulated)[^)]*\)", out, re.M), out
    # one photo never times precisions: fp32 (nothing was cached for auto in these runs)
    assert re.search(r"^auto with one photo ran in: float32( \(auto, not measured\))?$", out, re.M), out
