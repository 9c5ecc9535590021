"""Training callbacks: TensorBoard images, checkpoints, stopping on a signal, inference-artifact
export, stylized samples.

Visualisation and export live here rather than in the LightningModule so that the module
stays a pure optimisation loop and each of these can be switched off from config
(``callbacks.temporal_images=null``).
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_info, rank_zero_only

from reconet.evaluation.temporal import temporal_error_map
from reconet.fileio import atomic_path, remove_stale_temps
from reconet.image import save_image, tensor_to_uint8, uint8_to_tensor
from reconet.media import Frame, open_frames, open_writer
from reconet.models.artifact import load_stylizer, save_artifact
from reconet.resources import asset_path

# Heat-map scale: the colour map saturates at this RMS difference (in [0, 1] RGB units)
# so that images from different steps and runs are comparable.
HEATMAP_MAX_RMS = 0.25
# Tiles are downscaled to at most this width for TensorBoard (event files stay small).
TILE_MAX_WIDTH = 512
# Short CC0 clip stylized at the end of training (reconet/assets/videos/ATTRIBUTION.md).
DEMO_CLIP = asset_path("videos/flower_cc0.mp4")


def _fixed_sample(trainer: pl.Trainer, index: int) -> dict[str, Any] | None:
    datamodule = getattr(trainer, "datamodule", None)
    getter = getattr(datamodule, "fixed_val_sample", None)
    return getter(index) if getter is not None else None


def heatmap(values: torch.Tensor, vmax: float, colormap: str = "inferno") -> torch.Tensor:
    """(1, H, W) non-negative values -> (3, H, W) RGB colour image in [0, 1] (values / vmax clipped)."""
    from matplotlib import colormaps  # imported lazily: only needed when images are logged

    if values.ndim != 3 or values.shape[0] != 1:
        raise ValueError(f"heatmap expects (1, H, W), got {tuple(values.shape)}")
    scaled = (values[0].detach().float().cpu() / vmax).clamp(0.0, 1.0).numpy()  # (H, W)
    rgba = colormaps[colormap](scaled)  # (H, W, 4) float64
    return torch.from_numpy(rgba[..., :3]).permute(2, 0, 1).float()


def _first_style(network: torch.nn.Module) -> dict[str, Any]:
    """Keyword arguments that run a multi-style network in its first style (none otherwise)."""
    return {"style": 0} if getattr(network, "num_styles", 1) > 1 else {}


@torch.no_grad()
def render_styles(network: torch.nn.Module, frame: torch.Tensor) -> torch.Tensor:
    """(3, H, W) frame in every style of a multi-style network, one batched forward pass:
    a row of tiles (3, H, N * W) for TensorBoard, the input first."""
    count = network.num_styles
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    try:
        batch = frame.to(device).unsqueeze(0).expand(count, -1, -1, -1)  # (N, 3, H, W)
        outputs = network(batch, style=torch.eye(count, device=device)).output.float().cpu()  # (N, 3, H, W)
    finally:
        network.train(was_training)
    return torch.cat([frame.cpu(), *outputs], dim=-1).clamp(0.0, 1.0)


@torch.no_grad()
def render_pair(pl_module: pl.LightningModule, sample: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Stylize one validation pair and compute the masked temporal-difference heat-maps.

    Returns (3, H, W) tensors in [0, 1]: ``input1``, ``input2``, ``output1``, ``output2``,
    ``input_heat`` and ``output_heat`` (RMS of frame N - warp(frame N+1) per pixel, black where
    the mask excludes the pixel, saturating at :data:`HEATMAP_MAX_RMS`).
    """
    network = pl_module.network
    device = next(network.parameters()).device
    frame1 = sample["frame1"].unsqueeze(0).to(device)  # (1, 3, H, W)
    frame2 = sample["frame2"].unsqueeze(0).to(device)
    flow = sample["flow"].unsqueeze(0).to(device)  # (1, 2, H, W)
    mask = sample["mask"].unsqueeze(0).to(device)  # (1, 1, H, W)
    was_training = network.training
    network.eval()
    try:
        outputs = network(torch.cat([frame1, frame2]), **_first_style(network)).output  # (2, 3, H, W)
    finally:
        network.train(was_training)
    output1, output2 = outputs[:1], outputs[1:]

    def heat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        error = temporal_error_map(a, b, flow) * mask  # (1, 1, H, W), squared error per channel
        return heatmap(error[0].sqrt(), HEATMAP_MAX_RMS) * mask[0].cpu()

    return {
        "input1": frame1[0].cpu(),
        "input2": frame2[0].cpu(),
        "output1": output1[0].float().cpu(),
        "output2": output2[0].float().cpu(),
        "input_heat": heat(frame1, frame2),
        "output_heat": heat(output1, output2),
    }


def pair_grid(images: dict[str, torch.Tensor], max_width: int | None = TILE_MAX_WIDTH) -> torch.Tensor:
    """2 x 3 grid: input N, input N+1, input heat-map / stylized N, stylized N+1, stylized heat-map.

    Tiles wider than ``max_width`` are downscaled (None: keep the full size).
    """
    from torchvision.utils import make_grid

    order = ("input1", "input2", "input_heat", "output1", "output2", "output_heat")
    tiles = torch.stack([images[name] for name in order])  # (6, 3, H, W)
    height, width = tiles.shape[-2:]
    if max_width is not None and width > max_width:
        size = (max(1, round(height * max_width / width)), max_width)
        tiles = F.interpolate(tiles, size=size, mode="bilinear", align_corners=False, antialias=True)
    return make_grid(tiles.clamp(0.0, 1.0), nrow=3, padding=2, pad_value=1.0)  # (3, H', W')


class TemporalImageLogger(Callback):
    """Log a fixed validation pair to TensorBoard every ``every_n_steps`` optimizer steps.

    Tag ``val/temporal_pair``: a 2 x 3 grid with input frames N and N+1 and the heat-map of
    their masked temporal difference (the reference level) above the stylized frames and the
    heat-map of theirs. Does nothing unless a :class:`TensorBoardLogger` is configured.
    """

    def __init__(self, every_n_steps: int = 1000, pair_index: int = 0, tag: str = "val/temporal_pair") -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = int(every_n_steps)
        self.pair_index = int(pair_index)
        self.tag = tag
        self._last_step: int | None = None

    @staticmethod
    def _tensorboards(trainer: pl.Trainer) -> list[TensorBoardLogger]:
        return [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        loggers = self._tensorboards(trainer)
        if not loggers or step == self._last_step:
            return
        sample = _fixed_sample(trainer, self.pair_index)
        if sample is None:
            return
        grid = pair_grid(render_pair(pl_module, sample))
        styles = render_styles(pl_module.network, sample["frame1"]) if getattr(pl_module.network, "num_styles", 1) > 1 else None
        for logger in loggers:
            logger.experiment.add_image(self.tag, grid, global_step=step)
            if styles is not None:  # every style on the same frame: val/styles
                logger.experiment.add_image("val/styles", styles, global_step=step)
        self._last_step = step

    @rank_zero_only
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, pl_module)  # the untrained network, as a baseline

    @rank_zero_only
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._log(trainer, pl_module)

    @rank_zero_only
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, pl_module)


class Checkpoint(ModelCheckpoint):
    """:class:`ModelCheckpoint` that also writes ``last.ckpt`` when training ends or is stopped.

    ModelCheckpoint saves after each validation; without this, steps after the last
    validation (``max_steps`` not a multiple of ``val_check_interval``) would be missing from
    ``last.ckpt`` and a resumed run would repeat them. When another callback stops training
    mid-epoch (:class:`GracefulStop` on SIGTERM), ``last.ckpt`` is written at that step, with
    the loops' mid-epoch state, and not overwritten at the end. Writes go through the
    trainer's checkpoint IO (atomic, :mod:`reconet.training.checkpoint_io`).
    """

    def _last_path(self) -> str | None:
        if not self.save_last or self.dirpath is None:
            return None
        return os.path.join(self.dirpath, self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)

    _stopped_at_step: int | None = None  # step at which another callback stopped training

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # A run killed (SIGKILL, power cut) while writing a checkpoint or an artifact leaves its
        # unlocked temporary file (reconet.fileio.atomic_path); a resume cleans them up.
        if trainer.is_global_zero and self.dirpath is not None:
            for suffix in (self.FILE_EXTENSION, ".pt"):
                for removed in remove_stale_temps(self.dirpath, suffix):
                    rank_zero_info(f"removed {removed.name}, a partial write of a killed run")

    def _save_last_now(self, trainer: pl.Trainer) -> None:
        path = self._last_path()
        if path is None or trainer.fast_dev_run:
            return
        # every rank saves (the strategy writes on rank 0 and synchronizes); _save_checkpoint
        # also records the step, so ModelCheckpoint does not write last.ckpt again at the end
        self._save_checkpoint(trainer, path)
        self.last_model_path = path

    def _note_stop(self, trainer: pl.Trainer) -> None:
        if trainer.should_stop and self._stopped_at_step is None:
            if self._last_global_step_saved != trainer.global_step:
                self._save_last_now(trainer)
            self._stopped_at_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        self._note_stop(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not trainer.sanity_checking:
            self._note_stop(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        # A run that ended normally saves its final state (epoch counted as done, so a resume
        # sees a spent epoch budget); a stopped one keeps the mid-epoch checkpoint of its step.
        if self._stopped_at_step != trainer.global_step:
            self._save_last_now(trainer)
        self._stopped_at_step = None


class GracefulStop(Callback):
    """Stop training at the end of the current step on SIGTERM or SIGINT.

    SIGTERM is what ``timeout``, ``docker stop``, systemd and batch schedulers send; Lightning
    would turn it into an exception that skips the end of training. Here the step in progress
    finishes, :class:`Checkpoint` writes ``last.ckpt`` at that step, the end-of-training
    callbacks run (:class:`ArtifactExport` writes ``stylizer.pt``; :class:`SampleExport` is
    skipped to stop quickly) and :attr:`received` tells the caller which signal it was. A
    second SIGINT (Ctrl-C twice) raises KeyboardInterrupt at once.

    Under DDP every rank stops at the same step: the ranks agree on "any rank got a signal"
    after each step. DataLoader workers ignore both signals (the datamodule's worker_init_fn),
    so a signal to the whole process group does not kill them under the main process.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: int | None = None  # signal number
        self.stopped_at_step: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning registered its own SIGTERM handler (Trainer._run), which this replaces.
        self.received = None
        self.stopped_at_step = None
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)

    def _check(self, trainer: pl.Trainer) -> None:
        stop = trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)
        if stop and not trainer.should_stop:
            trainer.should_stop = True
            self.stopped_at_step = int(trainer.global_step)
            if self.received is None:  # another rank got it
                self.received = int(signal.SIGTERM)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any) -> None:
        self._check(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        self._previous = {}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()


def stop_signal(trainer: pl.Trainer) -> int | None:
    """The signal that stopped training (:class:`GracefulStop`), None if it was not stopped."""
    for callback in trainer.callbacks:
        if isinstance(callback, GracefulStop) and callback.received is not None:
            return callback.received
    return None


def artifact_meta(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
    """JSON-able description stored in the inference artifact."""
    run = dict(pl_module.hparams.get("run_config") or {})
    style = run.get("style") or {}
    loss = run.get("loss") or {}
    meta = {
        "source": "reconet-train",
        "style": style.get("name"),
        "style_image": Path(str(style["image"])).name if style.get("image") else None,
        "global_step": int(trainer.global_step),
        "epoch": int(trainer.current_epoch),
        "loss_network": (loss.get("network") or {}).get("used"),
    }
    table = run.get("style_table")
    if table and loss.get("kind") == "distill":  # the teacher's rows, every one trained to this step
        meta["styles"] = [{**row, "global_step": int(trainer.global_step)} for row in table]
        single = len(table) == 1
        meta["style"] = table[0]["name"] if single else None
        meta["style_image"] = table[0].get("style_image") if single else None
        return meta
    if table:  # add_style: the source's rows unchanged, the new row trained to this step
        meta["style"] = meta["style_image"] = None
        meta["styles"] = [dict(row) for row in table]
        meta["styles"][-1]["global_step"] = int(trainer.global_step)
        return meta
    styles = {name: entry for name, entry in (run.get("styles") or {}).items() if entry is not None}
    if styles:  # the style table of a multi-style network, in row order
        meta["style"] = meta["style_image"] = None
        meta["styles"] = [
            {
                "name": str(name),
                "style_image": Path(str(entry["image"])).name,
                "style_sha256": file_sha256(Path(str(entry["image"]))),
                "style_size": loss.get("style_size"),
                "scale": float(entry.get("scale", 1.0)),
                "global_step": int(trainer.global_step),
                "init_from": run.get("init_from"),
            }
            for name, entry in styles.items()
        ]
    return meta


def file_sha256(path: Path) -> str | None:
    """Hex SHA-256 of a file's bytes (None if it cannot be read): which painting a row learned."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ArtifactExport(Callback):
    """Write the inference artifact (:func:`reconet.models.artifact.save_artifact`).

    * with every checkpoint: ``<checkpoint dir>/stylizer-last.pt`` (the checkpoint's weights);
    * at the end of training: ``<dirpath>/<filename>`` with the final weights, and
      ``<checkpoint dir>/stylizer-best.pt`` converted from the best checkpoint, if any.

    Files are written atomically by ``save_artifact``, on global rank 0 only.
    """

    def __init__(self, dirpath: str | Path, filename: str = "stylizer.pt") -> None:
        self.dirpath = Path(dirpath)
        self.filename = filename

    def _checkpoint_dir(self, trainer: pl.Trainer) -> Path:
        callback = trainer.checkpoint_callback
        dirpath = getattr(callback, "dirpath", None)
        return Path(dirpath) if dirpath else self.dirpath / "checkpoints"

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if not trainer.is_global_zero:
            return

        save_artifact(self._checkpoint_dir(trainer) / "stylizer-last.pt", pl_module.network, artifact_meta(trainer, pl_module))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return

        meta = artifact_meta(trainer, pl_module)
        save_artifact(self.dirpath / self.filename, pl_module.network, meta)
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if best and Path(best).is_file():
            network, _ = load_stylizer(best)
            step = torch.load(best, map_location="cpu", weights_only=True).get("global_step", meta["global_step"])
            save_artifact(self._checkpoint_dir(trainer) / "stylizer-best.pt", network, {**meta, "global_step": int(step)})


class SampleExport(Callback):
    """At the end of training, save stylized samples in ``dirpath``.

    * the fixed validation pair: ``pair_input1.png``, ``pair_input2.png``, ``pair_stylized1.png``,
      ``pair_stylized2.png`` and ``pair_grid.png`` (the 2 x 3 grid logged to TensorBoard);
    * ``demo_stylized.mp4``: ``clip`` (default: the bundled CC0 demo clip, 60 frames at 320x180)
      stylized frame by frame, to see the result on real motion; ``clip=null`` skips it.
    """

    def __init__(self, dirpath: str | Path, pair_index: int = 0, clip: str | Path | None = DEMO_CLIP) -> None:
        self.dirpath = Path(dirpath)
        self.pair_index = int(pair_index)
        self.clip = Path(clip) if clip is not None else None

    @rank_zero_only
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if stop_signal(trainer) is not None:
            return  # stopping on a signal: the scheduler may kill the process in seconds
        self.dirpath.mkdir(parents=True, exist_ok=True)
        sample = _fixed_sample(trainer, self.pair_index)
        if sample is not None:
            images = render_pair(pl_module, sample)
            for name, key in (
                ("pair_input1", "input1"),
                ("pair_input2", "input2"),
                ("pair_stylized1", "output1"),
                ("pair_stylized2", "output2"),
            ):
                _save_image_atomic(self.dirpath / f"{name}.png", images[key])
            _save_image_atomic(self.dirpath / "pair_grid.png", pair_grid(images, max_width=None))
        if self.clip is not None:
            stylize_clip(pl_module.network, self.clip, self.dirpath / "demo_stylized.mp4")


@torch.no_grad()
def stylize_clip(network: torch.nn.Module, source: Path, destination: Path) -> Path:
    """Stylize every frame of a short clip with ``network`` and write it (atomically) as a video."""

    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    try:
        with open_frames(source) as frames, open_writer(destination, frames, overwrite=True, audio=False) as writer:
            for frame in frames.frames():
                image = uint8_to_tensor(frame.image).unsqueeze(0).to(device)  # (1, 3, H, W)
                styled = network(image, **_first_style(network)).output[0]  # (3, H, W)
                writer.write(Frame(frame.index, tensor_to_uint8(styled), frame.time, frame.duration))
    finally:
        network.train(was_training)
    return destination


def _save_image_atomic(path: Path, image: torch.Tensor) -> None:
    with atomic_path(path) as temp:  # same suffix: the format is kept
        save_image(temp, image)
