"""``reconet-evaluate``: temporal error and style/content distances of models, stylized frames and the input.

Examples::

    reconet-evaluate --data sintel --root data/sintel --model temporal=a.pt --model no_temporal=b.pt \\
        --style style.jpg --json report.json --plots plots/
    reconet-evaluate --video clip.mp4 --model a.pt --scale 0.5 --max-frames 60
    reconet-evaluate --data sintel --root data/sintel --frames other_tool=stylized/ --baseline input

The command only parses arguments; the work is done by :func:`reconet.evaluation.runner.evaluate`.
Exit codes: 0 success, 1 bad input (one-line message on stderr, no report written), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from pathlib import Path

from reconet.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, one_line, one_line_warnings
from reconet.evaluation.methods import MethodSpec
from reconet.flow.estimate import FLOW_METHODS
from reconet.evaluation.quality import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS

PROG = "reconet-evaluate"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Measure temporal consistency (warping error) and stylization quality of video style "
        "transfer models on MPI Sintel (ground-truth flow) or any video (estimated flow).",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        choices=("sintel", "video"),
        default=None,
        help="kind of data (default: video if --video is given, else sintel)",
    )
    data.add_argument("--root", type=Path, help="Sintel root: the folder that contains training/")
    data.add_argument(
        "--video",
        action="append",
        default=[],
        metavar="PATH",
        help="a video file or a folder of frames (repeatable); flow is estimated",
    )
    data.add_argument(
        "--pass",
        dest="passes",
        choices=("clean", "final", "both"),
        default="clean",
        help="Sintel pass (default: clean)",
    )
    data.add_argument(
        "--scene",
        dest="scenes",
        action="append",
        default=None,
        metavar="NAME",
        help="Sintel scene to evaluate (repeatable; default: all)",
    )
    data.add_argument(
        "--missing-occlusion",
        choices=("skip", "in_frame", "error"),
        default="skip",
        help="Sintel pairs without occlusion/invalid maps (partial copies): skip them (default), "
        "use an in-frame mask, or stop with an error",
    )
    size = data.add_mutually_exclusive_group()
    size.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="evaluate at this size")
    size.add_argument("--scale", type=float, help="evaluate at this factor of the original size (e.g. 0.5)")
    data.add_argument("--max-frames", type=int, help="video: use only the first N frames")

    what = parser.add_argument_group("what to evaluate (the unstylized input is always included as 'input')")
    what.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="reconet model artifact or training checkpoint (repeatable: comparison mode)",
    )
    what.add_argument(
        "--style-model",
        action="append",
        default=[],
        metavar="[NAME=]STYLE",
        help="a pretrained style bundled with reconet, e.g. candy (repeatable; see reconet-stylize --list-styles)",
    )
    what.add_argument(
        "--frames",
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="folder of already-stylized frames, e.g. from another tool (repeatable)",
    )
    what.add_argument(
        "--baseline",
        action="append",
        default=[],
        choices=("input",),
        help="baseline to include; 'input' = no stylization (always included, so this "
        "only allows a run without --model/--frames)",
    )

    quality = parser.add_argument_group("style / content distances")
    quality.add_argument("--style", type=Path, help="style image for the style distance")
    quality.add_argument(
        "--style-size",
        type=int,
        help="resize the style image so its shorter side has this length first (as training's loss.style_size)",
    )
    quality.add_argument("--no-quality", action="store_true", help="skip style and content distances (no VGG)")
    quality.add_argument(
        "--loss-network",
        choices=("vgg19", "vgg16"),
        default="vgg19",
        help="network of the distances: vgg19 (bundled, offline; default) or vgg16 (torchvision weights: "
        "a local --loss-weights file, the torch hub cache or a download; else the bundled vgg19, with a warning)",
    )
    quality.add_argument(
        "--loss-weights",
        default="auto",
        help="loss network weights: auto, random, or a local weights file (default: auto)",
    )
    quality.add_argument("--content-layer", default=DEFAULT_CONTENT_LAYER)
    quality.add_argument("--style-layers", nargs="+", default=list(DEFAULT_STYLE_LAYERS), metavar="LAYER")

    flow = parser.add_argument_group("flow (videos)")
    flow.add_argument(
        "--flow",
        dest="flow_method",
        choices=FLOW_METHODS,
        default="auto",
        help="flow estimator: auto = RAFT with local weights, else OpenCV DIS",
    )
    flow.add_argument("--raft-weights", type=Path, help="local RAFT weights file")

    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, metavar="PATH", help="write every number to this JSON file")
    out.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots into this folder")
    out.add_argument(
        "--heatmap-pair", metavar="[PASS/]SCENE/FRAME", help="pair for the error heat-map (default: the first pair)"
    )
    out.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: auto)")
    out.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16", "auto"),
        help="arithmetic of the models evaluated, as in reconet-stylize (default fp32: the same numbers on every machine)",
    )
    out.add_argument(
        "--model-style",
        metavar="NAME",
        help="for multi-style models: the style (or blend NAME:W,NAME:W) to evaluate, as reconet-stylize --style",
    )
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _check_output_locations(args: argparse.Namespace) -> None:
    """Fail before the (long) evaluation if a result could not be written."""
    if args.json is not None:
        if args.json.is_dir():
            raise ValueError(f"--json {args.json}: is a folder, expected a file path")
        if not args.json.parent.is_dir():
            raise FileNotFoundError(f"--json {args.json}: folder {args.json.parent} does not exist")
        if not os.access(args.json.parent, os.W_OK | os.X_OK):  # a read-only mount, also for root
            raise PermissionError(f"--json {args.json}: folder {args.json.parent} is not writable")
    if args.plots is not None:
        if args.plots.exists() and not args.plots.is_dir():
            raise ValueError(f"--plots {args.plots}: exists and is not a folder")
        if not args.plots.exists() and not args.plots.parent.is_dir():
            raise FileNotFoundError(f"--plots {args.plots}: folder {args.plots.parent} does not exist")
        writable = args.plots if args.plots.exists() else args.plots.parent
        if not os.access(writable, os.W_OK | os.X_OK):
            raise PermissionError(f"--plots {args.plots}: folder {writable} is not writable")


def _config_from_args(args: argparse.Namespace):
    from reconet.evaluation.runner import EvaluationConfig

    data = args.data or ("video" if args.video else "sintel")
    if data == "video" and not args.video:
        raise ValueError("--data video needs --video PATH")
    if data == "sintel" and args.video:
        raise ValueError("--video cannot be combined with --data sintel")
    methods = [MethodSpec.parse("model", text) for text in args.model]
    methods += [_bundled_style(text) for text in args.style_model]
    methods += [MethodSpec.parse("frames", text) for text in args.frames]
    methods += [MethodSpec(name=name, kind="baseline") for name in args.baseline]
    if not methods:
        raise ValueError("nothing to evaluate: give --model, --style-model, --frames or --baseline input")
    return EvaluationConfig(
        data=data,
        root=args.root,
        videos=args.video,
        passes=("clean", "final") if args.passes == "both" else (args.passes,),
        scenes=args.scenes,
        missing_occlusion=args.missing_occlusion,
        size=tuple(args.size) if args.size else None,
        scale=args.scale,
        max_frames=args.max_frames,
        methods=methods,
        style=args.style,
        style_size=args.style_size,
        quality=not args.no_quality,
        loss_network=args.loss_network,
        loss_weights=args.loss_weights,
        content_layer=args.content_layer,
        style_layers=tuple(args.style_layers),
        flow_method=args.flow_method,
        raft_weights=args.raft_weights,
        device=args.device,
        precision=args.precision,
        model_style=args.model_style,
        heatmap_pair=args.heatmap_pair,
        progress=not args.no_progress,
    )


def _bundled_style(text: str) -> MethodSpec:
    from reconet.models.pretrained import pretrained_path

    name, sep, style = text.partition("=")
    if not sep:
        name, style = text, text
    return MethodSpec(name=name, kind="model", path=pretrained_path(style))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with one_line_warnings(PROG):  # skipped pairs, loss-network fallback
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from reconet.evaluation.report import format_markdown, render_plots, write_json, write_plots
    from reconet.evaluation.runner import evaluate

    try:
        _check_output_locations(args)
        result = evaluate(_config_from_args(args))
    except (ValueError, OSError, pickle.UnpicklingError) as err:
        # DatasetError, FlowFileError, ModelFileError, EvaluationError are ValueErrors
        print(f"{PROG}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted, nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    # render everything first, so that a failure cannot leave the JSON without its plots
    plots = render_plots(result.report, result.heatmap) if args.plots is not None else {}
    sys.stdout.write(format_markdown(result.report))
    try:
        if args.json is not None:
            write_json(result.report, args.json)
        if args.plots is not None:
            for path in write_plots(plots, args.plots):
                print(f"wrote {path}", file=sys.stderr)
    except OSError as err:
        print(f"{PROG}: error: cannot write output: {one_line(err)}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
