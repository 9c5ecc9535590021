"""Measure optimizer settings of ``reconet-optimize`` on Sintel frames with ground-truth flow.

    python scripts/optimize_convergence.py --root ../shared/data/sintel --scene ambush_4 --pass final \
        --first 4 --count 4 --max-side 192 --style reconet/assets/styles/starry_night.jpg \
        --variant "lbfgs:" --variant "adam:optimizer=adam" --variant "early:tolerance=0.001"

For every variant (NAME:key=value,... over :class:`reconet.optimize.config.OptimizeConfig`) the
frame sequence is stylized twice, with and without the temporal terms, exactly as the tool does
it (warm start from DIS flow estimated on the frames). Reported per run: the first frame's loss
after 10/20/40/80 iterations (relative to its start), iterations and loss evaluations used,
wall time, the mean content and style terms of the warm-started frames (how stylized they are),
and the temporal error (``reconet.evaluation.temporal``) of the result on every pair
that has ground-truth flow and occlusion, as a ratio to the input's and on/off. One thread, one
process, variants interleaved in the order given: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from reconet.data import SintelPairs, build_transform
from reconet.evaluation.temporal import temporal_error
from reconet.flow.estimate import build_flow_estimator
from reconet.image import load_image, save_image
from reconet.models.loss_network import build_loss_network
from reconet.optimize.config import OptimizeConfig
from reconet.optimize.objective import resize_longer_side
from reconet.optimize.sequence import VideoOptimizer

OFF = {"temporal_weight": 0.0, "temporal_feature_weight": 0.0}


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, settings = text.partition(":")
    values: dict = {}
    for item in filter(None, settings.split(",")):
        key, _, raw = item.partition("=")
        field = OptimizeConfig.__dataclass_fields__[key]
        kind = str(field.type)
        if raw.lower() == "none" and "None" in kind:  # optional settings; "none" is a choice elsewhere
            values[key] = None
        elif "int" in kind and "float" not in kind:
            values[key] = int(raw)
        elif "float" in kind:
            values[key] = float(raw)
        else:
            values[key] = raw
    return name, values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="Sintel root (contains training/)")
    parser.add_argument("--scene", required=True)
    parser.add_argument("--pass", dest="pass_", default="final", choices=("clean", "final"))
    parser.add_argument("--first", type=int, required=True, help="first frame number")
    parser.add_argument("--count", type=int, default=4, help="frames in the sequence")
    parser.add_argument("--max-side", type=int, default=192)
    parser.add_argument("--style", type=Path, required=True)
    parser.add_argument("--variant", action="append", required=True, help="NAME:key=value,...")
    parser.add_argument("--save", type=Path, metavar="DIR",
                        help="also write DIR/VARIANT-MODE.png: the input frames above the stylized ones")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    paths = [args.root / "training" / args.pass_ / args.scene / f"frame_{args.first + i:04d}.png" for i in range(args.count)]
    frames = [resize_longer_side(load_image(p)[None], args.max_side)[0] for p in paths]  # (3, h, w)
    size = tuple(frames[0].shape[-2:])
    # ground truth on the working grid: flow rescaled per axis, masks resized (reconet.data.transforms)
    pairs = SintelPairs(args.root, passes=args.pass_, scenes=[args.scene], missing_occlusion="skip",
                        transform=build_transform(size, crop="none"))
    numbers = [args.first + i for i in range(args.count - 1)]
    truth = {s["meta"]["frame"]: s for s in pairs if s["meta"]["frame"] in numbers}
    if not truth:
        parser.error(f"no pair with ground-truth flow and occlusion among frames {numbers}")

    def error(images: list[torch.Tensor]) -> float:
        values = [
            temporal_error(images[n - args.first][None], images[n - args.first + 1][None],
                           sample["flow"][None], sample["mask"][None])
            for n, sample in truth.items()
        ]
        return float(torch.cat(values).mean())

    style = load_image(args.style)
    network = build_loss_network("vgg19", layers=OptimizeConfig().layers, weights="auto")
    dis = build_flow_estimator("dis")
    input_error = error(frames)
    print(f"{args.scene} {args.pass_} frames {args.first}-{args.first + args.count - 1} at {size[1]}x{size[0]}, "
          f"GT pairs {sorted(truth)}, input temporal error {input_error:.3e}")
    print("| variant | temporal | frame-1 loss after 10 / 20 / 40 / 80 it (x start) | iterations | evaluations "
          "| seconds | later frames' content / style loss | temporal error | x input | on / off |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for text in args.variant:
        name, settings = parse_variant(text)
        errors = {}
        for mode, weights in (("off", OFF), ("on", {})):
            config = OptimizeConfig(**{**settings, **weights})
            start = time.perf_counter()
            optimizer = VideoOptimizer(style, config, loss_network=network, flow_estimator=dis)
            results = list(optimizer.stylize(frames))
            seconds = time.perf_counter() - start
            first = results[0].history
            marks = " / ".join(
                f"{min(first[: k + 1]) / first[0]:.3f}" if len(first) > k else "-" for k in (10, 20, 40, 80)
            )
            errors[mode] = error([r.image for r in results])
            if args.save is not None:
                grid = torch.cat([torch.cat(frames, dim=2), torch.cat([r.image for r in results], dim=2)], dim=1)
                args.save.mkdir(parents=True, exist_ok=True)
                save_image(args.save / f"{name}-{mode}.png", grid)  # (3, 2h, count*w)
            iterations = "+".join(str(r.iterations) for r in results)
            evaluations = sum(len(r.history) for r in results)
            ratio = f"{errors['on'] / errors['off']:.2f}" if mode == "on" else ""
            # How stylized the warm-started frames are: their content and style terms (weighted).
            later = results[1:]
            content = sum(r.terms["content"] for r in later) / max(1, len(later))
            style_term = sum(r.terms["style"] for r in later) / max(1, len(later))
            print(f"| {name} | {mode} | {marks} | {iterations} | {evaluations} | {seconds:.0f} | "
                  f"{content:.3g} / {style_term:.3g} | {errors[mode]:.3e} | {errors[mode] / input_error:.1f} | {ratio} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
