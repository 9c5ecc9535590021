"""Time "a new painting in minutes": add each painting to a multi-style network with
``reconet-train experiment=add_style`` and measure the new style with reconet-evaluate.

    python scripts/time_add_style.py --base multistyle --painting la_muse.jpg --painting feathers.jpg \\
        --sintel ../shared/data/sintel --davis ../shared/data/davis/JPEGImages/480p --json add_style.json

For each painting: the wall-clock time of the whole command (start-up, the VGG Grams, training,
the artifact), then the new style's style distance (÷ the input frames', to its own painting)
and content structure on the Sintel and DAVIS protocol of scripts/measure_multistyle.py.
Run it on an otherwise idle machine: the point is the minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure_multistyle  # noqa: E402

from reconet.fileio import write_json  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="multistyle", help="the multi-style network to add to (default: the bundled one)")
    parser.add_argument("--painting", type=Path, action="append", required=True, help="a painting (repeat)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (default: experiment=add_style's 300)")
    parser.add_argument("--sintel", type=Path, required=True)
    parser.add_argument("--davis", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="another Hydra override of the run")
    args = parser.parse_args(argv)

    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        for painting in args.painting:
            name = painting.stem
            run = root / f"add_{name}"
            command = [
                sys.executable, "-m", "reconet.cli.train", "experiment=add_style", f"init_from={args.base}",
                f"style.image={painting}", f"style.name={name}", f"hydra.run.dir={run}",
                f"trainer.max_steps={args.steps}", "trainer.enable_progress_bar=false", "callbacks.samples.clip=null",
                *args.set,
            ]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            minutes = (time.perf_counter() - start) / 60
            print(f"{name}: added in {minutes:.1f} min ({args.steps} steps)", flush=True)
            report = run / "measure.json"
            measure = ["--sintel", str(args.sintel), "--style", name, "--painting", f"{name}={painting}", "--json", str(report)]
            if args.davis is not None:
                measure += ["--davis", str(args.davis)]
            measure_multistyle.main([str(run / "stylizer.pt"), *measure])
            results[name] = {"minutes": minutes, "steps": args.steps, **json.loads(report.read_text())["styles"][name]}
    print(f"\n{'painting':24s} {'minutes':>7s} {'style/input S':>13s} {'style/input D':>13s} {'structure S':>11s} {'structure D':>11s}")
    for name, row in results.items():
        sintel, davis = row.get("multi_sintel", {}), row.get("multi_davis", {})
        cells = [sintel.get("style_ratio"), davis.get("style_ratio"), sintel.get("content_structure"), davis.get("content_structure")]
        text = [f"{v:.2f}" if isinstance(v, float) else "-" for v in cells]
        print(f"{name:24s} {row['minutes']:7.1f} {text[0]:>13s} {text[1]:>13s} {text[2]:>11s} {text[3]:>11s}")
    if args.json is not None:
        write_json(args.json, {"base": args.base, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
