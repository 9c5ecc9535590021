"""Losses of ReCoNet: perceptual (content, style, total variation), temporal (feature and
output level) and the combined objective. Pure PyTorch; see docs/losses.md."""

from reconet.losses.objective import (
    DEFAULT_CONTENT_LAYER,
    DEFAULT_STYLE_LAYERS,
    DEFAULT_WEIGHTS,
    LOSS_TERMS,
    ReCoNetLoss,
    weighted_terms,
)
from reconet.losses.perceptual import content_loss, gram_matrix, style_loss, total_variation
from reconet.losses.temporal import feature_temporal_loss, output_temporal_loss

__all__ = [
    "DEFAULT_CONTENT_LAYER",
    "DEFAULT_STYLE_LAYERS",
    "DEFAULT_WEIGHTS",
    "LOSS_TERMS",
    "ReCoNetLoss",
    "content_loss",
    "feature_temporal_loss",
    "gram_matrix",
    "output_temporal_loss",
    "style_loss",
    "total_variation",
    "weighted_terms",
]
