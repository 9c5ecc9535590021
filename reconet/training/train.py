"""Build a training run from a composed config, check it, and fit.

:func:`prepare` turns the config into objects (network, objective, data, callbacks, loggers,
trainer) and fails with a one-line :class:`ConfigError` on anything that would stop training
later -- a missing style image, an unknown model preset, a dataset root that does not exist
or holds no pairs -- before any training step runs. :func:`train` then fits.
Used by the ``reconet-train`` CLI and by the tests, on the same config.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_only

from reconet.data.datamodule import ReCoNetDataModule
from reconet.data.errors import DatasetError
from reconet.fileio import atomic_write
from reconet.flow.io import FlowFileError
from reconet.image import ImageFileError
from reconet.losses import ReCoNetLoss
from reconet.losses.objective import resize_style_image
from reconet.models.loss_network import build_loss_network
from reconet.training.callbacks import stop_signal
from reconet.training.checkpoint_io import AtomicCheckpointIO
from reconet.training.checks import StyleSpec, check_config, select_required, stage
from reconet.training.config import ConfigError, register_resolvers
from reconet.training.module import ReCoNetModule
from reconet.training.precision import auto_training_candidates, choose_training_precision, training_precision_key
from reconet.tuning import Choice, TuningCache

RESOLVED_CONFIG_NAME = "config_resolved.yaml"
log = logging.getLogger(__name__)
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


# -- builders --------------------------------------------------------------------------------
def build_network(cfg: DictConfig, styles: list[StyleSpec] | list[str] | None = None) -> torch.nn.Module:
    """The stylization network, instantiated from ``model`` (its ``_target_`` and settings), with
    one conditional-norm row per style (specs or names) when there are several, and started from
    ``init_from``'s weights when that is set."""
    model = select_required(cfg, "model")
    extra = {"num_styles": len(styles)} if styles and len(styles) > 1 else {}
    with stage(f"model (preset {model.get('preset')!r})"):
        network = instantiate(model, _convert_="all", **extra)
    init_from = OmegaConf.select(cfg, "init_from")
    if init_from is not None:
        names = [s if isinstance(s, str) else s.name for s in styles or []]
        network = _initialized(network, str(init_from), names)
    return network


def build_distillation(cfg: DictConfig) -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    """``loss=distill``: the objective (:class:`reconet.losses.distill.DistillationLoss`) around
    the teacher ``loss.teacher`` (a bundled style or network name, or an artifact file) and the
    student's style table: one row per teacher style in ``loss.styles`` (default: all of them),
    each the teacher's row plus where it was distilled from."""
    from reconet.losses.distill import DistillationLoss
    from reconet.models.artifact import load_stylizer, style_table
    from reconet.models.pretrained import resolve_model

    loss_cfg = OmegaConf.to_container(select_required(cfg, "loss"), resolve=True)
    teacher_name = loss_cfg.pop("teacher", None)
    if teacher_name is None:
        raise ConfigError("loss=distill needs a teacher: teacher=<a bundled style or network name, or an artifact file>")
    wanted = loss_cfg.pop("styles", None)
    loss_cfg.pop("kind", None)
    with stage(f"teacher {teacher_name}"):
        teacher, meta = load_stylizer(resolve_model(str(teacher_name)))
    table = style_table(meta, teacher.num_styles)
    names = [row["name"] for row in table]
    if wanted is None:
        rows = list(range(len(names)))
    else:
        wanted = [wanted] if isinstance(wanted, str) else list(wanted)
        unknown = [name for name in wanted if name not in names]
        if unknown or not wanted:
            raise ConfigError(f"teacher_styles: {unknown or wanted} not among the teacher's styles {names}")
        rows = [names.index(name) for name in wanted]
    source = Path(str(teacher_name)).name
    # The painting's identity comes from the teacher's row; its training facts (steps, scale,
    # init_from, measurements) are the teacher's, not the student's, and stay behind.
    painting_keys = ("name", "style_image", "style_sha256", "style_size")
    student_table = [
        {**{k: table[row][k] for k in painting_keys if k in table[row]}, "distilled_from": source, "teacher_row": row}
        for row in rows
    ]
    with stage("loss"):
        objective = DistillationLoss(
            teacher,
            rows if teacher.num_styles > 1 else None,
            names=[names[row] for row in rows],
            **loss_cfg,
        )
    return objective, student_table


def build_added_style(cfg: DictConfig, styles: list[StyleSpec]) -> tuple[torch.nn.Module, list[dict[str, Any]]]:
    """``add_style=true``: the multi-style network of ``init_from`` grown by one row for the
    style of the ``style`` group, with only that row's gamma and beta trainable (Dumoulin et
    al. 2017: a new style by training its normalization parameters alone). Returns the
    network and the style table of the result (the source's rows, then the new one)."""
    from reconet.models.artifact import load_stylizer, style_table
    from reconet.models.conditional_norm import ConditionalInstanceNorm2d
    from reconet.models.pretrained import resolve_model
    from reconet.training.callbacks import file_sha256

    source = OmegaConf.select(cfg, "init_from")
    if source is None:
        raise ConfigError("add_style needs init_from=<a multi-style artifact> to add the style to")
    if len(styles) != 1:
        raise ConfigError("add_style adds the one style of the style group (style=... or style.image=...), not styles")
    with stage("init_from"):
        start, meta = load_stylizer(resolve_model(str(source)))
    table = style_table(meta, start.num_styles)
    new = styles[0]
    if new.name in {row["name"] for row in table}:
        raise ConfigError(f"add_style: {str(source)} already holds a style named {new.name!r} (set style.name=...)")
    row = start.num_styles
    network = start.with_styles(row + 1).train()
    network.requires_grad_(False)
    keep_old = torch.zeros(row + 1, 1)
    keep_old[row] = 1.0  # gradient reaches the new row only: the others stay bit-identical
    for layer in network.modules():
        if isinstance(layer, ConditionalInstanceNorm2d):
            for parameter in (layer.weight, layer.bias):
                parameter.requires_grad_(True)
                parameter.register_hook(lambda grad, mask=keep_old: grad * mask.to(grad))
    loss_cfg = OmegaConf.select(cfg, "loss") or {}
    table.append(
        {
            "name": new.name,
            "style_image": new.path.name,
            "style_sha256": file_sha256(new.path),
            "style_size": OmegaConf.select(loss_cfg, "style_size"),
            "scale": 1.0,
            "added_to": str(source),
        }
    )
    return network, table


def _initialized(network: torch.nn.Module, source: str, names: list[str]) -> torch.nn.Module:
    """``network`` with the weights of the artifact ``source`` (a file or a bundled style name):
    the same architecture, and the source's style rows first -- in the same order and with the
    same names when it has a style table -- any further rows starting from their mean."""
    from reconet.models.artifact import load_stylizer, style_table
    from reconet.models.pretrained import resolve_model

    with stage("init_from"):
        start, meta = load_stylizer(resolve_model(source))
    config = {k: v for k, v in network.config.items() if k != "num_styles"}
    start_config = {k: v for k, v in start.config.items() if k != "num_styles"}
    if config != start_config:
        raise ConfigError(f"init_from {source}: architecture {start_config} differs from model {config}")
    rows = [row["name"] for row in style_table(meta, start.num_styles)]
    if start.num_styles > network.num_styles:
        raise ConfigError(f"init_from {source}: holds {start.num_styles} styles, the run trains {network.num_styles}")
    if names and start.num_styles > 1 and names[: len(rows)] != rows:
        raise ConfigError(f"init_from {source}: its styles {rows} must come first, in order, in the run's styles {names}")
    grown = start.with_styles(network.num_styles) if network.num_styles > 1 else start
    network.load_state_dict(grown.state_dict(), strict=True)
    return network


def build_loss(cfg: DictConfig, styles: list[StyleSpec] | torch.Tensor) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The objective and a record of the loss network actually used (name, weights, layers).
    ``styles``: the run's styles (:func:`reconet.training.checks.load_styles`), or one image."""
    if isinstance(styles, torch.Tensor):
        styles = [StyleSpec(str(OmegaConf.select(cfg, "style.name") or "style"), styles, Path("style"))]

    loss_cfg = OmegaConf.to_container(select_required(cfg, "loss"), resolve=True)
    network_cfg = dict(loss_cfg.pop("network"))
    network_cfg.pop("used", None)
    layers = tuple(dict.fromkeys([loss_cfg["content_layer"], *loss_cfg["style_layers"]]))
    with stage("loss.network"):
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
    for spec in styles:
        style_h, style_w = resize_style_image(spec.image.unsqueeze(0), loss_cfg.get("style_size")).shape[-2:]
        if min(style_h, style_w) < network.min_side:
            where = f"style.image {select_required(cfg, 'style.image')}" if len(styles) == 1 else f"styles.{spec.name}.image {spec.path}"
            raise ConfigError(
                network.too_small_message(f"{where} ({style_w}x{style_h} at loss.style_size={loss_cfg.get('style_size')})")
                + "; set a larger loss.style_size"
            )
    with stage("loss"):
        if len(styles) == 1:
            objective = ReCoNetLoss(network, styles[0].image, **loss_cfg)
        else:
            objective = ReCoNetLoss(
                network,
                [spec.image for spec in styles],
                style_names=[spec.name for spec in styles],
                style_scales=[spec.scale for spec in styles],
                **loss_cfg,
            )
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
    """The ``datamodule`` node instantiated around the dataset factories ``data.train`` / ``data.val``."""
    data = select_required(cfg, "data")
    with stage("data"):
        # _convert_="all": datasets receive plain lists/dicts, not OmegaConf containers.
        # An entry set to null is left out (e.g. data.val.photos=null in a mix).
        train, val = (
            {name: instantiate(node, _convert_="all") for name, node in (data.get(split) or {}).items() if node is not None}
            for split in ("train", "val")
        )
        return instantiate(select_required(cfg, "datamodule"), train=train, val=val, _convert_="all")


def _instantiate_all(cfg: DictConfig, key: str) -> list[Any]:
    group = OmegaConf.select(cfg, key)
    if not group:
        return []
    objects = []
    for name, node in group.items():
        if node is None:
            continue
        with stage(f"{key}.{name}"):
            objects.append(instantiate(node))
    return objects


def _partial(cfg: DictConfig, key: str) -> Callable[..., Any] | None:
    node = OmegaConf.select(cfg, key)
    if node is None:
        return None
    with stage(key):
        return instantiate(node)


def resolve_trainer_precision(
    precision: Any, accelerator: Any, measure: Callable[[tuple[str, ...]], Choice] | None = None
) -> Any:
    """``trainer.precision=auto`` -> the Lightning precision this machine trains fastest in.

    The candidates are :func:`reconet.training.precision.auto_training_candidates`: one where
    there is nothing to choose (32-true on CPUs without native bf16, bf16-mixed or 16-mixed on
    GPUs), else 32-true and bf16-mixed, which ``measure(candidates)`` times (see
    :func:`prepare`); without ``measure``, the reference 32-true. Any value other than auto is
    passed to Lightning unchanged.
    """
    if precision != "auto":
        return precision
    candidates = auto_training_candidates(accelerator)
    if len(candidates) == 1 or measure is None:
        return candidates[0]
    return measure(candidates).name


def _measure_precision(
    module: ReCoNetModule, datamodule: ReCoNetDataModule, loss_network: str
) -> Callable[[tuple[str, ...]], Choice]:
    """The measurement behind ``auto``: one training step per candidate on the run's first batch."""

    def measure(candidates: tuple[str, ...]) -> Choice:
        from reconet.data.datamodule import collate_pairs
        from reconet.training.precision import _rng_untouched

        dataset = datamodule.train_dataset
        with _rng_untouched():  # drawing the batch must not shift the run's random crops
            batch = collate_pairs([dataset[i] for i in range(min(datamodule.batch_size, len(dataset)))])
        key = training_precision_key(module.network, loss_network, batch)
        choice = choose_training_precision(
            candidates, lambda b: module.model_step(b)[0]["total"], module.network, batch, key, TuningCache.default()
        )
        log.info("trainer.precision=auto: %s", choice.describe())
        return choice

    return measure


@rank_zero_only
def _write_yaml(path: Path, config: dict[str, Any]) -> None:
    text = OmegaConf.to_yaml(OmegaConf.create(config))
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


# -- the run ---------------------------------------------------------------------------------
def prepare(cfg: DictConfig) -> TrainingRun:
    """Build and check everything; raises :class:`ConfigError` (one line) on a bad config."""
    register_resolvers()
    styles = check_config(cfg)  # cheap checks first: a typo fails in a second, not after loading VGG
    output_dir = Path(str(select_required(cfg, "output_dir")))
    ckpt_path = OmegaConf.select(cfg, "ckpt_path")
    added_table = None
    distill = OmegaConf.select(cfg, "loss.kind") == "distill"
    if distill:
        objective, distilled_table = build_distillation(cfg)
        used = {"name": "distill", "teacher": str(OmegaConf.select(cfg, "loss.teacher"))}
        network = build_network(cfg, [row["name"] for row in distilled_table])
    elif OmegaConf.select(cfg, "add_style"):
        network, added_table = build_added_style(cfg, styles)
    else:
        network = build_network(cfg, styles)
    datamodule = build_datamodule(cfg)
    with stage("data"):
        datamodule.prepare_data()
        datamodule.setup("fit")
    optimizer = _partial(cfg, "optimizer")
    if optimizer is None:
        raise ConfigError("optimizer is not set")
    scheduler = _partial(cfg, "scheduler")
    if not distill:
        objective, used = build_loss(cfg, styles)
        check_frame_size(cfg, objective.loss_network)

    with stage("config"):
        # The precision actually used is what the resolved config records.
        trainer_cfg = select_required(cfg, "trainer")
        trainer_cfg.precision = resolve_trainer_precision(
            trainer_cfg.get("precision"),
            trainer_cfg.get("accelerator", "auto"),
            _measure_precision(
                ReCoNetModule(network, objective, optimizer, style_row=None if added_table is None else len(added_table) - 1),
                datamodule,
                used,
            ),
        )
        resolved = OmegaConf.to_container(cfg, resolve=True)
    if not distill:
        resolved["loss"]["network"]["used"] = used
    if added_table is not None:
        resolved["style_table"] = added_table  # the artifact's table: source rows + the new one
    if distill:
        resolved["style_table"] = distilled_table  # the teacher's rows the student learns
    _write_yaml(output_dir / RESOLVED_CONFIG_NAME, resolved)

    module = ReCoNetModule(
        network,
        objective,
        optimizer,
        scheduler,
        model_config=dict(network.config),
        run_config=resolved,
        style_row=None if added_table is None else len(added_table) - 1,
    )

    callbacks: list[Callback] = _instantiate_all(cfg, "callbacks")
    loggers = _instantiate_all(cfg, "logger")
    with stage("trainer"):
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


class BadSampleError(Exception):
    """A data file that broke training after it started (its header was fine, its content was
    not). Training stops: skipping it would silently change the data. ``checkpoint`` is the
    last one written before (None if none was), to resume from once the file is fixed."""

    def __init__(self, message: str, step: int, checkpoint: Path | None) -> None:
        self.message, self.step, self.checkpoint = message, int(step), checkpoint
        super().__init__(f"{message} (at step {step})")


# What the datasets raise for a broken file (DataLoader workers re-raise the same types).
DATA_FILE_ERRORS = (DatasetError, ImageFileError, FlowFileError)


def data_error_message(err: BaseException) -> str:
    """The one-line message of a data error, also when a DataLoader worker re-raised it: its
    text then holds the worker's traceback, whose last line is ``module.Class: message``."""
    text = str(err).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].partition(": ")[2] or text.splitlines()[-1]
    return " ".join(text.split())


def _last_checkpoint(trainer: pl.Trainer) -> Path | None:
    last = getattr(trainer.checkpoint_callback, "last_model_path", "") or ""
    return Path(last) if last and Path(last).is_file() else None


def fit(run: TrainingRun) -> dict[str, float]:
    """Train; returns the final logged metrics.

    Raises:
        StoppedBySignal: after a clean stop on SIGTERM/SIGINT (checkpoint and artifact
            written at the stopping step).
        BadSampleError: a dataset file failed to load during training.
    """

    try:
        # Checkpoints hold tensors and plain values only: load them without unpickling code.
        run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=run.ckpt_path, weights_only=True)
    except DATA_FILE_ERRORS as err:
        raise BadSampleError(data_error_message(err), run.trainer.global_step, _last_checkpoint(run.trainer)) from err
    signum = stop_signal(run.trainer)
    if signum is not None:
        raise StoppedBySignal(signum, run.trainer.global_step, _last_checkpoint(run.trainer))
    return {name: float(value) for name, value in run.trainer.callback_metrics.items()}


def train(cfg: DictConfig) -> tuple[dict[str, float], TrainingRun]:
    """Seed, :func:`prepare`, :func:`fit`."""
    seed = OmegaConf.select(cfg, "seed")
    if seed is not None:
        pl.seed_everything(int(seed), workers=True, verbose=False)
    run = prepare(cfg)
    metrics = fit(run)
    return metrics, run
