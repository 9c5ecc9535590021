"""Distributed data parallel through Lightning: two CPU processes (gloo) via the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from conftest import shrunk_training

pytestmark = pytest.mark.slow  # end to end: real commands, subprocesses or whole runs


def test_ddp_two_cpu_processes(tmp_path):
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "reconet.cli.train",
        *shrunk_training(
            f"hydra.run.dir={run_dir}",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "data.val_batch_size=1",
            "logger=csv",
            size=32,
            trainer="ddp",
        ),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    log = result.stdout + result.stderr
    assert "GLOBAL_RANK: 1" in log or "Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/2" in log, log[-4000:]
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == 2
    # each process trained on its own shard: 2 processes x batch 2 x 2 steps
    assert (run_dir / "stylizer.pt").is_file()
