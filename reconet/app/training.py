"""Add-a-style from the web app: ``reconet-train experiment=add_style`` in a background process.

The job is the same command a user would type (docs/training.md), run as a child process in
its own session so that cancelling stops it and everything it started. The page polls
:meth:`AddStyleJob.status`: the loss curve comes from the run's CSV log, the preview from the
newest ``stylizer-last.pt`` the run exported (the bundled preview photo stylized with it).

Nothing half-written is left: the run folder lives in the app's workspace and is removed when
the job ends; only a finished run's artifact is copied (atomically, never over an existing
file) into the models folder, where the style list finds it.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reconet.fileio import atomic_path
from reconet.resources import asset_path

PREVIEW_PHOTO = "photos/kodak_kodim23.jpg"  # parrots: colour and texture at a glance
PREVIEW_SIDE = 256
STOP_GRACE_SECONDS = 30.0


@dataclass
class JobStatus:
    state: str  # "idle" | "running" | "done" | "failed" | "cancelled"
    message: str
    step: int = 0
    max_steps: int = 0
    curve: list[tuple[int, str, float]] = field(default_factory=list)  # (step, term, value)
    preview: np.ndarray | None = None  # (H, W, 3) uint8
    model_path: Path | None = None


def train_command(
    painting: Path,
    name: str,
    base: str | Path,
    run_dir: Path,
    *,
    steps: int,
    preview_every: int,
    overrides: Sequence[str] = (),
) -> list[str]:
    """The reconet-train command line of the job (printed in the page, so it can be rerun)."""
    return [
        sys.executable,
        "-m",
        "reconet.cli.train",
        "experiment=add_style",
        f"init_from={base}",
        f"style.image={painting}",
        f"style.name={name}",
        f"hydra.run.dir={run_dir}",
        "logger=many",
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={preview_every}",
        "trainer.log_every_n_steps=5",
        "trainer.enable_progress_bar=false",
        "callbacks.samples.clip=null",
        *overrides,
    ]


def read_curve(csv_path: Path) -> tuple[int, list[tuple[int, str, float]]]:
    """(last logged step, [(step, term, value)]) of the training terms in a CSVLogger file."""
    if not csv_path.is_file():
        return 0, []
    curve: list[tuple[int, str, float]] = []
    last = 0
    terms = {"train/total": "total", "train/style": "style", "train/content": "content"}
    with csv_path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                step = int(float(row.get("step") or 0))
            except ValueError:
                continue
            for column, term in terms.items():
                value = row.get(column)
                if value:
                    curve.append((step, term, float(value)))
                    last = max(last, step)
    return last, curve


class AddStyleJob:
    """At most one add-a-style run at a time (it uses every core)."""

    def __init__(self, workspace_root: Path, models_dir: Path):
        self.workspace_root = Path(workspace_root)
        self.models_dir = Path(models_dir)
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._run_dir: Path | None = None
        self._name = ""
        self._steps = 0
        self._started = 0.0
        self._final: JobStatus | None = None
        self._preview_mtime = 0.0
        self._preview: np.ndarray | None = None
        self.command: list[str] = []

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(
        self,
        painting: Path,
        name: str,
        base: str | Path,
        *,
        steps: int = 100,
        preview_every: int = 20,
        overrides: Sequence[str] = (),
    ) -> None:
        """Start the run (``overrides``: more Hydra overrides, e.g. a smaller ``data.size``)."""
        with self._lock:
            if self.running:
                raise RuntimeError("a style is already being added; wait for it or cancel it")
            dest = self.models_dir / f"{name}.pt"
            if dest.exists():
                raise FileExistsError(f"{dest.name} already exists in the models folder; choose another name")
            self._run_dir = self.workspace_root / "add_style" / name
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir.mkdir(parents=True)
            self.command = train_command(
                painting, name, base, self._run_dir, steps=steps, preview_every=preview_every, overrides=overrides
            )
            log = (self._run_dir / "train.log").open("wb")
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            self._process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self._run_dir, start_new_session=True
            )
            log.close()
            self._name, self._steps, self._started = name, steps, time.monotonic()
            self._final, self._preview, self._preview_mtime = None, None, 0.0

    def display_command(self) -> str:
        """The run as a user would type it (the painting by its file name, no app-internal paths)."""
        shown = ["reconet-train"]
        for arg in self.command[3:]:
            key, _, value = arg.partition("=")
            if key in ("hydra.run.dir", "logger", "trainer.log_every_n_steps", "trainer.enable_progress_bar", "callbacks.samples.clip"):
                continue
            if key == "style.image":
                arg = f"style.image={Path(value).name}"
            if key == "init_from" and Path(value).parent == Path(asset_path("models")):
                arg = f"init_from={Path(value).stem}"  # a bundled network, by name
            shown.append(arg)
        return " ".join(shown)

    def cancel(self) -> None:
        """Stop the run (SIGTERM to its process group, SIGKILL after a grace period) and remove
        its folder: a cancelled style leaves nothing behind."""
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                return
            _stop_group(process)
            self._final = JobStatus("cancelled", f"cancelled; nothing was kept for {self._name!r}")
            self._cleanup()

    def status(self) -> JobStatus:
        with self._lock:
            if self._final is not None:
                return self._final
            process = self._process
            if process is None:
                return JobStatus("idle", "no style is being added")
            run = self._run_dir
            assert run is not None
            step, curve = read_curve(run / "csv" / "metrics.csv")
            preview = self._refresh_preview(run)
            code = process.poll()
            if code is None:
                elapsed = time.monotonic() - self._started
                left = elapsed / step * (self._steps - step) if step else None
                eta = f", about {_minutes(left)} left" if left is not None else ""
                return JobStatus(
                    "running", f"training {self._name!r}: step {step}/{self._steps}{eta}", step, self._steps, curve, preview
                )
            if code == 0 and (run / "stylizer.pt").is_file():
                dest = self._publish(run / "stylizer.pt")
                minutes = _minutes(time.monotonic() - self._started)
                preview = self._refresh_preview(run, final=True)
                self._final = JobStatus(
                    "done",
                    f"added {self._name!r} in {minutes}: {dest.name} is in the model list",
                    self._steps,
                    self._steps,
                    curve,
                    preview,
                    dest,
                )
            else:
                self._final = JobStatus("failed", _last_error(run / "train.log", code), step, self._steps, curve, preview)
            self._cleanup()
            return self._final

    def close(self) -> None:
        """Stop a running job (the app is stopping)."""
        self.cancel()

    # ------------------------------------------------------------------------------------

    def _publish(self, artifact: Path) -> Path:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        dest = self.models_dir / f"{self._name}.pt"
        with atomic_path(dest) as temp:
            shutil.copyfile(artifact, temp)
            if dest.exists():  # appeared while training: keep the user's file
                raise FileExistsError(f"{dest} appeared while training; the new style was not saved")
        return dest

    def _refresh_preview(self, run: Path, final: bool = False) -> np.ndarray | None:
        candidate = run / "stylizer.pt" if final else run / "checkpoints" / "stylizer-last.pt"
        try:
            mtime = candidate.stat().st_mtime
        except FileNotFoundError:
            return self._preview
        if mtime != self._preview_mtime:
            try:
                self._preview = stylize_preview(candidate, self._name)
                self._preview_mtime = mtime
            except (OSError, ValueError, RuntimeError):  # caught mid-write: next poll
                pass
        return self._preview

    def _cleanup(self) -> None:
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
        self._process = None


def stylize_preview(model: Path, style: str) -> np.ndarray:
    """The bundled preview photo in ``style`` of ``model``, (H, W, 3) uint8 at PREVIEW_SIDE."""
    from reconet.app.jobs import StyleSettings, preview_first_frame

    return preview_first_frame(asset_path(PREVIEW_PHOTO), StyleSettings(model, style, PREVIEW_SIDE, "fp32"))[1]


def _stop_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def _last_error(log: Path, code: int | None) -> str:
    try:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    errors = [line for line in lines if "error" in line.lower()]
    detail = (errors or lines or ["no output"])[-1]
    return f"training failed (exit {code}): {detail[:300]}"


def _minutes(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
