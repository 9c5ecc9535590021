"""``reconet-optimize``: optimization-based, temporally coherent video stylization (no training).

Examples::

    reconet-optimize clip.mp4 clip_starry.mp4 --style starry_night.jpg
    reconet-optimize frames/ stylized/ --style wave.jpg --max-side 256 --iterations 200
    reconet-optimize photo.jpg photo_scream.png --style the_scream.jpg --iterations 500

The command only parses arguments; the work is done by :func:`reconet.optimize.run.optimize_video`.
Exit codes: 0 success, 1 bad input (one-line message on stderr, nothing written at OUTPUT),
2 usage error, 130 interrupted (finished frames are kept in OUTPUT.parts; run again to resume).
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path

from reconet.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, one_line, one_line_warnings, size_wh
from reconet.flow.estimate import FLOW_METHODS
from reconet.optimize.config import (
    DEFAULT_CONTENT_LAYER,
    DEFAULT_STYLE_LAYERS,
    DEFAULT_TEMPORAL_FEATURE_LAYERS,
    LINE_SEARCHES,
    OCCLUSION_FILLS,
    OptimizeConfig,
)

PROG = "reconet-optimize"
_DEFAULTS = OptimizeConfig()

EPILOG = """\
examples:
  reconet-optimize clip.mp4 out.mp4 --style starry_night.jpg
  reconet-optimize clip.mp4 out.mp4 --style wave.jpg --max-side 384 --iterations 400 --iterations-warm 150
  reconet-optimize frames/ out/ --style udnie.jpg --optimizer adam --lr 0.02
  reconet-optimize clip.mp4 out.mp4 --style candy.jpg --no-temporal   # per-frame baseline (flickers)

An interrupted run (Ctrl-C, crash, power loss) keeps its finished frames in OUTPUT.parts/;
the same command continues from the last finished frame. The output file appears only when
every frame is done.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Stylize a video, a folder of frames or an image by optimizing every frame against "
        "a style image (Gatys et al.), starting each frame from the previous stylized frame warped "
        "along the optical flow and penalizing changes along the flow (Ruder et al.). Slow but works "
        "with any style image and needs no training.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", help="video file (mp4, webm, mkv, gif, ...), image file, or folder of frames")
    parser.add_argument("output", help="video file (container from the suffix), image file, or folder")
    parser.add_argument("--style", required=True, type=Path, metavar="IMAGE", help="the style image")

    size = parser.add_argument_group("size and frames")
    sizes = size.add_mutually_exclusive_group()
    sizes.add_argument("--max-side", type=int, default=512, metavar="N",
                       help="shrink frames so the longer side is at most N px (default 512; 0 = keep the "
                            "input size). Cost grows with the pixel count")
    sizes.add_argument("--size", type=size_wh, metavar="WxH", help="resize frames to exactly WxH, e.g. 640x360")
    sizes.add_argument("--scale", type=float, metavar="F", help="resize frames by a factor, e.g. 0.5")
    size.add_argument("--max-frames", type=int, metavar="N", help="stylize only the first N frames")
    size.add_argument("--style-scale", type=float, default=_DEFAULTS.style_scale, metavar="F",
                      help="style image longer side = F x frame longer side; larger F = larger brush "
                           f"strokes (default {_DEFAULTS.style_scale})")

    loss = parser.add_argument_group("loss")
    loss.add_argument("--content-weight", type=float, default=_DEFAULTS.content_weight, metavar="W",
                      help=f"alpha, weight of the content loss (default {_DEFAULTS.content_weight:g})")
    loss.add_argument("--style-weight", type=float, default=_DEFAULTS.style_weight, metavar="W",
                      help=f"beta, weight of the style loss (default {_DEFAULTS.style_weight:g}); raise it "
                           "for stronger stylization")
    loss.add_argument("--tv-weight", type=float, default=_DEFAULTS.tv_weight, metavar="W",
                      help=f"gamma, total variation (smoothness) weight (default {_DEFAULTS.tv_weight:g})")
    loss.add_argument("--temporal-weight", type=float, default=_DEFAULTS.temporal_weight, metavar="W",
                      help="weight of the masked pixel difference to the warped previous stylized frame "
                           f"(default {_DEFAULTS.temporal_weight:g}; 0 = off)")
    loss.add_argument("--temporal-feature-weight", type=float, default=_DEFAULTS.temporal_feature_weight,
                      metavar="W", help="weight of the masked feature difference to the warped previous "
                      f"stylized frame (default {_DEFAULTS.temporal_feature_weight:g}; 0 = off)")
    loss.add_argument("--no-temporal", action="store_true",
                      help="switch both temporal losses off (warm start from the warped frame stays on)")
    loss.add_argument("--content-layer", default=DEFAULT_CONTENT_LAYER, metavar="LAYER",
                      help=f"content layer (default {DEFAULT_CONTENT_LAYER})")
    loss.add_argument("--style-layers", nargs="+", default=list(DEFAULT_STYLE_LAYERS), metavar="LAYER",
                      help=f"style layers (default {' '.join(DEFAULT_STYLE_LAYERS)})")
    loss.add_argument("--style-layer-weights", nargs="+", type=float, metavar="W",
                      help="one weight per style layer (default: all 1)")
    loss.add_argument("--temporal-layers", nargs="+", default=list(DEFAULT_TEMPORAL_FEATURE_LAYERS),
                      metavar="LAYER", help="layers of the temporal feature loss "
                      f"(default {' '.join(DEFAULT_TEMPORAL_FEATURE_LAYERS)})")
    loss.add_argument("--loss-network", choices=("vgg19", "vgg16"), default=_DEFAULTS.loss_network,
                      help="VGG used for the losses: vgg19 (bundled, offline; default) or vgg16 "
                           "(torchvision weights: a local file, the torch hub cache or a download)")
    loss.add_argument("--loss-weights", default=_DEFAULTS.loss_weights, metavar="auto|random|PATH",
                      help="loss network weights (default auto)")

    opt = parser.add_argument_group("optimization")
    opt.add_argument("--optimizer", choices=("lbfgs", "adam"), default=_DEFAULTS.optimizer,
                     help=f"default {_DEFAULTS.optimizer}")
    opt.add_argument("--line-search", choices=LINE_SEARCHES, default=_DEFAULTS.line_search,
                     help="L-BFGS step rule: none = step 1, one loss evaluation per iteration (default); "
                          "strong_wolfe = line search, the iteration counts then budget loss evaluations")
    opt.add_argument("--iterations", type=int, default=_DEFAULTS.iterations, metavar="N",
                     help=f"iterations for the first frame (default {_DEFAULTS.iterations})")
    opt.add_argument("--iterations-warm", type=int, default=_DEFAULTS.iterations_warm, metavar="N",
                     help="iterations for frames started from the warped previous frame "
                          f"(default {_DEFAULTS.iterations_warm})")
    opt.add_argument("--tolerance", type=float, default=_DEFAULTS.tolerance, metavar="REL",
                     help="stop a frame early once its loss fell by less than this fraction over "
                          f"--patience iterations (default {_DEFAULTS.tolerance:g}; 0 = use every iteration)")
    opt.add_argument("--patience", type=int, default=_DEFAULTS.patience, metavar="N",
                     help=f"window of the --tolerance test, in iterations (default {_DEFAULTS.patience})")
    opt.add_argument("--lr", type=float, metavar="LR",
                     help="learning rate (default: 1 for lbfgs, 0.02 for adam; 0.1 for adam+sigmoid)")
    opt.add_argument("--parametrization", choices=("clamp", "sigmoid"), default=_DEFAULTS.parametrization,
                     help="keep pixels in [0, 1] by projecting after each step (clamp, default) or by "
                          "optimizing logits of a sigmoid")
    opt.add_argument("--init", choices=("content", "noise"), default=_DEFAULTS.first_init,
                     help="start of the first frame (default content)")
    opt.add_argument("--no-warm-start", action="store_true",
                     help="start every frame like the first instead of from the warped previous frame")
    opt.add_argument("--occlusion-fill", choices=OCCLUSION_FILLS, default=_DEFAULTS.occlusion_fill,
                     help="start of pixels without a reliable previous frame: the content frame or the "
                          f"warped previous frame (default {_DEFAULTS.occlusion_fill})")
    opt.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="seed of the noise start (default 0)")

    flow = parser.add_argument_group("optical flow")
    flow.add_argument("--flow", choices=FLOW_METHODS, default=_DEFAULTS.flow,
                      help="auto = torchvision RAFT if its weights are on disk, else OpenCV DIS (default)")
    flow.add_argument("--flow-agreement", type=float, default=_DEFAULTS.flow_agreement, metavar="PX",
                      help="also estimate the flow with OpenCV Farneback and trust only pixels where the two "
                           f"agree within PX pixels; 0 = off (default {_DEFAULTS.flow_agreement:g})")
    flow.add_argument("--raft-weights", type=Path, metavar="PATH", help="local torchvision RAFT weights file")
    flow.add_argument("--flow-cache", type=Path, metavar="DIR",
                      help="keep estimated flows here (default OUTPUT.parts/flows); reusable across runs")

    run = parser.add_argument_group("run")
    run.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    run.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32",
                     help="arithmetic of the loss network (image and losses stay fp32); auto: on an "
                          "AMX/AVX512-BF16 CPU the faster of fp32 and bf16, timed on the first frame and "
                          "cached; bf16 on bf16 GPUs; else fp32 (default: fp32)")
    run.add_argument("--work-dir", type=Path, metavar="DIR",
                     help="where finished frames are kept until the output is written (default OUTPUT.parts)")
    run.add_argument("--restart", action="store_true",
                     help="discard finished frames of an earlier run with different settings")
    run.add_argument("--keep-parts", action="store_true", help="keep the work directory after success")
    run.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    run.add_argument("--no-audio", action="store_true", help="do not copy the input's audio track")
    run.add_argument("--fps", type=Fraction, metavar="RATE",
                     help="frame rate of a video made from a folder or image (default 25), e.g. 30000/1001")
    run.add_argument("--crf", type=int, metavar="N", help="video quality (lower = better; codec default)")
    run.add_argument("--quiet", action="store_true", help="no per-frame progress lines")
    run.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def config_from_args(args: argparse.Namespace) -> OptimizeConfig:
    temporal = 0.0 if args.no_temporal else args.temporal_weight
    temporal_feature = 0.0 if args.no_temporal else args.temporal_feature_weight
    return OptimizeConfig(
        loss_network=args.loss_network,
        loss_weights=args.loss_weights,
        content_layer=args.content_layer,
        style_layers=tuple(args.style_layers),
        style_layer_weights=tuple(args.style_layer_weights) if args.style_layer_weights else None,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        temporal_weight=temporal,
        temporal_feature_weight=temporal_feature,
        temporal_feature_layers=tuple(args.temporal_layers),
        first_init=args.init,
        tolerance=args.tolerance,
        patience=args.patience,
        warm_start=not args.no_warm_start,
        occlusion_fill=args.occlusion_fill,
        flow_agreement=args.flow_agreement,
        optimizer=args.optimizer,
        line_search=args.line_search,
        iterations=args.iterations,
        iterations_warm=args.iterations_warm,
        lr=args.lr,
        parametrization=args.parametrization,
        style_scale=args.style_scale,
        seed=args.seed,
        flow=args.flow,
        raft_weights=str(args.raft_weights) if args.raft_weights else None,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with one_line_warnings(PROG):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from reconet.media import SizeSpec
    from reconet.optimize.run import optimize_video

    try:
        config = config_from_args(args)
        if args.size is not None:
            size = SizeSpec(size_wh=args.size)
        elif args.scale is not None:
            size = SizeSpec(scale=args.scale)
        elif args.max_side:
            size = SizeSpec(max_side=args.max_side)
        else:
            size = None
        summary = optimize_video(
            args.input,
            args.output,
            args.style,
            config,
            size=size,
            max_frames=args.max_frames,
            device=args.device,
            precision=args.precision,
            work_dir=args.work_dir,
            flow_cache=args.flow_cache,
            restart=args.restart,
            keep_work_dir=args.keep_parts,
            overwrite=args.overwrite,
            audio=not args.no_audio,
            fps=args.fps,
            crf=args.crf,
            progress=None if args.quiet else _print_progress,
        )
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished frames are kept, run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, OSError) as err:
        # MediaError, OutputError, ResumeMismatchError, FlowEstimatorError, ... are ValueErrors.
        if args.debug:
            raise
        print(f"{PROG}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_ERROR
    width, height = summary.size
    print(
        f"{summary.output}: {summary.frames} frames at {width}x{height} ({summary.optimized} optimized, "
        f"{summary.frames - summary.optimized} resumed) in {_duration(summary.seconds)}; "
        f"loss network {summary.loss_network}, flow {summary.flow_estimator or 'none'}",
        file=sys.stderr,
    )
    return 0


def _print_progress(progress) -> None:
    result = progress.result
    total = f"/{progress.total}" if progress.total else ""
    head = f"frame {progress.done}{total}"
    if result.resumed:
        print(f"{head}  resumed from the work directory", file=sys.stderr, flush=True)
        return
    terms = result.terms
    parts = [f"loss {terms.get('total', float('nan')):.4g}"]
    shown = [k for k in ("content", "style", "tv", "temporal", "temporal_feature") if terms.get(k)]
    if shown:
        parts.append("(" + " ".join(f"{k} {terms[k]:.3g}" for k in shown) + ")")
    parts.append(f"{result.iterations} it")
    if result.coverage is not None:
        parts.append(f"{100 * result.coverage:.0f}% from previous")
    parts.append(f"{result.seconds:.1f} s")
    if progress.eta_seconds is not None:
        parts.append(f"ETA {_duration(progress.eta_seconds)}")
    print(f"{head}  " + "  ".join(parts), file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


if __name__ == "__main__":
    sys.exit(main())
