"""Content structure: does the stylized frame keep the scene's edge layout?

Temporal error rewards blur and texture that ignores the scene (a constant output is perfectly
coherent), and the VGG content distance grows with any strong stylization, so it cannot tell
"painted" from "painted over". This score compares where the edges are:

    S(O, I) = pearson( blur(|grad Y(O')|), blur(|grad Y(I')|) )

where Y is the luminance (BT.709), O' and I' are the frames shrunk (antialiased) so that the
shorter side is 128 px, |grad| is the Sobel gradient magnitude and blur a Gaussian with
sigma = 2 px at that size, so that brush strokes and texture finer than about 5 px average out
while object outlines stay. S = 1 for the input itself (and for any change of brightness or
contrast), about 0 for noise or for a texture unrelated to the scene; per-frame style transfer
models that keep the scene score 0.7-0.9, models that paint texture over it 0.2 and below.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from reconet.image import luminance

STRUCTURE_SHORT_SIDE = 128
STRUCTURE_SIGMA = 2.0


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = math.ceil(3.0 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()  # (2r + 1,)


def edge_map(
    images: torch.Tensor, short_side: int = STRUCTURE_SHORT_SIDE, sigma: float = STRUCTURE_SIGMA
) -> torch.Tensor:
    """(B, 3, H, W) RGB [0, 1] -> (B, 1, h, w) blurred Sobel gradient magnitude of the luminance,
    with min(h, w) = ``short_side`` (never enlarged)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"edge_map expects (B, 3, H, W) images, got {tuple(images.shape)}")
    y = luminance(images.float())  # (B, 1, H, W)
    height, width = y.shape[-2:]
    scale = short_side / min(height, width)
    if scale < 1.0:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False, antialias=True)
    sobel_x = y.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
    kernels = torch.stack([sobel_x, sobel_x.t()]).unsqueeze(1)  # (2, 1, 3, 3)
    grad = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), kernels)  # (B, 2, h, w)
    magnitude = grad.pow(2).sum(dim=1, keepdim=True).sqrt()  # (B, 1, h, w)
    kernel = _gaussian_kernel(sigma).to(magnitude)
    radius = kernel.numel() // 2
    # separable blur; reflect padding needs the map to be larger than the kernel radius
    mode = "reflect" if min(magnitude.shape[-2:]) > radius else "replicate"
    blurred = F.conv2d(F.pad(magnitude, (radius, radius, 0, 0), mode=mode), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode=mode), kernel.view(1, 1, -1, 1))


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per batch element of (B, ...) tensors -> (B,) float64; NaN where either
    is constant (the correlation is undefined)."""
    a = a.flatten(1).double()
    b = b.flatten(1).double()
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    denominator = (a.pow(2).sum(dim=1) * b.pow(2).sum(dim=1)).sqrt()
    numerator = (a * b).sum(dim=1)
    return torch.where(denominator > 1e-12, numerator / denominator.clamp_min(1e-300), torch.nan)


def content_structure(output: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Content-structure score (module docstring) of (B, 3, H, W) stylized frames against their
    (B, 3, H, W) inputs -> (B,) float64 on the CPU, in [-1, 1]; NaN for a flat image."""
    if output.shape != content.shape:
        raise ValueError(
            f"content_structure expects output and content of equal shape, "
            f"got {tuple(output.shape)} and {tuple(content.shape)}"
        )
    return pearson(edge_map(output), edge_map(content)).cpu()
