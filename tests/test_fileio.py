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


def test_stale_temporaries_of_killed_writes_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    """atomic_path holds a lock on its temporary while writing; one left unlocked by a killed
    process is debris that remove_stale_temps deletes, one being written is left alone."""
    import subprocess
    import sys

    from reconet.fileio import atomic_path, remove_stale_temps

    stale = tmp_path / ".last.k3x9q2ab.tmp.ckpt"
    stale.touch(mode=0o600)
    other = tmp_path / ".notes.k3x9q2ab.tmp.txt"  # another suffix: not asked for
    other.touch()
    unrelated = tmp_path / "last.ckpt"
    unrelated.write_bytes(b"kept")
    # a living writer in another process, holding its temporary of best.ckpt open and locked
    writer = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from reconet.fileio import atomic_path\n"
            f"with atomic_path({str(tmp_path / 'best.ckpt')!r}) as temp:\n"
            "    temp.write_bytes(b'x'); print('writing', flush=True); time.sleep(30)\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout.readline().strip() == "writing"
        live = [p for p in tmp_path.iterdir() if p.name.startswith(".best.")]
        assert len(live) == 1
        assert remove_stale_temps(tmp_path, ".ckpt") == [stale]
        assert live[0].exists() and other.exists() and unrelated.read_bytes() == b"kept"
    finally:
        writer.kill()
        writer.wait()
    assert remove_stale_temps(tmp_path, ".ckpt") == live  # its writer died: now it is debris
    with atomic_path(tmp_path / "out.txt") as temp:  # and a normal write still works
        temp.write_text("done")
    assert (tmp_path / "out.txt").read_text() == "done"
