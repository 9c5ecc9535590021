"""``reconet-train``: train a ReCoNet style model (Hydra command line).

    reconet-train style=candy
    reconet-train experiment=quickstart
    reconet-train style=mosaic data=sintel data.root=/data/MPI-Sintel model=small trainer.max_steps=20000

Every config key can be overridden Hydra-style; ``reconet-train --help`` lists the groups and
``--cfg job`` prints the composed config. A configuration that cannot train fails before the
first step with one line on stderr and exit status 2. See docs/training.md.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import resources

import hydra
from omegaconf import DictConfig

from reconet.training.config import ConfigError, register_resolvers

EXIT_BAD_CONFIG = 2

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def _main(cfg: DictConfig) -> float | None:
    from reconet.training.train import fit, prepare

    import pytorch_lightning as pl
    from omegaconf import OmegaConf

    seed = OmegaConf.select(cfg, "seed")
    if seed is not None:
        pl.seed_everything(int(seed), workers=True, verbose=False)
    try:
        run = prepare(cfg)
    except ConfigError as err:
        print(f"reconet-train: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    metrics = fit(run)
    if run.trainer.is_global_zero:
        print(f"reconet-train: outputs in {run.output_dir}")
    total = metrics.get("val/total")
    return total


def _group_options(group: str) -> list[str] | None:
    """Names of the bundled options of a config group, None if ``group`` is not one of ours."""
    folder = resources.files("reconet.conf") / group
    if not folder.is_dir():
        return None
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def check_group_choices(overrides: Sequence[str]) -> str | None:
    """One-line message for a ``group=option`` override naming an option that does not exist.

    Hydra reports the same problem over several lines; a user who typed ``model=larg`` should
    get one line listing the options. Overrides that add search paths are left to Hydra.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    candidates = [arg for arg in overrides if not arg.startswith("-") and "=" in arg]
    if any(arg.startswith("hydra.searchpath") for arg in candidates):
        return None
    try:
        parsed = OverridesParser.create().parse_overrides(candidates)
    except HydraException:
        return None  # Hydra will explain the syntax error itself
    for override in parsed:
        if override.is_delete() or override.package is not None or "." in override.key_or_group:
            continue
        options = _group_options(override.key_or_group)
        if options is None:
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        for value in values:
            if isinstance(value, str) and value not in options:
                kind = "model preset" if override.key_or_group == "model" else f"{override.key_or_group} option"
                return f"unknown {kind} {value!r} ({override.key_or_group}={value}); choose one of: {', '.join(options)}"
    return None


def main() -> None:
    problem = check_group_choices(sys.argv[1:])
    if problem is not None:
        print(f"reconet-train: error: {problem}", file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    _main()


if __name__ == "__main__":
    main()
