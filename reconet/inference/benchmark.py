"""Measuring inference speed honestly on a shared, noisy machine.

* Work is counted, not timed: convolution MACs from forward hooks
  (:func:`reconet.models.complexity.conv_macs_per_frame`); 1 MAC = 2 FLOP.
* The machine's own matrix-multiply speed (SGEMM: ``torch.mm`` of two 2048 x 2048 float32
  matrices) is measured in the same run, interleaved with the model timings, so that
  efficiency = fps x GFLOP/frame / SGEMM GFLOP/s compares like with like.
* Candidates are timed in interleaved rounds (A B C, A B C, ...) and each keeps its best
  round: other processes only ever make a run slower, so the minimum is the least disturbed
  estimate, and interleaving exposes every candidate to the same background load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from reconet.hardware import describe_device
from reconet.models.complexity import conv_macs_per_frame

SGEMM_SIZE = 2048


def gflop_per_frame(model: torch.nn.Module, height: int, width: int) -> float:
    """Convolution GFLOP for one frame (2 FLOP per multiply-accumulate)."""

    return 2 * conv_macs_per_frame(model, height, width) / 1e9


class Sgemm:
    """Matrix-multiply GFLOP/s on the current device, best of all calls so far: float32 (SGEMM)
    by default; ``dtype=torch.bfloat16`` gives the bf16 rate low-precision inference can reach."""

    def __init__(self, device: torch.device | str = "cpu", size: int = SGEMM_SIZE, dtype: torch.dtype = torch.float32):
        self.device = torch.device(device)
        self.dtype = dtype
        generator = torch.Generator().manual_seed(0)
        self.a = torch.randn(size, size, generator=generator).to(self.device, dtype)
        self.b = torch.randn(size, size, generator=generator).to(self.device, dtype)
        self.size = size
        self.best = 0.0
        torch.mm(self.a, self.b)  # warm-up (thread pools, MKL buffers)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def measure(self, repeats: int = 2) -> float:
        self._sync()
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(self.a, self.b)
        self._sync()
        gflops = repeats * 2 * self.size**3 / (time.perf_counter() - start) / 1e9
        self.best = max(self.best, gflops)
        return gflops


@dataclass
class Timing:
    """Best and all per-call times (seconds per call) of one candidate."""

    times: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        ordered = sorted(self.times)
        return ordered[len(ordered) // 2]


def interleaved(
    candidates: dict[str, Callable[[], object]],
    rounds: int,
    sgemm: Sgemm | None = None,
    sync: Callable[[], None] | None = None,
) -> dict[str, Timing]:
    """Time every candidate once per round, in turn, with an SGEMM measurement between them."""
    timings = {name: Timing() for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            if sgemm is not None:
                sgemm.measure()
            start = time.perf_counter()
            run()
            if sync is not None:
                sync()
            timings[name].times.append(time.perf_counter() - start)
    if sgemm is not None:
        sgemm.measure()
    return timings
