"""``reconet-optimize`` end to end: folders, images and video with audio through the shared I/O;
one-line errors with nothing left behind; a finished work directory is reused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reconet.cli.optimize import main

pytestmark = pytest.mark.slow  # end to end: real commands, subprocesses or whole runs

SEQUENCE = "sequences/sintel_alley_1_clean_frames_0016-0025"
# Cheap settings: a random VGG-19 cut at relu3_1, a couple of iterations, tiny frames.
FAST = [
    "--loss-weights", "random", "--content-layer", "relu3_1", "--style-layers", "relu1_1", "relu2_1", "relu3_1",
    "--iterations", "2", "--iterations-warm", "1", "--max-side", "48", "--device", "cpu",
]


@pytest.fixture
def frames_dir(sample_data: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for path in sorted((sample_data / SEQUENCE).glob("*.png"))[:3]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture
def style(styles_dir: Path) -> Path:
    return styles_dir / "candy.jpg"


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_folder_to_folder_keeps_names_and_count(capsys, frames_dir, style, tmp_path):
    out = tmp_path / "stylized"
    code, err = _run(capsys, frames_dir, out, "--style", style, *FAST)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in frames_dir.iterdir())
    for name in names:
        with Image.open(out / name) as image:
            assert image.size == (48, 20)  # 1024x436 shrunk to a longer side of 48, even sizes
    assert "frame 3/3" in err and "ETA" in err and "loss" in err
    assert not (tmp_path / "stylized.parts").exists(), "work directory removed after success"


def test_video_keeps_rate_and_audio(capsys, videos_dir, style, tmp_path):
    source = videos_dir / "mdn_stream_of_water.webm"
    out = tmp_path / "water.mp4"
    code, err = _run(capsys, source, out, "--style", style, "--max-frames", "3", *FAST)
    assert code == 0, err
    with av.open(str(source)) as original, av.open(str(out)) as result:
        video = result.streams.video[0]
        assert video.average_rate == original.streams.video[0].average_rate
        assert (video.codec_context.width, video.codec_context.height) == (48, 36)
        assert len(result.streams.audio) == 1, "the soundtrack is carried over"
        assert sum(1 for _ in result.decode(video=0)) == 3


def test_image_to_image(capsys, sample_data, style, tmp_path):
    image = sorted((sample_data / SEQUENCE).glob("*.png"))[0]
    out = tmp_path / "single.jpg"
    code, err = _run(capsys, image, out, "--style", style, *FAST)
    assert code == 0, err
    with Image.open(out) as result:
        assert result.size == (48, 20)
        pixels = np.asarray(result.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 1.0  # an actual image, not a constant


def test_finished_work_dir_is_reused(capsys, frames_dir, style, tmp_path):
    out = tmp_path / "out"
    code, err = _run(capsys, frames_dir, out, "--style", style, *FAST, "--keep-parts")
    assert code == 0, err
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert (tmp_path / "out.parts" / "manifest.json").is_file()
    code, err = _run(capsys, frames_dir, out, "--style", style, *FAST, "--overwrite", "--keep-parts")
    assert code == 0, err
    assert err.count("resumed from the work directory") == 3 and "0 optimized" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    # With other settings the old frames are refused, not mixed in.
    code, err = _run(capsys, frames_dir, tmp_path / "other", "--style", style, *FAST,
                     "--style-weight", "3", "--work-dir", tmp_path / "out.parts")
    assert code == 1 and "style_weight" in err


def test_interrupted_command_resumes_to_the_uninterrupted_output(capsys, monkeypatch, frames_dir, style, tmp_path):
    import reconet.cli.optimize as cli

    code, err = _run(capsys, frames_dir, tmp_path / "reference", "--style", style, *FAST)
    assert code == 0, err

    original = cli._print_progress

    def interrupt_after_first_frame(progress):
        original(progress)
        raise KeyboardInterrupt  # Ctrl-C right after frame 1 was finished

    monkeypatch.setattr(cli, "_print_progress", interrupt_after_first_frame)
    out = tmp_path / "out"
    code, err = _run(capsys, frames_dir, out, "--style", style, *FAST)
    assert code == 130 and "resume" in err
    assert not out.exists(), "no partial output"
    assert sorted(p.name for p in (tmp_path / "out.parts" / "frames").iterdir()) == ["frame_000000.png"]

    monkeypatch.setattr(cli, "_print_progress", original)
    code, err = _run(capsys, frames_dir, out, "--style", style, *FAST)
    assert code == 0, err
    assert "1 resumed" in err
    reference = {p.name: np.asarray(Image.open(p)) for p in (tmp_path / "reference").iterdir()}
    resumed = {p.name: np.asarray(Image.open(p)) for p in out.iterdir()}
    assert reference.keys() == resumed.keys()
    for name in reference:
        assert np.array_equal(reference[name], resumed[name]), name


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_input", "input not found"),
        ("missing_style", "image not found"),
        ("bad_suffix", "unknown output suffix"),
        ("output_exists", "exists (use --overwrite"),
        ("not_a_video", "not a readable video"),
        ("webcam", "record a clip"),
        ("image_for_many", "an image holds one frame"),
        ("no_cuda", "CUDA"),
    ],
)
def test_bad_input_gives_one_line_and_leaves_nothing(capsys, case, message, frames_dir, style, tmp_path):
    inp, out, extra = frames_dir, tmp_path / "out.mp4", []
    if case == "missing_input":
        inp = tmp_path / "nope.mp4"
    elif case == "missing_style":
        style = tmp_path / "nope.jpg"
    elif case == "bad_suffix":
        out = tmp_path / "out.xyz"
    elif case == "output_exists":
        out.write_bytes(b"keep me")
    elif case == "not_a_video":
        inp = tmp_path / "text.mp4"
        inp.write_text("not a video")
    elif case == "webcam":
        inp = "webcam:0"
    elif case == "image_for_many":
        out = tmp_path / "out.png"
    elif case == "no_cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
        extra = ["--device", "cuda"]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = _run(capsys, inp, out, "--style", style, *FAST[:-2], *(extra or FAST[-2:]))
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reconet-optimize: error:"), err
    assert message in lines[0]
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing written"
    if case == "output_exists":
        assert out.read_bytes() == b"keep me"


def test_help_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "reconet.cli.optimize", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0
    for option in ("--style", "--temporal-weight", "--optimizer", "--iterations-warm", "--flow", "--restart"):
        assert option in result.stdout


def test_bad_number_is_a_usage_error(capsys, frames_dir, style, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main([str(frames_dir), str(tmp_path / "o"), "--style", str(style), "--iterations", "many"])
    assert exit_info.value.code == 2


def test_negative_weight_is_a_one_line_error(capsys, frames_dir, style, tmp_path):
    code, err = _run(capsys, frames_dir, tmp_path / "o", "--style", style, "--style-weight", "-1")
    assert code == 1 and "style_weight must be >= 0" in err


def test_fractional_fps_option_reaches_the_video(capsys, frames_dir, style, tmp_path):
    out = tmp_path / "from_frames.mp4"
    code, err = _run(capsys, frames_dir, out, "--style", style, *FAST, "--fps", "30000/1001")
    assert code == 0, err
    with av.open(str(out)) as result:
        assert result.streams.video[0].average_rate == Fraction(30000, 1001)


def test_method_options_reach_the_config():
    from reconet.cli.optimize import build_parser, config_from_args

    args = build_parser().parse_args([
        "in", "out", "--style", "s.jpg", "--occlusion-fill", "content", "--flow-agreement", "1.5",
        "--line-search", "strong_wolfe", "--flow", "farneback",
    ])
    config = config_from_args(args)
    assert (config.occlusion_fill, config.flow_agreement, config.line_search, config.flow) == (
        "content", 1.5, "strong_wolfe", "farneback")
    defaults = config_from_args(build_parser().parse_args(["in", "out", "--style", "s.jpg"]))
    assert defaults == type(defaults)()  # every option's default is the config's


def test_line_search_with_adam_is_a_one_line_error(capsys, frames_dir, style, tmp_path):
    code, err = _run(capsys, frames_dir, tmp_path / "o", "--style", style, "--optimizer", "adam",
                     "--line-search", "strong_wolfe")
    assert code == 1 and err.strip().count("\n") == 0 and "needs optimizer 'lbfgs'" in err
    assert not (tmp_path / "o").exists()


def test_bf16_runs_end_to_end_and_is_not_resumed_from_fp32_frames(capsys, frames_dir, style, tmp_path):
    out = tmp_path / "out"
    code, err = _run(capsys, frames_dir, out, "--style", style, *FAST, "--keep-parts")
    assert code == 0, err
    code, err = _run(capsys, frames_dir, tmp_path / "bf16", "--style", style, *FAST, "--precision", "bf16",
                     "--work-dir", tmp_path / "out.parts")
    assert code == 1 and "precision" in err and len(err.strip().splitlines()) == 1, err
    code, err = _run(capsys, frames_dir, tmp_path / "bf16", "--style", style, *FAST, "--precision", "bf16")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "bf16").iterdir()) == sorted(p.name for p in out.iterdir())


def test_fp16_is_not_offered(capsys, frames_dir, style, tmp_path):
    with pytest.raises(SystemExit) as info:
        main([str(frames_dir), str(tmp_path / "out"), "--style", str(style), "--precision", "fp16"])
    assert info.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err
