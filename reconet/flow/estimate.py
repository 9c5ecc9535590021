"""Optical-flow estimation for data without ground-truth flow (real video, evaluation).

Three estimators share one call signature, ``estimator(frame1, frame2) -> flow``:

* :class:`DISFlowEstimator` - OpenCV's Dense Inverse Search (Kroeger et al., ECCV 2016).
  CPU only, no weights, always available; the offline default.
* :class:`FarnebackFlowEstimator` - OpenCV's polynomial-expansion flow (Farnebäck, SCIA 2003).
  CPU only, no weights; less accurate than DIS, but a different algorithm, which makes it a
  useful second opinion (:func:`reconet.flow.occlusion.agreement_mask`).
* :class:`RAFTFlowEstimator` - torchvision's RAFT (Teed & Deng, ECCV 2020), ``raft_large`` or
  ``raft_small``. Far more accurate, but needs weights: reconet never downloads them, it
  loads a local file or a checkpoint already in the torch hub cache.

Frames are (B, 3, H, W) RGB float in [0, 1] (the package convention); the result is the forward
flow frame1 -> frame2 on frame1's grid, (B, 2, H, W) float32 on the frames' device, in pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from reconet.flow.occlusion import mask_from_flows
from reconet.image import tensor_to_uint8

__all__ = [
    "FlowEstimator",
    "FlowEstimatorError",
    "RAFTWeightsNotFoundError",
    "DISFlowEstimator",
    "FarnebackFlowEstimator",
    "FLOW_METHODS",
    "RAFTFlowEstimator",
    "build_flow_estimator",
    "estimate_flows",
    "find_cached_raft_weights",
    "load_raft",
]

# Every ``method`` of build_flow_estimator; "auto" = RAFT with local weights, else DIS.
FLOW_METHODS = ("auto", "raft", "dis", "farneback")

# Preset name -> OpenCV constant name (cv2 is imported only when DIS is used, so importing
# reconet.flow stays cheap).
DIS_PRESETS = {
    "ultrafast": "DISOPTICAL_FLOW_PRESET_ULTRAFAST",
    "fast": "DISOPTICAL_FLOW_PRESET_FAST",
    "medium": "DISOPTICAL_FLOW_PRESET_MEDIUM",
}
# OpenCV's DIS refuses images with both sides below this (dis_flow.cpp).
_DIS_MIN_SIDE = 12
# RAFT downsamples by 8 and its correlation pyramid needs feature maps of at least 16 x 16.
_RAFT_MULTIPLE = 8
_RAFT_MIN_SIDE = 128


class FlowEstimatorError(ValueError):
    """A flow estimator that cannot be built: unknown method, unusable weights file."""


class RAFTWeightsNotFoundError(FlowEstimatorError, FileNotFoundError):
    """RAFT was requested but no local weights file exists (reconet never downloads weights)."""


class FlowEstimator(Protocol):
    """``name`` says which estimator runs; calling it gives the forward flow frame1 -> frame2."""

    name: str

    def __call__(self, frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor: ...


def _check_frames(frame1: torch.Tensor, frame2: torch.Tensor) -> None:
    if frame1.ndim != 4 or frame1.shape[1] != 3 or frame1.shape != frame2.shape:
        raise ValueError(
            "flow estimators expect two frames of the same shape (B, 3, H, W), got "
            f"{tuple(frame1.shape)} and {tuple(frame2.shape)}"
        )
    if not frame1.is_floating_point() or not frame2.is_floating_point():
        raise ValueError(f"frames must be float RGB in [0, 1], got {frame1.dtype} and {frame2.dtype}")


class DISFlowEstimator:
    """OpenCV DIS optical flow on grey-level frames.

    Frames are converted to 8-bit with :func:`reconet.image.tensor_to_uint8` (the package's one
    uint8 conversion), then to grey with OpenCV's RGB -> grey weights, and each batch item is
    solved on the CPU. Frames need at least 12 pixels on one side (an OpenCV limit).
    """

    name = "dis"

    def __init__(self, preset: str = "medium") -> None:
        if preset not in DIS_PRESETS:
            raise FlowEstimatorError(f"unknown DIS preset {preset!r}; choose from {sorted(DIS_PRESETS)}")
        import cv2

        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(getattr(cv2, DIS_PRESETS[preset]))

    def __repr__(self) -> str:
        return f"DISFlowEstimator(preset={self.preset!r})"

    def __call__(self, frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
        _check_frames(frame1, frame2)
        height, width = frame1.shape[-2:]
        if max(height, width) < _DIS_MIN_SIDE:
            raise ValueError(
                f"DIS needs frames with at least {_DIS_MIN_SIDE} pixels on one side, "
                f"got {tuple(frame1.shape)}"
            )
        flows = [
            self._dis.calc(grey1, grey2, None)  # (H, W, 2) float32, (u, v)
            for grey1, grey2 in zip(_grey_uint8(frame1), _grey_uint8(frame2))
        ]
        flow = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2)  # (B, 2, H, W)
        return flow.contiguous().to(device=frame1.device, dtype=torch.float32)


def _grey_uint8(frames: torch.Tensor) -> list[np.ndarray]:
    """(B, 3, H, W) RGB in [0, 1] -> B grey (H, W) uint8 images (OpenCV's RGB -> grey weights)."""
    import cv2

    return [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in tensor_to_uint8(frames)]


class FarnebackFlowEstimator:
    """OpenCV Farnebäck optical flow on grey-level frames (CPU, no weights).

    Settings are OpenCV's documented example (pyramid scale 0.5, 5 levels, 15 px window,
    3 iterations, polynomial neighbourhood 5 with sigma 1.1), with Gaussian window weighting.
    """

    name = "farneback"

    def __repr__(self) -> str:
        return "FarnebackFlowEstimator()"

    def __call__(self, frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
        _check_frames(frame1, frame2)
        import cv2

        flows = [
            cv2.calcOpticalFlowFarneback(grey1, grey2, None, 0.5, 5, 15, 3, 5, 1.1, cv2.OPTFLOW_FARNEBACK_GAUSSIAN)
            for grey1, grey2 in zip(_grey_uint8(frame1), _grey_uint8(frame2))
        ]  # each (H, W, 2) float32, (u, v)
        flow = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2)  # (B, 2, H, W)
        return flow.contiguous().to(device=frame1.device, dtype=torch.float32)


class RAFTFlowEstimator:
    """torchvision RAFT wrapped to the package conventions.

    Per call: frames are mapped from [0, 1] to [-1, 1] (what torchvision's RAFT weights were
    trained on, cf. ``Raft_Large_Weights.transforms``), replicate-padded symmetrically to a
    multiple of 8 and at least 128 px per side (RAFT's 1/8-resolution correlation pyramid needs
    16 x 16 feature maps), run for ``num_flow_updates`` refinement iterations, and the last
    prediction is cropped back to the frames' size.

    Args:
        model: a torchvision ``RAFT`` module (its weights already loaded).
        name: "raft_large" or "raft_small".
        device: where the network runs; None = on the frames' device. The flow is returned on
            the frames' device either way.
        num_flow_updates: RAFT's recurrent refinement steps (12 in torchvision and the paper).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        name: str,
        device: str | torch.device | None = None,
        num_flow_updates: int = 12,
    ) -> None:
        self.model = model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.name = name
        self.device = torch.device(device) if device is not None else None
        self.num_flow_updates = int(num_flow_updates)

    def __repr__(self) -> str:
        return f"RAFTFlowEstimator(name={self.name!r}, device={self.device}, num_flow_updates={self.num_flow_updates})"

    def __call__(self, frame1: torch.Tensor, frame2: torch.Tensor) -> torch.Tensor:
        _check_frames(frame1, frame2)
        device = self.device if self.device is not None else frame1.device
        self.model.to(device)
        height, width = frame1.shape[-2:]
        padded_h = max(_RAFT_MIN_SIDE, -(-height // _RAFT_MULTIPLE) * _RAFT_MULTIPLE)
        padded_w = max(_RAFT_MIN_SIDE, -(-width // _RAFT_MULTIPLE) * _RAFT_MULTIPLE)
        top, left = (padded_h - height) // 2, (padded_w - width) // 2
        padding = (left, padded_w - width - left, top, padded_h - height - top)

        def prepare(frame: torch.Tensor) -> torch.Tensor:
            # New tensors only: the caller's frames are never modified.
            frame = frame.to(device=device, dtype=torch.float32) * 2.0 - 1.0  # [0, 1] -> [-1, 1]
            return F.pad(frame, padding, mode="replicate")  # (B, 3, H_pad, W_pad)

        with torch.inference_mode():
            predictions = self.model(prepare(frame1), prepare(frame2), num_flow_updates=self.num_flow_updates)
        flow = predictions[-1][:, :, top : top + height, left : left + width]  # (B, 2, H, W)
        # Out of inference mode so callers may use the flow in autograd graphs (as a constant).
        return flow.clone().to(device=frame1.device, dtype=torch.float32)


def _raft_builders() -> dict:
    from torchvision.models.optical_flow import raft_large, raft_small

    return {"raft_large": raft_large, "raft_small": raft_small}


def _raft_cache_candidates() -> list[tuple[str, Path]]:
    """(architecture, path) of every torchvision RAFT checkpoint name in the hub cache, preferred first."""
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    candidates = []
    for arch, enum in (("raft_large", Raft_Large_Weights), ("raft_small", Raft_Small_Weights)):
        # The DEFAULT weights first, then the other variants.
        for weights in [enum.DEFAULT] + [w for w in enum if w is not enum.DEFAULT]:
            candidates.append((arch, checkpoints / Path(weights.url).name))
    return candidates


def find_cached_raft_weights() -> Path | None:
    """A torchvision RAFT checkpoint already in the torch hub cache (``$TORCH_HOME/hub/checkpoints``), or None.

    Only looks; never downloads. raft_large (default weights first) is preferred over raft_small.
    """
    for _, path in _raft_cache_candidates():
        if path.is_file():
            return path
    return None


def load_raft(path: str | Path) -> tuple[torch.nn.Module, str]:
    """Load a RAFT checkpoint (a torchvision state dict) -> (model, "raft_large" | "raft_small").

    The architecture is recognised from the state dict's keys and shapes; loading is strict, so a
    file for another network is rejected with the keys that do not fit, never half-loaded.
    ``torch.load(weights_only=True)``: no code in the file is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise RAFTWeightsNotFoundError(f"{path}: RAFT weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        # torch.load has no single error type: UnpicklingError, RuntimeError (bad zip),
        # EOFError, even IndexError from the weights-only unpickler on arbitrary bytes.
        raise FlowEstimatorError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FlowEstimatorError(f"{path}: expected a RAFT state dict (name -> tensor)")

    best = None
    for arch, builder in _raft_builders().items():
        model = builder(weights=None)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        if expected == found:
            model.load_state_dict(state, strict=True)
            return model, arch
        missing = sorted(expected.keys() - found.keys())
        unexpected = sorted(found.keys() - expected.keys())
        mismatched = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
        errors = len(missing) + len(unexpected) + len(mismatched)
        if best is None or errors < best[0]:
            best = (errors, arch, missing, unexpected, mismatched)
    _, arch, missing, unexpected, mismatched = best
    raise FlowEstimatorError(
        f"{path}: not a torchvision RAFT state dict (closest: {arch}; "
        f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, "
        f"{len(mismatched)} with wrong shapes {mismatched[:3]})"
    )


def build_flow_estimator(
    method: str = "auto",
    raft_weights: str | Path | None = None,
    device: str | torch.device | None = None,
    *,
    dis_preset: str = "medium",
    num_flow_updates: int = 12,
) -> FlowEstimator:
    """Build a flow estimator; its ``.name`` says which one ("dis", "farneback", "raft_large", "raft_small").

    Args:
        method: "dis", "farneback", "raft", or "auto" = RAFT if weights are available locally (``raft_weights``
            or the torch hub cache, see :func:`find_cached_raft_weights`), else DIS.
        raft_weights: path to a torchvision RAFT state dict (``raft_large_*.pth`` or
            ``raft_small_*.pth`` as published by torchvision). A path that does not exist is an
            error, also with "auto": an explicit request is never silently replaced.
        device: where RAFT runs (None = the frames' device). DIS always runs on the CPU; both
            return the flow on the frames' device.
        dis_preset: "ultrafast" | "fast" | "medium".
        num_flow_updates: RAFT refinement iterations.

    Raises:
        RAFTWeightsNotFoundError: "raft" without local weights, or a missing weights file.
        FlowEstimatorError: unknown method or preset, unusable weights file.
    """
    if method not in FLOW_METHODS:
        raise FlowEstimatorError(f"unknown flow method {method!r}; choose from {', '.join(FLOW_METHODS)}")
    if method == "dis":
        return DISFlowEstimator(dis_preset)
    if method == "farneback":
        return FarnebackFlowEstimator()
    if raft_weights is None:
        raft_weights = find_cached_raft_weights()
        if raft_weights is None:
            if method == "auto":
                return DISFlowEstimator(dis_preset)
            names = ", ".join(path.name for _, path in _raft_cache_candidates()[:1])
            raise RAFTWeightsNotFoundError(
                "flow method 'raft' needs local weights and none were given or found: pass "
                f"raft_weights=<path to a torchvision RAFT .pth> or place e.g. {names} in "
                f"{Path(torch.hub.get_dir()) / 'checkpoints'} (reconet never downloads weights); "
                "method 'dis' or 'auto' work offline"
            )
    model, arch = load_raft(raft_weights)
    return RAFTFlowEstimator(model, arch, device=device, num_flow_updates=num_flow_updates)


def estimate_flows(
    estimator: FlowEstimator, frame1: torch.Tensor, frame2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward flow, backward flow and validity mask of a frame pair.

    Both directions are estimated (in one batched call): the backward flow frame2 -> frame1 is
    computed on frame2's grid, never obtained by negating the forward flow. The mask is
    :func:`reconet.flow.occlusion.mask_from_flows` (1 = use pixel: forward-backward consistent,
    no motion boundary, target inside the frame).

    Args:
        estimator: from :func:`build_flow_estimator`.
        frame1, frame2: (B, 3, H, W) RGB float in [0, 1], frames N and N+1.

    Returns:
        forward (B, 2, H, W) N -> N+1 on frame N's grid, backward (B, 2, H, W) N+1 -> N on frame
        N+1's grid, mask (B, 1, H, W) float on frame N's grid.
    """
    _check_frames(frame1, frame2)
    batch = frame1.shape[0]
    flows = estimator(torch.cat([frame1, frame2]), torch.cat([frame2, frame1]))  # (2B, 2, H, W)
    forward, backward = flows[:batch], flows[batch:]
    return forward, backward, mask_from_flows(forward, backward)
