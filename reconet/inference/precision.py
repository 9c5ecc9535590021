"""Which floating-point precision the stylizer runs in, chosen from the hardware that is there.

``auto`` means: float16 on CUDA; bfloat16 on a CPU whose matrix units multiply bf16 natively
(Intel AMX-BF16 or AVX512-BF16, read from the CPU's feature flags at run time, never assumed:
the same code runs on machines with and without them); float32 otherwise. On a CPU without
native bf16, bf16 still works but oneDNN emulates it, slower than float32.

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
import functools
import platform
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "PRECISIONS",
    "Float32Island",
    "cpu_features",
    "cpu_model_name",
    "native_bf16",
    "native_bf16_cpu",
    "resolve_precision",
    "to_precision",
]

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# CPU flags (Linux /proc/cpuinfo names) that mean bf16 matrix products run in hardware.
NATIVE_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
_NORMS = (nn.InstanceNorm2d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


@functools.cache
def cpu_features() -> frozenset[str]:
    """The CPU's feature flags as Linux names them (``avx2``, ``avx512f``, ``amx_bf16``, ...).

    Read from /proc/cpuinfo; elsewhere only what PyTorch's dispatcher reports (``avx2``,
    ``avx512``) is known, which never claims native bf16.
    """
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if platform.system() == "Linux" and cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                flags.update(line.split(":", 1)[1].split())
                break
    capability = torch.backends.cpu.get_cpu_capability().lower()  # "avx2", "avx512", "default", ...
    if capability != "default":
        flags.add(capability)
    return frozenset(flags)


@functools.cache
def cpu_model_name() -> str:
    """The CPU's model name (``Intel(R) Xeon(R) Processor``, ``AMD EPYC 7B13``, ...)."""
    cpuinfo = Path("/proc/cpuinfo")
    if platform.system() == "Linux" and cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith(("model name", "Model")):
                return " ".join(line.split(":", 1)[1].split())
    return platform.processor() or platform.machine() or "unknown CPU"


def native_bf16_cpu(features: frozenset[str] | None = None) -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX-BF16 or AVX512-BF16)."""
    return bool(NATIVE_BF16_FLAGS & (cpu_features() if features is None else features))


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 is fast on ``device``: a CPU with native bf16 matrix units, a CUDA GPU with
    bf16 support (Ampere and newer). The one test behind every ``auto`` precision."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and native_bf16_cpu()


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """``auto``, ``fp32``, ``bf16`` or ``fp16`` on ``device`` -> the dtype the network runs in.

    Raises:
        ValueError: an unknown name, or fp16 on the CPU (PyTorch's CPU float16 convolutions are
            reference loops, tens of times slower than float32: never what a user wants).
    """
    if name == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if native_bf16(device) else torch.float32
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
