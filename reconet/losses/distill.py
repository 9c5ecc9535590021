"""Distillation: a small stylization network learns to reproduce a trained one's frames.

Knowledge distillation (Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network",
2015) applied to image-to-image networks: the teacher (a trained ReCoNet, e.g. a bundled style)
stylizes each training frame once, under ``no_grad``, and the student is pulled towards that
frame. No VGG runs: a step costs one teacher forward and one student forward and backward, a
fraction of a perceptual-loss step, which is what makes training a faster network on a CPU
cheap. The temporal losses of ReCoNet (eqs. 4-5) are added on top, so the student's frames are
at least as stable as the teacher's:

    total = κ_p · mean|S(x) − T(x)| + κ_g · mean|∇S(x) − ∇T(x)| + λ_f L_f + λ_o L_o

over both frames of each pair. ∇ are the horizontal and vertical neighbour differences: a
pixel loss alone lets a small student smear the teacher's brush strokes into their average
colour (a blur costs little in L1); the gradient term makes strokes and edges cost what they
look like.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reconet.losses.temporal import feature_temporal_loss, output_temporal_loss

__all__ = ["DISTILL_TERMS", "DistillationLoss", "gradient_l1"]

DISTILL_TERMS = ("pixel", "gradient", "temporal_feature", "temporal_output")


def gradient_l1(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance of the vertical and horizontal neighbour differences of two (B, C, H, W)
    images (the sum of the two means; 0 when they differ by a constant)."""
    if output.shape != target.shape or output.ndim != 4:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} must be equal (B, C, H, W)")
    diff = output - target
    vertical = (diff[..., 1:, :] - diff[..., :-1, :]).abs().mean()
    horizontal = (diff[..., :, 1:] - diff[..., :, :-1]).abs().mean()
    return vertical + horizontal


class DistillationLoss(nn.Module):
    """Pixel, gradient and temporal terms of a student against a frozen teacher.

    Args:
        teacher: a trained ReCoNet (``teacher(x, style=...) -> (features, output)``); frozen,
            in eval mode, run in float32 without autocast so that its frames are exact targets
            also when the student trains in bf16-mixed.
        teacher_rows: for a multi-style teacher, the teacher's style row behind each of the
            student's rows (the student has ``len(teacher_rows)`` rows; one row makes a
            single-style student). None for a single-style teacher.
        names: one name per student row (per-style curves ``pixel_<name>``, several rows only).
        pixel, gradient: κ_p and κ_g above.
        lambda_f, lambda_o: weights of ReCoNet's feature and output temporal losses.
        compile_teacher: run the teacher through ``torch.compile`` (the same frames to float
            rounding, 1e-5; 1.7x faster on a 2-core CPU at 16 x 256 x 256, where instance norm,
            padding and upsampling otherwise cost more than the convolutions). A compiler
            failure warns once and falls back to eager.
    """

    def __init__(
        self,
        teacher: nn.Module,
        teacher_rows: Sequence[int] | None = None,
        *,
        names: Sequence[str] | None = None,
        pixel: float = 1.0,
        gradient: float = 1.0,
        lambda_f: float = 0.0,
        lambda_o: float = 0.0,
        compile_teacher: bool = False,
    ) -> None:
        super().__init__()
        teacher_styles = int(getattr(teacher, "num_styles", 1))
        if teacher_rows is None:
            if teacher_styles > 1:
                raise ValueError(f"the teacher holds {teacher_styles} styles: pass teacher_rows (which to distil)")
            rows: list[int] = []
        else:
            rows = [int(row) for row in teacher_rows]
            if not rows or any(not 0 <= row < teacher_styles for row in rows):
                raise ValueError(f"teacher_rows {rows} must be non-empty rows of the teacher's {teacher_styles} style(s)")
        self.teacher = teacher.float().requires_grad_(False).eval()
        self.teacher_rows = rows
        self.compile_teacher = bool(compile_teacher)
        object.__setattr__(self, "_compiled", None)  # the compiled teacher, built on first use
        count = max(len(rows), 1)
        self.names = tuple(names) if names is not None else tuple(str(i) for i in range(count))
        if len(self.names) != count:
            raise ValueError(f"{len(self.names)} names for {count} student style row(s)")
        self.weights = {
            "pixel": float(pixel),
            "gradient": float(gradient),
            "temporal_feature": float(lambda_f),
            "temporal_output": float(lambda_o),
        }
        if min(self.weights.values()) < 0:
            raise ValueError(f"loss weights must be >= 0, got {self.weights}")

    @property
    def num_styles(self) -> int:
        """Style rows of the student (the training module passes ``style_index`` when > 1)."""
        return max(len(self.teacher_rows), 1)

    def train(self, mode: bool = True) -> DistillationLoss:
        super().train(mode)
        self.teacher.eval()  # a fixed target, like the perceptual loss's VGG
        return self

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.weights.items()) + f", teacher_rows={self.teacher_rows}"

    @torch.no_grad()
    def targets(self, frames: torch.Tensor, style_index: torch.Tensor | None = None) -> torch.Tensor:
        """The teacher's frames (B, 3, H, W) for (B, 3, H, W) inputs; ``style_index`` (B,) picks
        each sample's student row (several rows only)."""
        style: Any = None
        if self.teacher_rows:
            if style_index is None:
                style_index = torch.zeros(frames.shape[0], dtype=torch.long)
            rows = torch.as_tensor(self.teacher_rows, device=frames.device)[style_index.to(frames.device)]
            style = F.one_hot(rows, int(self.teacher.num_styles)).float()  # (B, N_teacher)
        with torch.autocast(frames.device.type, enabled=False):
            if self.compile_teacher:
                try:
                    if self._compiled is None:  # kept out of the module tree: no state-dict keys
                        object.__setattr__(self, "_compiled", torch.compile(self.teacher, dynamic=False))
                    return self._compiled(frames.float(), style=style).output  # (B, 3, H, W)
                except Exception as error:  # no C compiler, an unsupported op: eager is still right
                    if isinstance(error, torch.OutOfMemoryError):
                        raise
                    warnings.warn(f"torch.compile of the teacher failed ({type(error).__name__}); running it eagerly", stacklevel=2)
                    self.compile_teacher = False
            return self.teacher(frames.float(), style=style).output  # (B, 3, H, W)

    def forward(
        self,
        input1: torch.Tensor,
        input2: torch.Tensor,
        result1: Any,
        result2: Any,
        flow: torch.Tensor,
        mask: torch.Tensor,
        style_index: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Weighted terms for a batch of pairs (the arguments of
        :meth:`reconet.losses.ReCoNetLoss.forward`): ``pixel``, ``gradient``,
        ``temporal_feature``, ``temporal_output`` and ``total``; with several rows also
        ``pixel_<name>`` per row present in the batch (not in the total)."""
        output1, output2 = result1.output, result2.output
        shapes = [tuple(t.shape) for t in (input1, input2, output1, output2)]
        if len(set(shapes)) != 1 or len(shapes[0]) != 4 or shapes[0][1] != 3:
            raise ValueError(f"input1, input2, output1, output2 must be equal (B, 3, H, W), got {shapes}")
        batch = input1.shape[0]
        if self.num_styles > 1 and (style_index is None or style_index.shape != (batch,)):
            shape = None if style_index is None else tuple(style_index.shape)
            raise ValueError(f"{self.num_styles} styles: style_index must be ({batch},), got {shape}")
        input1, input2, flow, mask = input1.detach(), input2.detach(), flow.detach(), mask.detach()
        both_index = None if style_index is None else torch.cat([style_index, style_index])
        target = self.targets(torch.cat([input1, input2]), both_index)  # (2B, 3, H, W)
        # Every term in fp32 (the student's frames are bf16 under bf16-mixed).
        with torch.autocast(output1.device.type, enabled=False):
            output = torch.cat([output1, output2]).float()  # (2B, 3, H, W)
            per_sample = (output - target).abs().mean(dim=(1, 2, 3))  # (2B,)
            raw = {
                "pixel": 2 * per_sample.mean(),  # Σ over the two frames of each pair
                "gradient": 2 * gradient_l1(output, target),
                "temporal_feature": feature_temporal_loss(result1.features.float(), result2.features.float(), flow, mask),
                "temporal_output": output_temporal_loss(output1.float(), output2.float(), input1, input2, flow, mask),
            }
            terms = {name: self.weights[name] * value for name, value in raw.items()}
            terms["total"] = sum(terms.values())
            if self.num_styles > 1:
                pair = (per_sample[:batch] + per_sample[batch:]).detach()  # (B,)
                for index in style_index.unique().tolist():
                    terms[f"pixel_{self.names[index]}"] = self.weights["pixel"] * pair[style_index == index].mean()
        return terms
