"""The per-frame objective of optimization-based video stylization.

For frame t with content frame c, previous stylized frame s_{t-1} warped onto frame t's grid
w = W(s_{t-1}) and mask M (1 = pixel visible in both frames and consistent flow):

    L(x) = alpha * L_content(x, c) + beta * L_style(x, S) + gamma * L_tv(x)
           + lambda_o * (1/D) sum_p M(p) ||x(p) - w(p)||^2                       (pixel, short-term)
           + lambda_f * sum_l (1/D_l) sum M_l ||F_l(x) - F_l(w)||^2               (features)

(Gatys et al. 2016; Ruder et al. 2016 for the temporal pixel term; the feature term compares
shallow VGG features, relu1_1/relu2_1 by default, with those of the warped previous frame, as
in the seed project.) D = 3*H*W and D_l = C_l*H_l*W_l: the temporal terms are averaged over the
whole image, so their size grows with the fraction of the frame that is reliable.
M_l is M resized to layer l's resolution with :func:`reconet.flow.warp.resize_mask`.

Every loss-network forward goes through one batched call: the targets (content frame and warped
previous frame) once per frame, the image being optimized once per evaluation.

Precision (:func:`resolve_optimize_precision`): the loss network may run in bf16 under autocast
(its forward and backward are nearly all the work), while the image, the terms and L-BFGS stay
fp32. ``auto`` on a native-bf16 CPU times one evaluation (loss and gradient) in each on the
first frame and keeps bf16 only if it is faster and meets the gradient parity bar
(:func:`reconet.tuning.gradient_parity`); the choice is cached per machine and frame size. Measured on a Sintel frame at 256x109, 100 L-BFGS iterations, bundled VGG-19, candy: final
loss 0.7 % above the fp32 run's, the two results 27 dB apart and alike to the eye; terms and
gradient per evaluation: tests/optimize/test_optimize_precision.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reconet.flow.warp import resize_mask
from reconet.hardware import native_bf16
from reconet.losses.perceptual import content_loss, gram_matrix, style_loss, total_variation
from reconet.optimize.config import OptimizeConfig

OPTIMIZE_PRECISIONS = ("fp32", "bf16", "auto")


def resolve_optimize_precision(name: str, device: torch.device) -> torch.dtype:
    """``fp32``, ``bf16`` or ``auto`` -> the dtype the loss network runs in.

    For auto this is the reference of :func:`auto_optimize_candidates` (fp32 where bf16 may be
    faster and is measured by :class:`reconet.optimize.sequence.VideoOptimizer` on the first
    frame; bf16 on a CUDA GPU with bf16). fp16 is not offered: L-BFGS runs without loss
    scaling, and the normalized loss's small gradients would underflow in fp16.
    """
    if name == "fp16":
        raise ValueError("precision fp16 is not offered for optimization (L-BFGS has no loss scaling); use bf16 or fp32")
    if name not in OPTIMIZE_PRECISIONS:
        raise ValueError(f"precision must be {', '.join(OPTIMIZE_PRECISIONS)}, got {name!r}")
    if name == "auto":
        return auto_optimize_candidates(device)[0]
    return torch.bfloat16 if name == "bf16" else torch.float32


def auto_optimize_candidates(device: torch.device) -> tuple[torch.dtype, ...]:
    """What ``auto`` chooses among: bf16 on a CUDA GPU that has it (not measured: no GPU has
    been available to measure on), fp32 then bf16 on a native-bf16 CPU (measured: flags say
    bf16 is possible, not faster), fp32 elsewhere (emulated bf16 is slower)."""
    if device.type == "cuda":
        return (torch.bfloat16,) if native_bf16(device) else (torch.float32,)
    return (torch.float32, torch.bfloat16) if native_bf16(device) else (torch.float32,)


LOSS_TERMS = ("content", "style", "tv", "temporal", "temporal_feature")


def resize_longer_side(image: torch.Tensor, longer_side: int) -> torch.Tensor:
    """Resize (B, 3, H, W) so that max(H, W) == longer_side, keeping the aspect ratio.

    Downscaling uses antialiasing so fine texture does not alias into the style statistics.
    """
    if image.ndim != 4:
        raise ValueError(f"expected (B, C, H, W), got {tuple(image.shape)}")
    height, width = image.shape[-2:]
    scale = longer_side / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if size == (height, width):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=scale < 1).clamp(0, 1)


@dataclass
class FrameTargets:
    """What frame t's objective compares against (all (1, ...) tensors on the objective's device)."""

    content: torch.Tensor  # (1, 3, H, W) content frame
    content_features: torch.Tensor  # (1, C, h, w) at the content layer
    warped_previous: torch.Tensor | None = None  # (1, 3, H, W) W(s_{t-1}), or None for frame 1
    mask: torch.Tensor | None = None  # (1, 1, H, W) 1 = use pixel
    previous_features: dict[str, torch.Tensor] | None = None  # F_l(W(s_{t-1})) per temporal layer
    feature_masks: dict[str, torch.Tensor] | None = None  # M_l per temporal layer


class GatysObjective:
    """Loss network + style Grams + weights; built once per run, evaluated per frame.

    Args:
        loss_network: a :class:`reconet.models.loss_network.LossNetwork` returning at least
            ``config.layers`` (it normalizes [0, 1] RGB itself, is frozen and in eval mode).
        style_image: (3, H, W) or (1, 3, H, W) RGB in [0, 1].
        config: weights and layers.
        frame_size: (H, W) of the frames; the style image is resized so that its longer side is
            ``config.style_scale * max(H, W)`` before its Grams are computed (once).
        dtype: what the loss network runs in (float32, or bfloat16 under autocast); features
            come back as float32, so every term is computed in fp32.
    """

    def __init__(
        self,
        loss_network: nn.Module,
        style_image: torch.Tensor,
        config: OptimizeConfig,
        frame_size: tuple[int, int],
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if style_image.ndim == 3:
            style_image = style_image.unsqueeze(0)
        if style_image.ndim != 4 or style_image.shape[:2] != (1, 3):
            raise ValueError(f"style image must be (3, H, W) or (1, 3, H, W), got {tuple(style_image.shape)}")
        self.network = loss_network
        self.config = config
        self.dtype = dtype
        self.device = next(iter(loss_network.parameters()), torch.empty(0)).device
        longer = max(1, round(config.style_scale * max(frame_size)))
        style = resize_longer_side(style_image.to(self.device, torch.float32), longer)  # (1, 3, h, w)
        self.style_size = tuple(style.shape[-2:])
        with torch.no_grad():
            features = self.features(style)
        self.style_grams = {name: gram_matrix(features[name]).detach() for name in config.style_layers}
        self.style_layer_weights = (
            dict(zip(config.style_layers, config.style_layer_weights)) if config.style_layer_weights else None
        )

    def features(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss-network features of ``batch``, computed in ``self.dtype``, returned as float32."""
        if self.dtype == torch.float32:
            return self.network(batch)
        with torch.autocast(self.device.type, dtype=self.dtype):
            features = self.network(batch)
        return {name: value.float() for name, value in features.items()}

    @property
    def uses_temporal(self) -> bool:
        return self.config.temporal_weight > 0 or self.config.temporal_feature_weight > 0

    def targets(
        self,
        content: torch.Tensor,
        warped_previous: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> FrameTargets:
        """Features of the content frame (and of the warped previous frame) in one forward.

        Args:
            content: (1, 3, H, W) content frame.
            warped_previous: (1, 3, H, W) previous stylized frame warped onto this frame's grid.
            mask: (1, 1, H, W) 1 where ``warped_previous`` is reliable.
        """
        content = _as_batch(content, "content").to(self.device)
        if (warped_previous is None) != (mask is None):
            raise ValueError("warped_previous and mask must be given together")
        use_previous = warped_previous is not None and self.uses_temporal
        if use_previous:
            warped_previous = _as_batch(warped_previous, "warped_previous").to(self.device)
            mask = mask.to(self.device, torch.float32)
            if warped_previous.shape != content.shape or mask.shape != (1, 1, *content.shape[-2:]):
                raise ValueError(
                    f"content {tuple(content.shape)}, warped_previous {tuple(warped_previous.shape)} and "
                    f"mask {tuple(mask.shape)} must share (1, *, H, W)"
                )
            batch = torch.cat([content, warped_previous])  # (2, 3, H, W)
        else:
            batch = content
        with torch.no_grad():
            features = self.features(batch)
        targets = FrameTargets(content=content, content_features=features[self.config.content_layer][:1].detach())
        if use_previous:
            targets.warped_previous = warped_previous
            targets.mask = mask
            if self.config.temporal_feature_weight > 0:
                targets.previous_features = {
                    name: features[name][1:].detach() for name in self.config.temporal_feature_layers
                }
                targets.feature_masks = {
                    name: resize_mask(mask, tuple(feat.shape[-2:])) for name, feat in targets.previous_features.items()
                }
        return targets

    def __call__(self, image: torch.Tensor, targets: FrameTargets) -> dict[str, torch.Tensor]:
        """Weighted loss terms of ``image`` (1, 3, H, W) and their sum under key "total"."""
        cfg = self.config
        features = self.features(image)
        zero = image.new_zeros(())
        style_features = {name: features[name] for name in cfg.style_layers}
        terms = {
            "content": cfg.content_weight * content_loss(features[cfg.content_layer], targets.content_features),
            "style": cfg.style_weight
            * style_loss(style_features, self.style_grams, self.style_layer_weights),
            "tv": cfg.tv_weight * total_variation(image) if cfg.tv_weight > 0 else zero,
            "temporal": zero,
            "temporal_feature": zero,
        }
        if targets.warped_previous is not None:
            if cfg.temporal_weight > 0:
                terms["temporal"] = cfg.temporal_weight * masked_mse(image, targets.warped_previous, targets.mask)
            if cfg.temporal_feature_weight > 0:
                terms["temporal_feature"] = cfg.temporal_feature_weight * sum(
                    masked_mse(features[name], targets.previous_features[name], targets.feature_masks[name])
                    for name in cfg.temporal_feature_layers
                )
        terms["total"] = sum(terms[name] for name in LOSS_TERMS)
        return terms


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(1/D) sum M * (a - b)^2 with D = numel(a): (B, C, H, W), (B, C, H, W), (B, 1, H, W) -> ()."""
    if a.shape != b.shape or mask.shape[-2:] != a.shape[-2:]:
        raise ValueError(f"masked_mse: shapes {tuple(a.shape)}, {tuple(b.shape)}, mask {tuple(mask.shape)} differ")
    return (mask * (a - b).square()).mean()


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[:2] != (1, 3):
        raise ValueError(f"{name} must be (3, H, W) or (1, 3, H, W), got {tuple(x.shape)}")
    return x.float()
