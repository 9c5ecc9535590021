"""A full disk and a read-only destination, for real: each command writing onto a small tmpfs
that is full, or mounted read-only, ends with one line naming the file or folder, a non-zero
exit status and nothing left behind. Mounting needs root; elsewhere these tests skip."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real commands in subprocesses

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
ENV.pop("HYDRA_FULL_ERROR", None)
CLIP = ROOT / "reconet" / "assets" / "videos" / "flower_cc0.mp4"
PHOTO = ROOT / "reconet" / "assets" / "photos" / "kodak_kodim01.jpg"
PAINTING = ROOT / "reconet" / "assets" / "styles" / "candy.jpg"
MODEL = ROOT / "reconet" / "assets" / "models" / "candy.pt"


def _mount(target: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    target.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


@pytest.fixture()
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs with all but 8 KiB taken by a filler file."""
    mount = tmp_path / "full"
    _mount(mount, "size=256k")
    try:
        (mount / "filler").write_bytes(b"\0" * (248 * 1024))
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture()
def read_only(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "ro"
    _mount(mount, "size=64k,ro")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def run(*argv: str) -> tuple[int, list[str]]:
    process = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, env=ENV, timeout=300)
    assert "Traceback" not in process.stderr, process.stderr
    return process.returncode, [line for line in process.stderr.splitlines() if "error:" in line]


STYLIZE = ("reconet-stylize", "--style", "candy", "--no-progress", "--no-compile", "--max-frames", "3")


@pytest.mark.parametrize(
    ("argv", "dest"),
    [
        ((*STYLIZE, str(CLIP), "{d}/frames"), "frames"),  # a folder of frames
        ((*STYLIZE, str(PHOTO), "{d}/one.png"), "one.png"),  # a single image
        ((*STYLIZE, str(CLIP), "{d}/o.mp4"), "o.mp4"),  # a video
        (("reconet-export", str(MODEL), "{d}/m.ts", "--format", "torchscript"), "m.ts"),
    ],
    ids=["stylize-folder", "stylize-image", "stylize-video", "export"],
)
def test_a_full_disk_names_the_destination_and_leaves_nothing(full_disk: Path, argv, dest) -> None:
    code, errors = run(*(part.format(d=full_disk) for part in argv))
    assert code == 1 and len(errors) == 1, errors
    assert f"{full_disk / dest}: writing failed (No space left on device)" in errors[0], errors[0]
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # no partial output left


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        ((*STYLIZE, str(PHOTO), "{d}/o.png"), 1, "{d}/o.png: output folder {d} is not writable"),
        (("reconet-optimize", str(PHOTO), "{d}/o.png", "--style", str(PAINTING), "--iterations", "1", "--quiet"), 1,
         "{d}/o.png: output folder {d} is not writable"),
        (("reconet-export", str(MODEL), "{d}/m.ts", "--format", "torchscript"), 1, "{d}/m.ts: output folder {d} is not writable"),
        (("reconet-evaluate", "--video", str(CLIP), "--max-frames", "3", "--baseline", "input", "--no-quality",
          "--flow", "dis", "--no-progress", "--json", "{d}/r.json"), 1, "--json {d}/r.json: folder {d} is not writable"),
        (("reconet-train", "experiment=quickstart", "hydra.run.dir={d}/run"), 2,
         "run folder {d}/run cannot be created: {d} is not writable"),
    ],
    ids=["stylize", "optimize", "export", "evaluate-json", "train-run-folder"],
)
def test_a_read_only_destination_is_one_line_naming_it(read_only: Path, argv, code, message) -> None:
    returned, errors = run(*(part.format(d=read_only) for part in argv))
    assert returned == code and len(errors) == 1, errors
    assert message.format(d=read_only) in errors[0], errors[0]
    assert list(read_only.iterdir()) == []
