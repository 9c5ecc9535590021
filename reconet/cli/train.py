"""``reconet-train``: train a ReCoNet style model (Hydra command line).

    reconet-train style=candy
    reconet-train experiment=quickstart
    reconet-train style=mosaic data=sintel data.root=/data/MPI-Sintel model=small trainer.max_steps=20000

Every config key can be overridden Hydra-style; ``reconet-train --help`` lists the groups and
``--cfg job`` prints the composed config. A configuration that cannot train fails before the
first step with one line on stderr and exit status 2. See docs/training.md.
"""

from __future__ import annotations

import difflib
import functools
import shlex
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, OmegaConf

from reconet.cli.common import EXIT_SIGNAL_BASE, EXIT_USAGE
from reconet.training.config import ConfigError, register_resolvers

EXIT_BAD_CONFIG = EXIT_USAGE  # unknown keys, bad values, broken data files: fix and rerun

if TYPE_CHECKING:
    from reconet.training.train import BadSampleError, StoppedBySignal

register_resolvers()


class _SignalOutsideTraining(BaseException):
    """SIGTERM/SIGINT before the first training step (set-up, sanity check) or after the last."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_signal(signum: int, frame: object) -> None:
    raise _SignalOutsideTraining(signum)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def _main(cfg: DictConfig) -> float | None:
    import signal

    from reconet.training.checks import check_config

    # While training runs, GracefulStop handles both signals (stop after the step); outside it
    # they stop at once, with one line.
    previous = {signum: signal.signal(signum, _raise_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    run = None
    try:
        try:
            check_config(cfg)  # before importing Lightning, which takes seconds
            # Lightning and the training code: heavy imports, deferred past the cheap checks.
            import pytorch_lightning as pl

            from reconet.training.train import BadSampleError, StoppedBySignal, fit, prepare

            seed = OmegaConf.select(cfg, "seed")
            if seed is not None:
                pl.seed_everything(int(seed), workers=True, verbose=False)
            run = prepare(cfg)
        except ConfigError as err:
            print(f"reconet-train: error: {err}", file=sys.stderr)
            sys.exit(EXIT_BAD_CONFIG)
        try:
            metrics = fit(run)
        except BadSampleError as bad:
            if run.trainer.is_global_zero:
                print(f"reconet-train: error: {bad_sample_message(bad, sys.argv[1:])}", file=sys.stderr)
            sys.exit(EXIT_BAD_CONFIG)
        except StoppedBySignal as stop:
            if run.trainer.is_global_zero:
                print(f"reconet-train: {stop_message(stop, sys.argv[1:])}", file=sys.stderr)
            sys.exit(EXIT_SIGNAL_BASE + stop.signum)
    except _SignalOutsideTraining as stop:
        name = signal.Signals(stop.signum).name
        step = run.trainer.global_step if run is not None else 0
        where = "before the first training step; nothing to resume" if step == 0 else f"at step {step} while finishing"
        print(f"reconet-train: stopped by {name} {where}", file=sys.stderr)
        sys.exit(EXIT_SIGNAL_BASE + stop.signum)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if run.trainer.is_global_zero:
        print(f"reconet-train: outputs in {run.output_dir}")
    total = metrics.get("val/total")
    return total


def _resume_command(checkpoint: Path, overrides: Sequence[str]) -> str:
    kept = [arg for arg in overrides if not arg.split("=", 1)[0].lstrip("+~") == "ckpt_path"]
    return shlex.join(["reconet-train", *kept, f"ckpt_path={checkpoint.resolve()}"])


def stop_message(stop: "StoppedBySignal", overrides: Sequence[str]) -> str:
    """One line: which signal, at which step, where the checkpoint is and how to resume."""
    import signal

    name = signal.Signals(stop.signum).name
    if stop.checkpoint is None:
        return f"stopped by {name} at step {stop.step}; no checkpoint written (callbacks.model_checkpoint is off)"
    return (
        f"stopped by {name} at step {stop.step}; checkpoint {stop.checkpoint.resolve()}; "
        f"resume with: {_resume_command(stop.checkpoint, overrides)}"
    )


def bad_sample_message(bad: "BadSampleError", overrides: Sequence[str]) -> str:
    """One line: the broken file, the step, and where to resume once it is fixed or removed."""
    if bad.checkpoint is None:
        return f"{bad.message}; training stopped at step {bad.step}, before its first checkpoint"
    return (
        f"{bad.message}; training stopped at step {bad.step}; after fixing or removing the file, "
        f"resume with: {_resume_command(bad.checkpoint, overrides)}"
    )


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


# Flags after which the config is not ours to pre-compose (another config, a sweep, help).
_HYDRA_OWN_FLAGS = ("-m", "--multirun", "-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir", "-h", "--help", "--hydra-help", "--info", "-i")


@functools.lru_cache(maxsize=4)
def _compose_with_hydra(overrides: tuple[str, ...]) -> DictConfig:
    """The train config with ``overrides`` and Hydra's own node, as the checks before Hydra
    runs see it (cached: check_overrides and check_run_dir ask for the same one)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("reconet.conf", version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def check_overrides(overrides: Sequence[str]) -> str | None:
    """One-line message for overrides Hydra cannot apply (an unknown key, a syntax error).

    Hydra reports these over six lines after its own set-up; composing the config here first
    gives one line and, for a misspelt key, the closest existing keys.
    """
    from hydra.errors import HydraException

    if any(arg.split("=", 1)[0] in _HYDRA_OWN_FLAGS for arg in overrides):
        return None
    candidates = [arg for arg in overrides if not arg.startswith("-") and "=" in arg]

    def compose_with(args: list[str]) -> DictConfig:
        return _compose_with_hydra(tuple(args))

    try:
        compose_with(candidates)
        return None
    except HydraException as err:
        cause = err.__cause__
        full_key = getattr(cause, "full_key", None)
        if full_key is None or "not in struct" not in str(cause):
            text = " ".join(f"{err} {cause or ''}".split())
            return text.replace(" See https://hydra.cc/docs/1.2/advanced/override_grammar/basic for details", "")
    offending = next((arg for arg in candidates if arg.split("=", 1)[0] == full_key), full_key)
    message = f"unknown config key {full_key!r} ({offending})"
    parent, _, name = str(full_key).rpartition(".")
    try:
        rest = compose_with([arg for arg in candidates if arg != offending])
        node = OmegaConf.select(rest, parent) if parent else rest
        known = [str(key) for key in node.keys()] if isinstance(node, DictConfig) else []
    except HydraException:
        known = []
    close = difflib.get_close_matches(name, known, n=2)
    if close:
        message += "; did you mean " + " or ".join(f"{parent + '.' if parent else ''}{key}" for key in close) + "?"
    return message + f" To add a new key use +{offending}"


def check_run_dir(overrides: Sequence[str]) -> str | None:
    """One-line message when the run folder (``hydra.run.dir``) cannot be created or written;
    Hydra would report it with a traceback. Nothing is created here: the folder name may hold
    the current time, which Hydra resolves again."""
    import os

    from hydra.errors import HydraException

    if any(arg.split("=", 1)[0] in _HYDRA_OWN_FLAGS for arg in overrides):
        return None
    candidates = [arg for arg in overrides if not arg.startswith("-") and "=" in arg]
    try:
        cfg = _compose_with_hydra(tuple(candidates))  # composed once already by check_overrides
        run_dir = Path(str(OmegaConf.select(cfg, "hydra.run.dir"))).expanduser().absolute()
    except (HydraException, ValueError, TypeError):
        return None  # Hydra explains its own problems
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"run folder {run_dir}: {existing} is a file, not a folder (set hydra.run.dir=...)"
    if not os.access(existing, os.W_OK | os.X_OK):  # EROFS on a read-only mount, also for root
        what = "is not writable" if existing == run_dir else f"cannot be created: {existing} is not writable"
        return f"run folder {run_dir} {what} (read-only? set hydra.run.dir=...)"
    return None


def main() -> None:
    problem = check_group_choices(sys.argv[1:]) or check_overrides(sys.argv[1:]) or check_run_dir(sys.argv[1:])
    if problem is not None:
        print(f"reconet-train: error: {problem}", file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    _main()


if __name__ == "__main__":
    main()
