"""Measure the bundled styles with ``reconet-evaluate`` and store the numbers in their model cards.

    python scripts/measure_pretrained.py --sintel ../shared/data/sintel \
        --davis ../shared/data/davis/JPEGImages/480p --ablation candy=runs/candy_no_temporal/stylizer.pt

For every style of ``reconet/assets/models/styles.json`` (or those given with ``--style``):
the aggregate temporal error, its ratio to the input's and the content structure on Sintel
(ground-truth flow, both passes, half size) and four DAVIS clips (16 frames each, DIS flow,
half size), all models in one run per dataset; and the style distance on Sintel to the
style's own image at the training ``style_size`` on the training loss network. They go to
the entry's ``metrics``, the full reports to ``--reports``. ``--ablation NAME=PATH`` adds a
model of style NAME trained the same way without temporal losses and stores the ratio of
the style's temporal error to the ablation's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reconet.cli import evaluate
from reconet.fileio import write_json
from reconet.resources import asset_path

DAVIS_CLIPS = ("camel", "dog", "car-shadow", "breakdance")
DAVIS_FRAMES = 16
SCALE = "0.5"


def run_evaluate(arguments: list[str], report: Path) -> dict:
    status = evaluate.main([*arguments, "--json", str(report), "--no-progress"])
    if status != 0:
        raise SystemExit(f"reconet-evaluate failed ({status}): {' '.join(arguments)}")
    return json.loads(report.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sintel", type=Path, required=True, help="Sintel root with ground-truth flow")
    parser.add_argument("--davis", type=Path, required=True, help="folder of DAVIS frame folders (JPEGImages/480p)")
    parser.add_argument("--style", action="append", help="only these styles (default: all bundled)")
    parser.add_argument("--ablation", action="append", default=[], metavar="NAME=PATH", help="no-temporal model of style NAME")
    parser.add_argument("--reports", type=Path, default=Path("outputs/pretrained_reports"))
    args = parser.parse_args(argv)

    index_path = Path(asset_path("models/styles.json"))
    index = json.loads(index_path.read_text())
    ablations = dict(text.split("=", 1) for text in args.ablation)
    args.reports.mkdir(parents=True, exist_ok=True)
    datasets = {
        "sintel": ["--root", str(args.sintel), "--pass", "both", "--scale", SCALE],
        "davis": [
            *[arg for clip in DAVIS_CLIPS for arg in ("--video", str(args.davis / clip))],
            "--max-frames", str(DAVIS_FRAMES), "--scale", SCALE, "--flow", "dis",
        ],
    }
    names = args.style or list(index)
    models = [arg for name in names for arg in ("--style-model", name)]
    models += [arg for name, path in ablations.items() for arg in ("--model", f"{name}_no_temporal={path}")]
    # temporal error and content structure: every model in one run per dataset (one flow pass)
    reports = {
        dataset: run_evaluate([*data, *models, "--no-quality"], args.reports / f"all_{dataset}.json")["models"]
        for dataset, data in datasets.items()
    }
    for name in names:
        entry = index[name]
        metrics = {}
        for dataset, models_report in reports.items():
            styled = models_report[name]["aggregate"]
            metrics[f"{dataset}_pairs"] = styled["n_pairs"]
            metrics[f"{dataset}_temporal_error"] = styled["temporal_error"]
            metrics[f"{dataset}_temporal_ratio_to_input"] = styled["temporal_error_ratio"]
            metrics[f"{dataset}_content_structure"] = styled["content_structure"]
            if name in ablations:
                ablation = models_report[f"{name}_no_temporal"]["aggregate"]
                metrics[f"{dataset}_temporal_ratio_to_ablation"] = styled["temporal_error"] / ablation["temporal_error"]
                metrics[f"{dataset}_ablation_temporal_ratio_to_input"] = ablation["temporal_error_ratio"]
                metrics[f"{dataset}_ablation_content_structure"] = ablation["content_structure"]
        # style distance to the style's own image (Sintel frames), as training measured it
        quality = [
            "--style", asset_path(f"styles/{entry['style_image']}"),
            "--style-size", str(entry["style_size"]),
            "--loss-network", entry["loss_network"],
        ]
        style_models = ["--style-model", name]
        if name in ablations:
            style_models += ["--model", f"{name}_no_temporal={ablations[name]}"]
        report = run_evaluate([*datasets["sintel"], *style_models, *quality], args.reports / f"{name}_sintel_style.json")
        metrics["sintel_style_distance"] = report["models"][name]["aggregate"]["style_distance"]
        metrics["sintel_input_style_distance"] = report["models"]["input"]["aggregate"]["style_distance"]
        if name in ablations:
            metrics["sintel_ablation_style_distance"] = report["models"][f"{name}_no_temporal"]["aggregate"]["style_distance"]
        entry["metrics"] = metrics
        write_json(index_path, index)
        print(f"{name}: " + ", ".join(f"{key} {value:.4g}" for key, value in metrics.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
