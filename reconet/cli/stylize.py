"""``reconet-stylize``: stylize a video, an image, a folder of frames or a webcam stream.

Parses the command line and calls :mod:`reconet.inference`; no logic of its own beyond
turning errors into one-line messages and exit codes (0 ok, 1 error, 2 usage, 130 Ctrl-C,
143 terminated).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from reconet.cli.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    one_line,
    one_line_warnings,
    size_wh,
)

# Must happen before torch loads OpenMP. Waiting threads that spin (the default) are a disaster
# when other programs also want the cores: a thread that lost its core holds up every barrier
# while its partner burns the other core spinning. Measured on a busy 2-core machine: tiny
# preset 0.8 fps spinning vs 36 fps passive; see docs/inference.md.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PROG = "reconet-stylize"

EXAMPLES = """\
examples:
  reconet-stylize holiday.mp4 holiday_candy.mp4 --style candy       (a bundled style)
  reconet-stylize --list-styles
  reconet-stylize holiday.mp4 holiday_udnie.mp4 --model udnie.pt     (your own model)
      video -> video: same frames, frame rate, size, duration and soundtrack
  reconet-stylize clip.webm small.mp4 --model udnie.pt --max-side 640
  reconet-stylize photo.jpg photo_udnie.png --model udnie.pt
  reconet-stylize frames/ styled_frames/ --model udnie.pt          (folder -> folder)
  reconet-stylize frames/ styled.mp4 --model udnie.pt --fps 24     (folder -> video)
  reconet-stylize webcam:0 --model udnie.pt --preview               (live, q to stop)
  reconet-stylize webcam:0 recording.mp4 --model udnie.onnx --max-frames 300

Output kind comes from OUTPUT: a video suffix (.mp4 .m4v .mov .mkv .webm .avi .gif), an image
suffix (.png .jpg ...) or a folder (no suffix). Output is written to a hidden temporary file
next to OUTPUT and renamed when complete; an existing OUTPUT is kept unless --overwrite.
"""


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that cleanup runs as for Ctrl-C."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _fraction(text: str) -> Fraction:
    try:
        value = Fraction(text)  # "30000/1001", "29.97", "25"
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a frame rate: {text!r} (e.g. 25, 29.97, 30000/1001)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"frame rate must be > 0, got {text}")
    return value.limit_denominator(1001 * 1000)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Stylize a video (keeping its frame rate, duration and audio), an image, "
        "a folder of frames or a webcam stream with a trained ReCoNet model.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "input", nargs="?", help="video file, image file, folder of frames, or webcam:N (e.g. webcam:0)"
    )
    parser.add_argument(
        "output",
        nargs="?",
        help="video file, image file or folder to create (optional with --preview)",
    )
    parser.add_argument(
        "-s",
        "--style",
        metavar="NAME",
        help="a pretrained style bundled with reconet, e.g. candy (see --list-styles); with --model, a style "
        "of that (multi-style) model, or a blend of its styles: 'udnie:0.6,wave:0.4'",
    )
    parser.add_argument(
        "-m",
        "--model",
        help="your trained model: inference artifact (.pt), Lightning checkpoint (.ckpt) or exported .onnx",
    )
    parser.add_argument(
        "--strength",
        type=_unit_float,
        metavar="S",
        help="how much of the style, 0..1 (default 1): the stylized frames cross-faded with the input, "
        "0 = the input unchanged (docs/inference.md)",
    )
    parser.add_argument(
        "--list-styles",
        action="store_true",
        help="list the bundled styles with what they measured (with --model: that model's styles), and exit",
    )
    device = parser.add_argument_group("device and speed")
    device.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where to run (auto: cuda if available). CUDA runs in half precision, channels_last, "
        "with cudnn.benchmark",
    )
    device.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "onnx"),
        help="inference engine; auto: PyTorch, or ONNX Runtime for .onnx models (default: auto)",
    )
    device.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the model: fuses the memory-bound layers, costs tens of seconds once "
        "(default: on CPU for inputs of 64+ frames, off on CUDA; see docs/inference.md)",
    )
    device.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16", "int8"),
        help="arithmetic of the model (auto: fp16 on CUDA; on a CPU with AMX/AVX512-BF16 the faster of "
        "fp32 and bf16, timed on the first frames once per machine and cached; else fp32; for compiled "
        "jobs on a CPU with VNNI/AMX-INT8 and the [int8] extra, also int8 when it is faster and within "
        "38 dB). int8: convolutions quantized on the first frames (CPU, needs pip install 'reconet[int8]'); "
        "normalization and the output layer stay in higher precision",
    )
    device.add_argument("--fp32", action="store_true", help="same as --precision fp32")
    device.add_argument("--threads", type=_positive_int, help="CPU threads for the model (default: all cores)")
    device.add_argument(
        "--batch-size",
        type=_positive_int,
        help="frames per model call (default: 4 on CUDA, 1 on CPU, 1 for webcams)",
    )
    size = parser.add_argument_group("size (default: keep the input size)").add_mutually_exclusive_group()
    size.add_argument("--size", type=size_wh, metavar="WxH", help="output size, e.g. 1280x720 (any size, odd too)")
    size.add_argument(
        "--max-side",
        type=_positive_int,
        metavar="N",
        help="shrink so that the longer side is at most N pixels (aspect kept, even sizes)",
    )
    size.add_argument("--scale", type=_positive_float, metavar="F", help="scale both sides by F, e.g. 0.5")
    out = parser.add_argument_group("output")
    out.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    out.add_argument("--no-audio", action="store_true", help="do not copy the soundtrack")
    out.add_argument(
        "--crf",
        type=int,
        metavar="Q",
        help="video quality, lower is better (H.264 default 18, VP9 default 31)",
    )
    out.add_argument(
        "--fps",
        type=_fraction,
        help="frame rate of a video made from images or a webcam (default 25 for folders; "
        "webcam recordings use capture times)",
    )
    out.add_argument(
        "--frame-format",
        default="png",
        choices=("png", "jpg"),
        help="file type of frames written to a folder (default: png)",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--max-frames", type=_positive_int, metavar="N", help="stop after N frames")
    run.add_argument("--preview", action="store_true", help="show a live window with the fps (q or Esc stops)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (the summary line stays)")
    run.add_argument("--debug", action="store_true", help="show full tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_styles:
        if args.model is not None:
            return _list_model_styles(args.model)
        print(styles_table())
        return 0
    if args.input is None:
        parser.error("INPUT is required")
    if args.style is None and args.model is None:
        parser.error("give a bundled style with --style NAME (see --list-styles) or your model with --model PATH")
    if args.output is None and not args.preview:
        parser.error("OUTPUT is required (or use --preview to only watch)")
    args.model_style = None  # which style of --model (a multi-style model) to run
    if args.style is not None and args.model is not None:
        args.model_style = args.style
    elif args.style is not None:
        from reconet.models.pretrained import UnknownStyleError, pretrained_path

        try:
            args.model = str(pretrained_path(args.style))
        except UnknownStyleError as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            return EXIT_USAGE
    # one_line_warnings restores filters and showwarning on return, so calling main()
    # in-process (tests, notebooks) leaves no trace; --debug shows warnings as Python does.
    with one_line_warnings(PROG) if not args.debug else warnings.catch_warnings():
        if not args.debug:
            _quiet_warnings()
        return _run_reporting_errors(args)


def _list_model_styles(model: str) -> int:
    """Print the style table of ``model`` (one row per style, in row order)."""
    from reconet.models.artifact import ModelFileError, load_stylizer, style_table
    from reconet.models.pretrained import bundled_network_path

    try:
        network, meta = load_stylizer(bundled_network_path(model) or model)
    except (ModelFileError, FileNotFoundError) as error:
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_ERROR
    rows = style_table(meta, network.num_styles)
    print(f"{model}: {len(rows)} style{'s' if len(rows) != 1 else ''}")
    for index, row in enumerate(rows):
        facts = ", ".join(f"{key} {row[key]}" for key in ("style_image", "global_step") if row.get(key) is not None)
        print(f"  {index:2d}  {row['name']}" + (f"  ({facts})" if facts else ""))
    return 0


def styles_table() -> str:
    """The bundled styles, one row each, with the numbers measured for their model cards."""
    from reconet.models.pretrained import list_styles

    styles = list_styles()
    if not styles:
        return "no pretrained styles are installed"

    def number(value: Any, form: str) -> str:
        return format(value, form) if isinstance(value, (int, float)) else "-"

    header = ("style", "preset", "trained at", "steps", "E/input Sintel", "E/input DAVIS", "structure Sintel", "structure DAVIS")
    rows = [header]
    for style in styles:
        metrics = style.metrics
        rows.append(
            (
                style.name,
                style.preset,
                f"{style.trained_size[1]}x{style.trained_size[0]}",
                str(style.steps),
                number(metrics.get("sintel_temporal_ratio_to_input"), ".2f"),
                number(metrics.get("davis_temporal_ratio_to_input"), ".2f"),
                number(metrics.get("sintel_content_structure"), ".2f"),
                number(metrics.get("davis_content_structure"), ".2f"),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    data = sorted({style.data for style in styles})
    lines.append("")
    lines.extend(f"data: {text}" for text in data)
    lines.append("E/input: temporal error of the stylized video / that of the input (lower = less flicker);")
    lines.append("structure: content structure, 1 = the input's edge layout (docs/pretrained.md)")
    return "\n".join(lines)


def _quiet_warnings() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    # torch.compile's compiler probing logs CUDA notes on CPU-only machines
    logging.getLogger("torch").setLevel(logging.ERROR)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def _run_reporting_errors(args: argparse.Namespace) -> int:
    def terminate(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print(f"{PROG}: terminated; no output written", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as error:  # every failure becomes one line; --debug shows where
        if args.debug:
            raise
        known = _is_user_error(error)
        hint = "" if known else " (run with --debug for the traceback)"
        print(f"{PROG}: error: {one_line(error)}{hint}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        signal.signal(signal.SIGTERM, previous)


def _is_user_error(error: BaseException) -> bool:
    import av

    return isinstance(error, (ValueError, OSError, MemoryError, ImportError, av.FFmpegError))


def _run(args: argparse.Namespace) -> int:
    import reconet.media as media
    from reconet.inference import pipeline
    from reconet.inference.stylizer import load

    size = media.SizeSpec(size_wh=args.size, max_side=args.max_side, scale=args.scale)
    webcam = media.is_webcam_spec(args.input)
    from reconet.models.pretrained import bundled_network_path

    model_path = bundled_network_path(args.model) or Path(args.model)
    if not model_path.exists():
        raise FileNotFoundError(f"model file not found: {model_path}")
    if args.output is not None:
        kind = media.output_kind(args.output)
        media.check_destination(Path(args.output), overwrite=args.overwrite, folder=kind == "folder")
    # A camera: a capture thread keeps only its newest frame (drop frames rather than lag).
    source = media.open_frames(args.input, size=size, max_frames=args.max_frames, latest_only=webcam)
    with source:
        pipeline.check_frame_size(source)  # before a model is loaded or an output opened
        stylizer = load(
            model_path,
            device=args.device,
            backend=args.backend,
            precision="fp32" if args.fp32 else args.precision,
            compile=args.compile,
            threads=args.threads,
            # a live stream without --max-frames is long: compile it like a long video
            expected_frames=source.frames_hint if source.frames_hint is not None or not webcam else pipeline.LIVE_EXPECTED_FRAMES,
            style=args.model_style,
            strength=args.strength,
        )
        on_cuda = stylizer.info.device.startswith("cuda")
        batch_size = args.batch_size or (1 if webcam else (4 if on_cuda else 1))
        model_name = f"style {args.style}" if args.style else f"model {model_path.name}"
        print(f"{PROG}: {source.describe()}; {model_name} ({stylizer.info})", file=sys.stderr)
        preview = pipeline.OpenCVPreview() if args.preview else None
        start = time.perf_counter()
        try:
            if args.output is None and webcam and args.batch_size is None:
                stats = pipeline.run_live(source, stylizer, None, progress=not args.no_progress, preview=preview)
            elif args.output is None:
                stats = pipeline.run(
                    source, stylizer, None, batch_size=batch_size, progress=not args.no_progress, preview=preview
                )
            else:
                writer = media.open_writer(
                    args.output,
                    source,
                    overwrite=args.overwrite,
                    fps=args.fps,
                    audio=not args.no_audio,
                    crf=args.crf,
                    frame_suffix=f".{args.frame_format}",
                )
                with writer:
                    try:
                        if webcam and args.batch_size is None:
                            stats = pipeline.run_live(source, stylizer, writer, progress=not args.no_progress, preview=preview)
                        else:
                            stats = pipeline.run(
                                source,
                                stylizer,
                                writer,
                                batch_size=batch_size,
                                progress=not args.no_progress,
                                preview=preview,
                            )
                    except KeyboardInterrupt:
                        if not webcam:
                            raise
                        # A live stream has no end: Ctrl-C is how it is stopped, so keep what
                        # was recorded (the writer commits when the block exits normally).
                        stats = None
                if stats is None:
                    print(f"{PROG}: stopped; recording kept at {writer.dest}", file=sys.stderr)
                    return 0
        finally:
            if preview is not None:
                preview.close()
    stats.wall_seconds = time.perf_counter() - start
    choice = getattr(stylizer, "precision_choice", None)
    if choice is not None:
        print(f"{PROG}: precision auto: {choice.describe()}", file=sys.stderr)
    print(f"{PROG}: {stats.summary()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
