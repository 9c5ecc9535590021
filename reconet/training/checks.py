"""Checks of a training config that need neither Lightning nor the loss network.

:func:`check_config` runs before ``reconet-train`` imports Lightning (seconds), so a missing
style image, an empty budget or an unreadable checkpoint fails at once, in one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from reconet.image import load_image
from reconet.training.config import ConfigError


@dataclass(frozen=True)
class StyleSpec:
    """One style to train: its name, image (3, H, W) in [0, 1], file, and beta multiplier."""

    name: str
    image: torch.Tensor
    path: Path
    scale: float = 1.0


def check_config(cfg: DictConfig) -> list[StyleSpec]:
    """Required values set, a consistent budget and checkpoint; returns the styles to train
    (:func:`load_styles`)."""
    missing = _missing_keys(cfg)
    if missing:
        raise ConfigError(f"required value(s) not set: {', '.join(missing)} (e.g. {missing[0]}=...)")
    ckpt_path = OmegaConf.select(cfg, "ckpt_path")
    if ckpt_path is not None and ckpt_path not in ("last", "hpc") and not Path(str(ckpt_path)).is_file():
        raise ConfigError(f"ckpt_path: checkpoint not found: {ckpt_path}")
    check_budget(cfg, ckpt_path)
    return load_styles(cfg)


@contextmanager
def stage(what: str) -> Iterator[None]:
    """Turn any error of a build stage into a one-line ConfigError naming the stage."""
    try:
        yield
    except ConfigError:
        raise
    except (OmegaConfBaseException, HydraException, ValueError, OSError, ImportError, TypeError, KeyError) as err:
        cause = err.__cause__ if isinstance(err, HydraException) and err.__cause__ is not None else err
        message = " ".join(str(cause).split()) or type(cause).__name__
        raise ConfigError(f"{what}: {message}") from err


def select_required(cfg: DictConfig, key: str) -> Any:
    with stage(key):
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
    if value is None:
        raise ConfigError(f"{key} is not set")
    return value


def _missing_keys(node: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose value is the mandatory marker ``???`` (interpolations not followed)."""
    found: list[str] = []
    if isinstance(node, DictConfig):
        items = [(str(key), key) for key in node.keys()]
    elif OmegaConf.is_list(node):
        items = [(str(index), index) for index in range(len(node))]
    else:
        return found
    for name, key in items:
        path = f"{prefix}.{name}" if prefix else name
        if OmegaConf.is_missing(node, key):
            found.append(path)
        elif not OmegaConf.is_interpolation(node, key):
            found.extend(_missing_keys(node[key], path))
    return found


def load_styles(cfg: DictConfig) -> list[StyleSpec]:
    """The styles of the run: ``styles`` (name -> {image, scale}) for a multi-style network,
    else the one style of the ``style`` group. Every image is read here, so a missing or broken
    one fails before anything is built."""
    styles = OmegaConf.select(cfg, "styles")
    if not styles:
        path = Path(str(select_required(cfg, "style.image"))).expanduser()
        name = OmegaConf.select(cfg, "style.name") or path.stem
        return [StyleSpec(str(name), load_style_image(cfg), path)]
    if not isinstance(styles, DictConfig):
        raise ConfigError("styles must be a mapping name -> {image: path, scale: 1.0}")
    specs = []
    for name, entry in styles.items():
        if entry is None:  # styles.<name>=null leaves a style out
            continue
        image = OmegaConf.select(entry, "image") if isinstance(entry, DictConfig) else entry
        if image is None:
            raise ConfigError(f"styles.{name}.image is not set")
        path = Path(str(image)).expanduser()
        if not path.is_file():
            raise ConfigError(f"styles.{name}.image: file not found: {path}")
        scale = OmegaConf.select(entry, "scale", default=1.0) if isinstance(entry, DictConfig) else 1.0
        if scale is None or float(scale) < 0:
            raise ConfigError(f"styles.{name}.scale must be a number >= 0, got {scale!r}")
        with stage(f"styles.{name}.image"):
            specs.append(StyleSpec(str(name), load_image(path), path, float(scale)))
    if not specs:
        raise ConfigError("styles: every style is null")
    return specs


def load_style_image(cfg: DictConfig) -> torch.Tensor:
    """(3, H, W) style image from ``style.image``."""
    path = Path(str(select_required(cfg, "style.image"))).expanduser()
    if not path.is_file():
        raise ConfigError(f"style.image: file not found: {path}")
    with stage("style.image"):
        return load_image(path)


def _limit(cfg: DictConfig, key: str) -> int | None:
    value = OmegaConf.select(cfg, f"trainer.{key}")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"trainer.{key} must be a whole number (or -1: no limit), got {value!r}")
    return None if value is None or value == -1 else value


def completed_epochs(checkpoint: dict[str, Any]) -> int:
    """Epochs a Lightning checkpoint has finished (its fit loop's progress; ``epoch`` if absent)."""
    try:
        return int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"])
    except (KeyError, TypeError):
        return int(checkpoint.get("epoch", 0))


def check_budget(cfg: DictConfig, ckpt_path: str | None) -> None:
    """Raise ConfigError if the run would train zero steps (an empty or already spent budget).

    Lightning would report such a run as finished and write no checkpoint and no model.
    """
    max_steps, max_epochs = _limit(cfg, "max_steps"), _limit(cfg, "max_epochs")
    if max_steps is not None and max_steps <= 0:
        raise ConfigError(f"trainer.max_steps={max_steps} trains nothing; set it to a positive number of steps (or -1: no step limit)")
    if max_epochs is not None and max_epochs <= 0:
        raise ConfigError(f"trainer.max_epochs={max_epochs} trains nothing; set it to a positive number of epochs (or -1: no epoch limit)")
    limit_batches = OmegaConf.select(cfg, "trainer.limit_train_batches")
    if limit_batches is not None and limit_batches == 0:
        raise ConfigError("trainer.limit_train_batches=0 trains nothing; set it to null (all batches), a fraction or a count")
    if ckpt_path == "last":  # Lightning resumes from last.ckpt if there is one (requeued jobs)
        last = Path(str(OmegaConf.select(cfg, "callbacks.model_checkpoint.dirpath") or "")) / "last.ckpt"
        ckpt_path = str(last) if last.is_file() else None
    if ckpt_path is None or ckpt_path == "hpc":
        return
    try:
        checkpoint = torch.load(str(ckpt_path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for a bad file
        message = " ".join(str(err).split())[:200] or type(err).__name__
        raise ConfigError(f"ckpt_path: cannot read the checkpoint {ckpt_path}: {message}") from err
    if not isinstance(checkpoint, dict) or "global_step" not in checkpoint:
        raise ConfigError(f"ckpt_path: not a training checkpoint (no global_step): {ckpt_path}")
    step, epochs = int(checkpoint["global_step"]), completed_epochs(checkpoint)
    if max_steps is not None and step >= max_steps:
        raise ConfigError(
            f"ckpt_path: the checkpoint is at step {step} and trainer.max_steps={max_steps}: nothing left to train; "
            f"raise trainer.max_steps (e.g. trainer.max_steps={step + max(max_steps, 1)})"
        )
    if max_epochs is not None and epochs >= max_epochs:
        raise ConfigError(
            f"ckpt_path: the checkpoint has completed {epochs} epoch(s) and trainer.max_epochs={max_epochs}: nothing left "
            f"to train; raise trainer.max_epochs or set trainer.max_epochs=-1 to train up to trainer.max_steps"
        )
