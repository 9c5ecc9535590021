"""Stopping on SIGTERM / SIGINT and resuming, through the real CLI in a subprocess.

The signal goes to the whole process group, as ``timeout``, ``docker stop`` and a shell's
Ctrl-C send it, so the DataLoader workers (``data.num_workers=2``) receive it too.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reconet.training.checks import completed_epochs

pytestmark = pytest.mark.slow  # end to end: real commands, subprocesses or whole runs

COMMON = [
    "model=tiny",
    "loss.network.weights=random",
    "loss.style_size=32",
    "data.size=[32,32]",
    "data.num_samples=4000",
    "data.val_pairs=2",
    "trainer.max_epochs=-1",
    "trainer.val_check_interval=1000",  # no validation (and so no checkpoint) before the signal
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=csv",
    "+logger.csv.flush_logs_every_n_steps=1",
    "callbacks.samples.clip=null",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
ENV.pop("HYDRA_FULL_ERROR", None)


def train_command(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "reconet.cli.train", *overrides]


def logged_steps(run_dir: Path) -> list[int]:
    metrics = run_dir / "csv" / "metrics.csv"
    if not metrics.is_file():
        return []
    with metrics.open(newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle) if row.get("train/total")]


def run_until_signal(run_dir: Path, signum: int, *overrides: str, after_steps: int = 3) -> tuple[subprocess.CompletedProcess, int]:
    """Start training in its own process group, signal the group once ``after_steps`` steps are
    logged; returns the finished process and the newest logged step at signal time."""
    command = train_command(f"hydra.run.dir={run_dir}", *COMMON, *overrides)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while len(logged_steps(run_dir)) < after_steps:
            if process.poll() is not None or time.monotonic() > deadline:
                out, err = process.communicate()
                pytest.fail(f"training did not log {after_steps} steps (exit {process.returncode}):\n{err[-3000:]}")
            time.sleep(0.2)
        seen = max(logged_steps(run_dir)) + 1  # rows are logged at step index global_step - 1
        os.killpg(process.pid, signum)
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    return subprocess.CompletedProcess(command, process.returncode, out, err), seen


def stop_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("reconet-train:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def optimizer_steps(checkpoint: dict) -> set[int]:
    return {int(state["step"]) for state in checkpoint["optimizer_states"][0]["state"].values()}


def test_sigterm_to_the_process_group_stops_at_the_step_and_resumes_exactly(tmp_path):
    run_dir = tmp_path / "run"
    result, seen = run_until_signal(run_dir, signal.SIGTERM, "data.num_workers=2", "trainer.max_steps=100000")

    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "killed by signal" not in result.stderr, result.stderr[-3000:]
    assert "HYDRA_FULL_ERROR" not in result.stderr
    line = stop_line(result.stderr)
    match = re.fullmatch(r"reconet-train: stopped by SIGTERM at step (\d+); checkpoint (\S+); resume with: (.+)", line)
    assert match, line
    step, checkpoint_path, resume = int(match[1]), Path(match[2]), shlex.split(match[3])

    # nothing lost but the step in progress: the checkpoint is at the printed step, at or after
    # the last step logged before the signal (and no checkpoint existed before it)
    assert checkpoint_path == (run_dir / "checkpoints" / "last.ckpt").resolve()
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == step >= seen >= 3
    assert optimizer_steps(checkpoint) == {step}
    assert completed_epochs(checkpoint) == 0  # saved mid-epoch: the resumed run continues this epoch
    artifact = torch.load(run_dir / "stylizer.pt", map_location="cpu", weights_only=True)
    assert artifact["meta"]["global_step"] == step
    assert not (run_dir / "samples").exists()  # skipped: stop quickly

    # the printed command is the original one plus ckpt_path
    assert resume[0] == "reconet-train"
    assert resume[1:] == [f"hydra.run.dir={run_dir}", *COMMON, "data.num_workers=2", "trainer.max_steps=100000", f"ckpt_path={checkpoint_path}"]

    # resume to step + 3 (same overrides, a smaller step budget, its own folder)
    resumed_dir = tmp_path / "resumed"
    overrides = [arg for arg in resume[1:] if not arg.startswith(("hydra.run.dir=", "trainer.max_steps="))]
    done = subprocess.run(
        train_command(f"hydra.run.dir={resumed_dir}", *overrides, f"trainer.max_steps={step + 3}"),
        capture_output=True, text=True, env=ENV, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = torch.load(resumed_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["global_step"] == step + 3
    assert optimizer_steps(resumed) == {step + 3}  # Adam's moments continued, not restarted
    assert logged_steps(resumed_dir)[0] > step - 1  # the step count continued

    # resuming a checkpoint whose step budget is spent fails before fitting, in one line
    spent_dir = tmp_path / "spent"
    spent = subprocess.run(
        train_command(f"hydra.run.dir={spent_dir}", *overrides, f"trainer.max_steps={step}"),
        capture_output=True, text=True, env=ENV, timeout=300,
    )
    assert spent.returncode == 2, spent.stderr[-3000:]
    assert "Traceback" not in spent.stderr
    message = stop_line(spent.stderr)
    assert f"checkpoint is at step {step} and trainer.max_steps={step}: nothing left to train" in message
    assert "trainer.max_steps" in message
    assert not (spent_dir / "stylizer.pt").exists() and not (spent_dir / "checkpoints").exists()


def test_sigint_to_the_process_group_stops_cleanly_with_exit_130(tmp_path):
    run_dir = tmp_path / "run"
    result, seen = run_until_signal(run_dir, signal.SIGINT, "data.num_workers=2", "trainer.max_steps=100000")

    assert result.returncode == 128 + signal.SIGINT, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "KeyboardInterrupt" not in result.stderr, result.stderr[-3000:]
    line = stop_line(result.stderr)
    step = int(re.search(r"stopped by SIGINT at step (\d+);", line)[1])
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == step >= seen
    assert (run_dir / "stylizer.pt").is_file()



def test_slurm_requeue_signal_saves_requeues_and_the_requeued_job_resumes(tmp_path):
    """Lightning's SLURM environment: SIGUSR1 (``#SBATCH --signal=SIGUSR1@90``) writes
    ``hpc_ckpt_1.ckpt`` and calls ``scontrol requeue``; SLURM then stops the job with SIGTERM;
    the requeued job (same script: fixed run folder, ``ckpt_path=last``) resumes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol_calls.txt"
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    slurm = {
        "SLURM_NTASKS": "1", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "reconet", "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    run_dir = tmp_path / "run"
    job = [f"hydra.run.dir={run_dir}", *COMMON, "data.num_workers=2", "ckpt_path=last"]

    process = subprocess.Popen(
        train_command(*job, "trainer.max_steps=100000"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**ENV, **slurm}, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while len(logged_steps(run_dir)) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGUSR1)  # SLURM warns the whole job step
        deadline = time.monotonic() + 120
        while not calls.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGTERM)  # the requeue ends the job
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()

    assert calls.read_text().split() == ["requeue", "4242"]
    assert (run_dir / "hpc_ckpt_1.ckpt").is_file()
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err and "killed by signal" not in err, err[-3000:]
    step = int(re.search(r"stopped by SIGTERM at step (\d+);", stop_line(err))[1])
    hpc_step = torch.load(run_dir / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert step >= hpc_step

    # the requeued job: the same command; it continues from the newer last.ckpt
    requeued = subprocess.run(
        train_command(*job, f"trainer.max_steps={step + 2}"), capture_output=True, text=True, env={**ENV, **slurm}, timeout=600
    )
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["global_step"] == step + 2
    assert optimizer_steps(final) == {step + 2}


def test_sigterm_under_ddp_stops_every_rank_at_the_same_step(tmp_path):
    run_dir = tmp_path / "run"
    result, seen = run_until_signal(
        run_dir, signal.SIGTERM, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "data.num_workers=0",
        "data.val_batch_size=1", "trainer.max_steps=100000",
    )
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    step = int(re.search(r"stopped by SIGTERM at step (\d+);", stop_line(result.stderr))[1])  # rank 0 only
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == step >= seen
    assert (run_dir / "stylizer.pt").is_file()


def test_sigterm_before_the_first_step_is_one_line_and_exit_143(tmp_path):
    # a long sanity check (16 validation pairs at 256x256) keeps the run in set-up when the
    # signal arrives half a second after the resolved config is written
    run_dir = tmp_path / "run"
    command = train_command(
        f"hydra.run.dir={run_dir}", *COMMON, "data.num_workers=2", "data.val_size=[256,256]", "data.val_pairs=16",
        "data.val_batch_size=1", "+trainer.num_sanity_val_steps=16", "trainer.max_steps=100000",
    )
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "config_resolved.yaml").is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        os.killpg(process.pid, signal.SIGTERM)
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert stop_line(err) == "reconet-train: stopped by SIGTERM before the first training step; nothing to resume"
    assert not (run_dir / "checkpoints" / "last.ckpt").exists()
