"""How much of the flow the optimizer trusts is right: estimators and masks against Sintel ground truth.

    python scripts/flow_reliability.py --root ../shared/data/sintel --max-side 192 \\
        --pair ambush_4:4 --pair ambush_4:6 --pair alley_1:2

For every pair (SCENE:FRAME, final pass) the frames are shrunk to --max-side as reconet-optimize
shrinks them, and each estimator's forward flow is compared with the ground truth resized to
that grid (reconet.data.transforms): mean end-point error on the pixels visible in both frames,
the share of pixels the forward-backward mask trusts, and how many of those are more than
--wrong pixels off. Rows "A & B" trust a pixel only if A's mask does and the two estimates agree
within --agreement pixels (reconet.flow.occlusion.agreement_mask), as --flow-agreement does.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

from reconet.data import DatasetWarning, SintelPairs, build_transform
from reconet.flow import agreement_mask, build_flow_estimator, estimate_flows, mask_from_flows, resize_flow
from reconet.image import load_image
from reconet.optimize.objective import resize_longer_side


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="Sintel root (contains training/)")
    parser.add_argument("--pair", action="append", required=True, metavar="SCENE:FRAME")
    parser.add_argument("--max-side", type=int, default=192)
    parser.add_argument("--wrong", type=float, default=2.0, help="end-point error that counts as wrong (px)")
    parser.add_argument("--agreement", type=float, default=1.0, help="tolerance of the agreement rows (px)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", DatasetWarning)  # the sample copies lack some occlusion maps
    estimators = {name: build_flow_estimator(name) for name in ("dis", "farneback")}

    print(f"| pair | estimator | mean motion | EPE (visible) | trusted | trusted and > {args.wrong:g} px wrong |")
    print("|---|---|---|---|---|---|")
    for text in args.pair:
        scene, _, number = text.partition(":")
        frame = int(number)
        folder = args.root / "training" / "final" / scene
        first, second = (resize_longer_side(load_image(folder / f"frame_{n:04d}.png")[None], args.max_side)
                         for n in (frame, frame + 1))
        size = tuple(first.shape[-2:])
        pairs = SintelPairs(args.root, passes="final", scenes=[scene], missing_occlusion="skip",
                            transform=build_transform(size, crop="none"))
        sample = next((s for s in pairs if s["meta"]["frame"] == frame), None)
        if sample is None:
            parser.error(f"{text}: no ground-truth flow with an occlusion map for frame {frame}")
        truth, visible = sample["flow"][None], sample["mask"][None]  # (1, 2, h, w), (1, 1, h, w)
        motion = float(torch.linalg.vector_norm(truth, dim=1).mean())

        rows = {}
        for name, estimator in estimators.items():
            forward, _, mask = estimate_flows(estimator, first, second)
            rows[name] = (forward, mask)
        # DIS on the full-size frames, its flow resized: does resolution rescue it?
        full = [load_image(folder / f"frame_{n:04d}.png")[None] for n in (frame, frame + 1)]
        forward, backward, _ = estimate_flows(estimators["dis"], *full)
        forward, backward = resize_flow(forward, size, mode="area"), resize_flow(backward, size, mode="area")
        rows["dis at full size"] = (forward, mask_from_flows(forward, backward))
        dis_flow, dis_mask = rows["dis"]
        rows[f"dis & farneback within {args.agreement:g} px"] = (
            dis_flow, dis_mask * agreement_mask(dis_flow, rows["farneback"][0], args.agreement))
        for index, (name, (flow, mask)) in enumerate(rows.items()):
            error = torch.linalg.vector_norm(flow - truth, dim=1, keepdim=True)  # (1, 1, h, w)
            wrong = (error > args.wrong).float()
            epe = float((error * visible).sum() / visible.sum())
            trusted = float(mask.mean())
            wrong_share = float((mask * wrong).sum() / mask.sum()) if mask.sum() > 0 else float("nan")
            label = f"{scene} {frame:04d} at {size[1]}x{size[0]}" if index == 0 else ""
            print(f"| {label} | {name} | {motion:.1f} px | {epe:.2f} px | {trusted:.0%} | {wrong_share:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
