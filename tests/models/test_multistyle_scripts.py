"""The scripts that show and measure a multi-style model: the painting-and-styles grid, and the
per-style measurement beside the bundled models (run on the current machine, no timing)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reconet.models import build_reconet, save_artifact

pytestmark = pytest.mark.slow  # real commands in subprocesses
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def two_styles(tmp_path_factory) -> Path:
    torch.manual_seed(2)
    model = build_reconet("tiny", num_styles=2)
    rows = [{"name": "wave", "style_image": "wave.jpg", "style_size": 256}, {"name": "udnie", "style_image": "udnie.jpg", "style_size": 256}]
    return save_artifact(tmp_path_factory.mktemp("ms") / "two.pt", model, {"styles": rows})


def test_the_grid_shows_each_painting_above_its_style(two_styles: Path, tmp_path: Path) -> None:
    frame = tmp_path / "frame.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(frame)
    out = tmp_path / "grid.png"
    command = [
        sys.executable, str(ROOT / "scripts" / "compare_frames.py"), str(out), "--image", str(frame), "--paintings",
        "--height", "48", "--model", f"wave={two_styles}", "--model", f"mix={two_styles}@wave:0.5,udnie:0.5",
        "--model", "candy=candy",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "columns: input, wave, mix, candy" in result.stdout
    grid = np.asarray(Image.open(out))
    assert grid.shape == (2 * 48, 4 * 64, 3)  # a paintings row above the frame row; tiles 64 wide
    assert (grid[:48, :64] == 255).all()  # no painting above the input
    assert grid[:48, 64:128].std() > 10  # wave's painting


def test_measure_multistyle_reports_every_style_beside_the_bundled_model(two_styles: Path, sintel_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "numbers.json"
    command = [sys.executable, str(ROOT / "scripts" / "measure_multistyle.py"), str(two_styles), "--sintel", str(sintel_root), "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for style in ("wave", "udnie"):
        for model in ("multi", "bundled"):
            assert re.search(rf"^{style}\s+{model}\s+sintel\s+[\d.]+\s+[\d.]+\s+[\d.]+$", result.stdout, re.M), result.stdout
    numbers = json.loads(out.read_text())["styles"]
    assert set(numbers) == {"wave", "udnie"}
    wave = numbers["wave"]["bundled_sintel"]
    assert wave["style_ratio"] == pytest.approx(wave["style_distance"] / wave["input_style_distance"])
    assert wave["style_ratio"] < 1  # the trained bundled wave model is closer to the painting than the input


def test_time_add_style_adds_each_painting_and_measures_it(two_styles: Path, sintel_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "timing.json"
    painting = ROOT / "reconet" / "assets" / "styles" / "candy.jpg"
    command = [
        sys.executable, str(ROOT / "scripts" / "time_add_style.py"), "--base", str(two_styles), "--painting", str(painting),
        "--steps", "2", "--sintel", str(sintel_root), "--json", str(out), "--keep", str(tmp_path / "runs"),
        "--set", "data.size=[64,64]", "--set", "loss.style_size=64", "--set", "data.num_workers=0", "--set", "data.val_pairs=1",
        "--set", "trainer.precision=32-true",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"^candy: added in [\d.]+ min \(2 steps\)$", result.stdout, re.M), result.stdout
    row = json.loads(out.read_text())["results"]["candy"]
    assert row["steps"] == 2 and row["minutes"] > 0
    sintel = row["multi_sintel"]
    assert sintel["style_ratio"] == pytest.approx(sintel["style_distance"] / sintel["input_style_distance"])
    assert 0 < sintel["content_structure"] <= 1
    from reconet.models import load_stylizer
    from reconet.models.artifact import style_table

    network, meta = load_stylizer(tmp_path / "runs" / "add_candy" / "stylizer.pt")
    assert [r["name"] for r in style_table(meta, network.num_styles)] == ["wave", "udnie", "candy"]
