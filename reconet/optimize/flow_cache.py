"""A disk cache in front of any flow estimator.

Estimating flow (RAFT or DIS) costs about as much as a few optimizer iterations, and a resumed
or re-tuned run needs exactly the same flows again. Each flow is stored as a Middlebury ``.flo``
file (:mod:`reconet.flow.io`, written atomically) named by a SHA-256 of

    estimator name + caller-given settings + both frames' shapes and float32 bytes,

so a different frame, size, estimator or estimator setting can never hit a stale entry.
The direction is part of the key (frame order), so flow(a -> b) and flow(b -> a) are distinct.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from reconet.flow.io import FlowFileError, read_flo, write_flo

CACHE_VERSION = "1"


class CachedFlowEstimator:
    """Wraps ``estimator(frame1, frame2) -> (B, 2, H, W)`` forward flow frame1 -> frame2.

    Args:
        estimator: object with ``name`` and ``__call__`` as returned by
            :func:`reconet.flow.estimate.build_flow_estimator`.
        directory: cache folder (created on first write).
        settings: anything else that changes the estimator's output (e.g. the RAFT weight
            file), folded into the key.

    ``hits`` and ``misses`` count lookups (useful to verify a resumed run reused its flows).
    """

    def __init__(self, estimator, directory: str | Path, settings: str = "") -> None:
        self.estimator = estimator
        self.directory = Path(directory)
        self.settings = settings
        self.name = getattr(estimator, "name", type(estimator).__name__)
        self.hits = 0
        self.misses = 0

    def key(self, frame1: torch.Tensor, frame2: torch.Tensor) -> str:
        digest = hashlib.sha256()
        # repr() of the estimators names their settings (DIS preset, RAFT refinement steps).
        digest.update(f"v{CACHE_VERSION}|{self.name}|{_describe(self.estimator)}|{self.settings}|".encode())
        for frame in (frame1, frame2):
            array = frame.detach().to("cpu", torch.float32).contiguous().numpy()
            digest.update(f"{array.shape}|".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()[:40]

    def __call__(self, frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W), (B, 3, H, W) in [0, 1] -> (B, 2, H, W) flow frame1 -> frame2 on frame1's grid."""
        if frame1.ndim != 4 or frame1.shape != frame2.shape:
            raise ValueError(
                f"flow frames must be equal (B, 3, H, W), got {tuple(frame1.shape)} and {tuple(frame2.shape)}"
            )
        flows = []
        for b in range(frame1.shape[0]):
            flows.append(self._one(frame1[b : b + 1], frame2[b : b + 1]))
        return torch.cat(flows)

    def _one(self, frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
        path = self.directory / f"{self.key(frame1, frame2)}.flo"
        if path.is_file():
            try:
                flow = read_flo(path)  # (H, W, 2)
            except FlowFileError:
                flow = None  # a damaged entry is recomputed and overwritten
            if flow is not None and flow.shape[:2] == tuple(frame1.shape[-2:]):
                self.hits += 1
                return torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1).unsqueeze(0).to(frame1.device)
        self.misses += 1
        # float32 on the way out too, so a cache hit and a miss give bit-identical flows.
        flow = self.estimator(frame1, frame2).detach().to(torch.float32)  # (1, 2, H, W)
        self.directory.mkdir(parents=True, exist_ok=True)
        write_flo(path, flow[0].cpu().permute(1, 2, 0).numpy())
        return flow


def _describe(estimator) -> str:
    """repr() of the estimators names their settings (DIS preset, RAFT refinement steps);
    a default object repr holds a memory address, which must not end up in a key."""
    text = repr(estimator)
    return type(estimator).__name__ if " at 0x" in text else text
