"""Run a trained ReCoNet (encoder-decoder only) on batches of frames, as fast as the device allows.

A :class:`Stylizer` maps a (B, 3, H, W) float [0, 1] CPU batch to a (B, 3, H, W) float [0, 1]
CPU batch. Backends:

Precision (:mod:`reconet.inference.precision`): ``auto`` is float16 on CUDA; on a CPU with
native bf16 matrix units (AMX-BF16 / AVX512-BF16, detected at run time) the faster of float32
and bfloat16, measured on the first batch and cached per machine; float32 on other CPUs. Low
precision keeps normalization and the output layer in float32.

* ``torch`` on CUDA: half precision, channels_last memory format, ``cudnn.benchmark`` (the
  frame size is fixed for a whole video, so the autotuner's one-off search pays for itself),
  optional ``torch.compile``. A batch that does not fit in GPU memory is retried frame by
  frame, then in tiles (:func:`stylize_tiled`), with a warning.
* ``torch`` on CPU in bfloat16: channels_last (oneDNN's bf16 kernels are NHWC-blocked; NCHW was
  several times slower on the first call where bf16 is emulated; on AMX to be measured).
* ``torch`` on CPU in float32: per-layer tuned convolution kernels (NNPACK Winograd/FFT
  or oneDNN, :mod:`reconet.inference.accelerate`) and, for jobs long enough to repay it,
  ``torch.compile`` to fuse the memory-bound layers. scripts/benchmark.py measured this
  against eager, channels_last, plain ``torch.compile`` and ONNX Runtime (docs/inference.md);
  :data:`CPU_DEFAULTS` records the outcome.
* ``onnx``: an exported ``.onnx`` file (or the loaded model exported in memory) run by
  ONNX Runtime, when it is installed.

Models are loaded with :func:`reconet.models.artifact.load_stylizer` (``torch.load`` with
``weights_only=True``, strict keys); nothing here imports a loss network or Lightning.
"""

from __future__ import annotations

import copy
import io
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reconet.devices import resolve_device
from reconet.inference.export import export_onnx
from reconet.inference.precision import (
    AUTO_MIN_PSNR,
    PRECISIONS,
    auto_candidates,
    precision_key,
    psnr,
    resolve_precision,
    to_precision,
)
from reconet.hardware import native_int8_cpu
from reconet.inference.quantize import INT8_MIN_PSNR, Int8Network, calibration_frames, int8_unavailable, quantize_int8
from reconet.models.artifact import ModelFileError, load_stylizer
from reconet.models.reconet import MIN_INPUT_SIZE, OutputModel, ReCoNet
from reconet.models.style_mix import select_style
from reconet.tuning import Choice, TuningCache, choose_fastest

_PRECISION_NAMES = {dtype: name for name, dtype in PRECISIONS.items()}

# Decided by scripts/benchmark.py on a 2-core CPU (numbers in docs/inference.md).
CPU_DEFAULTS: dict[str, Any] = {
    "backend": "torch",  # ONNX Runtime measured slower than tuned kernels + compile
    "accelerate": True,  # per-layer kernel choice incl. NNPACK Winograd/FFT
    "channels_last": False,  # whole-network NHWC is slower: instance norm copies
    "compile": "auto",  # torch.compile when the job is long enough to repay compiling
}
# "auto" compiles on CPU when at least this many frames are expected (compiling costs about
# as much as 10-40 frames of the paper network at 640x360).
COMPILE_MIN_FRAMES = 64
# Timing the kernels of every layer (when the kernel cache does not know them yet) is repaid
# only by later frames: fewer expected frames use the cached choices and never time. One photo
# with the tiny network at 854x480 (scripts/first_frame.py): first frame 0.71 s untuned, 0.63 s
# with cached choices, 4.1 s when tuning cold; a later tuned frame gains 0.12 s.
TUNE_MIN_FRAMES = 2

# Tiles are aligned to this, so every tile's stride-2 grids coincide with the full frame's.
_TILE_ALIGN = 4
# Context kept around each tile and discarded afterwards: the receptive-field radius of the
# paper network is 49 px (9x9 at full, 3x3 s2, 3x3 s2, 8 x 3x3 at 1/4, two up-convs, 9x9),
# so with 64 px of context a convolution-only network is reproduced exactly.
DEFAULT_TILE_CONTEXT = 64


def _is_oom(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _tile_starts(length: int, tile: int) -> list[int]:
    """Aligned start positions covering [0, length) with tiles of ``tile`` (the last one may be shorter)."""
    starts = list(range(0, max(length - tile, 0) + 1, tile))
    if starts[-1] + tile < length:
        starts.append(starts[-1] + tile)
    return starts


def stylize_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    context: int = DEFAULT_TILE_CONTEXT,
) -> torch.Tensor:
    """Apply ``fn`` to ``x`` (B, 3, H, W) tile by tile and reassemble (B, C, H, W).

    Each ``tile`` x ``tile`` core is processed together with ``context`` pixels of the
    surrounding image on every side (clipped at the frame border) and only the core is kept.
    Core and context are multiples of 4, so the network's stride-2 grids line up with the
    full frame. For a network whose output depends only on a window of radius <= context
    (convolutions, pointwise layers, batch norm in eval) the result equals ``fn(x)`` up to
    float rounding. Instance norm uses statistics of the whole input, so with it each tile is
    normalized by its own (core + context) statistics: an approximation whose seams shrink
    as tiles grow, used only as a last resort when a frame does not fit in memory.
    """
    if x.ndim != 4:
        raise ValueError(f"expected (B, C, H, W), got shape {tuple(x.shape)}")
    if tile < MIN_INPUT_SIZE:
        raise ValueError(f"tile must be >= {MIN_INPUT_SIZE}, got {tile}")
    tile = max(_TILE_ALIGN, tile // _TILE_ALIGN * _TILE_ALIGN)
    context = -(-context // _TILE_ALIGN) * _TILE_ALIGN  # round up to a multiple of 4
    height, width = x.shape[-2:]
    if height <= tile and width <= tile:
        return fn(x)
    out: torch.Tensor | None = None
    for top in _tile_starts(height, tile):
        for left in _tile_starts(width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            y0, x0 = max(top - context, 0), max(left - context, 0)
            y1, x1 = min(bottom + context, height), min(right + context, width)
            piece = fn(x[:, :, y0:y1, x0:x1])  # (B, C, y1 - y0, x1 - x0)
            if out is None:
                out = piece.new_empty(x.shape[0], piece.shape[1], height, width)
            out[:, :, top:bottom, left:right] = piece[:, :, top - y0 : bottom - y0, left - x0 : right - x0]
    assert out is not None
    return out


@dataclass
class _Network:
    """One built network of a :class:`TorchStylizer` and how to feed it."""

    model: nn.Module
    dtype: torch.dtype
    memory_format: torch.memory_format
    accelerated: bool


@dataclass
class StylizerInfo:
    backend: str
    device: str
    dtype: str
    channels_last: bool
    compiled: bool
    threads: int | None
    accelerated: bool = False

    def __str__(self) -> str:
        parts = [self.backend, self.device, self.dtype]
        if self.channels_last:
            parts.append("channels_last")
        if self.accelerated:
            parts.append("tuned kernels")
        if self.compiled:
            parts.append("compiled")
        if self.threads:
            parts.append(f"{self.threads} thread{'s' if self.threads != 1 else ''}")
        return ", ".join(parts)


class Stylizer:
    """Callable: (B, 3, H, W) float [0, 1] CPU batch -> stylized (B, 3, H, W) float [0, 1] CPU."""

    info: StylizerInfo
    meta: dict[str, Any]
    # Leading calls that include one-off work (kernel tuning, compiling, cuDNN autotuning);
    # speed reports leave them out.
    warmup_calls = 0

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def _check(batch: torch.Tensor) -> None:
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(batch.shape)}")
        if min(batch.shape[-2:]) < MIN_INPUT_SIZE:
            raise ValueError(
                f"frames must be at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} pixels, got shape {tuple(batch.shape)}"
            )

    def synchronize(self) -> None:
        """Wait for queued device work (for honest timings)."""


class WithStrength(Stylizer):
    """``strength * stylized + (1 - strength) * input``: how much of the style a user wants.

    Measured against the alternative of mixing the conditional-norm rows toward an "identity"
    row trained to reproduce its input (docs/inference.md): with the convolutions shared by the
    styles, such a row could not reproduce the photo (blurred, desaturated, and for candy 1.8x
    the photo's own style distance at strength 0), while the cross-fade starts from the input
    exactly and its style distance fell monotonically with the strength for every style measured.
    """

    def __init__(self, stylizer: Stylizer, strength: float):
        self.stylizer, self.strength = stylizer, strength
        self.info, self.meta = stylizer.info, {**stylizer.meta, "strength": strength}
        self.warmup_calls = stylizer.warmup_calls

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        stylized = self.stylizer(batch)  # (B, 3, H, W)
        return torch.lerp(batch.to(stylized), stylized, self.strength).clamp_(0.0, 1.0)

    def synchronize(self) -> None:
        self.stylizer.synchronize()

    def __getattr__(self, name: str) -> Any:  # precision_choice and the like, from the stylizer
        inner = self.__dict__.get("stylizer")
        if inner is None:  # not yet built (copy, pickle)
            raise AttributeError(name)
        return getattr(inner, name)


class TorchStylizer(Stylizer):
    """A ReCoNet in PyTorch on CPU or CUDA; see the module docstring for the per-device setup.

    ``precision``: auto, fp32, bf16 or fp16 (:func:`reconet.inference.precision.resolve_precision`);
    ``half`` (the older switch) True means fp16, False fp32, and overrides it. ``auto`` on a
    native-bf16 CPU runs fp32 and bf16 on the first batch and keeps the faster one that meets
    the parity bar (cached per machine, weights and shape; :attr:`precision_choice` says how it
    chose); with ``tune`` False it takes a cached choice or fp32, never timing.
    ``accelerate`` (CPU float32 only; default :data:`CPU_DEFAULTS`) swaps in per-layer tuned
    convolution kernels (:mod:`reconet.inference.accelerate`); ``tune`` False makes them use
    cached choices only, never timing. ``compile`` wraps the network in
    ``torch.compile`` after the first batch (which also tunes the kernels), so that compiling
    sees the final kernels and the first frame is not delayed twice; a later batch of another
    shape runs uncompiled, and a short last batch is padded to the compiled batch size.
    """

    def __init__(
        self,
        model: ReCoNet,
        *,
        device: str | torch.device | None = "auto",
        precision: str = "auto",
        half: bool | None = None,
        channels_last: bool | None = None,
        accelerate: bool | None = None,
        tune: bool = True,
        compile: bool = False,
        threads: int | None = None,
        meta: dict[str, Any] | None = None,
    ):
        self.device = resolve_device(device)
        cuda = self.device.type == "cuda"
        if half is not None:
            precision = "fp16" if half else "fp32"
        # int8 (reconet.inference.quantize) is calibrated on the job's first frames, so it is
        # built on the first batch: explicitly asked for, or in auto as a candidate measured
        # against the float choice where it can pay (int8 units, compiled long jobs).
        self._int8: str | None = None
        if precision == "int8":
            reason = int8_unavailable(self.device)
            if reason is not None:
                raise ValueError(reason)
            self._int8, precision = "explicit", "fp32"
        elif precision == "auto" and compile and not cuda and native_int8_cpu() and int8_unavailable(self.device) is None:
            self._int8 = "auto"
        self._precompiled = False  # the int8 network is compiled by quantize_int8 itself
        dtype = resolve_precision(precision, self.device)
        # auto with a choice to make (fp32 or bf16 on a native-bf16 CPU): start as the reference
        # (fp32) and measure the others on the first batch (:meth:`_choose_precision`).
        self._auto_choices = auto_candidates(self.device)[1:] if precision == "auto" else ()
        if accelerate and (cuda or (dtype != torch.float32)):
            raise ValueError("accelerate is for CPU float32 inference only")
        if threads is not None and not cuda:
            torch.set_num_threads(threads)
        if cuda:
            torch.backends.cudnn.benchmark = True
        self._source = model.eval().requires_grad_(False).to(self.device)
        self._options = {"channels_last": channels_last, "accelerate": accelerate}
        self.tune = tune
        self.compile = compile
        self._compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._compiled_shape: torch.Size | None = None
        self.tile: int | None = None  # set after an out-of-memory fallback
        self.meta = dict(meta or {})
        self.precision_choice: Choice | None = None  # how auto chose, once it has
        self._use(self._build(dtype))
        # One-off work in the first call(s): kernel tuning, the auto precision measurement,
        # cuDNN autotuning; compiling in the second.
        first_call_setup = self.accelerated or cuda or bool(self._auto_choices) or self._int8 is not None
        self.warmup_calls = (1 if first_call_setup else 0) + (1 if compile else 0)

    def _build(self, dtype: torch.dtype) -> _Network:
        """The network that runs in ``dtype``: memory format, fp32 islands, tuned kernels."""
        cuda = self.device.type == "cuda"
        channels_last, accelerate = self._options["channels_last"], self._options["accelerate"]
        if accelerate is None or dtype != torch.float32:  # explicit True with auto: the fp32 candidate
            accelerate = bool(CPU_DEFAULTS["accelerate"]) and not cuda and dtype == torch.float32
        if channels_last is None:
            low_cpu = not cuda and dtype != torch.float32
            channels_last = cuda or low_cpu or (bool(CPU_DEFAULTS["channels_last"]) and not accelerate)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = copy.deepcopy(self._source).to(memory_format=memory_format)
        network: nn.Module = to_precision(model, dtype)
        if accelerate:
            from reconet.inference.accelerate import accelerate as tune_kernels

            network = tune_kernels(model, tune=self.tune)
        return _Network(OutputModel(network).eval(), dtype, memory_format, accelerate)  # type: ignore[arg-type]

    def _use(self, network: _Network) -> None:
        self.model = network.model
        self.dtype = network.dtype
        self.memory_format = network.memory_format
        self.channels_last = network.memory_format == torch.channels_last
        self.accelerated = network.accelerated
        dtype_name = "int8" if isinstance(network.model, Int8Network) else str(network.dtype).replace("torch.", "")
        if self._int8 is not None:
            dtype_name += " or int8"
        if self._auto_choices:
            dtype_name = "auto: " + " or ".join(str(d).replace("torch.", "") for d in (self.dtype, *self._auto_choices))
        elif self.precision_choice is not None:
            dtype_name += f" (auto, {self.precision_choice.how})"
        cuda = self.device.type == "cuda"
        self.info = StylizerInfo(
            "torch",
            str(self.device),
            dtype_name,
            self.channels_last,
            self.compile or self._precompiled,
            None if cuda else torch.get_num_threads(),
            self.accelerated,
        )

    def _choose_precision(self, batch: torch.Tensor) -> None:
        """``auto`` with several candidates: time them on ``batch`` (the job's own first frames)
        once per machine, network and shape (:func:`reconet.tuning.choose_fastest`), keep the
        fastest that stays within :data:`AUTO_MIN_PSNR` dB of fp32, and switch to it."""
        reference = _Network(self.model, self.dtype, self.memory_format, self.accelerated)
        networks = {self.dtype: reference} | {dtype: self._build(dtype) for dtype in self._auto_choices}
        runners: dict[str, Callable[[], torch.Tensor]] = {}
        for dtype, network in networks.items():
            x = batch.to(self.device, dtype=dtype, memory_format=network.memory_format)

            def run(model: nn.Module = network.model, x: torch.Tensor = x) -> torch.Tensor:
                y = model(x)
                self.synchronize()
                return y

            runners[_PRECISION_NAMES[dtype]] = run
        self.precision_choice = choose_fastest(
            runners,
            reference=_PRECISION_NAMES[reference.dtype],
            parity=lambda expected, got: (value := psnr(expected, got), value >= AUTO_MIN_PSNR),
            key=precision_key(self._source, tuple(batch.shape)),
            cache=TuningCache.default(),
            measure=self.tune,  # a single photo never times: the reference unless a choice is cached
        )
        self._auto_choices = ()
        self._use(networks[PRECISIONS[self.precision_choice.name]])

    def _int8_network(self, batch: torch.Tensor) -> _Network:
        """The network quantized on ``batch`` (and bundled photos), compiled by quantize_int8."""
        int8 = quantize_int8(self._source.cpu(), calibration_frames(batch.cpu()))
        return _Network(int8, torch.float32, torch.contiguous_format, False)

    def _use_int8(self, network: _Network) -> None:
        self._precompiled, self.compile, self._compiled = True, False, None  # compiled already
        self._use(network)

    def _choose_compiled(self, batch: torch.Tensor) -> None:
        """``auto`` for a compiled job: every candidate (fp32 with tuned kernels, bf16 on a
        native-bf16 CPU, int8 on a CPU with int8 units and the [int8] extra) is measured as it
        will run, compiled, since compiling changes the ranking (fast preset at 640x360 on an
        AMX Xeon: bf16 is slower than tuned fp32 eager, twice as fast compiled). The fastest that
        meets its bar against fp32 (:data:`AUTO_MIN_PSNR` for bf16, :data:`INT8_MIN_PSNR` for
        int8) is kept, compiled, and the choice is cached per machine, weights and shape."""
        batch = batch.contiguous()  # the layout every later batch has (see __call__)
        int8_candidate, self._int8 = self._int8 == "auto", None
        names = ["fp32", *(_PRECISION_NAMES[d] for d in self._auto_choices)] + (["int8"] if int8_candidate else [])
        self._auto_choices = ()
        key = precision_key(self._source, tuple(batch.shape)) + "|compiled"
        cache = TuningCache.default()
        cached = cache.get(key) if cache is not None else None
        if cached in names:
            names = [cached]
        elif not self.tune:
            names = ["fp32"]

        def network(name: str) -> _Network:
            if name == "int8":
                return self._int8_network(batch)
            if name == "fp32":
                return _Network(self.model, self.dtype, self.memory_format, self.accelerated)
            return self._build(PRECISIONS[name])

        def compiled(candidate: _Network) -> Callable[[torch.Tensor], torch.Tensor]:
            if isinstance(candidate.model, Int8Network):
                return candidate.model  # compiled by quantize_int8
            x = batch.to(dtype=candidate.dtype, memory_format=candidate.memory_format)
            candidate.model(x)  # eager first: tunes the kernels at this shape
            if candidate.accelerated:
                from reconet.inference.accelerate import freeze

                freeze(candidate.model)
            runner = _compile(candidate.model)
            return lambda frames: runner(frames.to(dtype=candidate.dtype, memory_format=candidate.memory_format))

        networks = {name: network(name) for name in names}
        runners = {name: compiled(candidate) for name, candidate in networks.items()}
        if len(names) > 1:
            for runner in runners.values():
                runner(batch)  # compile now: choose_fastest's one warm-up call must not pay it
            bars = {"fp32": 0.0, "bf16": AUTO_MIN_PSNR, "int8": INT8_MIN_PSNR}
            self.precision_choice = choose_fastest(
                {name: lambda r=runner: r(batch).float() for name, runner in runners.items()},
                reference="fp32",
                parity={name: lambda a, b, bar=bars[name]: (v := psnr(a, b), v >= bar) for name in names},
                key=key,
                cache=cache,
            )
        else:
            self.precision_choice = Choice(names[0], "cached" if cached == names[0] else "not measured")
        chosen = self.precision_choice.name
        if chosen == "int8":
            self._use_int8(networks[chosen])
        else:
            self._compiled, self._compiled_shape = runners[chosen], batch.shape
            self._use(networks[chosen])

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self.tile is not None:
            return stylize_tiled(self.model, x, self.tile)
        if not self.compile:
            return self.model(x)
        if self._compiled is None:
            y = self.model(x)  # eager first batch: tunes the kernels for this shape
            if self.accelerated:
                from reconet.inference.accelerate import freeze

                freeze(self.model)
            self._compiled = _compile(self.model)
            self._compiled_shape = x.shape
            return y
        if x.shape[1:] != self._compiled_shape[1:] or x.shape[0] > self._compiled_shape[0]:
            return self.model(x)
        count = x.shape[0]
        if count < self._compiled_shape[0]:  # a short last batch: pad, do not recompile
            x = torch.cat([x, x[-1:].expand(self._compiled_shape[0] - count, -1, -1, -1)])
        try:
            return self._compiled(x)[:count]
        except Exception as error:  # a compiler failure (no C compiler, ...) must not end the run
            self._without_compiling(error)
            return self.model(x)[:count]

    def _without_compiling(self, error: Exception) -> None:
        """After a compiler failure: warn once and run uncompiled from now on (re-raises OOM)."""
        if isinstance(error, torch.OutOfMemoryError):
            raise error
        warnings.warn(
            f"torch.compile failed ({type(error).__name__}: {' '.join(str(error).split())[:160]}); continuing without it",
            stacklevel=4,
        )
        self.compile, self._compiled = False, None
        self.info.compiled = False

    # no_grad, not inference_mode: under inference_mode a batch the caller made is a normal
    # tensor and one made here an inference tensor, and compiled graphs recompile (seconds)
    # between the two kinds; under no_grad every batch is the same kind.
    @torch.no_grad()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self._check(batch)
        if self.compile and self._compiled is None and (self._auto_choices or self._int8 == "auto"):
            choices = self._auto_choices
            try:
                self._choose_compiled(batch)
            except Exception as error:  # a compiler failure (no C compiler, ...) must not end the run
                self._without_compiling(error)
                self._int8, self._auto_choices = None, choices  # the eager float choice instead
        if self._auto_choices:
            self._choose_precision(batch)
        if self._int8 == "explicit":  # --precision int8: quantized on this first batch
            self._int8 = None
            self._use_int8(self._int8_network(batch))
        # contiguous() in the network's layout, not to(memory_format=...): the latter keeps a
        # permuted (H, W, C) view as it is when the dtype already matches, and a compiled network
        # recompiles (seconds) for every new stride pattern it is handed.
        x = batch.to(self.device, non_blocking=True).to(dtype=self.dtype).contiguous(memory_format=self.memory_format)
        try:
            y = self._run(x)
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not _is_oom(error) or self.device.type != "cuda":
                raise
            y = self._after_oom(x)
        return y.float().cpu()

    def _after_oom(self, x: torch.Tensor) -> torch.Tensor:
        """Out of GPU memory: frame by frame, then ever smaller tiles; warn once per step."""
        torch.cuda.empty_cache()
        if x.shape[0] > 1:
            warnings.warn(
                f"out of GPU memory for a batch of {x.shape[0]} frames; stylizing frame by frame",
                stacklevel=3,
            )
            try:
                return torch.cat([self.model(frame[None]) for frame in x])
            except (torch.OutOfMemoryError, RuntimeError) as error:
                if not _is_oom(error):
                    raise
                torch.cuda.empty_cache()
        tile = self.tile or 1 << (max(x.shape[-2:]) - 1).bit_length()
        while tile > 64:
            tile //= 2
            self.tile = tile
            warnings.warn(
                f"out of GPU memory for a {x.shape[-1]}x{x.shape[-2]} frame; stylizing in {tile}x{tile} tiles "
                "(instance-norm statistics per tile: an approximation; a smaller --max-side avoids it)",
                stacklevel=3,
            )
            try:
                return torch.cat([stylize_tiled(self.model, frame[None], tile) for frame in x])
            except (torch.OutOfMemoryError, RuntimeError) as error:
                if not _is_oom(error):
                    raise
                torch.cuda.empty_cache()
        raise MemoryError("out of GPU memory even with 64x64 tiles; use --device cpu or a smaller --max-side")

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _compile(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """torch.compile (inductor) with weight freezing: constant weights let inductor fold them
    into its kernels; normalization, ReLU, padding and upsampling fuse into a few memory
    passes between the convolutions. One graph per frame size (``dynamic=False``)."""
    compiled = torch.compile(module, dynamic=False)

    def run(x: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True):  # read when the graph is compiled (first call)
            return compiled(x)

    return run


class OnnxStylizer(Stylizer):
    """An ONNX model (file path or serialized bytes) run by ONNX Runtime."""

    def __init__(
        self,
        model: str | Path | bytes,
        *,
        device: str | torch.device | None = "auto",
        threads: int | None = None,
        meta: dict[str, Any] | None = None,
    ):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelFileError(
                "running .onnx models needs ONNX Runtime: pip install 'reconet[onnx]'"
            ) from None
        requested = "auto" if device is None else str(device)
        providers = ["CPUExecutionProvider"]
        available = ort.get_available_providers()
        if requested in ("auto", "cuda") and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        elif requested == "cuda":
            raise ValueError("--device cuda requested but ONNX Runtime has no CUDA provider (use --device cpu)")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or _physical_cores()
        options.inter_op_num_threads = 1
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, options, providers=providers)
        except Exception as error:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
            where = "exported model" if isinstance(model, bytes) else str(model)
            raise ModelFileError(f"{where}: not a usable ONNX model ({' '.join(str(error).split())[:200]})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelFileError(f"{model}: expected an ONNX model with one (B, 3, H, W) input")
        self.input_name = inputs[0].name
        self.meta = dict(meta or {})
        used = self.session.get_providers()[0]
        self.info = StylizerInfo(
            "onnxruntime",
            "cuda" if used.startswith("CUDA") else "cpu",
            "float32",
            False,
            False,
            options.intra_op_num_threads,
        )

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self._check(batch)
        array = np.ascontiguousarray(batch.detach().float().cpu().numpy())
        (out,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(out)


def _physical_cores() -> int:
    return max(1, torch.get_num_threads() or os.cpu_count() or 1)


def model_to_onnx_bytes(model: ReCoNet, opset: int = 17) -> bytes:
    """Serialize ``model`` to ONNX in memory (dynamic batch, height and width)."""
    buffer = io.BytesIO()
    export_onnx(model, buffer, opset=opset)
    return buffer.getvalue()


def load(
    path: str | Path,
    *,
    device: str | torch.device | None = "auto",
    backend: str = "auto",
    precision: str = "auto",
    half: bool | None = None,
    channels_last: bool | None = None,
    accelerate: bool | None = None,
    compile: bool | None = None,
    threads: int | None = None,
    expected_frames: int | None = None,
    style: str | None = None,
    strength: float | None = None,
) -> Stylizer:
    """Build the fastest stylizer for ``path`` (artifact, Lightning checkpoint or .onnx).

    ``backend``: "auto" (CUDA: torch; CPU: :data:`CPU_DEFAULTS`), "torch" or "onnx".
    ``compile`` None means the device default: off on CUDA; on CPU compile when
    ``expected_frames`` >= :data:`COMPILE_MIN_FRAMES` (compiling takes tens of seconds).
    Tuned kernels (``accelerate``) time new layer shapes only when at least
    :data:`TUNE_MIN_FRAMES` frames are expected; a single image uses the cached choices.
    ``style``: which style of a multi-style model to run, a name of its style table or a blend
    ``"udnie:0.6,wave:0.4"`` (:func:`reconet.models.style_mix.select_style`); the network is
    then the single-style network of that mix. ``strength`` (0..1, None = 1) cross-fades the
    stylized frames with the input (:class:`WithStrength`): 0 is the input unchanged.
    """
    if strength is not None and not 0.0 <= float(strength) <= 1.0:  # also refuses NaN
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    path = Path(path)
    if backend not in ("auto", "torch", "onnx"):
        raise ValueError(f"backend must be auto, torch or onnx, got {backend!r}")
    explicit_low = precision not in ("auto", "fp32") or half is True
    if explicit_low and (backend == "onnx" or path.suffix.lower() == ".onnx"):
        raise ValueError(f"the onnx backend runs fp32 only, got precision {'fp16' if half else precision}")
    if path.suffix.lower() == ".onnx":
        if backend == "torch":
            raise ValueError(f"{path}: an ONNX file runs only with the onnx backend")
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        if style is not None:
            raise ValueError(f"{path}: an exported ONNX model holds the one style it was exported with; --style needs the .pt model")
        return _with_strength(OnnxStylizer(path, device=device, threads=threads, meta={"source": str(path)}), strength)
    target = resolve_device(device) if backend != "onnx" else torch.device("cpu")
    model, meta = load_stylizer(path, map_location="cpu")
    model, meta = select_style(model, meta, style, where=str(path))
    on_cpu = target.type == "cpu"
    if backend == "auto":
        backend = CPU_DEFAULTS["backend"] if on_cpu else "torch"
        if backend == "onnx" and not _onnxruntime_available():
            backend = "torch"
    if backend == "onnx":
        return _with_strength(OnnxStylizer(model_to_onnx_bytes(model), device=device, threads=threads, meta=meta), strength)
    tune = expected_frames is None or expected_frames >= TUNE_MIN_FRAMES
    if compile is None:
        if on_cpu and CPU_DEFAULTS["compile"] == "auto":
            compile = expected_frames is not None and expected_frames >= COMPILE_MIN_FRAMES
        else:
            compile = bool(CPU_DEFAULTS["compile"]) if on_cpu else False
    stylizer = TorchStylizer(
        model,
        device=target,
        precision=precision,
        half=half,
        channels_last=channels_last,
        accelerate=accelerate,
        tune=tune,
        compile=compile,
        threads=threads,
        meta=meta,
    )
    return _with_strength(stylizer, strength)


def _with_strength(stylizer: Stylizer, strength: float | None) -> Stylizer:
    return stylizer if strength is None or float(strength) == 1.0 else WithStrength(stylizer, float(strength))


def _onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def timed(stylizer: Stylizer, batch: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(output, seconds) for one call, device work included."""
    start = time.perf_counter()
    out = stylizer(batch)
    stylizer.synchronize()
    return out, time.perf_counter() - start


__all__ = [
    "COMPILE_MIN_FRAMES",
    "CPU_DEFAULTS",
    "DEFAULT_TILE_CONTEXT",
    "TUNE_MIN_FRAMES",
    "OnnxStylizer",
    "OutputModel",
    "Stylizer",
    "WithStrength",
    "StylizerInfo",
    "TorchStylizer",
    "load",
    "model_to_onnx_bytes",
    "resolve_device",
    "stylize_tiled",
    "timed",
]

