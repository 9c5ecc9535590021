"""Measure a distilled network against its teacher, style by style, with ``reconet-evaluate``.

    python scripts/measure_distilled.py outputs/train/<run>/stylizer.pt --sintel ../shared/data/sintel \
        --davis ../shared/data/davis/JPEGImages/480p --json outputs/distilled.json

For every row of the student's style table, one ``reconet-evaluate`` run per dataset with the
student and its teacher (the row's ``distilled_from``, a bundled name or a file; ``--teacher``
overrides) on the same frames:

* Sintel (ground-truth flow, clean pass, half size);
* DAVIS (``--davis``: camel, dog, car-shadow, breakdance, 16 frames each, half size, DIS flow).

Prints the style distance to the row's painting (VGG-19, as a ratio to the input's), content
structure and the temporal error (ratio to the input's) of both, and the distillation bars: style
distance within +10 % of the teacher's, structure within -0.03, temporal error no worse.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from measure_multistyle import evaluation_datasets, run_evaluate  # scripts/, next to this one

from reconet.fileio import write_json
from reconet.models.artifact import load_stylizer, style_table
from reconet.models.pretrained import resolve_model
from reconet.resources import asset_path

STYLE_MARGIN, STRUCTURE_MARGIN = 1.10, 0.03


def bars(student: dict, teacher: dict) -> dict[str, bool]:
    return {
        "style": student["style_ratio"] <= STYLE_MARGIN * teacher["style_ratio"],
        "structure": student["content_structure"] >= teacher["content_structure"] - STRUCTURE_MARGIN,
        "temporal": student["temporal_ratio"] <= teacher["temporal_ratio"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the distilled artifact")
    parser.add_argument("--teacher", help="the teacher (default: each row's distilled_from)")
    parser.add_argument("--sintel", type=Path, required=True, help="Sintel root with ground-truth flow")
    parser.add_argument("--davis", type=Path, help="folder of DAVIS frame folders (JPEGImages/480p)")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args(argv)

    network, meta = load_stylizer(args.model)
    rows = style_table(meta, network.num_styles)
    datasets = evaluation_datasets(args.sintel, args.davis)
    results: dict[str, dict] = {}
    header = f"{'style':14s} {'dataset':7s} {'model':8s} {'style/input':>11s} {'structure':>9s} {'E/input':>8s}"
    print(header + "  bars (style +10 %, structure -0.03, temporal no worse)")
    with tempfile.TemporaryDirectory() as scratch:
        for row in rows:
            name = row["name"]
            teacher = resolve_model(args.teacher or str(row.get("distilled_from") or "")).resolve()
            painting = asset_path(f"styles/{row['style_image']}")
            models = ["--model", f"student={args.model}", "--model", f"teacher={teacher}", "--model-style", name]
            quality = ["--style", str(painting), "--style-size", str(row.get("style_size") or 256)]
            results[name] = {}
            for dataset, data in datasets.items():
                report = run_evaluate([*data, *models, *quality], Path(scratch) / f"{name}_{dataset}.json")["models"]
                base = report["input"]["aggregate"]["style_distance"]
                numbers = {}
                for model in ("teacher", "student"):
                    aggregate = report[model]["aggregate"]
                    numbers[model] = {
                        "style_ratio": aggregate["style_distance"] / base,
                        "content_structure": aggregate["content_structure"],
                        "temporal_ratio": aggregate["temporal_error_ratio"],
                    }
                passed = bars(numbers["student"], numbers["teacher"])
                results[name][dataset] = {**numbers, "bars": passed}
                for model in ("teacher", "student"):
                    n = numbers[model]
                    verdict = ""
                    if model == "student":
                        verdict = "  " + ", ".join(f"{bar} {'pass' if ok else 'FAIL'}" for bar, ok in passed.items())
                    print(
                        f"{name:14s} {dataset:7s} {model:8s} {n['style_ratio']:11.3f} {n['content_structure']:9.3f} "
                        f"{n['temporal_ratio']:8.3f}{verdict}",
                        flush=True,
                    )
    if args.json is not None:
        write_json(args.json, {"model": str(args.model), "styles": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
