"""Which floating-point precision the stylizer runs in, chosen by measurement on the machine.

``auto`` means: float16 on CUDA; on a CPU whose matrix units multiply bf16 natively (Intel
AMX-BF16 or AVX512-BF16, read from the CPU's feature flags at run time, never assumed:
:mod:`reconet.hardware`), the faster of float32 (with tuned kernels) and bfloat16, *measured*
on the job's first frames, among those that meet the parity bar (bf16 output within
:data:`AUTO_MIN_PSNR` dB of fp32's); float32 on every other CPU (bf16 works there but oneDNN
emulates it, 3-4x slower than float32). Flags say bf16 is possible, not that it is faster: on
a 2-core AVX512-BF16 EPYC, bf16 eager ran at 1.22 fps where fp32 with tuned kernels ran at 1.58.
The measurement is made once per machine, network, weights and frame shape and kept in the
tuning cache (:mod:`reconet.tuning`); a single photo never times (fp32 unless a choice is
cached).

A low-precision network keeps *fp32 islands* where rounding would show (Micikevicius et al.,
"Mixed Precision Training", ICLR 2018, keep reductions in fp32 for the same reason):

* normalization layers: instance-norm statistics are a mean and variance over H x W pixels,
  and bf16's 8-bit mantissa would shift every frame's contrast;
* the output convolution and sigmoid: the last layer maps 48 channels to RGB, and a bf16 result
  is only good to 2^-8 of its magnitude, i.e. one 8-bit level; in fp32 the output stays
  within a level or two of the fp32 network (tests/inference/test_precision.py).

Everything else (the convolutions, 99 % of the work) runs in the low precision.
"""

from __future__ import annotations

import copy
import hashlib
import math

import torch
from torch import nn

from reconet.hardware import native_bf16
from reconet.models.conditional_norm import ConditionalInstanceNorm2d

__all__ = [
    "AUTO_MIN_PSNR",
    "PRECISIONS",
    "Float32Island",
    "auto_candidates",
    "precision_key",
    "psnr",
    "resolve_precision",
    "to_precision",
]

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# The parity bar for ``auto``: a low-precision output must be within this PSNR of fp32's on the
# frames measured (45 dB: RMS difference 0.0056, about 1.4 levels of 8 bits; trained models
# measure 50-60 dB with the fp32 islands, tests/inference/test_precision.py).
AUTO_MIN_PSNR = 45.0
_NORMS = (nn.InstanceNorm2d, ConditionalInstanceNorm2d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


def auto_candidates(device: torch.device) -> tuple[torch.dtype, ...]:
    """What ``auto`` chooses among on ``device``: one dtype (no choice to measure) or several,
    the first being the reference that the others must match."""
    if device.type == "cuda":
        return (torch.float16,)
    if native_bf16(device):
        return (torch.float32, torch.bfloat16)
    return (torch.float32,)


def psnr(reference: torch.Tensor, other: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two [0, 1] images (inf when identical)."""
    mse = float((reference.float() - other.float()).square().mean())
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def precision_key(model: nn.Module, shape: tuple[int, ...] | torch.Size) -> str:
    """The tuning-cache key of an ``auto`` precision choice: the network's layers, a digest of
    its weights (parity depends on them) and the input shape, e.g.
    ``precision|stylizer|3f2a...|9c1b...|1x3x360x640``."""
    layers = hashlib.sha256(repr(model).encode()).hexdigest()[:12]
    weights = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        weights.update(name.encode())
        weights.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return f"precision|stylizer|{layers}|{weights.hexdigest()[:12]}|{'x'.join(map(str, shape))}"


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """``auto``, ``fp32``, ``bf16`` or ``fp16`` on ``device`` -> the dtype the network runs in.

    For ``auto`` this is the reference of :func:`auto_candidates` (fp16 on CUDA, else fp32);
    :class:`reconet.inference.stylizer.TorchStylizer` measures the others on its first batch.

    Raises:
        ValueError: an unknown name, or fp16 on the CPU (PyTorch's CPU float16 convolutions are
            reference loops, tens of times slower than float32: never what a user wants).
    """
    if name == "auto":
        return auto_candidates(device)[0]
    if name not in PRECISIONS:
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {name!r}")
    if name == "fp16" and device.type == "cpu":
        raise ValueError("fp16 is for CUDA; on the CPU use bf16 (fast on AMX/AVX512-BF16 CPUs) or fp32")
    return PRECISIONS[name]


class Float32Island(nn.Module):
    """Runs ``module`` (kept in float32) on a float32 copy of its input.

    ``back`` None returns the float32 result; a dtype casts it back (so that the next
    low-precision layer gets the dtype of its weights).
    """

    def __init__(self, module: nn.Module, back: torch.dtype | None = None):
        super().__init__()
        self.module = module.float()
        self.back = back

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x.float())
        return y if self.back is None else y.to(self.back)


def to_precision(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of a ReCoNet in ``dtype`` with fp32 islands (see the module docstring).

    float32 returns ``model`` itself. Parameter names gain a ``.module`` inside islands, so
    save the original model, never this one.
    """
    if dtype == torch.float32:
        return model
    low = copy.deepcopy(model)
    for parent in list(low.modules()):
        if isinstance(parent, _NORMS):  # a conditional norm's inner norm is inside its island
            continue
        for name, child in list(parent.named_children()):
            if isinstance(child, _NORMS):
                setattr(parent, name, Float32Island(child, back=dtype))
    decoder = getattr(low, "decoder", None)
    if decoder is not None and hasattr(decoder, "output") and hasattr(decoder, "activation"):
        decoder.output = Float32Island(decoder.output)  # (B, 3, H, W) float32 pre-activation
    in_islands = {id(m) for island in low.modules() if isinstance(island, Float32Island) for m in island.modules()}
    for module in low.modules():  # everything outside the islands goes to ``dtype``
        if id(module) not in in_islands:
            for param in module.parameters(recurse=False):
                param.data = param.data.to(dtype)
    return low
