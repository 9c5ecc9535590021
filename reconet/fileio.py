"""Writing files so that a reader never sees half of one.

:func:`atomic_write` writes to a hidden temporary sibling, flushes it to disk and renames it
over the destination (``os.replace`` is atomic on POSIX and Windows): an interrupted write
leaves the previous file, or none, never a partial one; the rename is fsynced too. The file gets the permissions an
ordinary new file gets under the umask (mkstemp alone would make it 0600).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write(handle)`` on a temporary sibling of ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


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


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """``value`` as indented JSON (UTF-8, trailing newline), written atomically."""
    text = json.dumps(value, indent=2) + "\n"
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
