"""Measured choices, kept on disk per machine: convolution kernels and ``auto`` precisions.

Some choices depend only on the machine and the work, and are best made by timing the
candidates rather than by rules: which kernel runs a convolution layer fastest
(:mod:`reconet.inference.accelerate`), and whether bf16 beats fp32 for a network at a frame size
(``auto`` precision in stylize, evaluate, optimize and training). Timing costs seconds that a
video repays after a few frames but a single photo pays in full (one 854x480 photo with the
tiny network: 6.9 s of a 9.5 s run when tuning kernels), so every choice is stored and later
runs reuse it. :func:`choose_fastest` is the one timing-and-parity routine behind them.

One JSON file per machine fingerprint -- CPU model, CPU feature flags, torch version, torch
thread count, NNPACK availability -- so a cache copied to (or shared with) another kind of
machine is never consulted there. Inside, a key names what was chosen (a layer with its input
shape and dtype; a network, its weights and frame size for a precision).

Safe under concurrent runs: every update re-reads the file under an exclusive ``flock`` on a
lock file beside it, merges its entries and replaces the file atomically
(:func:`reconet.fileio.atomic_write`), so readers (who take no lock) see the old or the new
file, never a partial one, and no writer drops another's entries. A missing, unreadable or
corrupt file is treated as empty; a cache directory that cannot be written is reported once
and the work goes on without it.

Location: ``$RECONET_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/reconet``, else
``~/.cache/reconet``. ``RECONET_TUNING_CACHE=off`` (or the older ``RECONET_KERNEL_CACHE=off``)
disables it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch

from reconet.fileio import atomic_write
from reconet.hardware import cpu_features, cpu_model_name, nnpack_available

try:  # POSIX; elsewhere updates are still atomic, only concurrent merges may lose entries
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

FORMAT = 1
T = TypeVar("T")


def cache_dir() -> Path:
    """Where reconet keeps caches (see the module docstring)."""
    if os.environ.get("RECONET_CACHE_DIR"):
        return Path(os.environ["RECONET_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "reconet"
    return Path.home() / ".cache" / "reconet"


def machine_fingerprint() -> dict[str, object]:
    """Everything a kernel's speed depends on besides the layer and its input."""
    return {
        "cpu": cpu_model_name(),
        "features": sorted(cpu_features()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "nnpack": nnpack_available(),
    }


class TuningCache:
    """Choices by key, read from and merged into one JSON file.

    Args:
        path: the JSON file (its folder is created on the first write).
        fingerprint: stored in the file and checked on reading: a file written under another
            fingerprint is ignored (and replaced on the next write).
    """

    def __init__(self, path: str | os.PathLike, fingerprint: dict[str, object] | None = None) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint if fingerprint is not None else machine_fingerprint()
        self._choices: dict[str, str] | None = None
        self._write_failed = False

    @classmethod
    def default(cls) -> TuningCache | None:
        """The cache for this machine in :func:`cache_dir`; None if ``RECONET_TUNING_CACHE=off``."""
        for switch in ("RECONET_TUNING_CACHE", "RECONET_KERNEL_CACHE"):
            if os.environ.get(switch, "").lower() in ("0", "off", "false", "no"):
                return None
        fingerprint = machine_fingerprint()
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
        return cls(cache_dir() / f"tuning-{digest}.json", fingerprint)

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("machine") != self.fingerprint:
            return {}
        choices = data.get("choices")
        if not isinstance(choices, dict):
            return {}
        return {str(k): v for k, v in choices.items() if isinstance(v, str)}

    def get(self, key: str) -> str | None:
        if self._choices is None:
            self._choices = self._read()
        return self._choices.get(key)

    def put(self, key: str, choice: str) -> None:
        """Record ``choice`` for ``key`` here and in the file (merged with what others wrote)."""
        if self._choices is None:
            self._choices = self._read()
        self._choices[key] = choice
        if self._write_failed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                merged = {**self._read(), **self._choices}
                text = json.dumps({"format": FORMAT, "machine": self.fingerprint, "choices": merged}, indent=1, sort_keys=True)
                atomic_write(self.path, lambda handle: handle.write(text.encode("utf-8") + b"\n"))
            self._choices = merged
        except OSError as error:
            self._write_failed = True
            warnings.warn(f"tuning cache {self.path} not written ({error.strerror or error}); measured choices are not reused", stacklevel=2)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


# -- choosing by measurement ------------------------------------------------------------------


@dataclass
class Measurement:
    """One candidate as :func:`choose_fastest` measured it."""

    seconds: float  # best of the timed rounds (inf when it failed the parity bar, untimed)
    parity: float  # what the parity function returned for it (the reference's own: nan)
    passed: bool  # met the parity bar (the reference always does)


@dataclass
class Choice:
    """The outcome of :func:`choose_fastest`: the name, and how it was reached."""

    name: str
    how: str  # "measured", "cached", "not measured" (timing not allowed, nothing cached)
    measurements: dict[str, Measurement] = field(default_factory=dict)

    def describe(self) -> str:
        """``bf16 (measured: fp32 0.52 s, bf16 0.31 s; bf16 51.2)`` and the like, for logs."""
        if not self.measurements:
            return f"{self.name} ({self.how})"
        parts = [f"{name} {m.seconds:.3g} s" if m.passed else f"{name} failed parity ({m.parity:.3g})"
                 for name, m in self.measurements.items()]
        return f"{self.name} ({self.how}: {', '.join(parts)})"


def choose_fastest(
    candidates: dict[str, Callable[[], T]],
    *,
    reference: str,
    parity: Callable[[T, T], tuple[float, bool]] | Mapping[str, Callable[[T, T], tuple[float, bool]]],
    key: str,
    cache: TuningCache | None,
    measure: bool = True,
    rounds: int = 2,
) -> Choice:
    """The fastest of ``candidates`` whose result meets the parity bar against ``reference``'s.

    Each candidate is a zero-argument callable doing the work once and returning its result
    (synchronized: the time of the call is the time of the work). A cached choice for ``key``
    that is still a candidate is returned without running anything. Otherwise, if ``measure``:
    every candidate runs once untimed (warm-up: first-call costs such as kernel tuning or
    oneDNN's primitive creation are not what a long job pays per call); ``parity(reference
    result, result)`` -> (value, passed) excludes the ones that fail (a mapping gives each
    candidate its own bar, e.g. a looser one for int8 than for bf16); the others are timed in
    ``rounds`` interleaved rounds (A B, A B: both see the same background load), best round
    kept; the fastest wins and is cached. Without ``measure``, the reference.
    """
    if reference not in candidates:
        raise ValueError(f"reference {reference!r} is not one of the candidates {sorted(candidates)}")
    if cache is not None:
        cached = cache.get(key)
        if cached in candidates:
            return Choice(cached, "cached")
    if not measure:
        return Choice(reference, "not measured")
    expected = candidates[reference]()
    measurements = {reference: Measurement(math.inf, math.nan, True)}
    for name, run in candidates.items():
        if name != reference:
            check = parity[name] if isinstance(parity, Mapping) else parity
            value, passed = check(expected, run())
            measurements[name] = Measurement(math.inf, float(value), bool(passed))
    timed = [name for name, m in measurements.items() if m.passed]
    for _ in range(max(1, rounds)):
        for name in timed:
            start = time.perf_counter()
            candidates[name]()
            seconds = time.perf_counter() - start
            measurements[name].seconds = min(measurements[name].seconds, seconds)
    best = min(timed, key=lambda name: measurements[name].seconds)
    if cache is not None:
        cache.put(key, best)
    return Choice(best, "measured", measurements)


# The parity bar of a low-precision *training or optimization* step against fp32: the loss within
# 2 % and the gradient pointing the same way (cosine >= 0.95). Measured with bf16 autocast and
# fp32 losses: loss terms 0.25-0.65 % off, gradient cosine 0.988 (training, a Sintel pair,
# VGG-19) and 0.998 (optimization): a step in bf16 moves the weights where fp32 would.
GRADIENT_MAX_LOSS_DIFFERENCE = 0.02
GRADIENT_MIN_COSINE = 0.95


def gradient_parity(
    expected: tuple[torch.Tensor, torch.Tensor], got: tuple[torch.Tensor, torch.Tensor]
) -> tuple[float, bool]:
    """Parity of two (loss, flattened gradient) results for :func:`choose_fastest`: (gradient
    cosine, whether the loss is within 2 % and the cosine at least 0.95)."""
    (loss, grad), (other_loss, other_grad) = expected, got
    loss, other_loss = float(loss), float(other_loss)
    cosine = float(torch.nn.functional.cosine_similarity(grad.double(), other_grad.double(), dim=0))
    close = math.isfinite(other_loss) and abs(other_loss - loss) <= GRADIENT_MAX_LOSS_DIFFERENCE * abs(loss)
    return cosine, close and cosine >= GRADIENT_MIN_COSINE
