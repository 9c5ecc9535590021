"""A dataset file that breaks after training started (its header is fine, its pixels are not).

The header check at start-up cannot see a PNG whose data is cut short; the sample fails to
load mid-epoch, in a DataLoader worker. Training stops with one line naming the file and the
resume command, exit status 2, and the last checkpoint written before stays intact and resumable.
"""

from __future__ import annotations

import pytest

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
from conftest import copy_small_sintel

pytestmark = pytest.mark.slow  # end to end: real commands, subprocesses or whole runs

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
ENV.pop("HYDRA_FULL_ERROR", None)
TIMEOUT_SECONDS = 180


def _train(*overrides: str) -> list[str]:
    return [str(Path(sys.executable).parent / "reconet-train"), *overrides]


def _step(checkpoint: Path) -> int:
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"])


def _cut_pixels(frame: Path) -> bytes:
    """Replace ``frame`` atomically by its first half (header intact); returns the original bytes."""
    data = frame.read_bytes()
    half = frame.with_name(f".{frame.name}.half")
    half.write_bytes(data[: len(data) // 2])
    os.replace(half, frame)  # a worker reading it sees the old file or the new one, never a mix
    return data


def test_a_frame_broken_mid_training_stops_in_one_line_and_resumes(sintel_root: Path, tmp_path: Path) -> None:
    root = copy_small_sintel(sintel_root, tmp_path / "sintel")
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    overrides = [
        f"hydra.run.dir={run_dir}", "data=sintel", f"data.root={root}", "data.train_scenes=[alley_1]",
        "data.val_scenes=[alley_1]", "data.val_pairs=1", "model=tiny", "loss.network.weights=random",
        "loss.style_size=32", "data.size=[32,32]", "data.val_size=[32,32]", "data.batch_size=1",
        "data.num_workers=2", "trainer.max_epochs=-1", "trainer.val_check_interval=2",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "callbacks.samples.clip=null",
    ]
    process = subprocess.Popen(_train(*overrides, "trainer.max_steps=500"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    try:
        while not (last.is_file() and _step(last) >= 2):
            assert process.poll() is None, f"the run ended before its first checkpoint: {process.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint within the time limit"
            time.sleep(0.1)
        frames = sorted((root / "training" / "clean" / "alley_1").glob("frame_*.png"))
        originals = {frame: _cut_pixels(frame) for frame in frames}
        _, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 2, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr[-3000:]
    match = re.fullmatch(
        r"reconet-train: error: (?P<file>\S+frame_000\d\.png): not a readable image \(image file is truncated.*\); "
        r"training stopped at step (?P<step>\d+); after fixing or removing the file, resume with: (?P<command>.+)",
        errors[0],
    )
    assert match, errors[0]
    assert Path(match["file"]) in originals
    assert f"ckpt_path={last.resolve()}" in match["command"]
    stopped_at, saved_at = int(match["step"]), _step(last)  # the checkpoint from before the break loads
    assert 2 <= saved_at <= stopped_at

    for frame, data in originals.items():
        frame.write_bytes(data)
    resumed = subprocess.run(
        _train(*overrides, f"trainer.max_steps={saved_at + 2}", f"ckpt_path={last}"),
        capture_output=True, text=True, env=ENV, timeout=TIMEOUT_SECONDS,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _step(last) == saved_at + 2
    assert (run_dir / "stylizer.pt").is_file()
