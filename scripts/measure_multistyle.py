"""Measure every style of a multi-style model beside the bundled single-style model of the same
name (where one exists), with ``reconet-evaluate``.

    python scripts/measure_multistyle.py outputs/train/<run>/stylizer.pt --sintel ../shared/data/sintel \
        --davis ../shared/data/davis/JPEGImages/480p --json outputs/multistyle.json

Per style, one run per dataset with the multi-style model (``--model-style NAME``), the bundled
model (``--style-model NAME``) and the input:

* Sintel (ground-truth flow, clean pass, half size): style distance to the style's own painting
  at the training ``style_size`` (VGG-19), content structure, temporal error;
* DAVIS (``--davis``: camel, dog, car-shadow, breakdance, 16 frames each, half size, DIS flow):
  temporal error, content structure, and the style distance on those real frames.

Prints one table row per style and model with the style distance as a ratio to the input's
(the issue's bar: <= 0.45), structure and the temporal error's ratio to the input's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from reconet.cli import evaluate
from reconet.fileio import write_json
from reconet.models.artifact import load_stylizer, style_table
from reconet.models.pretrained import list_styles
from reconet.resources import asset_path

DAVIS_CLIPS = ("camel", "dog", "car-shadow", "breakdance")
DAVIS_FRAMES = 16
SCALE = "0.5"


def run_evaluate(arguments: list[str], report: Path) -> dict:
    status = evaluate.main([*arguments, "--json", str(report), "--no-progress", "--device", "cpu"])
    if status != 0:
        raise SystemExit(f"reconet-evaluate failed ({status}): {' '.join(arguments)}")
    return json.loads(report.read_text())


def evaluation_datasets(sintel: Path, davis: Path | None) -> dict[str, list[str]]:
    """reconet-evaluate's data arguments per dataset: Sintel (clean, half size) and, with
    ``davis``, the four DAVIS clips (16 frames each, half size, DIS flow)."""
    datasets = {"sintel": ["--root", str(sintel), "--pass", "clean", "--scale", SCALE]}
    if davis is not None:
        datasets["davis"] = [
            *[arg for clip in DAVIS_CLIPS for arg in ("--video", str(davis / clip))],
            "--max-frames", str(DAVIS_FRAMES), "--scale", SCALE, "--flow", "dis",
        ]  # fmt: skip
    return datasets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="multi-style artifact")
    parser.add_argument("--sintel", type=Path, required=True, help="Sintel root with ground-truth flow")
    parser.add_argument("--davis", type=Path, help="folder of DAVIS frame folders (JPEGImages/480p)")
    parser.add_argument("--style", action="append", help="only these styles (default: every row)")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument(
        "--painting",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="the painting of style NAME when it is not one of the bundled style images (an added style)",
    )
    parser.add_argument(
        "--without-bundled",
        action="store_true",
        help="measure the multi-style model only (the bundled single-style models' numbers do not change)",
    )
    args = parser.parse_args(argv)
    paintings = dict(item.split("=", 1) for item in args.painting)

    network, meta = load_stylizer(args.model)
    rows = {row["name"]: row for row in style_table(meta, network.num_styles)}
    bundled = {style.name for style in list_styles()}
    datasets = evaluation_datasets(args.sintel, args.davis)
    results: dict[str, dict] = {}
    print(f"{'style':32s} {'model':8s} {'dataset':7s} {'style/input':>11s} {'structure':>9s} {'E/input':>8s}")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.style or list(rows):
            row = rows[name]
            painting = paintings.get(name) or asset_path(f"styles/{row['style_image']}")
            models = ["--model", f"multi={args.model}", "--model-style", name]
            if name in bundled and not args.without_bundled:
                models += ["--style-model", name]
            quality = ["--style", str(painting), "--style-size", str(row.get("style_size") or 256)]
            results[name] = {}
            for dataset, data in datasets.items():
                report = run_evaluate([*data, *models, *quality], Path(scratch) / f"{name}_{dataset}.json")["models"]
                base = report["input"]["aggregate"]["style_distance"]
                for model in [m for m in ("multi", name) if m in report]:
                    aggregate = report[model]["aggregate"]
                    numbers = {
                        "style_ratio": aggregate["style_distance"] / base,
                        "style_distance": aggregate["style_distance"],
                        "input_style_distance": base,
                        "content_structure": aggregate["content_structure"],
                        "temporal_ratio": aggregate["temporal_error_ratio"],
                    }
                    results[name][f"{'multi' if model == 'multi' else 'bundled'}_{dataset}"] = numbers
                    print(
                        f"{name:32s} {'multi' if model == 'multi' else 'bundled':8s} {dataset:7s} "
                        f"{numbers['style_ratio']:11.2f} {numbers['content_structure']:9.2f} {numbers['temporal_ratio']:8.2f}",
                        flush=True,
                    )
    if args.json is not None:
        write_json(args.json, {"model": str(args.model), "styles": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
