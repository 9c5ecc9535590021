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

import os
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from reconet.fileio import atomic_write


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` through :func:`reconet.fileio.atomic_write` (temporary
    sibling, fsync, ``os.replace``, directory fsync; ordinary file permissions)."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose ``save_checkpoint`` is kill-safe for local paths."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not support storage_options")
        if "://" in str(path):  # remote file systems: fall back to Lightning's own transaction
            super().save_checkpoint(checkpoint, path)
            return
        atomic_torch_save(checkpoint, path)
