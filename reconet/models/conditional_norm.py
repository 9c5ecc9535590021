"""Conditional instance normalization: many styles in one network.

Dumoulin, Shlens, Kudlur, "A Learned Representation for Artistic Style", ICLR 2017 (Magenta's
``image_stylization``): every convolution is shared by all styles, and a style is only its row
of the scale and shift after each instance normalization,

    CIN(x; s) = gamma_s * (x - mu(x)) / sigma(x) + beta_s,   gamma, beta of shape (N_styles, C),

with mu, sigma per sample and channel over H x W. A style is therefore a few thousand numbers; a
new one can be learned by training only its rows, and *mixing weights* w (N_styles,) blend styles
by interpolating the rows: gamma = w @ Gamma, beta = w @ Beta (the paper's convex combinations).

The layer reads the mixing weights of the current forward pass from :attr:`style`, which
:class:`reconet.models.reconet.ReCoNet` sets on all its conditional layers before running them
and clears afterwards, so the convolution stack (``nn.Sequential`` blocks) needs no extra
argument threaded through it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConditionalInstanceNorm2d"]


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm whose affine scale and shift are rows of a per-style table.

    Args:
        channels: C.
        num_styles: N, the rows of :attr:`weight` (gamma) and :attr:`bias` (beta), each (N, C).

    :attr:`style` must hold (B, N) mixing weights when the layer runs (one row per sample, e.g.
    one-hot rows while training, a convex combination to blend).
    """

    def __init__(self, channels: int, num_styles: int) -> None:
        super().__init__()
        if num_styles < 1:
            raise ValueError(f"num_styles must be >= 1, got {num_styles}")
        self.num_styles = num_styles
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        # Named weight/bias like InstanceNorm2d's affine parameters, one row per style: gamma
        # starts at 1 and beta at 0, i.e. plain instance normalization for every style.
        self.weight = nn.Parameter(torch.ones(num_styles, channels))  # gamma (N, C)
        self.bias = nn.Parameter(torch.zeros(num_styles, channels))  # beta (N, C)
        self.style: torch.Tensor | None = None  # (B, N) mixing weights of the running forward

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, num_styles={self.num_styles}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        mixing = self.style
        if mixing is None:
            raise RuntimeError("ConditionalInstanceNorm2d needs style mixing weights: call ReCoNet(x, style=...)")
        if mixing.shape != (x.shape[0], self.num_styles):
            raise ValueError(
                f"style mixing weights {tuple(mixing.shape)} do not fit a batch of {x.shape[0]} and "
                f"{self.num_styles} styles (expected ({x.shape[0]}, {self.num_styles}))"
            )
        mixing = mixing.to(self.weight.dtype)
        gamma = mixing @ self.weight  # (B, C)
        beta = mixing @ self.bias  # (B, C)
        normalized = self.norm(x)  # (B, C, H, W)
        return normalized * gamma[:, :, None, None].to(normalized.dtype) + beta[:, :, None, None].to(normalized.dtype)
