"""How long one photo takes, from the command to the written file, and where the time goes with
and without kernel tuning (cold and from the kernel cache).

    python scripts/first_frame.py                       # candy (tiny), a bundled photo at 854x480
    python scripts/first_frame.py --rounds 5 --style mosaic --size 1280x720

Every measurement is a fresh process, so import, model loading, thread-pool start and kernel
tuning are all paid as a user pays them. Rounds are interleaved (command, tuned cold, tuned
cached, untuned, bf16, command, ...) so that load on a shared machine hits every configuration
alike; the table gives the median and the range. Every row names its precision.

* ``reconet-stylize``: the command as a user runs it on one photo (default --precision auto,
  which for one photo takes a cached choice or fp32, never timing), with an empty cache and
  with one an earlier run filled (a single image never times kernels: it uses the cached choices
  and the reference kernel elsewhere, see TUNE_MIN_FRAMES in reconet.inference.stylizer);
* in-process phases of the same work (import, load, first and second frame) for tuned kernels
  with an empty cache (every layer times its candidates, reconet.inference.accelerate) and
  with a filled one, untuned fp32 (oneDNN's default kernels), bf16, and auto as the command
  loads it for one photo: where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Every row names its precision; "auto" is what --precision auto does with one photo here.
CONFIGS = ("fp32 tuned, cold cache", "fp32 tuned, cached", "fp32 untuned", "bf16", "auto, one photo")


def child(args: argparse.Namespace) -> int:
    """One measurement in this fresh process: seconds to load and to stylize the first frame."""
    started = time.perf_counter()
    import torch

    from reconet.image import load_image
    from reconet.inference.stylizer import load
    from reconet.models.pretrained import pretrained_path

    imported = time.perf_counter()
    settings = {
        "fp32 tuned, cold cache": dict(precision="fp32", accelerate=True),
        "fp32 tuned, cached": dict(precision="fp32", accelerate=True),
        "fp32 untuned": dict(precision="fp32", accelerate=False),
        "bf16": dict(precision="bf16"),
        # as reconet-stylize loads for one photo: a choice from the cache, else fp32, never timed
        "auto, one photo": dict(precision="auto", expected_frames=1),
    }[args.child]
    stylizer = load(pretrained_path(args.style), device="cpu", compile=False, **settings)
    width, height = (int(v) for v in args.size.split("x"))
    image = torch.nn.functional.interpolate(load_image(args.image)[None], size=(height, width), mode="bilinear")
    loaded = time.perf_counter()
    stylizer(image)
    first = time.perf_counter()
    stylizer(image)
    second = time.perf_counter()
    times = {"import": imported - started, "load": loaded - imported, "first": first - loaded, "second": second - first}
    print(json.dumps({**times, "precision": stylizer.info.dtype}))
    return 0


def run_cli(args: argparse.Namespace, cache: Path, output: Path) -> float:
    command = [sys.executable, "-m", "reconet.cli.stylize", "-s", args.style, str(args.image), str(output),
               "--size", args.size, "--overwrite", "--no-progress"]  # fmt: skip
    env = {**os.environ, "RECONET_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def run_child(args: argparse.Namespace, config: str, cache: Path) -> dict[str, float | str]:
    command = [sys.executable, __file__, "--child", config, "--style", args.style, "--image", str(args.image), "--size", args.size]
    env = {**os.environ, "RECONET_CACHE_DIR": str(cache)}
    result = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s  ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--style", default="candy", help="a bundled style (all are the tiny network)")
    parser.add_argument("--image", type=Path, default=None, help="default: a bundled photo")
    parser.add_argument("--size", default="854x480", help="WxH the photo is stylized at")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.image is None:
        from reconet.resources import asset_path

        args.image = Path(asset_path("photos/skimage_astronaut.jpg"))
    if args.child:
        return child(args)

    from reconet.hardware import describe_device

    print(f"one photo, {args.style} at {args.size}, {describe_device('cpu')}, "
          f"{os.cpu_count()} CPUs, {args.rounds} interleaved rounds, every measurement a fresh process")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        primed = scratch / "primed"
        run_child(args, "fp32 tuned, cold cache", primed)  # fills the cache the "cached" runs use
        cli: dict[str, list[float]] = {"empty cache": [], "filled cache": []}
        phases: dict[str, list[dict[str, float]]] = {config: [] for config in CONFIGS}
        for round_ in range(args.rounds):
            cold = scratch / f"cold{round_}"
            cli["empty cache"].append(run_cli(args, cold / "cli", scratch / "out.png"))
            cli["filled cache"].append(run_cli(args, primed, scratch / "out.png"))
            for config in CONFIGS:
                cache = primed if config == "fp32 tuned, cached" else cold / config.replace(" ", "_").replace(",", "")
                phases[config].append(run_child(args, config, cache))
    print(f"{'wall clock, command to written file':40s} median  (range)")
    for name, values in cli.items():
        print(f"   {'reconet-stylize (precision auto), ' + name:37s} {summary(values)}")
    print(f"{'in process (medians)':27s} {'import':>20s} {'load model':>20s} {'first frame':>20s} {'second frame':>20s}")
    for config, runs in phases.items():
        cells = [f"{statistics.median(r[key] for r in runs):8.2f} s" for key in ("import", "load", "first", "second")]
        print(f"   {config:24s} " + " ".join(f"{cell:>20s}" for cell in cells))
    print(f"auto with one photo ran in: {phases['auto, one photo'][-1]['precision']}")
    first = {config: statistics.median(r["first"] for r in runs) for config, runs in phases.items()}
    print(
        f"first frame / fp32 untuned: tuned cold {first['fp32 tuned, cold cache'] / first['fp32 untuned']:.1f}x, "
        f"tuned cached {first['fp32 tuned, cached'] / first['fp32 untuned']:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
