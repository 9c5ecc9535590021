"""Stylization network (ReCoNet), VGG loss networks and the saved-model format.

Images in and out are RGB float in [0, 1], (B, 3, H, W).
"""

from reconet.models.artifact import ARTIFACT_FORMAT, ARTIFACT_VERSION, ModelFileError, load_stylizer, save_artifact
from reconet.models.complexity import conv_macs, conv_macs_per_frame
from reconet.models.loss_network import (
    FALLBACK_LAYER_MAP,
    VGG_LAYERS,
    LossNetwork,
    LossNetworkFallbackWarning,
    WeightsFileError,
    WeightsNotFoundError,
    build_loss_network,
)
from reconet.models.reconet import (
    MIN_INPUT_SIZE,
    NORM_LAYERS,
    PRESETS,
    ReCoNet,
    ReCoNetOutput,
    ResidualBlock,
    build_reconet,
)

__all__ = [
    "ARTIFACT_FORMAT",
    "ARTIFACT_VERSION",
    "ModelFileError",
    "load_stylizer",
    "save_artifact",
    "FALLBACK_LAYER_MAP",
    "LossNetwork",
    "LossNetworkFallbackWarning",
    "VGG_LAYERS",
    "WeightsFileError",
    "WeightsNotFoundError",
    "build_loss_network",
    "MIN_INPUT_SIZE",
    "NORM_LAYERS",
    "PRESETS",
    "ReCoNet",
    "ReCoNetOutput",
    "ResidualBlock",
    "build_reconet",
    "conv_macs",
    "conv_macs_per_frame",
]
