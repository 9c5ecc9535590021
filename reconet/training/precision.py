"""``trainer.precision=auto``: the precision this machine trains fastest in, by measurement.

Flags say bf16 is *possible*, not that it is *faster*. On a CPU with native bf16 matrix units
(AMX-BF16 / AVX512-BF16, :mod:`reconet.hardware`) the candidates are 32-true and bf16-mixed:
both run one training step (the stylizer, the loss network, every loss, backward) on the run's
own first batch, bf16-mixed must meet the gradient parity bar against fp32
(:func:`reconet.tuning.gradient_parity`: loss within 2 %, gradient cosine >= 0.95), and the
faster wins. The choice is cached per machine, network, loss network and batch shape
(:mod:`reconet.tuning`), so later runs of the same recipe pay nothing. Elsewhere there is
nothing to measure: 32-true on CPUs without native bf16 (emulated bf16 measured 0.28x fp32's
speed), bf16-mixed on CUDA GPUs that support it, 16-mixed (with a gradient scaler) on older
ones. A GPU is not timed here: the project has not had one to measure on.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from reconet.hardware import native_bf16
from reconet.tuning import Choice, TuningCache, choose_fastest, gradient_parity

__all__ = ["auto_training_candidates", "choose_training_precision", "training_precision_key"]


def auto_training_candidates(accelerator: Any) -> tuple[str, ...]:
    """What ``trainer.precision=auto`` chooses among for ``accelerator`` (auto, cpu, gpu, cuda,
    ...): one Lightning precision, or several to measure, the first being the reference."""
    accelerator = str(accelerator)
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator in ("gpu", "cuda"):
        return ("bf16-mixed",) if native_bf16(torch.device("cuda")) else ("16-mixed",)
    if accelerator == "cpu" and native_bf16(torch.device("cpu")):
        return ("32-true", "bf16-mixed")
    return ("32-true",)


def training_precision_key(network: torch.nn.Module, loss_network: str, batch: dict[str, Any]) -> str:
    """Tuning-cache key: the stylizer's layers, the loss network and the frame batch's shape."""
    layers = hashlib.sha256(repr(network).encode()).hexdigest()[:12]
    shape = "x".join(map(str, batch["frame1"].shape))
    return f"precision|training|{layers}|{loss_network}|{shape}"


@contextlib.contextmanager
def _rng_untouched() -> Iterator[None]:
    """Measuring must not change the run: restore every random generator a step may draw from."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def choose_training_precision(
    candidates: tuple[str, ...],
    step: Callable[[dict[str, Any]], torch.Tensor],
    network: torch.nn.Module,
    batch: dict[str, Any],
    key: str,
    cache: TuningCache | None,
) -> Choice:
    """Time ``step(batch) -> total loss`` (forward and loss; backward is added here) under each
    Lightning precision in ``candidates`` (32-true first), keep the fastest that meets the
    gradient parity bar. Gradients are cleared afterwards and no random state changes."""
    parameters = [p for p in network.parameters() if p.requires_grad]

    def run(precision: str) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
        def one_step() -> tuple[torch.Tensor, torch.Tensor]:
            for p in parameters:
                p.grad = None
            autocast = (
                torch.autocast("cpu", dtype=torch.bfloat16)
                if precision.startswith("bf16")
                else contextlib.nullcontext()
            )
            with _rng_untouched():
                with autocast:
                    total = step(batch)
                total.float().backward()
            grad = torch.cat([p.grad.detach().flatten().float() for p in parameters if p.grad is not None])
            for p in parameters:
                p.grad = None
            return total.detach().float(), grad

        return one_step

    return choose_fastest(
        {name: run(name) for name in candidates},
        reference=candidates[0],
        parity=gradient_parity,
        key=key,
        cache=cache,
    )
