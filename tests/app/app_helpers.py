"""Helpers for the web app's tests (imported by name: a conftest here would shadow tests/conftest.py): the optional packages, and a real ``reconet-app`` server."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def require_app_extra() -> None:
    """Gradio and its client, or skip the calling test; in CI (which installs reconet[app]) a
    missing package is a failure, so the app is never silently untested there."""
    missing = []
    for name in ("gradio", "gradio_client", "pandas"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        message = f"needs reconet[app]; missing: {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    models: Path
    temp: Path  # TMPDIR of the app: its workspace is created here
    log: Path

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_app(tmp: Path, *args: str, timeout: float = 120.0) -> RunningApp:
    """``python -m reconet.app`` on a free localhost port, waited for until it prints its address."""
    models, temp = tmp / "models", tmp / "temp"
    models.mkdir(parents=True, exist_ok=True)
    temp.mkdir(parents=True, exist_ok=True)
    log = tmp / "app.log"
    port = free_port()
    env = dict(os.environ, TMPDIR=str(temp), OMP_NUM_THREADS="1")
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "reconet.app", "--port", str(port), "--models", str(models), *args],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=env,
    )
    handle.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "running at" in text:
            return RunningApp(f"http://127.0.0.1:{port}/", process, models, temp, log)
        if process.poll() is not None:
            raise AssertionError(f"reconet-app exited with {process.returncode}:\n{text}")
        time.sleep(0.3)
    process.kill()
    raise AssertionError(f"reconet-app did not start in {timeout} s:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def running_app(tmp_path_factory) -> Iterator[RunningApp]:
    require_app_extra()
    app = start_app(tmp_path_factory.mktemp("app"))
    yield app
    app.stop()
