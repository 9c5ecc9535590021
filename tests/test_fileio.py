"""The package's one write-then-rename: all or nothing, ordinary permissions, the suffix kept."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from reconet.fileio import atomic_path, atomic_write, write_json


def test_atomic_path_keeps_the_suffix_and_gives_umask_permissions(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "sub" / "frame.png") as temp:
            assert temp.parent == tmp_path / "sub" and temp.name.startswith(".frame.") and temp.suffix == ".png"
            temp.write_bytes(b"png bytes")
            assert not (tmp_path / "sub" / "frame.png").exists()  # nothing at the destination yet
    finally:
        os.umask(previous)
    final = tmp_path / "sub" / "frame.png"
    assert final.read_bytes() == b"png bytes"
    assert stat.S_IMODE(final.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert sorted(p.name for p in final.parent.iterdir()) == ["frame.png"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json(path, {"old": 1})

    def half_then_fail(handle) -> None:
        handle.write(b'{"new": ')
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == '{\n  "old": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_publish_without_replace_never_clobbers_and_keeps_the_new_file(tmp_path: Path) -> None:
    from reconet.fileio import publish

    dest, temp = tmp_path / "clip.mp4", tmp_path / ".clip.partial.mp4"
    dest.write_bytes(b"theirs")
    temp.write_bytes(b"ours")
    with pytest.raises(FileExistsError, match="clip.mp4: exists"):
        publish(temp, dest, replace=False)
    assert dest.read_bytes() == b"theirs" and temp.read_bytes() == b"ours"
    publish(temp, dest, replace=True)
    assert dest.read_bytes() == b"ours" and not temp.exists()


def test_replace_folder_swaps_the_whole_folder(tmp_path: Path) -> None:
    from reconet.fileio import replace_folder

    dest, new = tmp_path / "cache", tmp_path / ".cache.building"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    new.mkdir()
    (new / "new.txt").write_text("new")
    replace_folder(new, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no backup left behind
