"""Optimization-based stylization of a frame sequence (Gatys et al. per frame, Ruder et al. in time).

For frame t = 0, 1, ...:

1. Frame 0 (or every frame when ``warm_start`` is off) starts from the content frame or noise.
2. Frame t > 0: the flow from frame t to frame t-1 is estimated *on frame t's grid*,
   ``back = estimator(frame_t, frame_{t-1})`` (together with the flow in the other direction,
   for the forward-backward consistency mask M; :func:`reconet.flow.estimate.estimate_flows`).
   ``warp(s_{t-1}, back)`` then brings the previous stylized frame onto frame t's grid
   (:func:`reconet.flow.warp.warp` samples its input at p + back(p)). The start image is

       x0 = warp(s_{t-1}, back)                       (occlusion_fill "warped", default)
       x0 = M * warp(s_{t-1}, back) + (1 - M) * c_t   (occlusion_fill "content")

   the second taking occluded, inconsistent and out-of-frame pixels from the content frame c_t.
   A negated forward flow t-1 -> t is never used in place of ``back``: it lives on frame t-1's
   grid. With ``flow_agreement`` the mask also requires a second estimator's agreement.
3. The objective of :class:`reconet.optimize.objective.GatysObjective` (content, style, TV and
   the temporal terms against the same warped frame and mask) is minimized for ``iterations``
   (frame 0) or ``iterations_warm`` (warm-started frames) iterations.
4. The result is rounded to 8 bits (what is written anyway) before it becomes s_t, so that a
   run resumed from the saved frames continues from exactly the same image.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from reconet.flow.estimate import FarnebackFlowEstimator, build_flow_estimator, estimate_flows
from reconet.flow.occlusion import agreement_mask
from reconet.flow.warp import warp
from reconet.image import tensor_to_uint8, uint8_to_tensor
from reconet.models.loss_network import build_loss_network
from reconet.optimize.config import OptimizeConfig
from reconet.optimize.flow_cache import CachedFlowEstimator
from reconet.optimize.objective import GatysObjective, auto_optimize_candidates, resolve_optimize_precision
from reconet.optimize.parts import PartsDir
from reconet.optimize.solver import solve
from reconet.tuning import Choice, TuningCache, choose_fastest, gradient_parity


@dataclass
class FrameResult:
    """One finished frame, as yielded by :meth:`VideoOptimizer.stylize`."""

    index: int
    image: torch.Tensor  # (3, H, W) float in [0, 1] on the CPU, exactly representable in 8 bits
    terms: dict[str, float] = field(default_factory=dict)  # weighted loss terms + "total"; {} if resumed
    iterations: int = 0
    seconds: float = 0.0
    resumed: bool = False  # loaded from the work directory, not optimized in this run
    warm: bool = False  # started from the warped previous frame
    coverage: float | None = None  # fraction of pixels taken from the previous frame (mean of M)
    history: list[float] = field(default_factory=list)  # total loss per evaluation; [] if resumed


class VideoOptimizer:
    """Stylizes frame sequences with one style image.

    Args:
        style_image: (3, H, W) RGB in [0, 1].
        config: :class:`OptimizeConfig`.
        device: where the loss network and the optimization run ("cpu", "cuda", "cuda:1", ...).
        loss_network: an already built loss network (tests inject a random-weight one); default
            :func:`reconet.models.loss_network.build_loss_network` from the config.
        flow_estimator: ``estimator(frame1, frame2) -> (B, 2, H, W)`` with ``name``; default
            :func:`reconet.flow.estimate.build_flow_estimator` from the config.
        second_flow_estimator: the second opinion of ``config.flow_agreement``; default
            :class:`reconet.flow.estimate.FarnebackFlowEstimator`.
        precision: fp32 (default), bf16 or auto, what the loss network runs in
            (:func:`reconet.optimize.objective.resolve_optimize_precision`).
    """

    def __init__(
        self,
        style_image: torch.Tensor,
        config: OptimizeConfig | None = None,
        *,
        device: str | torch.device = "cpu",
        loss_network: torch.nn.Module | None = None,
        flow_estimator=None,
        second_flow_estimator=None,
        precision: str = "fp32",
    ) -> None:
        self.config = config or OptimizeConfig()
        self.device = torch.device(device)
        self.dtype = resolve_optimize_precision(precision, self.device)
        # auto with a choice to make: fp32 until the first frame is measured (_settle_precision).
        self._auto_choices = auto_optimize_candidates(self.device)[1:] if precision == "auto" else ()
        self.precision_choice: Choice | None = None
        if style_image.ndim != 3 or style_image.shape[0] != 3:
            raise ValueError(f"style image must be (3, H, W), got {tuple(style_image.shape)}")
        self.style_image = style_image.detach().float().cpu()
        if loss_network is None:
            # Random weights (tests, smoke runs) are drawn from the run's seed, so that a resumed
            # run continues with the same network as the interrupted one.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.config.seed)
                loss_network = build_loss_network(
                    self.config.loss_network, layers=self.config.layers, weights=self.config.loss_weights
                )
        self.loss_network = loss_network.to(self.device)
        self.flow_estimator = flow_estimator
        self.second_flow_estimator = second_flow_estimator
        self._objectives: dict[tuple[int, int], GatysObjective] = {}

    # -- building blocks --------------------------------------------------------------------
    def _settle_precision(self, frame: torch.Tensor) -> None:
        """``auto`` with a choice: time one evaluation (loss and gradient, from the content
        frame) per candidate on ``frame`` (3, H, W) or (1, 3, H, W), keep the fastest that meets
        the gradient parity bar; cached per machine, loss network and frame size."""
        if not self._auto_choices:
            return
        content = frame.detach().float().reshape(1, *frame.shape[-3:]).to(self.device)  # (1, 3, H, W)
        size = (int(content.shape[-2]), int(content.shape[-1]))

        def evaluation(dtype: torch.dtype):
            objective = GatysObjective(self.loss_network, self.style_image, self.config, size, dtype)
            targets = objective.targets(content)

            def run() -> tuple[torch.Tensor, torch.Tensor]:
                image = content.clone().requires_grad_(True)
                total = objective(image, targets)["total"]
                (grad,) = torch.autograd.grad(total, image)
                return total.detach(), grad.flatten()

            return run

        names = {torch.float32: "fp32", torch.bfloat16: "bf16"}
        candidates = (self.dtype, *self._auto_choices)
        network = self.loss_network
        key = (
            f"precision|optimize|{getattr(network, 'name', type(network).__name__)}|"
            f"{getattr(network, 'weights_source', '')}|{'x'.join(map(str, content.shape))}"
        )
        self.precision_choice = choose_fastest(
            {names[dtype]: evaluation(dtype) for dtype in candidates},
            reference=names[self.dtype],
            parity=gradient_parity,
            key=key,
            cache=TuningCache.default(),
        )
        self.dtype = torch.bfloat16 if self.precision_choice.name == "bf16" else torch.float32
        self._auto_choices = ()
        self._objectives.clear()

    def objective(self, frame_size: tuple[int, int]) -> GatysObjective:
        """The objective for frames of ``frame_size`` (style Grams computed once per size)."""
        key = (int(frame_size[0]), int(frame_size[1]))
        if key not in self._objectives:
            self._objectives[key] = GatysObjective(self.loss_network, self.style_image, self.config, key, self.dtype)
        return self._objectives[key]

    def estimator(self):
        if self.flow_estimator is None:
            self.flow_estimator = build_flow_estimator(
                self.config.flow, raft_weights=self.config.raft_weights, device=self.device
            )
        return self.flow_estimator

    def fingerprint(self, first_frame: torch.Tensor, source: str = "") -> dict:
        """Everything that determines the frames, for the resume check of :class:`PartsDir`."""
        self._settle_precision(first_frame)
        # fp32 adds no key, so work directories written before precision existed still resume.
        precision = {} if self.dtype == torch.float32 else {"precision": str(self.dtype).replace("torch.", "")}
        return {
            **precision,
            "config": self.config.to_dict(),
            "style_sha256": _tensor_sha256(self.style_image),
            "loss_network": getattr(self.loss_network, "name", type(self.loss_network).__name__),
            "loss_network_weights": str(getattr(self.loss_network, "weights_source", "")),
            "flow_estimator": getattr(self.estimator(), "name", ""),
            "frame_size": list(first_frame.shape[-2:]),
            "first_frame_sha256": _tensor_sha256(first_frame),
            "source": source,
        }

    def initial_image(self, content: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) start of a frame without a usable previous frame: content or noise."""
        if self.config.first_init == "content":
            return content.clone()
        # A CPU generator seeded per run: the same noise on every device and every (resumed) run.
        generator = torch.Generator().manual_seed(self.config.seed)
        return torch.rand(content.shape, generator=generator).to(content.device)

    def warm_start_image(
        self, content: torch.Tensor, previous_content: torch.Tensor, previous_stylized: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Previous stylized frame brought onto the current frame's grid, and its mask.

        Args:
            content: (1, 3, H, W) frame t.
            previous_content: (1, 3, H, W) frame t-1.
            previous_stylized: (1, 3, H, W) s_{t-1}.

        Returns:
            warped (1, 3, H, W) = warp(s_{t-1}, flow t -> t-1), mask (1, 1, H, W) on frame t's
            grid, 1 = forward-backward consistent, inside frame t-1 and (with
            ``config.flow_agreement``) confirmed by the second estimator.
        """
        # estimate_flows(e, a, b) returns the flow a -> b on a's grid first; with a = frame t it
        # is the flow that samples frame t-1 at the positions frame t's pixels came from.
        back, _, mask = estimate_flows(self.estimator(), content, previous_content)  # (1,2,H,W), _, (1,1,H,W)
        if self.config.flow_agreement > 0:
            if self.second_flow_estimator is None:
                self.second_flow_estimator = FarnebackFlowEstimator()
            second = self.second_flow_estimator(content, previous_content)  # (1, 2, H, W), same direction
            mask = mask * agreement_mask(back, second, self.config.flow_agreement)
        warped = warp(previous_stylized, back.to(previous_stylized.dtype))  # (1, 3, H, W)
        return warped, mask.to(content.dtype)

    def optimize_frame(
        self,
        content: torch.Tensor,
        previous: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, float], int, bool, float | None, list[float]]:
        """Stylize one frame.

        Args:
            content: (1, 3, H, W) frame t on the device.
            previous: (content, stylized) of frame t-1, each (1, 3, H, W), or None.

        Returns:
            image (1, 3, H, W), loss terms, iterations, warm-started?, mask coverage, loss history.
        """
        cfg = self.config
        self._settle_precision(content)
        objective = self.objective(tuple(content.shape[-2:]))
        warped = mask = None
        if previous is not None and (cfg.warm_start or objective.uses_temporal):
            warped, mask = self.warm_start_image(content, *previous)
        warm = warped is not None and cfg.warm_start
        if warm and cfg.occlusion_fill == "warped":
            init = warped
        elif warm:
            init = mask * warped + (1.0 - mask) * content  # (1, 3, H, W)
        else:
            init = self.initial_image(content)
        targets = objective.targets(content, warped, mask)
        result = solve(
            lambda image: objective(image, targets),
            init,
            optimizer=cfg.optimizer,
            iterations=cfg.iterations_warm if warm else cfg.iterations,
            lr=cfg.learning_rate,
            parametrization=cfg.parametrization,
            tolerance=cfg.tolerance,
            patience=cfg.patience,
            line_search=cfg.line_search,
        )
        coverage = float(mask.mean()) if mask is not None else None
        return result.image, result.terms, result.iterations, warm, coverage, result.history

    # -- the sequence -----------------------------------------------------------------------
    def stylize(
        self,
        frames: Iterable[torch.Tensor],
        *,
        parts: PartsDir | None = None,
        source: str = "",
        restart: bool = False,
        flow_cache: str | Path | None = None,
    ) -> Iterator[FrameResult]:
        """Stylize ``frames`` ((3, H, W) in [0, 1], all the same size) in order, yielding each result.

        Args:
            frames: the content frames.
            parts: work directory; finished frames found there (made with the same fingerprint)
                are loaded instead of optimized, new ones are saved as they finish.
            source: description of the input for the fingerprint (e.g. its path).
            restart: discard finished frames of a run with other settings instead of refusing.
            flow_cache: folder of the flow cache (default: ``parts/flows`` when ``parts`` is given).
        """
        if flow_cache is None and parts is not None:
            flow_cache = parts.flows_dir
        base = self.estimator()
        if isinstance(base, CachedFlowEstimator):  # wrapped by an earlier call: re-wrap for this one
            base = base.estimator
        if flow_cache is not None:
            settings = f"raft_weights={self.config.raft_weights}" if self.config.raft_weights else ""
            self.flow_estimator = CachedFlowEstimator(base, flow_cache, settings=settings)
        else:
            self.flow_estimator = base

        previous: tuple[torch.Tensor, torch.Tensor] | None = None
        size = None
        for index, frame in enumerate(frames):
            if frame.ndim != 3 or frame.shape[0] != 3:
                raise ValueError(f"frame {index}: expected (3, H, W), got {tuple(frame.shape)}")
            if size is None:
                size = tuple(frame.shape)
                if parts is not None:
                    parts.open(self.fingerprint(frame, source), restart=restart)
            elif tuple(frame.shape) != size:
                raise ValueError(f"frame {index}: size {tuple(frame.shape)} differs from the first frame's {size}")
            content = frame.detach().float().unsqueeze(0).to(self.device)  # (1, 3, H, W)
            started = time.perf_counter()

            done = parts.load(index) if parts is not None else None
            if done is not None:
                if tuple(done.shape) != size:
                    raise ValueError(f"{parts.frame_path(index)}: size {tuple(done.shape)}, expected {size}")
                stylized = done.unsqueeze(0).to(self.device)
                result = FrameResult(index, done, resumed=True, seconds=time.perf_counter() - started)
            else:
                image, terms, iterations, warm, coverage, history = self.optimize_frame(content, previous)
                # Round to 8 bits: the saved frame and the next frame's start are then identical.
                cpu = uint8_to_tensor(tensor_to_uint8(image[0]))  # (3, H, W)
                if parts is not None:
                    parts.save(index, cpu)
                stylized = cpu.unsqueeze(0).to(self.device)
                result = FrameResult(
                    index,
                    cpu,
                    terms=terms,
                    iterations=iterations,
                    seconds=time.perf_counter() - started,
                    warm=warm,
                    coverage=coverage,
                    history=history,
                )
            previous = (content, stylized)
            yield result


def _tensor_sha256(tensor: torch.Tensor) -> str:
    array = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
    return hashlib.sha256(str(array.shape).encode() + array.tobytes()).hexdigest()
