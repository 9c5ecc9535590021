"""SIGKILL during training, then resume from last.ckpt: at most one checkpoint interval is lost
and the resumed run reaches the same step count, through the real CLI in a subprocess.

SIGKILL cannot be caught, so nothing of :class:`~reconet.training.callbacks.GracefulStop` runs:
what survives is whatever the periodic checkpoints (written after every validation, every
``trainer.val_check_interval`` steps, atomically by ``AtomicCheckpointIO``) left on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

# the neighbouring signal tests' tiny CLI configuration and helpers (pytest puts this folder on sys.path)
from test_training_stop_and_resume import COMMON, ENV, logged_steps, optimizer_steps, train_command

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # end to end

TOTAL_STEPS = 12
CHECKPOINT_INTERVAL = 4  # trainer.val_check_interval: validation, then best + last checkpoints
POLL_SECONDS = 0.1
TIMEOUT_SECONDS = 120


def read_step(checkpoint: Path) -> int:
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"])


def reached_step(run_dir: Path) -> int:
    """The newest global step the run's CSV log shows (rows are logged at global_step - 1)."""
    steps = logged_steps(run_dir)
    return max(steps) + 1 if steps else 0


def partial_write_leftovers(run_dir: Path) -> list[Path]:
    """Temporary siblings of an interrupted atomic write (``.<stem>.<random>.tmp<suffix>``, reconet.fileio)."""
    return sorted(p for p in run_dir.rglob(".*") if p.is_file() and ".tmp" in p.name)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.is_file() else ""


def test_sigkill_mid_interval_loses_at_most_one_interval_and_resume_reaches_the_budget(tmp_path):
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    overrides = [
        f"hydra.run.dir={run_dir}",
        *COMMON,
        "data.num_workers=0",  # one process: modest CPU; the group kill is still what is tested
        f"trainer.max_steps={TOTAL_STEPS}",
        f"trainer.val_check_interval={CHECKPOINT_INTERVAL}",
    ]

    killed_log = tmp_path / "killed.log"
    with killed_log.open("w") as log:
        # a file, not a pipe: a pipe nobody reads while polling could fill and stall the run
        process = subprocess.Popen(
            train_command(*overrides), stdout=log, stderr=subprocess.STDOUT, env=ENV, start_new_session=True
        )
    try:
        # Kill once a periodic checkpoint exists and the run has trained past it, so the kill
        # throws away real work; the next checkpoint is still steps away, so the kill lands
        # between writes rather than inside one.
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"training ended (exit {process.returncode}) before it could be killed:\n{tail(killed_log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint at step >= {CHECKPOINT_INTERVAL} within {TIMEOUT_SECONDS} s:\n{tail(killed_log)}")
            if last.is_file():  # os.replace'd into place: a reader never sees a partial file
                seen_checkpoint = read_step(last)
                if seen_checkpoint >= CHECKPOINT_INTERVAL and reached_step(run_dir) > seen_checkpoint:
                    break
            time.sleep(POLL_SECONDS)
        os.killpg(process.pid, signal.SIGKILL)  # the whole group, no clean shutdown
        process.wait(timeout=TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert process.returncode == -signal.SIGKILL, tail(killed_log)
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # nothing of the group survives

    # Steps lost: the checkpoint is a periodic one, at most one interval behind the log.
    checkpoint_step = read_step(last)
    reached = reached_step(run_dir)
    assert checkpoint_step % CHECKPOINT_INTERVAL == 0 and CHECKPOINT_INTERVAL <= checkpoint_step < TOTAL_STEPS
    assert checkpoint_step <= reached < TOTAL_STEPS
    assert reached - checkpoint_step <= CHECKPOINT_INTERVAL, (reached, checkpoint_step)
    assert optimizer_steps(torch.load(last, map_location="cpu", weights_only=True)) == {checkpoint_step}
    assert not (run_dir / "stylizer.pt").exists()  # only written at the end of training

    # No half-written checkpoint: every checkpoint loads, and no interrupted write left a temporary.
    checkpoints = sorted(run_dir.rglob("*.ckpt"))
    assert last in checkpoints and len(checkpoints) >= 2, checkpoints  # last + best
    for checkpoint in checkpoints:
        assert "global_step" in torch.load(checkpoint, map_location="cpu", weights_only=True), checkpoint
    assert partial_write_leftovers(run_dir) == []

    # What a SIGKILL *during* a checkpoint or artifact write leaves (the kill above landed between
    # writes): atomic_path's unlocked temporaries, empty and mode 0600 as mkstemp made them.
    debris = [run_dir / "checkpoints" / ".last.k3x9q2ab.tmp.ckpt", run_dir / "checkpoints" / ".stylizer-last.0a1b2c3d.tmp.pt"]
    for leftover in debris:
        leftover.touch(mode=0o600)

    # Resume: the same command plus ckpt_path, in the same folder, as one would re-run it.
    resumed_log = tmp_path / "resumed.log"
    with resumed_log.open("w") as log:
        resumed = subprocess.run(
            train_command(*overrides, f"ckpt_path={last}"), stdout=log, stderr=subprocess.STDOUT, env=ENV,
            timeout=TIMEOUT_SECONDS,
        )
    assert resumed.returncode == 0, tail(resumed_log)

    final = torch.load(last, map_location="cpu", weights_only=True)
    assert final["global_step"] == TOTAL_STEPS  # what an uninterrupted run reaches
    assert optimizer_steps(final) == {TOTAL_STEPS}
    # the resumed run trained exactly the steps after the checkpoint, the lost ones again (its CSV
    # logger replaces the killed run's metrics.csv in the same folder)
    assert logged_steps(run_dir) == list(range(checkpoint_step, TOTAL_STEPS))
    artifact = torch.load(run_dir / "stylizer.pt", map_location="cpu", weights_only=True)
    assert artifact["meta"]["global_step"] == TOTAL_STEPS
    assert partial_write_leftovers(run_dir) == []  # the resume removed the killed writes' temporaries
    assert "a partial write of a killed run" in resumed_log.read_text()
