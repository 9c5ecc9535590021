"""Settings of optimization-based video stylization (one frozen dataclass, validated once).

Scale conventions (they decide what the default weights mean):
    * images are RGB float in [0, 1];
    * content loss = mean squared difference of the content-layer features;
    * style loss = sum over layers of the mean squared difference of Gram matrices normalized
      by C*H*W (:func:`reconet.losses.perceptual.gram_matrix`);
    * temporal pixel loss = (1/D) sum_p M(p) ||x(p) - W(s_{t-1})(p)||^2, D = 3*H*W;
    * temporal feature loss = sum over layers of (1/D_l) sum M_l ||F_l(x) - F_l(W(s_{t-1}))||^2.
The defaults were tuned so that, on the bundled VGG-19, style and content both visibly shape
the result and the temporal terms dominate only where the previous frame is reliable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from reconet.flow.estimate import FLOW_METHODS

# VGG-19 layer names; VGG-16 has every one of them too, so the defaults work for both.
DEFAULT_CONTENT_LAYER = "relu4_2"
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_TEMPORAL_FEATURE_LAYERS = ("relu1_1", "relu2_1")

OPTIMIZERS = ("lbfgs", "adam")
LINE_SEARCHES = ("none", "strong_wolfe")
PARAMETRIZATIONS = ("clamp", "sigmoid")
FIRST_INITS = ("content", "noise")
LOSS_NETWORKS = ("vgg19", "vgg16")
OCCLUSION_FILLS = ("content", "warped")

# Default learning rates per (optimizer, parametrization). L-BFGS takes Newton-like steps, so
# its natural step is 1. Adam's step is roughly lr per pixel per iteration: 0.02 of the [0, 1]
# range in pixel space; the sigmoid's slope is at most 1/4, so the logit space needs more.
_DEFAULT_LR = {
    ("lbfgs", "clamp"): 1.0,
    ("lbfgs", "sigmoid"): 1.0,
    ("adam", "clamp"): 0.02,
    ("adam", "sigmoid"): 0.1,
}


@dataclass(frozen=True)
class OptimizeConfig:
    """Everything that determines the stylized result (and therefore the resume fingerprint).

    Attributes:
        loss_network: "vgg19" (bundled offline weights, default) or "vgg16".
        loss_weights: "auto" (bundled VGG-19 / torchvision VGG-16), "random" (tests only) or a
            path to a weight file, passed to :func:`reconet.models.loss_network.build_loss_network`.
        content_layer: layer whose features the result must keep from the content frame.
        style_layers: layers whose Gram matrices must match the style image's.
        style_layer_weights: optional per-layer weights (default: equal weights of 1).
        content_weight, style_weight, tv_weight: alpha, beta, gamma of the Gatys objective.
        temporal_weight: weight of the masked pixel MSE to the warped previous stylized frame
            (0 switches the term off).
        temporal_feature_weight: weight of the masked feature MSE at ``temporal_feature_layers``
            to the features of the warped previous stylized frame (0 switches it off).
        first_init: "content" (default) or "noise" for frame 1 (and any frame without warm start).
        warm_start: start frame t from the stylized frame t-1 warped onto frame t. False starts
            every frame like frame 1.
        occlusion_fill: what the warm start puts where the mask excludes the warped frame
            (occluded, inconsistent, out of frame): "warped" (default: the warped frame
            everywhere, as Ruder et al. initialize; the mask then only weights the temporal
            terms) or "content" (the content frame, restylized from scratch there; on fast
            motion 40 iterations leave it as high-frequency noise, docs/optimize.md).
        flow_agreement: > 0 also estimates the flow with OpenCV Farnebäck and drops pixels where
            the two flows differ by more than this many pixels from the mask
            (:func:`reconet.flow.occlusion.agreement_mask`); 0 = forward-backward test only.
        optimizer: "lbfgs" (default) or "adam".
        line_search: L-BFGS step rule: "none" (step 1, one evaluation per iteration, Gatys et
            al.) or "strong_wolfe" (torch's line search; the iteration counts then budget loss
            evaluations; :mod:`reconet.optimize.solver`).
        tolerance: stop a frame early when its loss improved by less than this fraction over
            the last ``patience`` iterations (0 = always spend the whole budget). The default
            0.002 stops slow-motion warm frames after 25-29 of 40 iterations at the same
            temporal error and uses every iteration on fast motion (docs/optimize.md).
        patience: the window, in iterations, of that test.
        iterations: iterations for frames started from scratch (frame 1); with a tolerance, the
            most a frame may use.
        iterations_warm: iterations for warm-started frames (they start close to the answer).
        lr: learning rate; None = default for the optimizer and parametrization.
        parametrization: "clamp" (optimize pixels, project to [0, 1] after each step) or
            "sigmoid" (optimize logits z, image = sigmoid(z), never leaves (0, 1)).
        style_scale: the style image is resized so that its longer side is style_scale times
            the frame's longer side (brush strokes keep their size relative to the frame).
        seed: seed of the noise initialization.
        flow: "auto" (RAFT if local weights exist, else OpenCV DIS), "raft" or "dis"; see
            :func:`reconet.flow.estimate.build_flow_estimator`.
        raft_weights: a local torchvision RAFT weight file (None: look in the torch hub cache).
    """

    loss_network: str = "vgg19"
    loss_weights: str = "auto"
    content_layer: str = DEFAULT_CONTENT_LAYER
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    style_layer_weights: tuple[float, ...] | None = None
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 0.0
    temporal_weight: float = 1.0e8
    temporal_feature_weight: float = 10.0
    temporal_feature_layers: tuple[str, ...] = DEFAULT_TEMPORAL_FEATURE_LAYERS
    first_init: str = "content"
    warm_start: bool = True
    occlusion_fill: str = "warped"
    flow_agreement: float = 0.0
    optimizer: str = "lbfgs"
    line_search: str = "none"
    tolerance: float = 0.002
    patience: int = 5
    iterations: int = 300
    iterations_warm: int = 100
    lr: float | None = None
    parametrization: str = "clamp"
    style_scale: float = 1.0
    seed: int = 0
    flow: str = "auto"
    raft_weights: str | None = None

    def __post_init__(self) -> None:
        # Tuples, not lists: the config is hashed and compared for resume.
        for name in ("style_layers", "temporal_feature_layers"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.style_layer_weights is not None:
            object.__setattr__(self, "style_layer_weights", tuple(float(w) for w in self.style_layer_weights))
        _choice("loss_network", self.loss_network, LOSS_NETWORKS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("line_search", self.line_search, LINE_SEARCHES)
        if self.line_search != "none" and self.optimizer != "lbfgs":
            raise ValueError(f"line_search {self.line_search!r} needs optimizer 'lbfgs', got {self.optimizer!r}")
        _choice("parametrization", self.parametrization, PARAMETRIZATIONS)
        _choice("first_init", self.first_init, FIRST_INITS)
        _choice("flow", self.flow, FLOW_METHODS)
        _choice("occlusion_fill", self.occlusion_fill, OCCLUSION_FILLS)
        if not self.tolerance >= 0.0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if not self.style_layers:
            raise ValueError("style_layers must name at least one layer")
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            raise ValueError(
                f"style_layer_weights has {len(self.style_layer_weights)} entries for "
                f"{len(self.style_layers)} style layers {self.style_layers}"
            )
        for name in (
            "content_weight", "style_weight", "tv_weight", "temporal_weight", "temporal_feature_weight", "flow_agreement"
        ):
            value = getattr(self, name)
            if not value >= 0.0:  # also rejects NaN
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.temporal_feature_weight > 0 and not self.temporal_feature_layers:
            raise ValueError("temporal_feature_weight > 0 needs at least one temporal_feature_layers entry")
        for name in ("iterations", "iterations_warm"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.style_scale > 0:
            raise ValueError(f"style_scale must be > 0, got {self.style_scale}")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else _DEFAULT_LR[(self.optimizer, self.parametrization)]

    @property
    def layers(self) -> tuple[str, ...]:
        """Every loss-network layer the objective reads (content, style, temporal features)."""
        names = [self.content_layer, *self.style_layers]
        if self.temporal_feature_weight > 0:
            names += list(self.temporal_feature_layers)
        return tuple(dict.fromkeys(names))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every setting that changes the result (used as resume fingerprint)."""
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
