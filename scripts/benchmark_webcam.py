"""Webcam at frame rate: the live path of ``reconet-stylize webcam:0 --preview`` end to end, with an
injected camera.

    python scripts/benchmark_webcam.py                          # the bundled fast network, candy
    python scripts/benchmark_webcam.py --model multistyle --style candy --seconds 20

The camera is a stand-in for ``cv2.VideoCapture`` with a frame clock: ``read()`` blocks until the
next frame is due at ``--camera-fps`` (30 by default), like a driver, and returns real frames (the
sample clip, decoded once, in a loop) at 640x360. Everything after it is what the command runs:
``open_frames("webcam:0", latest_only=True)`` (a capture thread keeping only the newest frame),
``load()`` as the command calls it for a live stream (compiled; precision auto measures fp32, bf16
and int8 compiled where the CPU offers them), and ``pipeline.run_live`` (reader and writer
threads, stylize on the main thread, show). The window is replaced by a stand-in that converts
the frame to BGR and records when each frame was shown (``cv2.imshow`` itself is not available
headless). Reported, after a warm-up that compiles: frames shown per second, frames the camera
delivered and the live path dropped, and the model-only rate on the same frames for comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as reconet-stylize sets it

import numpy as np  # noqa: E402
import torch  # noqa: E402

import reconet.media as media  # noqa: E402
from reconet.hardware import describe_device  # noqa: E402
from reconet.image import uint8_to_tensor  # noqa: E402
from reconet.inference.pipeline import LIVE_EXPECTED_FRAMES, run_live  # noqa: E402
from reconet.inference.stylizer import load  # noqa: E402
from reconet.models.pretrained import bundled_network_path, resolve_model  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fast", help="artifact or bundled name (default: the bundled fast network)")
    parser.add_argument("--style", default="candy", help="style of a multi-style model (default: candy)")
    parser.add_argument("--precision", default="auto", help="as reconet-stylize --precision (default auto)")
    parser.add_argument("--size", default="640x360", help="camera frame size WxH (default 640x360)")
    parser.add_argument("--camera-fps", type=float, default=30.0, help="the camera's frame rate (default 30)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured live time after warm-up (default 15)")
    parser.add_argument("--clip", type=Path, default=None, help="frames for the camera (default: the sample flower clip)")
    return parser.parse_args(argv)


class ClockedCamera:
    """cv2.VideoCapture stand-in: ``frames`` (BGR uint8) in a loop, one per 1/fps seconds."""

    def __init__(self, frames: list[np.ndarray], fps: float) -> None:
        self.frames, self.period = frames, 1.0 / fps
        self.delivered = 0
        self.next_due: float | None = None
        self.running = True

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.running:
            return False, None
        now = time.monotonic()
        self.next_due = max(now, (self.next_due or now) + self.period)
        time.sleep(self.next_due - now)
        frame = self.frames[self.delivered % len(self.frames)]
        self.delivered += 1
        return True, frame

    def get(self, prop: int) -> float:
        return 1.0 / self.period

    def release(self) -> None:
        self.running = False


class WindowStandIn:
    """The preview window's work without a display: BGR conversion, and when each frame showed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.shown: list[float] = []

    def show(self, image: np.ndarray, fps: float) -> bool:
        np.ascontiguousarray(image[:, :, ::-1])  # what OpenCVPreview hands to cv2.imshow
        now = time.monotonic()
        self.shown.append(now)
        return now - self.shown[0] < self.seconds

    def close(self) -> None:
        pass


def sample_frames(clip: Path | None, width: int, height: int, count: int = 60) -> list[np.ndarray]:
    """Real frames for the camera, BGR uint8 at width x height."""
    if clip is None:
        from benchmark import default_clip  # scripts/benchmark.py: the sample data's flower clip

        from reconet.resources import asset_path

        clip = default_clip() or Path(asset_path("videos/flower_cc0.mp4"))
    with media.open_frames(clip, size=media.SizeSpec(size_wh=(width, height)), max_frames=count) as source:
        return [np.ascontiguousarray(frame.image[:, :, ::-1]) for frame in source.frames()]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    width, height = (int(v) for v in args.size.lower().split("x"))
    frames = sample_frames(args.clip, width, height)
    model_path = bundled_network_path(args.model) or resolve_model(args.model)
    print(f"webcam benchmark: torch {torch.__version__}, {describe_device('cpu')}, {torch.get_num_threads()} threads")
    print(f"command: python scripts/benchmark_webcam.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    camera = ClockedCamera(frames, args.camera_fps)
    source = media.open_frames("webcam:0", capture_factory=lambda index: camera, latest_only=True)
    style = args.style if args.style else None
    try:
        stylizer = load(model_path, device="cpu", precision=args.precision, expected_frames=LIVE_EXPECTED_FRAMES, style=style)
    except ValueError:  # a single-style model takes no --style
        stylizer = load(model_path, device="cpu", precision=args.precision, expected_frames=LIVE_EXPECTED_FRAMES)
    start = time.perf_counter()
    batch = uint8_to_tensor(frames[0][:, :, ::-1].copy())[None]
    for _ in range(max(3, stylizer.warmup_calls + 1)):  # compile and choose before the camera runs
        stylizer(batch)
    print(f"model {model_path.name}, style {style}: {stylizer.info} (warm-up {time.perf_counter() - start:.1f} s)")
    choice = getattr(stylizer, "precision_choice", None)
    if choice is not None:
        print(f"precision auto: {choice.describe()}")
    tensors = [uint8_to_tensor(frame[:, :, ::-1].copy())[None] for frame in frames[:30]]
    model_start = time.perf_counter()
    for x in tensors:
        stylizer(x)
    model_fps = len(tensors) / (time.perf_counter() - model_start)

    window = WindowStandIn(args.seconds)
    with source:
        camera.delivered = 0
        live_start = time.monotonic()
        stats = run_live(source, stylizer, None, progress=False, preview=window)
        live_seconds = time.monotonic() - live_start
    shown = window.shown
    span = shown[-1] - shown[0] if len(shown) > 1 else float("nan")
    live_fps = (len(shown) - 1) / span if len(shown) > 1 else 0.0
    print(f"camera {width}x{height} at {args.camera_fps:g} fps: delivered {camera.delivered} frames in {live_seconds:.1f} s")
    print(f"live path (capture thread -> stylize -> show): {stats.frames} frames shown, {source.dropped} dropped")
    print(f"shown per second (end to end): {live_fps:.1f} fps; first frame shown {shown[0] - live_start:.2f} s after start")
    print(f"model only on the same frames (before the live run): {model_fps:.1f} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
