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

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

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


class ImageFileError(ValueError):
    """An image file that cannot be used; the message is one line naming the file."""


# Modes whose pixels are wider than 8 bits: Pillow's convert("RGB") clips them to 255 rather
# than scaling (a 16-bit grey PNG came back all white), so they are scaled here.
_WIDE_INTEGER_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB: the package's one image decoder.

    - Every mode Pillow opens is accepted: grey, palette, CMYK, YCbCr become RGB; 16-bit
      integers are scaled (x / 257), not clipped; 32-bit floats must lie in [0, 1].
    - Transparency is composited over white (the colour under alpha = 0 is undefined).
    - The EXIF orientation tag is applied, so phone photos come out upright.
    - Multi-frame files (animated WebP, TIFF stacks) give their first frame.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ImageFileError: not an image, truncated, an unsupported mode, or a header that
            claims more pixels than Pillow's decompression-bomb limit.
    """
    with _opened(path) as img:
        return _to_rgb_uint8(ImageOps.exif_transpose(img), Path(path))


@contextmanager
def _opened(path: str | Path) -> Iterator[Image.Image]:
    """``Image.open`` with every failure as FileNotFoundError or a one-line ImageFileError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            yield img
    except Image.DecompressionBombError:
        raise ImageFileError(_bomb_message(path)) from None
    except (OSError, SyntaxError, EOFError, struct.error) as err:
        # UnidentifiedImageError is an OSError; broken PNG chunks raise SyntaxError.
        raise ImageFileError(f"{path}: not a readable image ({' '.join(str(err).split())})") from None


def _to_rgb_uint8(img: Image.Image, path: Path) -> np.ndarray:
    if img.mode in _WIDE_INTEGER_MODES:
        values = np.asarray(img).astype(np.int64)  # (H, W)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageFileError(f"{path}: {img.mode} image with values outside 0..65535 is not supported")
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)  # round(x / 257)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode == "F":
        values = np.asarray(img, dtype=np.float32)  # (H, W)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise ImageFileError(f"{path}: 32-bit float image with values outside [0, 1] is not supported")
        grey = np.round(values * 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    try:
        return np.asarray(img.convert("RGB"))
    except ValueError:  # e.g. LAB or HSV: Pillow has no conversion to RGB
        raise ImageFileError(f"{path}: image mode {img.mode} is not supported (save it as RGB)") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file from its header, with the same errors as :func:`read_image`.

    EXIF-rotated images report their upright size.
    """
    with _opened(path) as img:
        width, height = img.size
        orientation = _header_orientation(img)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _header_orientation(img: Image.Image) -> int:
    """The EXIF orientation found while opening (``getexif()`` would decode a whole PNG)."""
    if hasattr(img, "tag_v2"):  # TIFF keeps it among its tags
        return int(img.tag_v2.get(ExifTags.Base.Orientation, 1))
    raw = img.info.get("exif")
    if not raw:
        return 1
    exif = Image.Exif()
    exif.load(raw)
    return int(exif.get(ExifTags.Base.Orientation, 1))


def _bomb_message(path: Path) -> str:
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    return f"{path}: refused: its header claims more than {limit} pixels (a decompression bomb or a corrupt file)"


def load_image(path: str | Path) -> torch.Tensor:
    """Read an image file as (3, H, W) float RGB in [0, 1] (see :func:`read_image`)."""
    return uint8_to_tensor(read_image(path))


def save_image(path: str | Path, image: torch.Tensor) -> None:
    """Write a (3, H, W) float [0, 1] tensor as an 8-bit image (format from the suffix)."""
    Image.fromarray(tensor_to_uint8(image)).save(Path(path))


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Relative luminance Y = 0.2126 R + 0.7152 G + 0.0722 B of (..., 3, H, W) -> (..., 1, H, W)."""
    if image.shape[-3] != 3:
        raise ValueError(f"expected 3 RGB channels at dim -3, got shape {tuple(image.shape)}")
    weights = image.new_tensor(LUMINANCE_WEIGHTS).view(3, 1, 1)
    return (image * weights).sum(dim=-3, keepdim=True)
