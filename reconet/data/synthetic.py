"""FlyingShapes: synthetic frame pairs with exact forward flow and exact occlusion masks.

A pair is a stack of layers drawn back to front: a textured background that covers the
whole plane, then 2-D shapes (ellipses and star-shaped polygons) with their own procedural
textures. Every layer k moves rigidly under its own affine motion about its centre c_k:

    A_k(x) = c_k + t_k + s_k R(dtheta_k) (x - c_k)          (frame N -> frame N+1)

Each layer's texture and outline live in object coordinates u; frame f shows the layer at
x = c_f + s_f R(theta_f) u, so rendering a frame evaluates, at every pixel, u = inverse of
that map, the inside test and the texture at u. Frame N+1 is rendered the same way (not by
warping frame N), so it is a genuine second image.

For a pixel x of frame N whose top layer is k:
    flow(x) = A_k(x) - x                               (exact, no estimation)
    mask(x) = 1  iff  A_k(x) lies inside the frame and no layer above k covers A_k(x) in
                      frame N+1                        (exact occlusion)
A layer below k cannot hide it and layer k itself contains A_k(x) by construction.
Hence ``warp(frame2, flow)`` equals frame N on the mask up to bilinear interpolation of
frame N+1 (the textures are smooth: wavelengths of 10 px and more) and, for pixels whose
four bilinear neighbours straddle a layer edge in frame N+1, the mixing of two layers there.

Everything is a deterministic function of (seed, index): the same pair comes back for any
``num_samples``, worker count or order of access.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from reconet.data.sample import make_meta, make_sample

Transform = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class _Texture:
    """Two smooth sinusoid mixtures blending three colours."""

    frequencies: np.ndarray  # (2, W, 2) cycles per pixel, per pattern and wave
    phases: np.ndarray  # (2, W)
    weights: np.ndarray  # (2, W)
    gains: np.ndarray  # (2,) contrast of each pattern (tanh gain)
    colours: np.ndarray  # (3, 3) RGB of the three colours

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """(N, 2) float64 object coordinates -> (N, 3) float32 RGB in [0, 1]."""
        patterns = []
        for p in range(2):
            # Phase in float64 (coordinates up to ~1000 px), cosine and the rest in float32.
            # (explicit products: numpy's matmul is slow for an inner dimension of 2 or 3)
            fx, fy = 2.0 * np.pi * self.frequencies[p].T  # (W,), (W,)
            angles = (u[:, :1] * fx + u[:, 1:] * fy + self.phases[p]).astype(np.float32)  # (N, W)
            waves = np.cos(angles)
            weights = self.weights[p] / self.weights[p].sum()
            value = sum(np.float32(w) * waves[:, i] for i, w in enumerate(weights))  # (N,) in [-1, 1]
            gain = float(self.gains[p])
            patterns.append(np.float32(0.5) + np.float32(0.5 / math.tanh(gain)) * np.tanh(np.float32(gain) * value))
        w1, w2 = patterns
        colours = self.colours.astype(np.float32)  # (3, 3)
        base = colours[0] + w1[:, None] * (colours[1] - colours[0])
        colour = base + (np.float32(0.6) * w2[:, None]) * (colours[2] - base)
        return np.clip(colour, 0.0, 1.0)


@dataclass(frozen=True)
class Layer:
    """One rigid layer of a pair: outline, texture (object coordinates -> RGB) and motion N -> N+1."""

    kind: str  # "background", "ellipse" or "polygon"
    centre: np.ndarray  # (2,) x, y in frame N
    angle: float  # orientation in frame N (radians)
    shift: np.ndarray  # (2,) translation N -> N+1
    rotation: float  # rotation N -> N+1 (radians)
    scale: float  # scale N -> N+1
    texture: Callable[[np.ndarray], np.ndarray]  # (N, 2) object coordinates -> (N, 3) float32 RGB
    axes: np.ndarray | None = None  # ellipse semi-axes (a, b)
    vertices: np.ndarray | None = None  # (V, 2) polygon vertices sorted by angle
    vertex_angles: np.ndarray | None = None  # (V,)

    def to_object(self, points: np.ndarray, frame: int) -> np.ndarray:
        """(N, 2) image points of frame 0 (N) or 1 (N+1) -> (N, 2) object coordinates."""
        if frame == 0:
            centre, angle, scale = self.centre, self.angle, 1.0
        else:
            centre, angle, scale = self.centre + self.shift, self.angle + self.rotation, self.scale
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        # u = R(-angle) (x - centre) / scale
        dx, dy = points[:, 0] - centre[0], points[:, 1] - centre[1]
        return np.stack([cos * dx + sin * dy, cos * dy - sin * dx], axis=1)

    def move(self, points: np.ndarray) -> np.ndarray:
        """A_k: (N, 2) frame-N points -> where they are in frame N+1."""
        cos, sin = math.cos(self.rotation), math.sin(self.rotation)
        cos, sin = self.scale * cos, self.scale * sin
        dx, dy = points[:, 0] - self.centre[0], points[:, 1] - self.centre[1]
        x = self.centre[0] + self.shift[0] + cos * dx - sin * dy
        y = self.centre[1] + self.shift[1] + sin * dx + cos * dy
        return np.stack([x, y], axis=1)

    @property
    def radius(self) -> float:
        """Radius (object units) of a disc around the origin that contains the shape."""
        if self.kind == "ellipse":
            return float(max(self.axes))
        if self.kind == "polygon":
            return float(np.sqrt((self.vertices**2).sum(axis=1)).max())
        return math.inf

    def bounds(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) x, y corners of a box around the shape in frame 0 (N) or 1 (N+1)."""
        centre = self.centre if frame == 0 else self.centre + self.shift
        reach = self.radius * (1.0 if frame == 0 else self.scale)
        return centre - reach, centre + reach

    def inside(self, u: np.ndarray) -> np.ndarray:
        """(N, 2) object coordinates -> (N,) bool."""
        if self.kind == "background":
            return np.ones(len(u), dtype=bool)
        # Cheap box test first; the exact test runs only on the few points near the shape.
        near = np.flatnonzero((np.abs(u) <= self.radius).all(axis=1))
        result = np.zeros(len(u), dtype=bool)
        if len(near):
            result[near] = self._inside_exact(u[near])
        return result

    def _inside_exact(self, u: np.ndarray) -> np.ndarray:
        if self.kind == "ellipse":
            a, b = self.axes
            return (u[:, 0] / a) ** 2 + (u[:, 1] / b) ** 2 <= 1.0
        # Star-shaped polygon around the origin: find the angular sector of each point, then
        # test which side of that sector's edge it lies on (cross product >= 0 is inside).
        verts, angles = self.vertices, self.vertex_angles  # (V, 2), (V,) sorted
        theta = np.arctan2(u[:, 1], u[:, 0])
        theta = np.where(theta < angles[0], theta + 2.0 * np.pi, theta)
        start = np.searchsorted(angles, theta, side="right") - 1  # (N,) in [0, V-1]
        p0 = verts[start]
        p1 = verts[(start + 1) % len(verts)]
        edge, rel = p1 - p0, u - p0
        return edge[:, 0] * rel[:, 1] - edge[:, 1] * rel[:, 0] >= 0.0


def random_motion(
    rng: np.random.Generator, shortest: int, max_shift: float, max_rotation: float, max_zoom: float, amount: float
) -> tuple[np.ndarray, float, float]:
    """(shift (2,) px, rotation rad, scale) of a layer, each up to ``amount`` times its maximum:
    shift per axis up to max_shift * shortest, rotation up to max_rotation (radians), scale in
    [1/(1+max_zoom), 1+max_zoom] (log-uniform)."""
    shift = rng.uniform(-1.0, 1.0, size=2) * max_shift * shortest * amount
    rotation = rng.uniform(-1.0, 1.0) * max_rotation * amount
    scale = float(np.exp(rng.uniform(-1.0, 1.0) * math.log1p(max_zoom) * amount))
    return shift, rotation, scale


def random_shape(rng: np.random.Generator, radius: float, **placement: Any) -> Layer:
    """An ellipse or a star-shaped polygon of about ``radius`` px; ``placement`` holds the other
    :class:`Layer` fields (centre, angle, shift, rotation, scale, texture)."""
    if rng.uniform() < 0.5:
        axes = np.array([radius, radius * rng.uniform(0.4, 1.0)])
        return Layer(kind="ellipse", axes=axes, **placement)
    count = int(rng.integers(3, 9))
    # Jittered, sorted angles: consecutive gaps stay below pi, so the polygon is star-shaped
    # around the origin and the sector test in Layer.inside is exact.
    angles = 2.0 * np.pi * (np.arange(count) + rng.uniform(-0.2, 0.2, size=count)) / count
    angles = np.sort(angles)
    radii = radius * rng.uniform(0.55, 1.0, size=count)
    vertices = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    return Layer(kind="polygon", vertices=vertices, vertex_angles=angles, **placement)


def _pixels_in_box(bounds: tuple[np.ndarray, np.ndarray], height: int, width: int) -> np.ndarray:
    """Flat (row-major) indices of the pixel centres inside an (x, y) box, clipped to the image."""
    (x0, y0), (x1, y1) = bounds
    c0, c1 = max(math.ceil(x0), 0), min(math.floor(x1), width - 1)
    r0, r1 = max(math.ceil(y0), 0), min(math.floor(y1), height - 1)
    if c1 < c0 or r1 < r0:
        return np.zeros(0, dtype=np.int64)
    cols, rows = np.arange(c0, c1 + 1), np.arange(r0, r1 + 1)
    return (rows[:, None] * width + cols[None, :]).reshape(-1)


def render_layers(
    layers: Sequence[Layer], size: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render a back-to-front layer stack (the first layer covers the plane) as a frame pair.

    Returns (frame1 (3, H, W), frame2 (3, H, W), flow (2, H, W), mask (1, H, W)): both frames
    rendered independently by inverse mapping, the exact forward flow of every frame-N pixel
    under its top layer's motion and the exact visibility mask (see the module docstring).
    """
    height, width = (int(s) for s in size)
    # Geometry in float64 numpy (exact to ~1e-12 px), textures in float32. numpy rather than
    # torch: thousands of small single-threaded ops, no thread-pool overhead in the loader.
    ys, xs = np.mgrid[0:height, 0:width]
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)  # (HW, 2) pixel centres (x, y)

    frames = []
    top_first = np.zeros(0, dtype=np.int64)
    for frame in (0, 1):
        top = np.zeros(len(grid), dtype=np.int64)  # index of the visible layer per pixel
        for k in range(1, len(layers)):
            pixels = _pixels_in_box(layers[k].bounds(frame), height, width)  # flat indices
            if len(pixels):
                inside = layers[k].inside(layers[k].to_object(grid[pixels], frame))
                top[pixels[inside]] = k
        image = np.empty((len(grid), 3), dtype=np.float32)
        for k, layer in enumerate(layers):
            where = np.flatnonzero(top == k)
            if len(where):
                image[where] = layer.texture(layer.to_object(grid[where], frame))
        frames.append(image)
        if frame == 0:
            top_first = top

    # Exact flow and occlusion of every frame-N pixel under its own layer's motion.
    target = np.empty_like(grid)  # (HW, 2) position in frame N+1
    for k, layer in enumerate(layers):
        where = np.flatnonzero(top_first == k)
        if len(where):
            target[where] = layer.move(grid[where])
    flow = target - grid
    visible = (
        (target[:, 0] >= 0) & (target[:, 0] <= width - 1) & (target[:, 1] >= 0) & (target[:, 1] <= height - 1)
    )
    for j in range(1, len(layers)):
        # Only layers above a pixel's own layer can hide it, and only near their box.
        low, high = layers[j].bounds(1)
        tx, ty = target[:, 0], target[:, 1]
        near = (top_first < j) & (tx >= low[0]) & (tx <= high[0]) & (ty >= low[1]) & (ty <= high[1])
        below = np.flatnonzero(near)
        if len(below):
            covered = layers[j].inside(layers[j].to_object(target[below], 1))
            visible[below[covered]] = False

    def image_layout(values: np.ndarray) -> torch.Tensor:  # (HW, C) -> (C, H, W) float32
        array = values.astype(np.float32).reshape(height, width, -1).transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(array))

    return (
        image_layout(frames[0]),
        image_layout(frames[1]),
        image_layout(flow),
        image_layout(visible[:, None]),
    )


class FlyingShapes(Dataset):
    """Synthetic pairs with exact flow and occlusion, generated on the fly (no download).

    Args:
        num_samples: dataset length.
        size: (H, W) of the frames (any size).
        seed: sample i is a deterministic function of (seed, i).
        transform: callable applied to each sample dict.
        num_shapes: number of shapes, an int or an inclusive (min, max) range.
        max_shift: largest translation per axis, as a fraction of the shorter side.
        max_rotation: largest rotation between the frames, degrees.
        max_zoom: largest relative scale change (scale in [1/(1+z), 1+z]).
        background_motion: the background moves with this fraction of the shape motion
            (a slow camera).
    """

    dataset_name = "flyingshapes"

    def __init__(
        self,
        num_samples: int,
        size: Sequence[int] = (256, 256),
        seed: int = 0,
        transform: Transform | None = None,
        num_shapes: int | Sequence[int] = (3, 7),
        max_shift: float = 0.06,
        max_rotation: float = 10.0,
        max_zoom: float = 0.08,
        background_motion: float = 0.4,
    ) -> None:
        if int(num_samples) < 1:
            raise ValueError(f"FlyingShapes: num_samples must be >= 1, got {num_samples}")
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 2:
            raise ValueError(f"FlyingShapes: size must be (H, W) with both >= 2, got {size!r}")
        shapes = (int(num_shapes), int(num_shapes)) if isinstance(num_shapes, int) else tuple(int(n) for n in num_shapes)
        if len(shapes) != 2 or not 0 <= shapes[0] <= shapes[1]:
            raise ValueError(f"FlyingShapes: num_shapes must be an int or (min, max), got {num_shapes!r}")
        if int(seed) < 0:
            raise ValueError(f"FlyingShapes: seed must be >= 0, got {seed}")
        self.num_samples = int(num_samples)
        self.size = size
        self.seed = int(seed)
        self.transform = transform
        self.num_shapes = shapes
        self.max_shift = float(max_shift)
        self.max_rotation = math.radians(float(max_rotation))
        self.max_zoom = float(max_zoom)
        self.background_motion = float(background_motion)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"FlyingShapes index {index} out of range for {self.num_samples} samples")
        index %= self.num_samples
        frame1, frame2, flow, mask = self.render(index)
        sample = make_sample(frame1, frame2, flow, mask, make_meta(self.dataset_name, f"seed{self.seed}", index))
        return self.transform(sample) if self.transform is not None else sample

    # -- generation -------------------------------------------------------------------------

    def _texture(self, rng: np.random.Generator) -> _Texture:
        waves = 3
        # Wavelengths 10-48 px: visible detail at 640x360, yet smooth enough that bilinear
        # interpolation reproduces it to ~1e-3.
        wavelength = rng.uniform(10.0, 48.0, size=(2, waves))
        direction = rng.uniform(0.0, 2.0 * np.pi, size=(2, waves))
        frequencies = np.stack([np.cos(direction), np.sin(direction)], axis=-1) / wavelength[..., None]
        return _Texture(
            frequencies=frequencies,
            phases=rng.uniform(0.0, 2.0 * np.pi, size=(2, waves)),
            weights=rng.uniform(0.3, 1.0, size=(2, waves)),
            gains=rng.uniform(0.5, 3.0, size=2),
            colours=rng.uniform(0.0, 1.0, size=(3, 3)),
        )

    def _motion(self, rng: np.random.Generator, amount: float) -> tuple[np.ndarray, float, float]:
        return random_motion(rng, min(self.size), self.max_shift, self.max_rotation, self.max_zoom, amount)

    def layers(self, index: int) -> list[Layer]:
        """The layer stack of sample ``index``, back to front (deterministic in seed, index)."""
        rng = np.random.default_rng([self.seed, int(index)])
        height, width = self.size
        shortest = min(height, width)
        shift, rotation, scale = self._motion(rng, self.background_motion)
        layers = [
            Layer(
                kind="background",
                centre=np.array([(width - 1) / 2.0, (height - 1) / 2.0]),
                angle=0.0,
                shift=shift,
                rotation=rotation,
                scale=scale,
                texture=self._texture(rng),
            )
        ]
        for _ in range(int(rng.integers(self.num_shapes[0], self.num_shapes[1] + 1))):
            # draw order kept as before the shape helper existed: outline size and place, then motion
            radius = rng.uniform(0.08, 0.25) * shortest
            centre = rng.uniform([-0.05 * width, -0.05 * height], [1.05 * width, 1.05 * height])
            shift, rotation, scale = self._motion(rng, 1.0)
            angle = float(rng.uniform(0.0, 2.0 * np.pi))
            placement = dict(centre=centre, angle=angle, shift=shift, rotation=rotation, scale=scale)
            layers.append(random_shape(rng, radius, **placement, texture=self._texture(rng)))
        return layers

    def render(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(frame1 (3, H, W), frame2 (3, H, W), flow (2, H, W), mask (1, H, W)) of sample ``index``."""
        return render_layers(self.layers(index), self.size)

    def __repr__(self) -> str:
        return f"FlyingShapes(num_samples={self.num_samples}, size={self.size}, seed={self.seed})"
