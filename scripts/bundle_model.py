"""Make a trained run one of the package's pretrained styles (``reconet/assets/models``).

    python scripts/bundle_model.py RUN_DIR NAME [--data "what it was trained on"]

Reads ``RUN_DIR/stylizer.pt`` (the artifact training wrote at its last step),
``RUN_DIR/config_resolved.yaml`` and Hydra's ``RUN_DIR/.hydra/overrides.yaml``; writes
``reconet/assets/models/NAME.pt`` with float16 weights (half the size; inference loads them
into the float32 network) and the entry NAME of ``reconet/assets/models/styles.json``: preset,
training size, steps, data and the exact command. Measured numbers are added by
``scripts/measure_pretrained.py``; an existing entry keeps them only if the weights did not
change.

A multi-style network (``experiment=multistyle``) or a distilled one (``experiment=distill``) is
bundled whole, without a styles.json entry (its styles are chosen with ``--model NAME --style``,
docs/pretrained.md):

    python scripts/bundle_model.py RUN_DIR multistyle --artifact RUN_DIR/checkpoints/stylizer-last.pt \
        --measured outputs/multistyle.json --data "..."

``--measured`` (the JSON of ``scripts/measure_multistyle.py``) stores each style's numbers in
its row of the style table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
from pathlib import Path

import torch
import yaml

from reconet.fileio import write_json
from reconet.models.artifact import load_stylizer, save_artifact
from reconet.resources import asset_path

DEFAULT_DATA = "the 28 photos bundled in reconet/assets/photos (Kodak 24, skimage 4) under synthetic camera motion"


def run_command(run_dir: Path) -> str:
    """The run's ``reconet-train`` command (Hydra's overrides, without ``hydra.*``). A resumed
    run names its checkpoint by the command of the run that wrote it, not by a local path:
    ``reconet-train A && reconet-train B ckpt_path=<run of A>/checkpoints/last.ckpt``."""
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    kept, before = [], ""
    for arg in overrides:
        if arg.startswith("hydra."):
            continue
        if arg.startswith("ckpt_path="):
            checkpoint = Path(arg.split("=", 1)[1])
            before = run_command(checkpoint.parent.parent) + " && "
            arg = f"ckpt_path=<run of the first command>/checkpoints/{checkpoint.name}"
        kept.append(arg)
    return before + shlex.join(["reconet-train", *kept])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("name")
    parser.add_argument("--data", default=DEFAULT_DATA, help="training data, as the model card states it")
    parser.add_argument("--artifact", type=Path, help="the artifact to bundle (default RUN_DIR/stylizer.pt)")
    parser.add_argument(
        "--measured", type=Path, help="multi-style or distilled: scripts/measure_multistyle.py's or measure_distilled.py's JSON"
    )
    parser.add_argument("--command", help="the training command as the model card states it (default: the run's overrides)")
    parser.add_argument(
        "--init-from",
        help="multi-style: what each style row's init_from says (default: as trained, which may be a local path)",
    )
    args = parser.parse_args(argv)

    network, meta = load_stylizer(args.artifact or args.run_dir / "stylizer.pt")
    config = yaml.safe_load((args.run_dir / "config_resolved.yaml").read_text())
    command = args.command or run_command(args.run_dir)

    models = Path(asset_path("models"))
    models.mkdir(parents=True, exist_ok=True)
    destination = models / f"{args.name}.pt"
    card_meta = {
        **meta,
        "style": args.name,
        "preset": config["model"]["preset"],
        "trained_size": list(config["data"]["size"]),
        "data": args.data,
        "command": command,
    }
    distilled = any(isinstance(row, dict) and row.get("distilled_from") for row in meta.get("styles") or [])
    if network.num_styles > 1 or distilled:  # a network chosen by name (--model NAME --style ...)
        measured = json.loads(args.measured.read_text())["styles"] if args.measured else {}
        card_meta["style"] = None if network.num_styles > 1 else meta["styles"][0]["name"]
        started = {"init_from": args.init_from} if args.init_from else {}
        rows = meta["styles"]
        if distilled:  # runs before the teacher's training facts were left out of the student's rows
            keep = ("name", "style_image", "style_sha256", "style_size", "global_step", "distilled_from", "teacher_row")
            rows = [{k: row[k] for k in keep if k in row} for row in rows]
        card_meta["styles"] = [{**row, **started, "measured": measured.get(row["name"], {})} for row in rows]
        save_artifact(destination, network, card_meta, dtype=torch.float16)
        size = destination.stat().st_size
        print(f"wrote {destination} ({size / 1e6:.2f} MB, {network.num_styles} styles, step {meta['global_step']})", file=sys.stderr)
        return 0
    save_artifact(destination, network, card_meta, dtype=torch.float16)
    digest = hashlib.sha256(destination.read_bytes()).hexdigest()

    index_path = models / "styles.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    previous = index.get(args.name, {})
    index[args.name] = {
        "file": destination.name,
        "sha256": digest,
        "preset": card_meta["preset"],
        "trained_size": card_meta["trained_size"],
        "steps": int(meta["global_step"]),
        "style_image": meta.get("style_image"),
        "style_size": config["loss"]["style_size"],
        "loss_network": (meta.get("loss_network") or {}).get("name"),
        "data": args.data,
        "command": command,
        "metrics": previous.get("metrics", {}) if previous.get("sha256") == digest else {},
    }
    write_json(index_path, index)
    size = destination.stat().st_size
    print(f"wrote {destination} ({size / 1e6:.2f} MB, step {meta['global_step']}) and its entry in {index_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
