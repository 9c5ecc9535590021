"""Datasets of frame pairs with forward flow and validity mask, and their transforms.

Every dataset yields the same sample dict (see :mod:`reconet.data.sample`):
``frame1``, ``frame2`` (3, H, W) RGB in [0, 1], ``flow`` (2, H, W) forward N -> N+1,
``mask`` (1, H, W) with 1 = use pixel, and ``meta``. Pure torch Datasets: no Lightning here.
"""

from reconet.data.errors import DatasetError, DatasetWarning
from reconet.data.flyingchairs import FlyingChairs, FlyingChairs2
from reconet.data.masks import mask_from_maps, photometric_mask
from reconet.data.photos import PhotoPairs
from reconet.data.sample import META_KEYS, check_sample, make_sample
from reconet.data.scene_flow import SceneFlow
from reconet.data.sintel import SintelPairs
from reconet.data.synthetic import FlyingShapes
from reconet.data.transforms import (
    CenterCrop,
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    Resize,
    ResizeToCover,
    build_transform,
)

__all__ = [
    "META_KEYS",
    "CenterCrop",
    "Compose",
    "DatasetError",
    "DatasetWarning",
    "FlyingChairs",
    "FlyingChairs2",
    "FlyingShapes",
    "PhotoPairs",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Resize",
    "ResizeToCover",
    "SceneFlow",
    "SintelPairs",
    "build_transform",
    "check_sample",
    "make_sample",
    "mask_from_maps",
    "photometric_mask",
]
