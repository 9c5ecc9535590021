"""Measure the unweighted ReCoNet loss terms of a freshly initialized network.

The default loss weights (reconet.losses.objective.DEFAULT_WEIGHTS) were chosen from this
script's output so that every weighted term is visible in the total at step 0. Run it again
after changing a normalization, the loss network or the layers:

    python scripts/loss_scale.py                                   # synthetic pairs, no download
    python scripts/loss_scale.py --sintel /data/MPI-Sintel-complete --pairs 3

It prints, per term, the mean (min-max) over pairs and initialization seeds of the unweighted
value, the value weighted with the defaults (or --weights) and its share of the total.
"""

from __future__ import annotations

import argparse
import statistics
import time
from importlib import resources

import torch

from reconet.data.synthetic import FlyingShapes
from reconet.data.transforms import Resize
from reconet.image import load_image
from reconet.losses import DEFAULT_WEIGHTS, LOSS_TERMS, ReCoNetLoss
from reconet.models import build_reconet
from reconet.models.loss_network import build_loss_network

WEIGHT_OF = dict(zip(LOSS_TERMS, ("alpha", "beta", "gamma", "lambda_f", "lambda_o")))


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="vgg19", help="loss network: vgg19 (bundled, offline) or vgg16")
    parser.add_argument("--network-weights", default="auto", help="'auto', 'random' or a state-dict path")
    parser.add_argument("--preset", default="paper", help="ReCoNet preset")
    parser.add_argument("--style", default=None, help="style image (default: the bundled candy.jpg)")
    parser.add_argument("--style-size", type=int, default=512, help="shorter side of the style image")
    parser.add_argument("--sintel", default=None, help="MPI Sintel root (folder with training/); default synthetic")
    parser.add_argument("--size", type=int, nargs=2, default=(360, 640), metavar=("H", "W"))
    parser.add_argument("--pairs", type=int, default=2, help="number of frame pairs")
    parser.add_argument("--seeds", type=int, nargs="+", default=(0, 1), help="ReCoNet initialization seeds")
    parser.add_argument("--weights", type=float, nargs=5, default=None,
                        metavar=("ALPHA", "BETA", "GAMMA", "LAMBDA_F", "LAMBDA_O"),
                        help="weights to report instead of the defaults")
    return parser.parse_args()


def _pairs(args: argparse.Namespace) -> list[dict]:
    if args.sintel:
        from reconet.data.sintel import SintelPairs

        dataset = SintelPairs(args.sintel, passes="clean", transform=Resize(tuple(args.size)))
        name = f"Sintel clean resized to {args.size[0]}x{args.size[1]}"
    else:
        dataset = FlyingShapes(max(args.pairs, 1), size=tuple(args.size), seed=0)
        name = f"FlyingShapes {args.size[0]}x{args.size[1]} seed 0"
    count = min(args.pairs, len(dataset))
    print(f"data: {name}, {count} pair(s)")
    return [dataset[i] for i in range(count)]


def main() -> None:
    args = _parse()
    torch.set_grad_enabled(False)
    style_path = args.style or str(resources.files("reconet") / "assets" / "styles" / "candy.jpg")
    criterion_layers = ("relu3_3", "relu1_2", "relu2_2", "relu4_3")
    network = build_loss_network(args.network, layers=criterion_layers, weights=args.network_weights)
    print(f"loss network: {network.name} ({network.weights_source}), layers {list(network.layers)}")
    print(f"style: {style_path} (shorter side {args.style_size})")
    unit = ReCoNetLoss(network, load_image(style_path), style_size=args.style_size,
                       alpha=1.0, beta=1.0, gamma=1.0, lambda_f=1.0, lambda_o=1.0)
    weights = dict(DEFAULT_WEIGHTS) if args.weights is None else dict(zip(WEIGHT_OF.values(), args.weights))
    samples = _pairs(args)

    values: dict[str, list[float]] = {name: [] for name in LOSS_TERMS}
    start = time.perf_counter()
    for seed in args.seeds:
        torch.manual_seed(seed)
        model = build_reconet(args.preset).eval()
        for sample in samples:
            input1, input2 = sample["frame1"][None], sample["frame2"][None]  # (1, 3, H, W)
            flow, mask = sample["flow"][None], sample["mask"][None]
            terms = unit(input1, input2, model(input1), model(input2), flow, mask)
            for name in LOSS_TERMS:
                values[name].append(terms[name].item())
    print(f"{len(args.seeds)} seed(s) x {len(samples)} pair(s) in {time.perf_counter() - start:.0f} s, "
          f"mask coverage {statistics.mean(s['mask'].mean().item() for s in samples):.3f}")

    weighted = {name: weights[WEIGHT_OF[name]] * statistics.mean(v) for name, v in values.items()}
    total = sum(weighted.values())
    print("\n| term | unweighted mean (min-max) | weight | weighted | share of total |")
    print("|---|---|---|---|---|")
    for name in LOSS_TERMS:
        v = values[name]
        print(f"| {name} | {statistics.mean(v):.3g} ({min(v):.3g}-{max(v):.3g}) | "
              f"{WEIGHT_OF[name]}={weights[WEIGHT_OF[name]]:g} | {weighted[name]:.3g} | {weighted[name] / total:.1%} |")
    print(f"| total | | | {total:.3g} | |")


if __name__ == "__main__":
    main()
