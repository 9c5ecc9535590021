"""An on-disk record of the convolution kernels :mod:`reconet.inference.accelerate` chose.

Tuning times every candidate kernel of every layer on the first input of a shape: seconds of
work that a video repays after a few frames, but a single photo pays in full (one 854x480
photo with the tiny network: 6.9 s of a 9.5 s run, measured on a 2-core AMX machine). The
choice depends only on the machine and the layer, so it is stored and reused by later runs.

One JSON file per machine fingerprint -- CPU model, CPU feature flags, torch version, torch
thread count, NNPACK availability -- so a cache copied to (or shared with) another kind of
machine is never consulted there. Inside, a key names the layer (channels, kernel, stride,
padding, dilation, groups, bias), the input shape and the dtype.

Safe under concurrent runs: every update re-reads the file under an exclusive ``flock`` on a
lock file beside it, merges its entries and replaces the file atomically
(:func:`reconet.fileio.atomic_write`), so readers (who take no lock) see the old or the new
file, never a partial one, and no writer drops another's entries. A missing, unreadable or
corrupt file is treated as empty; a cache directory that cannot be written is reported once
and stylizing goes on without it.

Location: ``$RECONET_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/reconet``, else
``~/.cache/reconet``. ``RECONET_KERNEL_CACHE=off`` disables it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from reconet.fileio import atomic_write

try:  # POSIX; elsewhere updates are still atomic, only concurrent merges may lose entries
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

FORMAT = 1


def cache_dir() -> Path:
    """Where reconet keeps caches (see the module docstring)."""
    if os.environ.get("RECONET_CACHE_DIR"):
        return Path(os.environ["RECONET_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "reconet"
    return Path.home() / ".cache" / "reconet"


def machine_fingerprint() -> dict[str, object]:
    """Everything a kernel's speed depends on besides the layer and its input."""
    from reconet.inference.accelerate import nnpack_available
    from reconet.inference.precision import cpu_features, cpu_model_name

    return {
        "cpu": cpu_model_name(),
        "features": sorted(cpu_features()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "nnpack": nnpack_available(),
    }


class KernelCache:
    """Choices by key, read from and merged into one JSON file.

    Args:
        path: the JSON file (its folder is created on the first write).
        fingerprint: stored in the file and checked on reading: a file written under another
            fingerprint is ignored (and replaced on the next write).
    """

    def __init__(self, path: str | os.PathLike, fingerprint: dict[str, object] | None = None) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint if fingerprint is not None else machine_fingerprint()
        self._choices: dict[str, str] | None = None
        self._write_failed = False

    @classmethod
    def default(cls) -> KernelCache | None:
        """The cache for this machine in :func:`cache_dir`; None if ``RECONET_KERNEL_CACHE=off``."""
        if os.environ.get("RECONET_KERNEL_CACHE", "").lower() in ("0", "off", "false", "no"):
            return None
        fingerprint = machine_fingerprint()
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
        return cls(cache_dir() / f"kernels-{digest}.json", fingerprint)

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("machine") != self.fingerprint:
            return {}
        choices = data.get("choices")
        if not isinstance(choices, dict):
            return {}
        return {str(k): v for k, v in choices.items() if isinstance(v, str)}

    def get(self, key: str) -> str | None:
        if self._choices is None:
            self._choices = self._read()
        return self._choices.get(key)

    def put(self, key: str, choice: str) -> None:
        """Record ``choice`` for ``key`` here and in the file (merged with what others wrote)."""
        if self._choices is None:
            self._choices = self._read()
        self._choices[key] = choice
        if self._write_failed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                merged = {**self._read(), **self._choices}
                text = json.dumps({"format": FORMAT, "machine": self.fingerprint, "choices": merged}, indent=1, sort_keys=True)
                atomic_write(self.path, lambda handle: handle.write(text.encode("utf-8") + b"\n"))
            self._choices = merged
        except OSError as error:
            self._write_failed = True
            warnings.warn(f"kernel cache {self.path} not written ({error.strerror or error}); tuning is not reused", stacklevel=2)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
