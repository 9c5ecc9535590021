"""The five commands against what a user's messy folders hold: broken, truncated, tiny, huge,
hostile and misnamed files, wrong options, outputs that exist.

Each case runs the installed console script as a subprocess and must end with its documented
exit code, exactly one ``error:`` line naming the problem (no traceback), nothing left at or
beside the destination and no input file touched. Cases run two at a time (the machine has two
cores and most of a case is interpreter start-up); each is reported as its own test.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import copy_small_sintel, png_claiming, truncate_file, write_faststart_clip
from PIL import Image

from reconet.flow.io import write_flo

pytestmark = pytest.mark.slow  # end to end: real commands, subprocesses or whole runs

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
ENV.pop("HYDRA_FULL_ERROR", None)
STYLIZE = ("reconet-stylize", "--style", "candy", "--no-progress", "--no-compile")
OPTIMIZE = ("reconet-optimize", "--iterations", "1", "--iterations-warm", "1", "--quiet")
EVALUATE = ("reconet-evaluate", "--no-progress", "--loss-network", "vgg19")
EXPORT = ("reconet-export",)
# The training config shrunk to what fails fast; every case still composes the real config.
TRAIN = ("reconet-train", "model=tiny", "loss.network.weights=random", "loss.style_size=32", "data.size=[32,32]",
         "data.num_workers=0", "trainer.enable_progress_bar=false", "callbacks.samples.clip=null")
SINTEL = ("data=sintel", "data.train_scenes=[alley_1]", "data.val_scenes=[alley_1]")


@dataclass(frozen=True)
class Case:
    """``argv[0]`` is a console script; ``{in}`` is the folder of bad inputs, ``{out}`` the
    case's own output folder (holding ``existing.mp4``, which must survive)."""

    id: str
    argv: tuple[str, ...]
    exit_code: int
    message: str  # regex the one error line must match


CASES = [
    # -- reconet-stylize ---------------------------------------------------------------------
    Case("stylize-missing-input", (*STYLIZE, "{in}/nothere.mp4", "{out}/o.mp4"), 1, r"input not found: .*nothere\.mp4"),
    Case("stylize-empty-video", (*STYLIZE, "{in}/empty.mp4", "{out}/o.mp4"), 1, r"empty\.mp4: not a readable video"),
    Case("stylize-text-as-video", (*STYLIZE, "{in}/text.mp4", "{out}/o.mp4"), 1, r"text\.mp4: not a readable video"),
    Case("stylize-text-as-image", (*STYLIZE, "{in}/text.png", "{out}/o.png"), 1, r"text\.png: not a readable image"),
    Case("stylize-decompression-bomb", (*STYLIZE, "{in}/bomb.png", "{out}/o.png"), 1, r"bomb\.png: refused: its header claims more than \d+ pixels"),
    Case("stylize-truncated-png", (*STYLIZE, "{in}/truncated.png", "{out}/o.png"), 1, r"truncated\.png: not a readable image \(image file is truncated"),
    Case("stylize-truncated-mp4", (*STYLIZE, "{in}/cut.mp4", "{out}/o.mp4"), 1, r"cut\.mp4: truncated or corrupt video: decoded \d+ of 150 frames"),
    Case("stylize-empty-folder", (*STYLIZE, "{in}/empty_folder", "{out}/frames"), 1, r"empty_folder: folder contains no image files"),
    Case("stylize-folder-of-text", (*STYLIZE, "{in}/text_folder", "{out}/frames"), 1, r"text_folder: folder contains no image files"),
    Case("stylize-folder-with-a-broken-frame", (*STYLIZE, "{in}/frames_one_broken", "{out}/frames"), 1, r"frame_0002\.png: not a readable image"),
    Case("stylize-existing-output", (*STYLIZE, "{in}/clip.mp4", "{out}/existing.mp4"), 1, r"existing\.mp4: exists \(use --overwrite"),
    Case("stylize-output-is-the-input", (*STYLIZE, "{in}/clip.mp4", "{in}/clip.mp4", "--overwrite"), 1, r"clip\.mp4: this is the input"),
    Case("stylize-output-folder-missing", (*STYLIZE, "{in}/clip.mp4", "{out}/no/o.mp4"), 1, r"output folder .*no does not exist"),
    Case("stylize-unknown-output-suffix", (*STYLIZE, "{in}/clip.mp4", "{out}/o.xyz"), 1, r"o\.xyz: unknown output suffix '\.xyz'"),
    Case("stylize-video-into-one-image", (*STYLIZE, "{in}/clip.mp4", "{out}/o.png"), 1, r"o\.png: an image holds one frame"),
    Case("stylize-malicious-model", ("reconet-stylize", "{in}/grey16.png", "{out}/o.png", "--model", "{in}/evil.pt"), 1, r"evil\.pt"),
    Case("stylize-text-model", ("reconet-stylize", "{in}/grey16.png", "{out}/o.png", "--model", "{in}/text.pt"), 1, r"text\.pt"),
    Case("stylize-missing-model", ("reconet-stylize", "{in}/grey16.png", "{out}/o.png", "--model", "{in}/nothere.pt"), 1, r"nothere\.pt"),
    Case("stylize-unknown-style", ("reconet-stylize", "{in}/grey16.png", "{out}/o.png", "--style", "cnady"), 2, r"unknown style 'cnady'.*candy"),
    Case("stylize-zero-size", (*STYLIZE, "{in}/grey16.png", "{out}/o.png", "--size", "0x0"), 2, r"argument --size: size must be positive, got '0x0'"),
    Case("stylize-negative-max-frames", (*STYLIZE, "{in}/clip.mp4", "{out}/o.mp4", "--max-frames", "-1"), 2, r"--max-frames: must be >= 1"),
    Case("stylize-output-name-collision", (*STYLIZE, "{in}/mixed_frames", "{out}/frames", "--frame-format", "png"), 1, r"mixed_frames: frame_1\.jpg and frame_1\.png would both be written as frame_1\.png"),
    Case("stylize-2x2-video", (*STYLIZE, "{in}/tiny2x2.mp4", "{out}/o.mp4"), 1, r"tiny2x2\.mp4: frames are 2x2 pixels; reconet needs at least 5x5"),
    Case("stylize-multi-style-model-without-style", ("reconet-stylize", "{in}/grey16.png", "{out}/o.png", "--model", "{in}/multi.pt"), 1, r"multi\.pt holds 2 styles \(dots, lines\): choose one with --style"),
    Case("stylize-style-not-in-the-model", ("reconet-stylize", "{in}/grey16.png", "{out}/o.png", "--model", "{in}/multi.pt", "--style", "wave"), 1, r"unknown style 'wave' in 'wave'; this model's styles: dots, lines"),
    Case("stylize-malformed-blend", ("reconet-stylize", "{in}/grey16.png", "{out}/o.png", "--model", "{in}/multi.pt", "--style", "dots:0.5,lines:lots"), 1, r"malformed weight 'lots' for style 'lines'"),
    # -- reconet-optimize --------------------------------------------------------------------
    Case("optimize-missing-style", (*OPTIMIZE, "{in}/grey16.png", "{out}/o.png", "--style", "{in}/nothere.jpg"), 1, r"image not found: .*nothere\.jpg"),
    Case("optimize-decompression-bomb-style", (*OPTIMIZE, "{in}/grey16.png", "{out}/o.png", "--style", "{in}/bomb.png"), 1, r"bomb\.png: refused"),
    Case("optimize-text-style", (*OPTIMIZE, "{in}/grey16.png", "{out}/o.png", "--style", "{in}/text.png"), 1, r"text\.png: not a readable image"),
    Case("optimize-truncated-style", (*OPTIMIZE, "{in}/grey16.png", "{out}/o.png", "--style", "{in}/truncated.png"), 1, r"truncated\.png: not a readable image"),
    Case("optimize-frame-too-small", (*OPTIMIZE, "{in}/small.png", "{out}/o.png", "--style", "{in}/style.jpg"), 1, r"small\.png: a 12x10 frame is too small for the vgg19 loss network: .* at least 16 px"),
    Case("optimize-missing-input", (*OPTIMIZE, "{in}/nothere.mp4", "{out}/o.mp4", "--style", "{in}/style.jpg"), 1, r"nothere\.mp4"),
    Case("optimize-truncated-mp4", (*OPTIMIZE, "{in}/cut.mp4", "{out}/o.mp4", "--style", "{in}/style.jpg", "--size", "16x16"), 1, r"cut\.mp4: truncated or corrupt video: decoded \d+ of 150 frames"),
    Case("optimize-existing-output", (*OPTIMIZE, "{in}/clip.mp4", "{out}/existing.mp4", "--style", "{in}/style.jpg"), 1, r"existing\.mp4: exists"),
    Case("optimize-output-is-the-input", (*OPTIMIZE, "{in}/clip.mp4", "{in}/clip.mp4", "--style", "{in}/style.jpg", "--overwrite"), 1, r"clip\.mp4: this is the input"),
    Case("optimize-webcam", (*OPTIMIZE, "webcam:0", "{out}/o.mp4", "--style", "{in}/style.jpg"), 1, r"webcam:0: optimization takes seconds per frame"),
    Case("optimize-bad-size", (*OPTIMIZE, "{in}/grey16.png", "{out}/o.png", "--style", "{in}/style.jpg", "--size", "0x10"), 2, r"argument --size: size must be positive, got '0x10'"),
    # -- reconet-evaluate --------------------------------------------------------------------
    Case("evaluate-missing-root", (*EVALUATE, "--root", "{in}/nothere", "--baseline", "input", "--no-quality"), 1, r"nothere"),
    Case("evaluate-decompression-bomb-style", (*EVALUATE, "--root", "{in}/sintel_ok", "--baseline", "input", "--style", "{in}/bomb.png"), 1, r"bomb\.png: refused"),
    Case("evaluate-style-too-small", (*EVALUATE, "--root", "{in}/sintel_ok", "--baseline", "input", "--style", "{in}/tiny.png"), 1, r"--style .*tiny\.png \(1x1\) is too small for the vgg19 loss network: .* at least 8 px on each side; give --style-size"),
    Case("evaluate-text-style", (*EVALUATE, "--root", "{in}/sintel_ok", "--baseline", "input", "--style", "{in}/text.png"), 1, r"text\.png: not a readable image"),
    Case("evaluate-malicious-model", (*EVALUATE, "--root", "{in}/sintel_ok", "--model", "{in}/evil.pt", "--no-quality"), 1, r"evil\.pt"),
    Case("evaluate-truncated-video", (*EVALUATE, "--video", "{in}/cut.mp4", "--baseline", "input", "--no-quality", "--flow", "dis"), 1, r"cut\.mp4: truncated or corrupt video"),
    Case("evaluate-missing-video", (*EVALUATE, "--video", "{in}/nothere.mp4", "--baseline", "input", "--no-quality"), 1, r"nothere\.mp4"),
    Case("evaluate-empty-frames-folder", (*EVALUATE, "--root", "{in}/sintel_ok", "--frames", "{in}/empty_folder", "--no-quality"), 1, r"empty_folder"),
    Case("evaluate-truncated-flo", (*EVALUATE, "--root", "{in}/sintel_truncated_flo", "--baseline", "input", "--no-quality"), 1, r"frame_0002\.flo: truncated \.flo file"),
    Case("evaluate-flow-size-mismatch", (*EVALUATE, "--root", "{in}/sintel_mismatch", "--baseline", "input", "--no-quality"), 1, r"size mismatch \(H, W\): .*frame_0002\.flo \(50, 100\)"),
    Case("evaluate-json-folder-missing", (*EVALUATE, "--root", "{in}/sintel_ok", "--baseline", "input", "--no-quality", "--json", "{out}/no/r.json"), 1, r"r\.json: folder .*no does not exist"),
    # -- reconet-train -----------------------------------------------------------------------
    Case("train-unknown-key", (*TRAIN, "trainer.max_stepz=1"), 2, r"unknown config key 'trainer\.max_stepz' \(trainer\.max_stepz=1\); did you mean trainer\.max_steps"),
    Case("train-unknown-model-preset", (*TRAIN, "model=larg"), 2, r"unknown model preset 'larg'"),
    Case("train-override-syntax", (*TRAIN, "data.size=[1,"), 2, r"no viable alternative at input '\[1,'"),
    Case("train-steps-not-a-number", (*TRAIN, "trainer.max_steps=abc"), 2, r"trainer\.max_steps must be a whole number"),
    Case("train-zero-steps", (*TRAIN, "trainer.max_steps=0"), 2, r"trainer\.max_steps=0 trains nothing"),
    Case("train-decompression-bomb-style", (*TRAIN, "style.image={in}/bomb.png"), 2, r"style\.image: .*bomb\.png: refused"),
    Case("train-missing-style", (*TRAIN, "style.image={in}/nothere.jpg"), 2, r"style\.image: file not found: .*nothere\.jpg"),
    Case("train-text-style", (*TRAIN, "style.image={in}/text.png"), 2, r"text\.png: not a readable image"),
    Case("train-style-too-small", (*TRAIN, "style.image={in}/tiny.png", "loss.style_size=null"), 2, r"style\.image .*tiny\.png \(1x1 at loss\.style_size=None\) is too small .* at least 8 px on each side; set a larger loss\.style_size"),
    Case("train-frames-too-small", (*TRAIN, "data.size=[4,4]"), 2, r"data\.size=\[4, 4\] is too small for the vgg\d+ loss network: layers up to relu\d_\d need at least 8 px"),
    Case("train-missing-sintel-root", (*TRAIN, *SINTEL, "data.root={in}/nothere"), 2, r"SintelPairs: root .*nothere does not exist"),
    Case("train-truncated-flo", (*TRAIN, *SINTEL, "data.root={in}/sintel_truncated_flo"), 2, r"frame_0002\.flo: truncated \.flo file: \d+ bytes, expected \d+"),
    Case("train-flow-size-mismatch", (*TRAIN, *SINTEL, "data.root={in}/sintel_mismatch"), 2, r"SintelPairs: size mismatch \(H, W\): .*frame_0002\.flo \(50, 100\)"),
    Case("train-missing-checkpoint", (*TRAIN, "ckpt_path={in}/nothere.ckpt"), 2, r"ckpt_path: checkpoint not found"),
    Case("train-malicious-checkpoint", (*TRAIN, "ckpt_path={in}/evil.pt"), 2, r"ckpt_path: cannot read the checkpoint .*evil\.pt"),
    Case("train-broken-photos-found-up-front", (*TRAIN, "data.root={in}/photos_bad"), 2, r"PhotoPairs: 2 unusable photo\(s\) in .*photos_bad: cut\.jpg \(.*truncated.*\); notes\.jpg"),
    Case("train-multistyle-missing-painting", (*TRAIN, "experiment=multistyle", "styles.wave.image={in}/nothere.jpg"), 2, r"styles\.wave\.image: file not found: .*nothere\.jpg"),
    Case("train-add-style-without-source", (*TRAIN, "experiment=add_style"), 2, r"add_style needs init_from="),
    Case("train-add-style-name-taken", (*TRAIN, "experiment=add_style", "init_from=candy", "style=candy"), 2, r"add_style: candy already holds a style named 'candy'"),
    Case("train-init-from-another-architecture", (*TRAIN, "model=small", "init_from=candy"), 2, r"init_from candy: architecture .* differs from model"),
    # -- reconet-export ----------------------------------------------------------------------
    Case("export-missing-model", (*EXPORT, "{in}/nothere.pt", "{out}/m.ts", "--format", "torchscript"), 1, r"model file not found: .*nothere\.pt"),
    Case("export-malicious-model", (*EXPORT, "{in}/evil.pt", "{out}/m.ts", "--format", "torchscript"), 1, r"evil\.pt"),
    Case("export-text-model", (*EXPORT, "{in}/text.pt", "{out}/m.ts", "--format", "torchscript"), 1, r"text\.pt"),
    Case("export-existing-output", (*EXPORT, "{model}", "{out}/existing.mp4", "--format", "torchscript"), 1, r"existing\.mp4: exists"),
    Case("export-output-folder-missing", (*EXPORT, "{model}", "{out}/no/m.ts", "--format", "torchscript"), 1, r"output folder .*no does not exist"),
    Case("export-unknown-format", (*EXPORT, "{model}", "{out}/m.xyz", "--format", "tflite"), 2, r"--format: invalid choice: 'tflite'"),
]


class _Exploit:
    """Unpickling this runs code: it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory, sintel_root: Path) -> Path:
    folder = tmp_path_factory.mktemp("bad_inputs")
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (40, 48)).astype(np.uint8)
    Image.fromarray(picture.astype(np.uint16) * 257).save(folder / "grey16.png")
    Image.fromarray(np.stack([picture] * 3, axis=-1)).save(folder / "style.jpg")
    Image.new("RGB", (1, 1), (200, 30, 30)).save(folder / "tiny.png")
    Image.new("RGB", (12, 10), (30, 200, 30)).save(folder / "small.png")
    truncate_file(folder / "grey16.png", folder / "truncated.png", 0.5)
    (folder / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    (folder / "text.png").write_text("not an image\n")
    (folder / "text.mp4").write_text("not a video\n")
    (folder / "text.pt").write_text("not a model\n")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "empty_folder").mkdir()
    (folder / "text_folder").mkdir()
    (folder / "text_folder" / "notes.txt").write_text("no frames here\n")
    frames = folder / "frames_one_broken"
    frames.mkdir()
    for index in (1, 2, 3):
        Image.fromarray(np.stack([picture] * 3, axis=-1)).save(frames / f"frame_{index:04d}.png")
    truncate_file(frames / "frame_0001.png", frames / "frame_0002.png", 0.4)
    write_faststart_clip(folder / "clip150.mp4", frames=150)
    truncate_file(folder / "clip150.mp4", folder / "cut.mp4", 0.1)
    (folder / "clip150.mp4").unlink()
    write_faststart_clip(folder / "clip.mp4", frames=8, size=(32, 24))
    torch.save({"state_dict": _Exploit(folder.parent / "PWNED")}, folder / "evil.pt")
    mixed = folder / "mixed_frames"  # two inputs that map to one output name
    mixed.mkdir()
    for name in ("frame_1.png", "frame_1.jpg", "frame_2.png"):
        Image.fromarray(np.stack([picture] * 3, axis=-1)).save(mixed / name)
    _write_clip(folder / "tiny2x2.mp4", width=2, height=2, frames=3)
    from reconet.models import build_reconet, save_artifact

    save_artifact(folder / "multi.pt", build_reconet("tiny", num_styles=2), {"styles": [{"name": "dots"}, {"name": "lines"}]})
    photos = folder / "photos_bad"  # a photo folder with a truncated JPEG and a text file named .jpg
    photos.mkdir()
    Image.fromarray(np.stack([picture] * 3, axis=-1)).resize((96, 80)).save(photos / "ok.jpg")
    truncate_file(photos / "ok.jpg", photos / "cut.jpg", 0.5)
    (photos / "notes.jpg").write_text("a text file, not a photo\n")

    ok = copy_small_sintel(sintel_root, folder / "sintel_ok")
    shutil.copytree(ok, folder / "sintel_truncated_flo")
    truncate_file(ok / "training/flow/alley_1/frame_0002.flo", folder / "sintel_truncated_flo/training/flow/alley_1/frame_0002.flo", 0.5)
    shutil.copytree(ok, folder / "sintel_mismatch")
    # frame 2 is the pair with occlusion maps (evaluation skips the others by default)
    write_flo(folder / "sintel_mismatch/training/flow/alley_1/frame_0002.flo", np.zeros((50, 100, 2), np.float32))
    return folder


def _write_clip(path: Path, width: int, height: int, frames: int) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode())


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder`` with its content hash and modification time."""
    return {
        str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@dataclass
class Outcome:
    returncode: int
    stderr: str
    out_before: dict[str, tuple[str, int]]
    out_after: dict[str, tuple[str, int]]
    runs_after: list[str]
    seconds: float


def _run_case(case: Case, inputs: Path, work: Path, model: Path) -> Outcome:
    out, runs = work / "out", work / "runs"
    out.mkdir(parents=True)
    runs.mkdir()
    (out / "existing.mp4").write_bytes(b"the user's own file")
    argv = [part.format(**{"in": inputs, "out": out, "model": model}) for part in case.argv]
    if argv[0] == "reconet-train":
        # Hydra's run folder is where a run writes by design; checked separately below.
        argv.append(f"hydra.run.dir={runs}")
    before = _snapshot(out)
    started = time.perf_counter()
    process = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, env=ENV, cwd=work, timeout=300
    )
    return Outcome(process.returncode, process.stderr, before, _snapshot(out),
                   sorted(str(p.relative_to(runs)) for p in runs.rglob("*") if p.is_file()),
                   time.perf_counter() - started)


@pytest.fixture(scope="session")
def outcomes(bad_inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    work = tmp_path_factory.mktemp("bad_input_runs")
    model = Path(__file__).resolve().parents[2] / "reconet" / "assets" / "models" / "candy.pt"
    inputs_before = _snapshot(bad_inputs)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case.id: pool.submit(_run_case, case, bad_inputs, work / case.id, model) for case in CASES}
        results = {name: future.result() for name, future in futures.items()}
    assert _snapshot(bad_inputs) == inputs_before, "a command modified its inputs"
    assert not (bad_inputs.parent / "PWNED").exists(), "a command unpickled a hostile file and ran its code"
    (work / "seconds.txt").write_text("".join(f"{r.seconds:6.1f} {n}\n" for n, r in sorted(results.items(), key=lambda x: -x[1].seconds)))
    return results


def test_there_are_enough_cases_across_all_commands() -> None:
    per_command = {name: sum(case.argv[0] == name for case in CASES) for name in
                   ("reconet-stylize", "reconet-optimize", "reconet-evaluate", "reconet-train", "reconet-export")}
    assert len(CASES) >= 40 and min(per_command.values()) >= 5, per_command
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_fails_in_one_line_and_leaves_nothing(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.id]
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.returncode == case.exit_code, outcome.stderr
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, outcome.stderr
    assert errors[0].startswith(f"{case.argv[0]}: error: "), errors[0]
    assert re.search(case.message, errors[0]), f"{errors[0]!r} does not match {case.message!r}"
    assert len(errors[0]) < 400, errors[0]
    # The user's file is intact and nothing was created at or beside the destination.
    assert outcome.out_after == outcome.out_before
    assert not [name for name in outcome.runs_after if name.endswith((".ckpt", ".pt"))], outcome.runs_after
