"""LightningModule for ReCoNet: orchestration only.

The stylization network, the objective and the optimizer/scheduler factories are injected
(built from config by :mod:`reconet.training.builders`); this class runs one shared step for
training and validation and logs every loss term, the learning rate and -- in validation --
the temporal error of the model and of the unstylized input frames on the same pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from reconet.evaluation.temporal import temporal_error
from reconet.models.reconet import ReCoNetOutput

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]

# State-dict prefix of the objective (loss network + style Grams): rebuilt from config, never
# stored in checkpoints (tens of MB of frozen VGG weights per file otherwise).
_LOSS_PREFIX = "loss."


class ReCoNetModule(pl.LightningModule):
    """Trains ``network`` to minimize ``loss`` on batches of frame pairs.

    Args:
        network: the stylization network (``forward(x) -> ReCoNetOutput(features, output)``),
            kept as ``self.network`` -- its state-dict keys are ``network.*`` in checkpoints.
        loss: the objective, ``loss(input1, input2, result1, result2, flow, mask) -> dict`` of
            weighted terms and ``"total"`` (:class:`reconet.losses.ReCoNetLoss`).
        optimizer: factory completed with the network's parameters (Hydra ``_partial_``).
        scheduler: optional factory completed with the optimizer; stepped every optimizer step.
        model_config: JSON-able arguments that rebuild the network (default ``network.config``);
            stored in the checkpoint hyper-parameters so inference can rebuild it.
        run_config: JSON-able resolved run configuration, stored with the hyper-parameters.
    """

    def __init__(
        self,
        network: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        *,
        model_config: dict[str, Any] | None = None,
        run_config: dict[str, Any] | None = None,
        style_row: int | None = None,
    ) -> None:
        super().__init__()
        if model_config is None:
            model_config = dict(network.config)
        self.save_hyperparameters(ignore=["network", "loss", "optimizer", "scheduler"])
        # Adding one style to a trained multi-style network: every pair is stylized with this
        # row (and only the parameters left trainable are optimized).
        self.style_row = style_row
        self.network = network
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    def forward(self, x: torch.Tensor, style: Any = None) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> stylized (B, 3, H, W) in [0, 1] (``style`` for several styles)."""
        return self.network(x, style=style).output

    @property
    def num_styles(self) -> int:
        return int(getattr(self.network, "num_styles", 1))

    # -- the shared step -------------------------------------------------------------------
    def model_step(
        self, batch: dict[str, Any], style_index: torch.Tensor | None = None
    ) -> tuple[dict[str, torch.Tensor], ReCoNetOutput, ReCoNetOutput]:
        """Loss terms and both results for a batch of pairs. Several styles: ``style_index``
        (B,) gives each pair its style; default, each pair draws one uniformly (Dumoulin et al.
        2017 train their 32 styles this way), from the global generator Lightning seeds."""
        frame1, frame2 = batch["frame1"], batch["frame2"]  # (B, 3, H, W) frames N, N+1
        flow, mask = batch["flow"], batch["mask"]  # (B, 2, H, W), (B, 1, H, W)
        if frame1.shape != frame2.shape:
            raise ValueError(f"frame1 {tuple(frame1.shape)} and frame2 {tuple(frame2.shape)} differ")
        size = frame1.shape[0]
        style = None
        if self.num_styles > 1:
            if self.style_row is not None:
                style_index = torch.full((size,), self.style_row)
            elif style_index is None:
                style_index = torch.randint(self.num_styles, (size,))
            style_index = style_index.to(frame1.device)
            # both frames of a pair in the same style: (2B, N) one-hot rows
            style = F.one_hot(torch.cat([style_index, style_index]), self.num_styles).float()
        # Both frames in one forward pass: instance norm is per sample, so this equals two
        # separate passes and keeps the convolutions in one large batch.
        both = self.network(torch.cat([frame1, frame2]), style=style)  # features (2B, C, h, w), output (2B, 3, H, W)
        result1 = ReCoNetOutput(both.features[:size], both.output[:size])
        result2 = ReCoNetOutput(both.features[size:], both.output[size:])
        if getattr(self.loss, "num_styles", 1) > 1:
            losses = self.loss(frame1, frame2, result1, result2, flow, mask, style_index=style_index)
        else:
            losses = self.loss(frame1, frame2, result1, result2, flow, mask)
        return losses, result1, result2

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses, _, _ = self.model_step(batch)
        size = batch["frame1"].shape[0]
        terms = {f"train/{name}": value.detach() for name, value in losses.items() if name != "total"}
        self.log_dict(terms, batch_size=size)
        self.log("train/total", losses["total"].detach(), batch_size=size, prog_bar=True)
        optimizer = self.trainer.optimizers[0] if self.trainer.optimizers else None
        if optimizer is not None:
            self.log("train/lr", float(optimizer.param_groups[0]["lr"]), batch_size=size)
        return losses["total"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        size = batch["frame1"].shape[0]
        # Several styles: every validation pass covers the styles in the same fixed order.
        order = (torch.arange(size) + batch_idx * size) % self.num_styles if self.num_styles > 1 else None
        if self.style_row is not None:
            order = None  # model_step uses the one row being trained
        losses, result1, result2 = self.model_step(batch, style_index=order)
        size = batch["frame1"].shape[0]
        self.log_dict(
            {f"val/{name}": value for name, value in losses.items()},
            batch_size=size,
            on_epoch=True,
            sync_dist=True,
        )
        # Temporal error of the model and, as the reference level, of the input frames on the
        # same pairs (reconet.evaluation.temporal, the function the evaluation tool uses).
        flow, mask = batch["flow"], batch["mask"]
        # fp32 also under mixed precision (the outputs are then bf16/fp16).
        model_error = temporal_error(result1.output.float(), result2.output.float(), flow, mask)  # (B,), NaN = empty mask
        input_error = temporal_error(batch["frame1"], batch["frame2"], flow, mask)  # (B,)
        valid = ~torch.isnan(model_error)
        count = int(valid.sum())
        if count:
            self.log("val/temporal_error", model_error[valid].mean().float(), batch_size=count, sync_dist=True)
            self.log("val/temporal_error_input", input_error[valid].mean().float(), batch_size=count, sync_dist=True)

    # -- optimization ----------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=[p for p in self.network.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    # -- checkpoints: network only ---------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(_LOSS_PREFIX)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The objective is rebuilt from config; put its current state back so that loading
        # stays strict for everything that is stored (the network).
        state = checkpoint["state_dict"]
        for key, value in self.loss.state_dict().items():
            state.setdefault(_LOSS_PREFIX + key, value)
