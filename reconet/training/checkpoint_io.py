"""Checkpoint writing that a kill cannot corrupt.

Lightning's default :class:`~lightning_fabric.plugins.io.torch_io.TorchCheckpointIO` serializes
into memory and then writes through an fsspec transaction, which for local paths means a
temporary file in the *system* temp directory followed by ``shutil.move``. When that directory
is on another file system than the run directory (tmpfs ``/tmp`` vs. a cluster's scratch
space is the common case) the move degrades to copy-then-delete, and a kill during the copy
leaves a truncated ``last.ckpt`` in place of the previous good one. It also never fsyncs.

:class:`AtomicCheckpointIO` writes to a temporary file *next to* the destination, fsyncs it
and renames it over the destination with :func:`os.replace`, which is atomic on POSIX and
Windows: at every instant the destination is either the complete old file or the complete new
one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` via a temporary sibling file, fsync and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose ``save_checkpoint`` is kill-safe for local paths."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not support storage_options")
        if "://" in str(path):  # remote file systems: fall back to Lightning's own transaction
            super().save_checkpoint(checkpoint, path)
            return
        atomic_torch_save(checkpoint, path)
