"""Perceptual losses (Johnson et al. 2016, as used by ReCoNet): content, style, total variation.

All functions are pure: they never modify their arguments and return a scalar tensor
(0-dim) that is averaged over the batch, so a loss "per frame" is independent of the batch
size. Images are RGB float in [0, 1]; features are whatever the loss network returns for
such images, shaped (B, C, H, W).

Normalizations (the default weights in :mod:`reconet.losses.objective` are tuned for
exactly these):

- Gram matrix: G = F Fᵀ / (C·H·W) with F the (C, H·W) feature matrix, so entries are
  means of products of activations and do not grow with the image size.
- content: mean squared error over all B·C·H·W elements.
- style: Σ_l w_l · mean over B·C·C of (G_l(x) − G_l(style))².
- total variation: anisotropic L1, the mean absolute difference of vertical neighbours plus
  the mean absolute difference of horizontal neighbours (each a mean over its own count),
  so it lies in [0, 2] for [0, 1] images; a constant image gives 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix G = F Fᵀ / (C·H·W) of (B, C, H, W) features -> (B, C, C)."""
    if features.ndim != 4:
        raise ValueError(f"gram_matrix expects (B, C, H, W) features, got shape {tuple(features.shape)}")
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)  # (B, C, H*W); a view or a copy, never written to
    # Always fp32, also under bf16/fp16 autocast: a style loss is a difference of Gram
    # entries, and a bf16 result (8-bit mantissa) would round most of that difference away.
    with torch.autocast(features.device.type, enabled=False):
        flat = flat.float()
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)  # (B, C, C)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_content = (1 / (B·C·H·W)) Σ (F(O) − F(I))², the MSE between output and content features.

    ``target`` is the content image's features; detach it yourself if it must not receive
    gradients (the objective does).
    """
    if features.shape != target.shape:
        raise ValueError(
            f"content_loss: features {tuple(features.shape)} and target {tuple(target.shape)} differ in shape"
        )
    return F.mse_loss(features, target)


def style_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """L_style = Σ_l w_l · (1 / (B·C_l²)) Σ (G_l(O) − G_l(S))².

    Args:
        features: layer name -> (B, C_l, H_l, W_l) features of the stylized output.
        target_grams: layer name -> (1, C_l, C_l) or (B, C_l, C_l) Gram matrices of the style
            image (:func:`gram_matrix`); a batch of one is broadcast over the B outputs.
            Every layer in ``features`` must have a target; extra targets are ignored.
        layer_weights: layer name -> w_l; ``None`` means 1 for every layer, a layer missing
            from the mapping gets weight 1 too.
    """
    if not features:
        raise ValueError("style_loss: no feature layers given")
    missing = [name for name in features if name not in target_grams]
    if missing:
        raise ValueError(f"style_loss: no target Gram for layer(s) {missing}; targets: {sorted(target_grams)}")
    total = None
    for name, feat in features.items():
        gram = gram_matrix(feat)  # (B, C, C)
        target = target_grams[name]
        if target.ndim != 3 or target.shape[-2:] != gram.shape[-2:] or target.shape[0] not in (1, gram.shape[0]):
            raise ValueError(
                f"style_loss: layer {name!r} Gram {tuple(gram.shape)} does not match target {tuple(target.shape)}"
                " (target batch must be 1 or B)"
            )
        term = F.mse_loss(gram, target.to(gram.dtype).expand_as(gram))
        weight = 1.0 if layer_weights is None else float(layer_weights.get(name, 1.0))
        term = weight * term
        total = term if total is None else total + term
    return total


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Anisotropic L1 total variation of (B, C, H, W):

    TV(x) = mean |x[:, :, i+1, j] − x[:, :, i, j]| + mean |x[:, :, i, j+1] − x[:, :, i, j]|,

    each mean over its own number of neighbour pairs. Range [0, 2] for [0, 1] images
    (uniform noise gives ≈ 0.67, Sintel alley_1 frame 0002 resized to 640×272 gives 0.047).
    """
    if image.ndim != 4 or image.shape[-2] < 2 or image.shape[-1] < 2:
        raise ValueError(f"total_variation expects (B, C, H, W) with H, W >= 2, got shape {tuple(image.shape)}")
    vertical = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    horizontal = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    return vertical + horizontal
