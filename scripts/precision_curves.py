"""Do an fp32 and a mixed-precision training run learn the same thing? Loss curves side by side.

Train twice with everything equal but ``trainer.precision`` (same seed, so the same batches
and the same initial weights), then compare the two run folders:

    python train.py experiment=quickstart loss=vgg19 trainer.max_steps=200 trainer.log_every_n_steps=1 \\
        logger=many callbacks.samples.clip=null trainer.precision=32-true output_dir=runs/fp32
    ... the same with trainer.precision=bf16-mixed output_dir=runs/bf16
    python scripts/precision_curves.py runs/fp32 runs/bf16 --plot curves.png --image photo.jpg --side-by-side pair.png

Prints every loss term at a few steps, the relative difference of the total loss at step 1
and of its 20-step running means along the whole run, the validation metrics, and (with
``--image``) the PSNR between what the two exported stylizers make of one image.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from pathlib import Path

TERMS = ("content", "style", "tv", "temporal_feature", "temporal_output", "total")
WINDOW = 20


def read_metrics(run: Path) -> dict[str, dict[int, float]]:
    """metric name -> {step: value} from the run's CSV log (``logger=many`` or ``logger=csv``)."""
    path = run / "csv" / "metrics.csv"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found (train with logger=many or logger=csv)")
    metrics: dict[str, dict[int, float]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            for name, value in row.items():
                if name not in ("epoch", "step") and value:
                    metrics.setdefault(name, {})[int(row["step"])] = float(value)
    return metrics


def running_mean(values: list[float], window: int) -> list[float]:
    return [statistics.fmean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]


def psnr(a, b) -> float:
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path, help="run folder trained with trainer.precision=32-true")
    parser.add_argument("other", type=Path, help="run folder trained with another precision")
    parser.add_argument("--plot", type=Path, help="write the two total-loss curves to this PNG")
    parser.add_argument("--image", type=Path, help="stylize this image with both runs' stylizer.pt")
    parser.add_argument("--side-by-side", type=Path, help="with --image: write input | reference | other here")
    args = parser.parse_args(argv)

    runs = {"reference": read_metrics(args.reference), "other": read_metrics(args.other)}
    steps = sorted(set(runs["reference"]["train/total"]) & set(runs["other"]["train/total"]))
    if len(steps) < 2:
        raise SystemExit("error: the runs share fewer than 2 logged training steps")
    print(f"{args.reference} vs {args.other}: {len(steps)} common training steps")
    shown = sorted({steps[0], steps[1], *steps[WINDOW // 2 :: max(1, len(steps) // 5)], steps[-1]})
    print(f"{'step':>5} " + " ".join(f"{term:>24s}" for term in TERMS))
    for step in shown:
        cells = []
        for term in TERMS:
            a, b = runs["reference"][f"train/{term}"][step], runs["other"][f"train/{term}"][step]
            cells.append(f"{a:10.4g} {b:10.4g} {b / a - 1:+4.0%}" if a else f"{a:10.4g} {b:10.4g}     ")
        print(f"{step:>5} " + " ".join(f"{cell:>24s}" for cell in cells))

    totals = {name: [run["train/total"][s] for s in steps] for name, run in runs.items()}
    first = totals["other"][0] / totals["reference"][0] - 1
    smooth = {name: running_mean(values, WINDOW) for name, values in totals.items()}
    relative = [abs(b / a - 1) for a, b in zip(smooth["reference"], smooth["other"])]
    print(f"total loss at step {steps[0] + 1}: {first:+.3%} from the reference")
    print(
        f"{WINDOW}-step running mean of the total loss, other vs reference: median |difference| "
        f"{statistics.median(relative):.1%}, largest {max(relative):.1%} (step {steps[relative.index(max(relative))]}); "
        f"final {smooth['reference'][-1]:.4g} vs {smooth['other'][-1]:.4g}"
    )
    for name in ("val/total", "val/temporal_error", "val/temporal_error_input"):
        if name in runs["reference"] and name in runs["other"]:
            common = sorted(set(runs["reference"][name]) & set(runs["other"][name]))
            cells = ", ".join(f"step {s}: {runs['reference'][name][s]:.4g} vs {runs['other'][name][s]:.4g}" for s in common)
            print(f"{name}: {cells}")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
        for name, label in (("reference", args.reference.name), ("other", args.other.name)):
            axis.plot(steps, totals[name], alpha=0.3, linewidth=0.8)
            axis.plot(steps, smooth[name], linewidth=1.8, label=f"{label} ({WINDOW}-step mean)")
        axis.set_yscale("log")
        axis.set_xlabel("step")
        axis.set_ylabel("train/total")
        axis.legend()
        axis.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(args.plot)
        print(f"wrote {args.plot}")

    if args.image:
        import torch

        from reconet.image import load_image, save_image
        from reconet.inference.stylizer import load

        image = load_image(args.image)[None]  # (1, 3, H, W)
        outputs = []
        for run in (args.reference, args.other):
            stylizer = load(run / "stylizer.pt", device="cpu", precision="fp32", accelerate=False)
            outputs.append(stylizer(image))
        print(f"stylized {args.image.name}: PSNR other vs reference {psnr(outputs[0], outputs[1]):.1f} dB")
        if args.side_by_side:
            save_image(args.side_by_side, torch.cat([image, *outputs], dim=-1)[0])
            print(f"wrote {args.side_by_side} (input | {args.reference.name} | {args.other.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
