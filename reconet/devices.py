"""The one place a device name from a user ("auto", "cpu", "cuda", "cuda:1") becomes a torch.device."""

from __future__ import annotations

import torch

__all__ = ["DeviceError", "resolve_device"]


class DeviceError(ValueError):
    """A device that does not exist here; the message says what to use instead."""


def resolve_device(name: str | torch.device | None) -> torch.device:
    """"auto" (or None) -> CUDA if available, else the CPU; anything else must exist on this machine.

    Raises:
        DeviceError: an unknown name, CUDA without a GPU, or a CUDA index beyond the GPUs present.
    """
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {str(name)!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {str(name)!r} requested but no CUDA GPU is available here (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {str(name)!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return device
