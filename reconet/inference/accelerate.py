"""Faster CPU inference for a trained network: every convolution picks its fastest kernel.

PyTorch's default CPU convolution (oneDNN, NCHW) is far from the machine's matrix-multiply
speed for some of ReCoNet's layers: the 9x9 convolutions with 3 input or 3 output channels
and the stride-2 convolutions run at a third to a half of SGEMM speed, while the 3x3
stride-1 convolutions (85 % of the MACs) can run *faster* than SGEMM with Winograd's
minimal filtering (F(6x6, 3x3) via NNPACK: far fewer multiplications per output), and the
9x9 ones with FFTs.

:func:`accelerate` returns a copy of a module in which each ``nn.Conv2d`` is a
:class:`TunedConv2d`: on the first input of a given shape it runs every applicable
implementation, checks it against the reference (oneDNN NCHW) within float tolerance, times
it, and keeps the fastest for that shape, as ``cudnn.benchmark`` does on GPUs. Candidates:

* ``nchw``: ``F.conv2d`` on contiguous NCHW tensors (the reference);
* ``channels_last``: the same on NHWC tensors (oneDNN's blocked kernels vectorize over
  channels, which rescues the 3-channel convolutions), converted back to NCHW;
* ``nnpack``: NNPACK for stride-1 ungrouped layers: Winograd F(6x6, 3x3) for 3x3 kernels,
  FFT for larger ones (ReCoNet's 9x9 layers run 2-4x faster than with oneDNN).

Choices are kept on disk (:mod:`reconet.tuning`, keyed by machine, layer,
input shape and dtype), so a later run skips the timing and starts at full speed.

The weights and the computation are the network's own; only the kernels differ, so results
match the reference to float rounding (Winograd and FFT transforms add ~1e-5 relative error,
far below one 8-bit level). ReLUs become in-place, saving one allocation per layer.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import library as torch_library
from torch import nn

from reconet.hardware import nnpack_available
from reconet.tuning import TuningCache

Kernel = Callable[[torch.Tensor], torch.Tensor]

# Relative tolerance when comparing a candidate kernel with the reference kernel.
_TOLERANCE = 1e-4


def nnpack_conv2d_eager(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: list[int]) -> torch.Tensor:
    """Stride-1 convolution by NNPACK (CPU, float32, NCHW): Winograd F(6x6, 3x3) for 3x3
    kernels, FFT (16x16 tiles) for larger ones such as 9x9."""
    if not nnpack_available():  # also initializes NNPACK, without which every call fails
        raise RuntimeError("NNPACK is not available in this PyTorch build")
    return torch._nnpack_spatial_convolution(x.contiguous(), weight, bias, padding, [1, 1])


@torch_library.custom_op("reconet::nnpack_conv2d", mutates_args=())
def nnpack_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: list[int]) -> torch.Tensor:
    """:func:`nnpack_conv2d_eager` as a custom op with a shape function, so that
    ``torch.compile`` keeps it as an external kernel inside a compiled graph.

    Only compiled graphs call it: the first call of any custom op imports ``torch._dynamo``
    (about 1.1 s, measured as the "first NNPACK call" of a process), which eager inference
    never needs.
    """
    return nnpack_conv2d_eager(x, weight, bias, padding)


@nnpack_conv2d.register_fake
def _nnpack_conv2d_shape(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: list[int]) -> torch.Tensor:
    height = x.shape[2] + 2 * padding[0] - weight.shape[2] + 1
    width = x.shape[3] + 2 * padding[1] - weight.shape[3] + 1
    return x.new_empty(x.shape[0], weight.shape[0], height, width)


class TunedConv2d(nn.Module):
    """A ``nn.Conv2d`` that benchmarks its candidate kernels per input shape and keeps the fastest.

    ``repeats`` timed runs per candidate (best of) after one warm-up; the choice per shape is
    in :attr:`choices` (for reports). ``cache`` (a :class:`TuningCache` or None) is consulted
    before tuning and records what tuning chose. ``tune`` False never times anything: a shape
    the cache does not know runs the reference kernel (for inputs too short to repay tuning).
    """

    def __init__(self, conv: nn.Conv2d, repeats: int = 2, cache: TuningCache | None = None, tune: bool = True):
        super().__init__()
        if conv.padding_mode != "zeros":
            raise ValueError(f"only zero-padded convolutions are supported, got padding_mode={conv.padding_mode!r}")
        self.weight = nn.Parameter(conv.weight.detach().clone(), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.stride = tuple(conv.stride)
        self.padding = tuple(conv.padding) if not isinstance(conv.padding, str) else conv.padding
        self.dilation = tuple(conv.dilation)
        self.groups = conv.groups
        self.kernel_size = tuple(conv.kernel_size)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.repeats = repeats
        self.cache = cache
        self.tune = tune
        self.tuned = 0  # shapes timed here (not taken from the cache)
        self.choices: dict[tuple[int, ...], str] = {}
        self.fixed: str | None = None  # set by freeze(): one kernel, no lookups (for torch.compile)
        self._weight_cl: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"choices={self.choices}"
        )

    # ---- candidate kernels ----

    def _nchw(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x.contiguous(), self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def _channels_last(self, x: torch.Tensor) -> torch.Tensor:
        if self._weight_cl is None or self._weight_cl.device != self.weight.device:
            self._weight_cl = self.weight.contiguous(memory_format=torch.channels_last)
        y = F.conv2d(
            x.contiguous(memory_format=torch.channels_last),
            self._weight_cl,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
        return y.contiguous()  # (B, C_out, H_out, W_out) NCHW for the layers that follow

    def _nnpack(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias if self.bias is not None else self.weight.new_zeros(self.out_channels)
        conv = nnpack_conv2d if torch.compiler.is_compiling() else nnpack_conv2d_eager
        return conv(x, self.weight, bias, list(self.padding))

    def candidates(self, x: torch.Tensor) -> dict[str, Kernel]:
        kernels: dict[str, Kernel] = {"nchw": self._nchw}
        if x.device.type != "cpu" or x.dtype != torch.float32:
            return kernels
        kernels["channels_last"] = self._channels_last
        nnpack_shape = (
            self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and max(self.kernel_size) <= 16
            and not isinstance(self.padding, str)
        )
        if nnpack_shape and nnpack_available():
            kernels["nnpack"] = self._nnpack
        return kernels

    # ---- selection ----

    def cache_key(self, x: torch.Tensor) -> str:
        """The layer, its input shape and dtype, e.g. ``conv3-32-k9x9-s1x1-p4x4-d1x1-g1-b1|1x3x480x856|float32``."""
        def joined(values) -> str:
            return "x".join(map(str, values))

        padding = self.padding if isinstance(self.padding, str) else joined(self.padding)
        layer = (
            f"conv{self.in_channels}-{self.out_channels}-k{joined(self.kernel_size)}-s{joined(self.stride)}"
            f"-p{padding}-d{joined(self.dilation)}-g{self.groups}-b{int(self.bias is not None)}"
        )
        return f"{layer}|{joined(x.shape)}|{str(x.dtype).replace('torch.', '')}"

    def _choose(self, x: torch.Tensor) -> str:
        """The cached choice if it is a candidate for ``x``; else a fresh tuning (then cached),
        or the reference kernel when ``tune`` is off."""
        use_cache = self.cache is not None and x.device.type == "cpu"
        if use_cache:
            cached = self.cache.get(self.cache_key(x))
            if cached is not None and cached in self.candidates(x):
                return cached
        if not self.tune:
            return "nchw"
        choice = self._tune(x)
        if use_cache:
            self.cache.put(self.cache_key(x), choice)
        return choice

    def _tune(self, x: torch.Tensor) -> str:
        kernels = self.candidates(x)
        reference = kernels["nchw"](x)
        scale = float(reference.abs().max()) or 1.0
        timings: dict[str, float] = {}
        for name, kernel in kernels.items():
            try:
                out = kernel(x)
            except RuntimeError:
                continue  # not supported for this input: skip the candidate
            if out.shape != reference.shape or float((out - reference).abs().max()) > _TOLERANCE * scale:
                continue
            best = float("inf")
            for _ in range(self.repeats):
                start = time.perf_counter()
                kernel(x)
                best = min(best, time.perf_counter() - start)
            timings[name] = best
        self.tuned += 1
        return min(timings, key=timings.__getitem__)

    def freeze(self) -> None:
        """Keep the kernel chosen for the one input shape seen so far (before torch.compile)."""
        if len(set(self.choices.values())) != 1:
            raise RuntimeError(f"freeze() needs exactly one tuned kernel, have {self.choices}")
        self.fixed = next(iter(self.choices.values()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H', W')
        choice = self.fixed
        if choice is None:
            key = (*x.shape, x.dtype.itemsize, x.device.type == "cpu")
            choice = self.choices.get(key)
            if choice is None:
                choice = self.choices[key] = self._choose(x)
        if choice == "nnpack":
            return self._nnpack(x)
        if choice == "channels_last":
            return self._channels_last(x)
        return self._nchw(x)


def accelerate(
    module: nn.Module, repeats: int = 2, cache: TuningCache | None | str = "default", tune: bool = True
) -> nn.Module:
    """A copy of ``module`` (eval mode) whose convolutions tune their kernels; see the module doc.

    ``cache``: "default" (:meth:`TuningCache.default`, on disk per machine), a
    :class:`TuningCache`, or None to always tune. ``tune`` False: cached choices only.
    """
    if cache == "default":
        cache = TuningCache.default()
    fast = copy.deepcopy(module).eval()
    for parent in list(fast.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and not isinstance(child, TunedConv2d) and child.padding_mode == "zeros":
                setattr(parent, name, TunedConv2d(child, repeats=repeats, cache=cache, tune=tune))
            elif isinstance(child, nn.ReLU):
                setattr(parent, name, nn.ReLU(inplace=True))
    return fast.requires_grad_(False)


def freeze(module: nn.Module) -> nn.Module:
    """Fix every tuned convolution to its chosen kernel (call after one forward at the final size)."""
    for child in module.modules():
        if isinstance(child, TunedConv2d):
            child.freeze()
    return module


def tuning_report(module: nn.Module) -> dict[str, dict[tuple[int, ...], str]]:
    """{layer name: {input shape key: chosen kernel}} for every tuned convolution."""
    return {name: dict(m.choices) for name, m in module.named_modules() if isinstance(m, TunedConv2d)}
