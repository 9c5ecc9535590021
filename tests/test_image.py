"""The one image decoder: every mode and bit depth loads as the same picture, or is refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import png_claiming
from PIL import Image

from reconet.image import ImageFileError, image_size, load_image, read_image


@pytest.fixture()
def grey8() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (20, 30)).astype(np.uint8)  # (H, W)


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grey_loads_as_the_same_picture_as_8_bit(tmp_path: Path, grey8: np.ndarray, suffix: str) -> None:
    # Pillow's convert("RGB") clips 16-bit values to 255: the picture came back all white.
    path = tmp_path / f"grey16{suffix}"
    Image.fromarray(grey8.astype(np.uint16) * 257).save(path)  # exact 16-bit version of each level
    assert Image.open(path).mode.startswith("I;16")
    np.testing.assert_array_equal(read_image(path), _rgb(grey8))


def test_float_image_in_unit_range_loads_and_outside_is_refused(tmp_path: Path, grey8: np.ndarray) -> None:
    unit = tmp_path / "unit.tif"
    Image.fromarray(grey8.astype(np.float32) / 255).save(unit)
    np.testing.assert_array_equal(read_image(unit), _rgb(grey8))
    wide = tmp_path / "wide.tif"
    Image.fromarray(grey8.astype(np.float32)).save(wide)  # 0..255 floats: meaning unknown
    with pytest.raises(ImageFileError, match=r"wide\.tif: 32-bit float image with values outside \[0, 1\]"):
        read_image(wide)


@pytest.mark.parametrize("mode", ["L", "P", "RGB", "CMYK", "1"])
def test_common_modes_load_as_rgb(tmp_path: Path, grey8: np.ndarray, mode: str) -> None:
    picture = Image.fromarray(_rgb(grey8))
    path = tmp_path / ("image.jpg" if mode == "CMYK" else "image.png")
    picture.convert(mode).save(path)
    array = read_image(path)
    assert array.shape == (20, 30, 3) and array.dtype == np.uint8
    if mode in ("L", "RGB"):  # lossless for a grey picture (P quantizes to a web palette)
        np.testing.assert_array_equal(array, _rgb(grey8))


def test_transparency_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 6, 4), np.uint8)  # black, fully transparent
    rgba[:, :3] = (255, 0, 0, 255)  # left half opaque red
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    array = read_image(path)
    assert (array[:, :3] == (255, 0, 0)).all()
    assert (array[:, 3:] == 255).all()  # not the undefined black under alpha 0


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    picture = np.zeros((10, 20, 3), np.uint8)
    picture[:, :10] = 255  # left half white
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(picture).save(path, exif=exif, quality=100)
    upright = read_image(path)
    assert upright.shape == (20, 10, 3)
    assert image_size(path) == (10, 20)
    assert upright[:10].mean() > 200 and upright[10:].mean() < 50  # the white half is now on top


def test_decompression_bomb_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming(100_000, 100_000))
    for read in (read_image, image_size, load_image):
        with pytest.raises(ImageFileError, match=r"bomb\.png: refused: its header claims more than \d+ pixels"):
            read(path)


@pytest.mark.parametrize(
    "content, problem",
    [(b"", "cannot identify"), (b"hello", "cannot identify"), ("half", "truncated")],
)
def test_broken_files_are_one_line_errors(tmp_path: Path, grey8: np.ndarray, content: bytes | str, problem: str) -> None:
    path = tmp_path / "broken.png"
    if content == "half":
        Image.fromarray(grey8).save(path)
        content = path.read_bytes()[: len(path.read_bytes()) // 2]
    path.write_bytes(content)
    with pytest.raises(ImageFileError, match=rf"broken\.png: not a readable image \(.*{problem}") as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="image not found"):
        read_image(tmp_path / "nothing.png")
