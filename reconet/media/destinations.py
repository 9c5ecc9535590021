"""Destinations that are never touched before an output is complete.

Every writer works on a temporary name next to its destination and renames it into place
only in :meth:`~reconet.media.writers.FrameWriter.commit`; ``abort`` (also called on any
exception, including KeyboardInterrupt, by the context manager) deletes it. The destination
is never touched before the output is complete, and an existing destination is replaced
only with ``overwrite=True``. The temporary names are :class:`reconet.fileio.PartialOutput`s,
so a later run cleans up after a killed one.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from reconet.fileio import publish, replace_folder
from reconet.media.frame import OutputError
from reconet.media.sources import is_webcam_spec


def _temp_sibling(dest: Path, kind: str) -> Path:
    # Hidden, unique, next to the destination (same file system, so the final rename is
    # atomic), and keeping the suffix so the container format is still guessed from it.
    return dest.with_name(f".{dest.stem}.{kind}-{uuid.uuid4().hex[:8]}{dest.suffix}")


def check_not_input(dest: str | Path, input_path: str | Path | None) -> None:
    """Refuse an output that is the input or contains it: --overwrite would destroy the input."""
    if input_path is None or is_webcam_spec(str(input_path)):
        return
    dest, source = Path(dest).resolve(), Path(input_path).resolve()
    if dest == source or dest in source.parents:
        raise OutputError(f"{dest}: this is {'the input' if dest == source else 'a folder holding the input'} {input_path}; choose another output")


def check_destination(dest: Path, *, overwrite: bool, folder: bool = False) -> None:
    """Fail early (before any work) if ``dest`` cannot become the output."""
    parent = dest.parent
    if not parent.exists():
        raise OutputError(f"{dest}: output folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{dest}: {parent} is not a folder")
    if folder:
        if dest.exists() and not dest.is_dir():
            raise OutputError(f"{dest}: exists and is not a folder")
        if dest.is_dir() and any(dest.iterdir()) and not overwrite:
            raise OutputError(f"{dest}: folder exists and is not empty (use --overwrite to replace it)")
    else:
        if dest.is_dir():
            raise OutputError(f"{dest}: is a folder; give a file name")
        if dest.exists() and not overwrite:
            raise OutputError(f"{dest}: exists (use --overwrite to replace it)")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{dest}: output folder {parent} is not writable")


def _set_aside(temp: Path, dest: Path) -> Path:
    """Give a finished output that cannot take its name a visible one beside it (a rename to a
    fresh name: nothing can be clobbered)."""
    kept = dest.with_name(f"{dest.stem}.new-{uuid.uuid4().hex[:8]}{dest.suffix}")
    os.replace(temp, kept)
    return kept


def commit_file(temp: Path, dest: Path, overwrite: bool) -> None:
    """Rename the finished ``temp`` to ``dest``; without ``overwrite`` never replace an existing file."""
    try:
        publish(temp, dest, replace=overwrite)
    except FileExistsError:  # appeared while we were working: never clobbered, ours is kept
        raise OutputError(f"{dest}: appeared while writing; output left at {_set_aside(temp, dest)}") from None


def commit_folder(temp: Path, dest: Path, overwrite: bool) -> None:
    """Move the finished folder ``temp`` to ``dest`` (an empty ``dest`` is replaced)."""
    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()
    if dest.exists() and not overwrite:
        raise OutputError(f"{dest}: appeared while writing; output left at {_set_aside(temp, dest)}")
    replace_folder(temp, dest)
