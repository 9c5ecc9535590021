"""Build a training run from a composed config, check it, and fit.

:func:`prepare` turns the config into objects (network, objective, data, callbacks, loggers,
trainer) and fails with a one-line :class:`ConfigError` on anything that would stop training
later -- a missing style image, an unknown model preset, a dataset root that does not exist
or holds no pairs -- before any training step runs. :func:`train` then fits.
Used by the ``reconet-train`` CLI and by the tests, on the same config.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_only

from reconet.data.datamodule import ReCoNetDataModule
from reconet.fileio import atomic_write
from reconet.image import load_image
from reconet.training.checkpoint_io import AtomicCheckpointIO
from reconet.training.config import ConfigError, register_resolvers
from reconet.training.module import ReCoNetModule

RESOLVED_CONFIG_NAME = "config_resolved.yaml"
WEIGHT_KEYS = ("alpha", "beta", "gamma", "lambda_f", "lambda_o")


@dataclass
class TrainingRun:
    """Everything :func:`prepare` built; :func:`train` fits it."""

    config: dict[str, Any]  # resolved, JSON-able, with loss.network.used filled in
    output_dir: Path
    module: ReCoNetModule
    datamodule: ReCoNetDataModule
    trainer: pl.Trainer
    ckpt_path: str | None


@contextmanager
def _stage(what: str) -> Iterator[None]:
    """Turn any error of a build stage into a one-line ConfigError naming the stage."""
    try:
        yield
    except ConfigError:
        raise
    except (OmegaConfBaseException, HydraException, ValueError, OSError, ImportError, TypeError, KeyError) as err:
        cause = err.__cause__ if isinstance(err, HydraException) and err.__cause__ is not None else err
        message = " ".join(str(cause).split()) or type(cause).__name__
        raise ConfigError(f"{what}: {message}") from err


def _node(cfg: DictConfig, key: str) -> Any:
    with _stage(key):
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


# -- builders --------------------------------------------------------------------------------
def load_style_image(cfg: DictConfig) -> torch.Tensor:
    """(3, H, W) style image from ``style.image``."""
    path = Path(str(_node(cfg, "style.image"))).expanduser()
    if not path.is_file():
        raise ConfigError(f"style.image: file not found: {path}")
    with _stage("style.image"):
        return load_image(path)


def build_network(cfg: DictConfig) -> torch.nn.Module:
    """The stylization network from ``model`` (a preset plus optional overrides)."""
    from reconet.models import build_reconet

    settings = OmegaConf.to_container(_node(cfg, "model"), resolve=True)
    preset = settings.pop("preset", "paper")
    with _stage(f"model (preset {preset!r})"):
        return build_reconet(preset, **settings)


def build_loss(cfg: DictConfig, style_image: torch.Tensor) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The objective and a record of the loss network actually used (name, weights, layers)."""
    from reconet.losses import ReCoNetLoss
    from reconet.losses.objective import resize_style_image
    from reconet.models.loss_network import build_loss_network

    loss_cfg = OmegaConf.to_container(_node(cfg, "loss"), resolve=True)
    network_cfg = dict(loss_cfg.pop("network"))
    network_cfg.pop("used", None)
    layers = tuple(dict.fromkeys([loss_cfg["content_layer"], *loss_cfg["style_layers"]]))
    with _stage("loss.network"):
        # Offline without VGG-16 weights this warns and falls back to the bundled VGG-19.
        network = build_loss_network(layers=layers, **network_cfg)
    name = str(network.name)
    # Term weights: explicit values win; null takes the set calibrated for the network used.
    per_network = loss_cfg.pop("weights", None) or {}
    calibrated = per_network.get(name, {})
    for term in WEIGHT_KEYS:
        if loss_cfg.get(term) is None:
            if term not in calibrated:
                raise ConfigError(f"loss.{term} is null and loss.weights.{name}.{term} is not set")
            loss_cfg[term] = float(calibrated[term])
    used = {
        "name": name,
        "weights_source": str(network.weights_source),
        "layers": list(network.layers),
        "term_weights": {term: loss_cfg[term] for term in WEIGHT_KEYS},
    }
    style_h, style_w = resize_style_image(style_image.unsqueeze(0), loss_cfg.get("style_size")).shape[-2:]
    if min(style_h, style_w) < network.min_side:
        raise ConfigError(
            network.too_small_message(
                f"style.image {_node(cfg, 'style.image')} ({style_w}x{style_h} at loss.style_size={loss_cfg.get('style_size')})"
            )
            + "; set a larger loss.style_size"
        )
    with _stage("loss"):
        objective = ReCoNetLoss(network, style_image, **loss_cfg)
    return objective, used


def check_frame_size(cfg: DictConfig, loss_network: torch.nn.Module) -> None:
    """``data.size``/``data.val_size`` must survive the loss network's poolings (else a late RuntimeError)."""
    min_side = getattr(loss_network, "min_side", 1)
    for key in ("data.size", "data.val_size"):
        value = OmegaConf.select(cfg, key)
        if value is None:
            continue
        sides = [value] if isinstance(value, int) else list(value)
        if min(int(side) for side in sides) < min_side:
            shown = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            raise ConfigError(loss_network.too_small_message(f"{key}={shown}"))


def build_datamodule(cfg: DictConfig) -> ReCoNetDataModule:
    """The DataModule from ``data``: ``data.train`` / ``data.val`` are dataset factories."""
    data = _node(cfg, "data")
    with _stage("data"):
        # _convert_="all": datasets receive plain lists/dicts, not OmegaConf containers.
        # An entry set to null is left out (e.g. data.val.photos=null in a mix).
        train, val = (
            {name: instantiate(node, _convert_="all") for name, node in (data.get(split) or {}).items() if node is not None}
            for split in ("train", "val")
        )
        return ReCoNetDataModule(
            train,
            val,
            size=data.get("size"),
            val_size=data.get("val_size"),
            batch_size=data.batch_size,
            val_batch_size=data.get("val_batch_size"),
            num_workers=data.get("num_workers", 0),
            crop=data.get("crop", "random"),
            hflip=data.get("hflip", False),
            val_pairs=data.get("val_pairs"),
            pin_memory=bool(data.get("pin_memory", False)),
        )


def _instantiate_all(cfg: DictConfig, key: str) -> list[Any]:
    group = OmegaConf.select(cfg, key)
    if not group:
        return []
    objects = []
    for name, node in group.items():
        if node is None:
            continue
        with _stage(f"{key}.{name}"):
            objects.append(instantiate(node))
    return objects


def _partial(cfg: DictConfig, key: str) -> Callable[..., Any] | None:
    node = OmegaConf.select(cfg, key)
    if node is None:
        return None
    with _stage(key):
        return instantiate(node)


@rank_zero_only
def _write_yaml(path: Path, config: dict[str, Any]) -> None:
    text = OmegaConf.to_yaml(OmegaConf.create(config))
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


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


# -- the run ---------------------------------------------------------------------------------
def prepare(cfg: DictConfig) -> TrainingRun:
    """Build and check everything; raises :class:`ConfigError` (one line) on a bad config."""
    register_resolvers()
    missing = _missing_keys(cfg)
    if missing:
        raise ConfigError(f"required value(s) not set: {', '.join(missing)} (e.g. {missing[0]}=...)")
    output_dir = Path(str(_node(cfg, "output_dir")))
    ckpt_path = OmegaConf.select(cfg, "ckpt_path")
    if ckpt_path is not None and ckpt_path not in ("last", "hpc") and not Path(str(ckpt_path)).is_file():
        raise ConfigError(f"ckpt_path: checkpoint not found: {ckpt_path}")
    check_budget(cfg, ckpt_path)

    # Cheap checks first, so a typo fails in a second, not after loading VGG.
    style_image = load_style_image(cfg)
    network = build_network(cfg)
    datamodule = build_datamodule(cfg)
    with _stage("data"):
        datamodule.prepare_data()
        datamodule.setup("fit")
    optimizer = _partial(cfg, "optimizer")
    if optimizer is None:
        raise ConfigError("optimizer is not set")
    scheduler = _partial(cfg, "scheduler")
    objective, used = build_loss(cfg, style_image)
    check_frame_size(cfg, objective.loss_network)

    with _stage("config"):
        resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved["loss"]["network"]["used"] = used
    _write_yaml(output_dir / RESOLVED_CONFIG_NAME, resolved)

    module = ReCoNetModule(network, objective, optimizer, scheduler, model_config=dict(network.config), run_config=resolved)

    callbacks: list[Callback] = _instantiate_all(cfg, "callbacks")
    loggers = _instantiate_all(cfg, "logger")
    with _stage("trainer"):
        trainer = instantiate(
            cfg.trainer,
            callbacks=callbacks,
            logger=loggers if loggers else False,
            plugins=[AtomicCheckpointIO()],
        )
    return TrainingRun(resolved, output_dir, module, datamodule, trainer, ckpt_path)


class StoppedBySignal(Exception):
    """Training was stopped by SIGTERM/SIGINT after a step; ``checkpoint`` is None if no
    checkpoint callback wrote one (``callbacks.model_checkpoint=null``)."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        self.signum, self.step, self.checkpoint = int(signum), int(step), checkpoint
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")


def fit(run: TrainingRun) -> dict[str, float]:
    """Train; returns the final logged metrics. Raises :class:`StoppedBySignal` after a clean
    stop on SIGTERM/SIGINT (checkpoint and artifact written at the stopping step)."""
    from reconet.training.callbacks import stop_signal

    # Checkpoints hold tensors and plain values only: load them without unpickling code.
    run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=run.ckpt_path, weights_only=True)
    signum = stop_signal(run.trainer)
    if signum is not None:
        last = getattr(run.trainer.checkpoint_callback, "last_model_path", "") or ""
        raise StoppedBySignal(signum, run.trainer.global_step, Path(last) if last and Path(last).is_file() else None)
    return {name: float(value) for name, value in run.trainer.callback_metrics.items()}


def train(cfg: DictConfig) -> tuple[dict[str, float], TrainingRun]:
    """Seed, :func:`prepare`, :func:`fit`."""
    seed = OmegaConf.select(cfg, "seed")
    if seed is not None:
        pl.seed_everything(int(seed), workers=True, verbose=False)
    run = prepare(cfg)
    metrics = fit(run)
    return metrics, run
