"""Writing files so that a reader never sees half of one: the package's one write-then-rename.

:func:`atomic_path` hands out a hidden temporary sibling of the destination (same folder, so
the rename cannot cross file systems; same suffix, so writers that pick the format from the
name keep working) and renames it over the destination when the block succeeds
(``os.replace`` is atomic on POSIX and Windows); on any failure the temporary file is removed.
:func:`atomic_write` does the same for code that writes to a binary handle.

fsync policy: the file is flushed and fsynced before the rename and the folder after it, for
every file (checkpoints, models, reports, caches alike): an interrupted write or a power cut
leaves the previous file, or none, never a partial or empty one under the final name. The file
gets the permissions an ordinary new file gets under the umask (mkstemp alone would make it
0600). Long outputs written while the user watches (videos, frame folders) use
:class:`PartialOutput` below, which adds a lock so a later run can clean up after a killed one,
and are put in place by the same :func:`publish` (files, never clobbering without ``replace``)
or :func:`replace_folder` (folders, swapped in two renames).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

try:
    import fcntl  # POSIX only; without it stale partial outputs are left in place
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` (same suffix) to write; on success it becomes ``path``.

    >>> with atomic_path("out/frame.png") as temp:
    ...     image.save(temp)                  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    temp = Path(name)
    try:
        # Locked while this process writes it: a temp left by a killed run is unlocked, and
        # remove_stale_temps can tell the two apart (as remove_stale_partials does below).
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield temp
        publish(temp, path, replace=True)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def publish(temp: str | os.PathLike, dest: str | os.PathLike, *, replace: bool) -> None:
    """Put the finished file ``temp`` at ``dest`` (same folder): fsynced, umask permissions.

    With ``replace=False`` an existing ``dest`` is never clobbered, even one that appeared
    while ``temp`` was being written (``link`` refuses existing names): FileExistsError, and
    ``temp`` stays where it is for the caller to keep.
    """
    temp, dest = Path(temp), Path(dest)
    with open(temp, "rb+") as handle:  # data written through any API, by name
        os.fsync(handle.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o666 & ~umask)
    if replace:
        os.replace(temp, dest)
    else:
        try:
            os.link(temp, dest)
        except FileExistsError:
            raise FileExistsError(f"{dest}: exists") from None
        except OSError:  # file systems without hard links
            if dest.exists():
                raise FileExistsError(f"{dest}: exists") from None
            os.replace(temp, dest)
        else:
            temp.unlink()
    _fsync_dir(dest.parent)


def replace_folder(new: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Put the finished folder ``new`` at ``dest`` (same parent), replacing what is there.

    An existing ``dest`` is swapped out in two renames, so a failure in between leaves both
    folders intact, and deleted afterwards.
    """
    new, dest = Path(new), Path(dest)
    backup = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
    if dest.exists():
        os.replace(dest, backup)
    os.replace(new, dest)
    shutil.rmtree(backup, ignore_errors=True)
    _fsync_dir(dest.parent)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write(handle)`` on a temporary sibling of ``path``, then rename it to ``path``."""
    path = Path(path)
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        write(handle)
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
    return [c for c in sorted(dest.parent.iterdir()) if pattern.fullmatch(c.name) and _remove_if_unlocked(c)]


def _remove_if_unlocked(candidate: Path) -> bool:
    """Remove ``candidate`` unless a living process holds its flock (another run writing it)."""
    try:
        fd = os.open(candidate, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: being written right now
        os.close(fd)
        return False
    try:
        _remove(candidate)
    finally:
        os.close(fd)
    return True


def remove_stale_temps(folder: str | os.PathLike, suffix: str) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left in ``folder`` for destinations
    ending in ``suffix`` when a run was killed mid-write (``.last.k3x9_q2a.tmp.ckpt``); files a
    living writer holds locked are kept. Returns what was removed (nothing without ``fcntl``)."""
    folder = Path(folder)
    if fcntl is None or not folder.is_dir():
        return []
    pattern = re.compile(rf"\..+\.[A-Za-z0-9_]{{8}}\.tmp{re.escape(suffix)}")
    candidates = sorted(c for c in folder.iterdir() if c.is_file() and pattern.fullmatch(c.name))
    return [c for c in candidates if _remove_if_unlocked(c)]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
