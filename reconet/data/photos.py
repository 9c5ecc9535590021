"""PhotoPairs: frame pairs made from still photographs, with exact flow and occlusion masks.

Natural-image content with nothing to download: frame N is a view of a photo, frame N+1 the
same photo after a random smooth camera motion (shift, rotation, zoom), optionally with
foreground layers cut from other photos (ellipses and star-shaped polygons, as in
FlyingChairs) that move on their own. The layers are the rigid layers of
:mod:`reconet.data.synthetic` with photo textures, rendered by the same inverse mapping, so

    flow(x) = A_k(x) - x        mask(x) = target inside frame N+1 and not covered there

are exact for every pixel x of frame N whose top layer is k (see that module's docstring).
Frame N is an integer-offset crop of the (resized) photo, hence exact pixels; frame N+1
samples the photo bilinearly. ``warp(frame2, flow)`` therefore equals frame N on the mask up
to two bilinear interpolations of the photo.

Every sample is a deterministic function of (seed, index) and of the sorted photo list:
which photo, how it is scaled, the view, the motion and the layers.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from reconet.data.errors import DatasetError
from reconet.data.sample import make_meta, make_sample
from reconet.data.synthetic import Layer, random_motion, random_shape, render_layers
from reconet.image import IMAGE_SUFFIXES, ImageFileError, load_image, read_image

Transform = Callable[[dict[str, Any]], dict[str, Any]]


def bundled_photos_dir() -> Path:
    """The licence-clean photos shipped in ``reconet/assets/photos`` (see ATTRIBUTION.md there)."""
    return Path(str(resources.files("reconet"))) / "assets" / "photos"


def find_photos(root: str | Path) -> list[Path]:
    """Image files under ``root`` (recursively), sorted; DatasetError if there are none."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"PhotoPairs: photo folder not found: {root}")
    photos = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise DatasetError(f"PhotoPairs: no image files ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    return photos


def check_photos(photos: Sequence[Path], root: Path) -> None:
    """Decode every photo once, so that a truncated JPEG or a text file named ``.jpg`` stops the
    run when the dataset is built -- not when its sample comes up, possibly hours in. Every bad
    file is named in one message (the first three, with a count). Training stops rather than
    skipping them: a run that quietly trained on fewer photos than asked would be a different
    run. (Decoding the 117 photos of the bundled and open sets takes about 0.4 s.)"""
    bad = []
    for photo in photos:
        try:
            image = read_image(photo)  # (H, W, 3) uint8: a full decode, truncation included
        except (ImageFileError, OSError) as error:
            bad.append(f"{photo.name} ({' '.join(str(error).split()).removeprefix(str(photo) + ': ')})")
            continue
        if min(image.shape[:2]) < 2:
            bad.append(f"{photo.name} ({image.shape[1]}x{image.shape[0]} pixels: too small)")
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise DatasetError(f"PhotoPairs: {len(bad)} unusable photo(s) in {root}: {'; '.join(bad[:3])}{more}")


@dataclass(frozen=True)
class PhotoTexture:
    """A photo as a layer texture: object coordinate u shows the photo at ``origin + u`` (bilinear,
    clamped at the border)."""

    image: np.ndarray  # (H, W, 3) float32 RGB in [0, 1]
    origin: np.ndarray  # (2,) x, y in photo pixels

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """(N, 2) float64 object coordinates -> (N, 3) float32 RGB."""
        height, width = self.image.shape[:2]
        x = np.clip(u[:, 0] + self.origin[0], 0.0, width - 1.0)
        y = np.clip(u[:, 1] + self.origin[1], 0.0, height - 1.0)
        # the photo is at least as large as the frame, so at least 2 x 2
        x0 = np.minimum(np.floor(x).astype(np.int64), width - 2)
        y0 = np.minimum(np.floor(y).astype(np.int64), height - 2)
        fx = (x - x0).astype(np.float32)[:, None]
        fy = (y - y0).astype(np.float32)[:, None]
        x1, y1 = x0 + 1, y0 + 1
        img = self.image
        top = img[y0, x0] + fx * (img[y0, x1] - img[y0, x0])
        bottom = img[y1, x0] + fx * (img[y1, x1] - img[y1, x0])
        return top + fy * (bottom - top)


class PhotoPairs(Dataset):
    """Frame pairs from still photos under synthetic motion, with exact flow and occlusion.

    Args:
        num_samples: dataset length (samples cycle through the photos in a random order).
        size: (H, W) of the frames (any size).
        root: folder of photos (searched recursively); None = the bundled photos.
        seed: sample i is a deterministic function of (seed, i).
        transform: callable applied to each sample dict.
        zoom: (min, max) of how much larger than the frame the photo is shown; 1 shows the whole
            photo's shorter extent (nothing to spare for motion), 2 a view of half of it.
        max_shift: largest camera translation per axis, fraction of the frame's shorter side.
        max_rotation: largest camera rotation between the frames, degrees.
        max_zoom: largest relative camera scale change (scale in [1/(1+z), 1+z]).
        num_layers: foreground layers from other photos, an int or an inclusive (min, max).
        layer_motion: the layers move this many times as far as the camera at most.
        brightness: frame N+1's brightness is multiplied by a factor in [1-b, 1+b]
            (0 = off; the flow is still exact, but frame N+1 no longer equals frame N on the mask).
        noise: standard deviation of Gaussian pixel noise added to both frames (0 = off).
    """

    dataset_name = "photos"

    def __init__(
        self,
        num_samples: int,
        size: Sequence[int] = (256, 256),
        root: str | Path | None = None,
        seed: int = 0,
        transform: Transform | None = None,
        zoom: Sequence[float] = (1.15, 2.0),
        max_shift: float = 0.05,
        max_rotation: float = 5.0,
        max_zoom: float = 0.06,
        num_layers: int | Sequence[int] = (0, 2),
        layer_motion: float = 2.0,
        brightness: float = 0.0,
        noise: float = 0.0,
    ) -> None:
        if int(num_samples) < 1:
            raise ValueError(f"PhotoPairs: num_samples must be >= 1, got {num_samples}")
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 2:
            raise ValueError(f"PhotoPairs: size must be (H, W) with both >= 2, got {size!r}")
        zoom = tuple(float(z) for z in zoom)
        if len(zoom) != 2 or not 1.0 <= zoom[0] <= zoom[1]:
            raise ValueError(f"PhotoPairs: zoom must be (min, max) with 1 <= min <= max, got {zoom!r}")
        layers = (int(num_layers),) * 2 if isinstance(num_layers, int) else tuple(int(n) for n in num_layers)
        if len(layers) != 2 or not 0 <= layers[0] <= layers[1]:
            raise ValueError(f"PhotoPairs: num_layers must be an int or (min, max), got {num_layers!r}")
        if int(seed) < 0:
            raise ValueError(f"PhotoPairs: seed must be >= 0, got {seed}")
        if not 0.0 <= float(brightness) < 1.0 or float(noise) < 0.0:
            raise ValueError(f"PhotoPairs: brightness must be in [0, 1) and noise >= 0, got {brightness}, {noise}")
        self.root = Path(root).expanduser() if root is not None else bundled_photos_dir()
        self.photos = find_photos(self.root)
        check_photos(self.photos, self.root)
        self.num_samples = int(num_samples)
        self.size = size
        self.seed = int(seed)
        self.transform = transform
        self.zoom = zoom
        self.max_shift = float(max_shift)
        self.max_rotation = math.radians(float(max_rotation))
        self.max_zoom = float(max_zoom)
        self.num_layers = layers
        self.layer_motion = float(layer_motion)
        self.brightness = float(brightness)
        self.noise = float(noise)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"PhotoPairs index {index} out of range for {self.num_samples} samples")
        index %= self.num_samples
        frame1, frame2, flow, mask = self.render(index)
        photo = self.photos[self._photo_order()[index % len(self.photos)]]
        sample = make_sample(frame1, frame2, flow, mask, make_meta(self.dataset_name, photo.stem, index))
        return self.transform(sample) if self.transform is not None else sample

    # -- photos ------------------------------------------------------------------------------
    @functools.cached_property
    def _cache(self) -> Callable[[int], np.ndarray]:
        # Per instance (and so per DataLoader worker): decoded photos, reduced so the shorter
        # side is at most what the largest zoom can use, which bounds memory for big folders.
        longest_needed = math.ceil(max(self.size) * self.zoom[1] * (1.0 + self.max_zoom) * 1.5)

        @functools.lru_cache(maxsize=64)
        def load(i: int) -> np.ndarray:
            image = load_image(self.photos[i]).permute(1, 2, 0).numpy()  # (H, W, 3) float32 [0, 1]
            shorter = min(image.shape[:2])
            if shorter > longest_needed:
                factor = longest_needed / shorter
                new_size = (max(2, round(image.shape[1] * factor)), max(2, round(image.shape[0] * factor)))
                image = cv2.resize(image, new_size, interpolation=cv2.INTER_AREA)
            return np.ascontiguousarray(image, dtype=np.float32)

        return load

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers started by "spawn" receive a pickled copy: the decoded-photo cache
        # (a local function) is not picklable, and each worker builds its own anyway.
        state = dict(self.__dict__)
        state.pop("_cache", None)
        return state

    def _photo_order(self) -> np.ndarray:
        """A seeded permutation: consecutive samples show different photos."""
        return np.random.default_rng([self.seed, 0x70686F74]).permutation(len(self.photos))

    def _scaled_photo(self, i: int, zoom: float) -> np.ndarray:
        """Photo i resized (area filter, no aliasing) to cover the frame ``zoom`` times over."""
        image = self._cache(i)
        height, width = self.size
        factor = zoom * max(height / image.shape[0], width / image.shape[1])
        new_size = (max(width, round(image.shape[1] * factor)), max(height, round(image.shape[0] * factor)))
        interpolation = cv2.INTER_AREA if factor < 1.0 else cv2.INTER_CUBIC
        return np.clip(cv2.resize(image, new_size, interpolation=interpolation), 0.0, 1.0)

    # -- generation --------------------------------------------------------------------------
    def _motion(self, rng: np.random.Generator, amount: float) -> tuple[np.ndarray, float, float]:
        return random_motion(rng, min(self.size), self.max_shift, self.max_rotation, self.max_zoom, amount)

    def _camera_fits(self, layer: Layer, photo_shape: tuple[int, int]) -> bool:
        """True if frame N+1's corners, seen through ``layer``'s motion, stay inside the photo."""
        height, width = self.size
        corners = np.array([[0.0, 0.0], [width - 1.0, 0.0], [0.0, height - 1.0], [width - 1.0, height - 1.0]])
        points = layer.to_object(corners, 1) + layer.texture.origin
        inside_x = (points[:, 0] >= 0.0) & (points[:, 0] <= photo_shape[1] - 1)
        inside_y = (points[:, 1] >= 0.0) & (points[:, 1] <= photo_shape[0] - 1)
        return bool(np.all(inside_x & inside_y))

    def layers(self, index: int) -> list[Layer]:
        """The layer stack of sample ``index``, back to front: the photo, then the foreground cut-outs."""
        rng = np.random.default_rng([self.seed, int(index)])
        height, width = self.size
        order = self._photo_order()
        photo_index = int(order[index % len(order)])
        photo = self._scaled_photo(photo_index, float(rng.uniform(*self.zoom)))
        centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
        # Integer offset of the view: frame N is an exact crop of the scaled photo.
        left = int(rng.integers(0, photo.shape[1] - width + 1))
        top = int(rng.integers(0, photo.shape[0] - height + 1))
        texture = PhotoTexture(photo, centre + np.array([left, top], dtype=np.float64))
        shift, rotation, scale = self._motion(rng, 1.0)
        for _ in range(6):  # damp a motion that would show what lies beyond the photo's edge
            background = Layer("background", centre, 0.0, shift, rotation, scale, texture)
            if self._camera_fits(background, photo.shape[:2]):
                break
            shift, rotation, scale = shift / 2.0, rotation / 2.0, math.sqrt(scale)
        layers = [background]

        shortest = min(height, width)
        for _ in range(int(rng.integers(self.num_layers[0], self.num_layers[1] + 1))):
            other = 0
            if len(self.photos) > 1:  # any photo but the background's
                other = int(rng.integers(0, len(self.photos) - 1))
                other += other >= photo_index
            radius = rng.uniform(0.1, 0.3) * shortest
            cutout = self._scaled_photo(other, float(rng.uniform(*self.zoom)))
            # the shape's bounding disc lies inside the cut-out photo
            reach = min(radius, (min(cutout.shape[:2]) - 1) / 2.0)
            origin = rng.uniform([reach, reach], [cutout.shape[1] - 1 - reach, cutout.shape[0] - 1 - reach])
            layer_centre = rng.uniform([0.0, 0.0], [width - 1.0, height - 1.0])
            angle = float(rng.uniform(0.0, 2.0 * np.pi))
            shift, rotation, scale = self._motion(rng, self.layer_motion)
            placement = dict(centre=layer_centre, angle=angle, shift=shift, rotation=rotation, scale=scale)
            layers.append(random_shape(rng, reach, **placement, texture=PhotoTexture(cutout, origin)))
        return layers

    def render(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(frame1 (3, H, W), frame2 (3, H, W), flow (2, H, W), mask (1, H, W)) of sample ``index``."""
        frame1, frame2, flow, mask = render_layers(self.layers(index), self.size)
        if self.brightness > 0.0 or self.noise > 0.0:
            # a separate stream, so switching photometric changes on keeps the geometry of every sample
            rng = np.random.default_rng([self.seed, int(index), 1])
            gain = float(rng.uniform(1.0 - self.brightness, 1.0 + self.brightness))
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            frame2 = frame2 * gain
            if self.noise > 0.0:
                frame1 = frame1 + self.noise * torch.randn(frame1.shape, generator=generator)
                frame2 = frame2 + self.noise * torch.randn(frame2.shape, generator=generator)
            frame1, frame2 = frame1.clamp(0.0, 1.0), frame2.clamp(0.0, 1.0)
        return frame1, frame2, flow, mask

    def __repr__(self) -> str:
        root = str(self.root)
        return f"PhotoPairs(num_samples={self.num_samples}, size={self.size}, root={root!r}, seed={self.seed})"
