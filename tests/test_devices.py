"""One device resolver for every command: names that exist work, the others say what to use."""

from __future__ import annotations

import pytest
import torch

from reconet.devices import DeviceError, resolve_device


def test_auto_and_cpu_resolve_here():
    assert resolve_device("auto") == resolve_device(None) == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_unknown_name_lists_the_choices():
    with pytest.raises(DeviceError, match=r"unknown device 'gpu' \(use auto, cpu, cuda or cuda:N\)"):
        resolve_device("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_an_error_naming_the_way_out():
    with pytest.raises(DeviceError, match=r"no CUDA GPU is available here \(use --device cpu\)"):
        resolve_device("cuda:0")
    assert issubclass(DeviceError, ValueError)  # the commands' one-line error handlers catch ValueError
