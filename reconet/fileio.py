"""Writing files so that a reader never sees half of one.

:func:`atomic_write` writes to a hidden temporary sibling, flushes it to disk and renames it
over the destination (``os.replace`` is atomic on POSIX and Windows): an interrupted write
leaves the previous file, or none, never a partial one; the rename is fsynced too. The file gets the permissions an
ordinary new file gets under the umask (mkstemp alone would make it 0600).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

try:
    import fcntl  # POSIX only; without it stale partial outputs are left in place
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


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


# -- partial outputs --------------------------------------------------------------------------
# A long write (a stylized video, a folder of frames) goes into a hidden sibling that is
# renamed into place when complete. While its writer lives it holds an exclusive flock() on
# it; the kernel drops the lock when the process dies, even by SIGKILL, so the next run for
# the same destination can tell a leftover from a partial output another run is writing.


def _partial_pattern(dest: Path, folder: bool) -> re.Pattern[str]:
    if folder:
        return re.compile(rf"\.{re.escape(dest.name)}\.partial-[0-9a-f]{{8}}")
    return re.compile(rf"\.{re.escape(dest.stem)}\.partial-[0-9a-f]{{8}}{re.escape(dest.suffix)}")


class PartialOutput:
    """The hidden file or folder that becomes ``dest``, locked while this object holds it.

    Names: ``.STEM.partial-XXXXXXXX.SUFFIX`` for a file (the suffix keeps the container
    format guessable), ``.NAME.partial-XXXXXXXX`` for a folder.
    """

    def __init__(self, dest: str | os.PathLike, *, folder: bool = False) -> None:
        dest = Path(dest)
        token = uuid.uuid4().hex[:8]
        name = f".{dest.name}.partial-{token}" if folder else f".{dest.stem}.partial-{token}{dest.suffix}"
        self.path = dest.with_name(name)
        # Created under another name, locked, then renamed: the partial name never exists unlocked.
        staging = self.path.with_name(f"{name}.new")
        if folder:
            staging.mkdir()
            self._fd: int | None = os.open(staging, os.O_RDONLY)
        else:
            self._fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(staging, self.path)
        except BaseException:
            self.release()
            _remove(staging)
            raise

    def release(self) -> None:
        """Drop the lock (after the partial was renamed into place or removed)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def remove_stale_partials(dest: str | os.PathLike, *, folder: bool = False) -> list[Path]:
    """Delete partial outputs of ``dest`` left by runs that died; returns what was removed.

    Only names of :class:`PartialOutput`'s pattern for this destination are considered, and
    only those no living process holds locked. Without ``fcntl`` (Windows) nothing is removed.
    """
    dest = Path(dest)
    if fcntl is None or not dest.parent.is_dir():
        return []
    pattern = _partial_pattern(dest, folder)
    removed = []
    for candidate in sorted(dest.parent.iterdir()):
        if not pattern.fullmatch(candidate.name):
            continue
        try:
            fd = os.open(candidate, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: another run is writing it
            os.close(fd)
            continue
        try:
            _remove(candidate)
            removed.append(candidate)
        finally:
            os.close(fd)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
