"""The one sample format shared by every dataset in :mod:`reconet.data`.

A sample is a plain ``dict`` (so ``torch.utils.data.default_collate`` batches it):

``frame1``  (3, H, W) float32 RGB in [0, 1], frame N.
``frame2``  (3, H, W) float32 RGB in [0, 1], frame N+1.
``flow``    (2, H, W) float32 forward flow N -> N+1 on frame N's grid, in pixels
            (channel 0 = u to the right, channel 1 = v downwards).
            ``reconet.flow.warp(frame2, flow)`` brings frame N+1 onto frame N's grid.
``mask``    (1, H, W) float32, 1 = use the pixel (visible in both frames, flow valid,
            target inside the frame), 0 = ignore it. Occlusion maps on disk have the
            opposite polarity (255 = occluded) and are inverted when loaded.
``meta``    dict with exactly the keys ``dataset`` (str), ``scene`` (str), ``frame`` (int,
            the index N of frame1 as named on disk) and ``pass`` (str, the rendering pass
            such as ``"clean"``/``"final"``, or ``""`` for datasets with a single rendering).
            Every dataset uses the same keys so that mixed datasets
            (``ConcatDataset([sintel, chairs])``) collate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reconet.data.errors import DatasetError
from reconet.flow.io import FlowFileError, flow_size
from reconet.image import ImageFileError, image_size, load_image

META_KEYS = ("dataset", "scene", "frame", "pass")


def make_meta(dataset: str, scene: str, frame: int, pass_: str = "") -> dict[str, Any]:
    """The ``meta`` dict of a sample (see the module docstring for the keys)."""
    return {"dataset": str(dataset), "scene": str(scene), "frame": int(frame), "pass": str(pass_)}


def make_sample(
    frame1: torch.Tensor,
    frame2: torch.Tensor,
    flow: torch.Tensor,
    mask: torch.Tensor,
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Assemble and validate a sample; raises ValueError naming the shapes if they disagree."""
    sample = {
        "frame1": frame1.float(),
        "frame2": frame2.float(),
        "flow": flow.float(),
        "mask": mask.float(),
        "meta": dict(meta),
    }
    check_sample(sample)
    return sample


def check_sample(sample: dict[str, Any]) -> None:
    """Raise ValueError unless ``sample`` has the documented keys, shapes and dtypes."""
    missing = [key for key in ("frame1", "frame2", "flow", "mask", "meta") if key not in sample]
    if missing:
        raise ValueError(f"sample is missing keys {missing}; has {sorted(sample)}")
    frame1, frame2, flow, mask = (sample[k] for k in ("frame1", "frame2", "flow", "mask"))
    shapes = (
        f"frame1 {tuple(frame1.shape)}, frame2 {tuple(frame2.shape)}, "
        f"flow {tuple(flow.shape)}, mask {tuple(mask.shape)}"
    )
    if frame1.ndim != 3 or frame1.shape[0] != 3:
        raise ValueError(f"sample frames must be (3, H, W): {shapes}")
    size = tuple(frame1.shape[-2:])
    expected = {"frame2": (3, *size), "flow": (2, *size), "mask": (1, *size)}
    for key, shape in expected.items():
        if tuple(sample[key].shape) != shape:
            raise ValueError(f"sample {key} must be {shape}: {shapes}")
    for key in ("frame1", "frame2", "flow", "mask"):
        if sample[key].dtype != torch.float32:
            raise ValueError(f"sample {key} must be float32, got {sample[key].dtype}")
    meta_missing = [key for key in META_KEYS if key not in sample["meta"]]
    if meta_missing:
        raise ValueError(f"sample meta is missing {meta_missing}; has {sorted(sample['meta'])}")


def flow_to_tensor(flow: np.ndarray) -> torch.Tensor:
    """(H, W, 2) numpy flow (as returned by ``reconet.flow.io``) -> (2, H, W) float32 tensor."""
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"expected flow of shape (H, W, 2), got {tuple(flow.shape)}")
    return torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32)).permute(2, 0, 1).contiguous()


def load_binary_map(path: str | Path) -> torch.Tensor:
    """Read an 8-bit 0/255 map (occlusion, invalid, motion boundary) as a (1, H, W) bool tensor.

    True where the file is bright (> 127). The meaning of True (occluded, invalid, boundary)
    is the caller's; inverting it into a mask is the caller's job too.
    """
    return load_image(path)[:1] > 0.5  # grey files come back as three equal channels


def check_pair_headers(dataset: str, images: Sequence[Path | None], flows: Sequence[Path]) -> None:
    """Read the headers of one pair's files and raise a one-line DatasetError if any is broken
    or their sizes differ. Headers only: the whole dataset is checked in seconds before the
    first step rather than one broken file failing an hour into training.
    """
    sizes: list[tuple[Path, tuple[int, int]]] = []
    try:
        for flow in flows:
            sizes.append((flow, flow_size(flow)))
        for image in images:
            if image is not None:
                width, height = image_size(image)
                sizes.append((image, (height, width)))
    except (FlowFileError, ImageFileError, FileNotFoundError) as err:
        raise DatasetError(f"{dataset}: {err}") from None
    # The first frame is the reference: name it and the first file that differs from it.
    frame = next(((path, size) for path, size in sizes if path.suffix.lower() not in (".flo", ".pfm")), sizes[0])
    for path, size in sizes:
        if size != frame[1]:
            raise DatasetError(f"{dataset}: size mismatch (H, W): {path} {size}, {frame[0]} {frame[1]}")


def check_same_size(dataset: str, paths: tuple[Path, ...], *tensors: torch.Tensor) -> None:
    """Raise a one-line DatasetError naming each file when frames, flows and maps differ in (H, W)."""
    sizes = [tuple(t.shape[-2:]) for t in tensors]
    if len(set(sizes)) != 1:
        listing = ", ".join(f"{p} {s}" for p, s in zip(paths, sizes))
        raise DatasetError(f"{dataset}: size mismatch: {listing}")
