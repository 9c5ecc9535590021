"""Facts about this machine's arithmetic, read at run time: CPU feature flags, native bf16, NNPACK.

The project runs on CPUs with and without bf16 matrix units (AVX2 only, AVX-512 without bf16,
AVX512-BF16, AMX), so nothing here is assumed at install time. Flags say what the hardware
*can* do, not what is faster: the ``auto`` precisions time their candidates once per machine
(:mod:`reconet.tuning`) and only consider bf16 where these facts say it is native.

``RECONET_NATIVE_BF16=1`` (or ``0``) overrides the detection, so that the ``auto`` code paths of
a native-bf16 CPU (or of one without) can be run -- and the test suite passed -- on any machine:

    RECONET_NATIVE_BF16=1 python -m pytest -q    # as if on an AMX / AVX512-BF16 CPU
    RECONET_NATIVE_BF16=0 python -m pytest -q    # as if bf16 were emulated

(``ATEN_CPU_CAPABILITY=avx2`` likewise makes PyTorch pick its older kernel set.)
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch

__all__ = [
    "FORCE_NATIVE_BF16_ENV",
    "FORCE_NATIVE_INT8_ENV",
    "NATIVE_BF16_FLAGS",
    "NATIVE_INT8_FLAGS",
    "cpu_features",
    "cpu_model_name",
    "describe_device",
    "forced_native_bf16",
    "native_bf16",
    "native_bf16_cpu",
    "native_int8_cpu",
    "nnpack_available",
]

# CPU flags (Linux /proc/cpuinfo names) that mean bf16 matrix products run in hardware.
NATIVE_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
FORCE_NATIVE_BF16_ENV = "RECONET_NATIVE_BF16"
# CPU flags that mean int8 dot products run in hardware (VNNI: 4 int8 products summed into an
# int32 per instruction; AMX-INT8: whole tiles). Without them oneDNN still runs int8, slower.
NATIVE_INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
FORCE_NATIVE_INT8_ENV = "RECONET_NATIVE_INT8"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


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


def forced_native_bf16(variable: str = FORCE_NATIVE_BF16_ENV) -> bool | None:
    """``RECONET_NATIVE_BF16`` (or another such switch) as a bool, or None when unset (detect
    from the flags).

    Raises:
        ValueError: a value that is neither true-ish nor false-ish (a typo must not silently
            test the other branch).
    """
    value = os.environ.get(variable, "").strip().lower()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{variable} must be 1 or 0, got {value!r}")


def native_bf16_cpu(features: frozenset[str] | None = None) -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX-BF16 or AVX512-BF16).

    ``features`` given: decided from those flags alone. Otherwise ``RECONET_NATIVE_BF16``, if
    set, wins over the flags of this CPU.
    """
    if features is None:
        forced = forced_native_bf16()
        if forced is not None:
            return forced
        features = cpu_features()
    return bool(NATIVE_BF16_FLAGS & features)


def native_int8_cpu(features: frozenset[str] | None = None) -> bool:
    """Whether this CPU has int8 dot-product units (AVX512-VNNI, AVX-VNNI or AMX-INT8); like
    :func:`native_bf16_cpu`, ``RECONET_NATIVE_INT8=1``/``0`` overrides the flags of this CPU."""
    if features is None:
        forced = forced_native_bf16(FORCE_NATIVE_INT8_ENV)
        if forced is not None:
            return forced
        features = cpu_features()
    return bool(NATIVE_INT8_FLAGS & features)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 runs in hardware on ``device``: a CPU with native bf16 matrix units, a CUDA
    GPU with bf16 support (Ampere and newer). The one test behind which every ``auto``
    precision considers bf16 at all (and then measures whether it is faster)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and native_bf16_cpu()


@functools.cache
def nnpack_available() -> bool:
    """Whether NNPACK works here; the first call initializes it (nnp_initialize)."""
    try:
        return bool(torch._nnpack_available())
    except (AttributeError, RuntimeError):
        return False


def describe_device(device: torch.device | str) -> str:
    """What a measurement ran on: ``cuda:0 (<GPU name>)`` or ``cpu (<model>; <avx/amx flags>;
    native int8 | int8 emulated; native bf16 | bf16 emulated)``, for the header of every
    benchmark and report."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    flags = " ".join(sorted(f for f in cpu_features() if f.startswith(("avx", "amx")))) or "no AVX flags reported"
    forced = forced_native_bf16()
    bf16 = "native bf16" if native_bf16_cpu() else "bf16 emulated"
    if forced is not None:
        bf16 += f" (forced by {FORCE_NATIVE_BF16_ENV}={int(forced)})"
    int8 = "native int8" if native_int8_cpu() else "int8 emulated"
    return f"{device} ({cpu_model_name()}; {flags}; {int8}; {bf16})"
