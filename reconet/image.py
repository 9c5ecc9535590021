"""The one place where images cross the package boundary.

Inside reconet every image is RGB float32 in [0, 1], shaped (3, H, W) or (B, 3, H, W).
Files, video frames and OpenCV arrays are uint8 (H, W, 3); these helpers convert between
the two and nothing else in the package should multiply or divide by 255.

Earlier ReCoNet code divided images that were already in [0, 1] by 255 again (content
targets became nearly constant) and passed float 0-255 outputs to an 8-bit conversion that
multiplied by 255 once more (coloured-dot garbage). Both are impossible if every
conversion goes through here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff", ".webp")

# ITU-R BT.709 relative luminance, used by the output temporal loss (ReCoNet eq. 5).
# One public implementation mistyped 0.7152 as 0.7512; keep the constants in one place.
LUMINANCE_WEIGHTS = (0.2126, 0.7152, 0.0722)


def uint8_to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 in [0, 1]."""
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got dtype {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) image array, got shape {tuple(array.shape)}")
    array = array[:, :, :3]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255.0)


def tensor_to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (B, 3, H, W) float in [0, 1] -> (H, W, 3) or (B, H, W, 3) uint8.

    Values outside [0, 1] are clamped (never wrapped), then rounded to the nearest level.
    """
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"expected (3, H, W) or (B, 3, H, W), got shape {tuple(image.shape)}")
    if image.is_floating_point():
        image = image.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    elif image.dtype != torch.uint8:
        raise ValueError(f"expected a float tensor in [0, 1], got dtype {image.dtype}")
    return image.movedim(-3, -1).cpu().contiguous().numpy()


def load_image(path: str | Path) -> torch.Tensor:
    """Read an image file as (3, H, W) float RGB in [0, 1]; grey and RGBA become RGB."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"))
    except OSError as err:  # PIL raises UnidentifiedImageError (an OSError) for non-images
        raise ValueError(f"{path}: not a readable image ({err})") from None
    return uint8_to_tensor(array)


def save_image(path: str | Path, image: torch.Tensor) -> None:
    """Write a (3, H, W) float [0, 1] tensor as an 8-bit image (format from the suffix)."""
    Image.fromarray(tensor_to_uint8(image)).save(Path(path))


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Relative luminance Y = 0.2126 R + 0.7152 G + 0.0722 B of (..., 3, H, W) -> (..., 1, H, W)."""
    if image.shape[-3] != 3:
        raise ValueError(f"expected 3 RGB channels at dim -3, got shape {tuple(image.shape)}")
    weights = image.new_tensor(LUMINANCE_WEIGHTS).view(3, 1, 1)
    return (image * weights).sum(dim=-3, keepdim=True)
