"""Counting the convolution work of a network (used for the model docs and speed benchmarks).

One multiply-accumulate (MAC) is one ``a * b + c``; a MAC is two FLOPs. For a 2-D convolution
with output (B, C_out, H_out, W_out), ``C_in / groups`` input channels per group and a
k_h x k_w kernel:

    MACs = B * C_out * H_out * W_out * (C_in / groups) * k_h * k_w

Normalization, activations, padding and upsampling are not counted: they are O(1) per element,
i.e. a few tenths of a percent of the convolutions for ReCoNet.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["conv_macs", "conv_macs_per_frame"]


def conv_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Total MACs of every ``nn.Conv2d`` during ``model(x)`` (for the whole batch of x).

    Counted with forward hooks on the actual modules, so any input size (including padding to a
    multiple of 4 inside the model) is accounted for exactly.
    """
    total = 0

    def hook(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        kernel_h, kernel_w = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kernel_h * kernel_w

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return total


def conv_macs_per_frame(model: nn.Module, height: int, width: int) -> int:
    """Convolution MACs for one (1, 3, height, width) frame.

    Runs on a copy of the model on PyTorch's "meta" device: shapes are propagated but nothing is
    computed or allocated, so even a 1920x1080 count is instant and the caller's model is untouched.
    """
    meta_model = copy.deepcopy(model).to("meta")
    return conv_macs(meta_model, torch.empty(1, 3, height, width, device="meta"))
