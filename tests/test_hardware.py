"""Hardware facts read at run time: native bf16 from the CPU flags, and the override that runs
either branch of every ``auto`` precision on any machine."""

from __future__ import annotations

import pytest
import torch
from conftest import force_native_bf16

from reconet.hardware import FORCE_NATIVE_BF16_ENV, cpu_features, describe_device, native_bf16, native_bf16_cpu

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ({"sse4_2", "avx2", "fma"}, False),  # the AVX2-only machine
        ({"avx2", "avx512f", "avx512bw"}, False),  # AVX-512 without bf16: oneDNN emulates bf16
        ({"avx512f", "avx512_bf16", "avx512_vnni"}, True),  # the AVX512-BF16 EPYC
        ({"avx512f", "amx_tile", "amx_bf16"}, True),  # Sapphire Rapids and newer Xeons
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(flags, native):
    assert native_bf16_cpu(frozenset(flags)) is native


def test_the_flags_of_this_cpu_are_read(monkeypatch):
    monkeypatch.delenv(FORCE_NATIVE_BF16_ENV, raising=False)
    flags = cpu_features()
    assert flags  # /proc/cpuinfo or at least PyTorch's capability
    assert native_bf16_cpu() is bool({"amx_bf16", "avx512_bf16"} & flags)


@pytest.mark.parametrize("native", [True, False])
def test_the_override_forces_either_branch_on_any_machine(monkeypatch, native):
    force_native_bf16(monkeypatch, native)
    assert native_bf16_cpu() is native and native_bf16(CPU) is native
    assert native_bf16_cpu(frozenset({"amx_bf16"})) is True  # explicit flags are not overridden
    assert ("native bf16" if native else "bf16 emulated") in describe_device("cpu")
    assert f"forced by {FORCE_NATIVE_BF16_ENV}={int(native)}" in describe_device("cpu")


def test_a_misspelt_override_is_an_error_not_a_silent_branch(monkeypatch):
    monkeypatch.setenv(FORCE_NATIVE_BF16_ENV, "ture")
    with pytest.raises(ValueError, match=FORCE_NATIVE_BF16_ENV):
        native_bf16_cpu()


def test_cuda_bf16_is_asked_of_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert native_bf16(CUDA) is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert native_bf16(CUDA) is True
