"""The full ReCoNet training objective.

    total = Σ_{i ∈ {N, N+1}} (α L_content(i) + β L_style(i) + γ L_tv(i)) + λ_f L_f + λ_o L_o

with the normalizations of :mod:`reconet.losses.perceptual` and :mod:`reconet.losses.temporal`.
The loss network is injected (any ``nn.Module`` whose ``forward(x, layers=None)`` maps a
(B, 3, H, W) [0, 1] RGB batch to a dict of named features — all of ``layers`` attribute, or only
the names passed), so tests can pass a small fake and training the real VGG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reconet.losses.perceptual import content_loss, gram_matrix, style_loss, total_variation
from reconet.losses.temporal import feature_temporal_loss, output_temporal_loss
from reconet.resources import config_defaults

# Layer names exist in both VGG-16 and VGG-19 (relu{block}_{conv}), so the defaults work with
# either network. Content at relu3_3 and style at relu1_2 … relu4_3 as in the ReCoNet paper.
DEFAULT_CONTENT_LAYER = "relu3_3"
DEFAULT_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")

# Default weights for the normalizations documented in reconet.losses.perceptual/temporal
# (mean-squared errors, Grams divided by C·H·W, mean-L1 TV, temporal terms divided by D),
# calibrated on the bundled VGG-19 (Oxford/Caffe weights, which see 0-255 BGR input, hence the
# large feature values and the 1e-5 perceptual weights). Measured with scripts/loss_scale.py
# on a freshly initialized "paper" ReCoNet at 640x360 (docs/losses.md): at step 0 the weighted
# terms are about content 12 %, style 70-76 %, TV 3 %, feature temporal 7 %, output temporal
# 7 % of the total. beta/alpha = 1 stylizes clearly while keeping the content (checked by
# optimizing an image directly). With torchvision's VGG-16 (ImageNet mean/std input) the
# features are far smaller and these weights must be re-measured.
# alpha (content), beta (style), gamma (total variation), lambda_f (feature temporal), lambda_o
# (output temporal) as measured for the bundled VGG-19: read from reconet/conf/loss/vgg16.yaml
# (loss.weights.vgg19), the one place they are written.
DEFAULT_WEIGHTS: dict[str, float] = {
    name: float(value) for name, value in config_defaults("loss")["vgg16"]["weights"]["vgg19"].items()
}

LOSS_TERMS = ("content", "style", "tv", "temporal_feature", "temporal_output")
# The weight that multiplies each term.
TERM_WEIGHTS = {
    "content": "alpha",
    "style": "beta",
    "tv": "gamma",
    "temporal_feature": "lambda_f",
    "temporal_output": "lambda_o",
}


def weighted_terms(raw: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> dict[str, torch.Tensor]:
    """Unweighted terms {name in LOSS_TERMS: value} -> each times its weight, plus "total", their sum."""
    terms = {name: weights[TERM_WEIGHTS[name]] * raw[name] for name in LOSS_TERMS}
    terms["total"] = sum(terms[name] for name in LOSS_TERMS)
    return terms


def _module_device(module: nn.Module, default: torch.device) -> torch.device:
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return default


def resize_style_image(image: torch.Tensor, style_size: int | Sequence[int] | None) -> torch.Tensor:
    """(1, 3, H, W) -> resized copy. An int is the length of the shorter side (aspect kept),
    a pair is an exact (H, W)."""
    if style_size is None:
        return image
    height, width = image.shape[-2:]
    if isinstance(style_size, int):
        if style_size <= 0:
            raise ValueError(f"style_size must be positive, got {style_size}")
        scale = style_size / min(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
    else:
        size = tuple(int(s) for s in style_size)
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"style_size must be an int or a positive (H, W) pair, got {style_size!r}")
    if size == (height, width):
        return image
    resized = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized.clamp(0.0, 1.0)  # antialiased bilinear can overshoot [0, 1] slightly


def _layer_weights(
    style_layers: tuple[str, ...], weights: Mapping[str, float] | Sequence[float] | None
) -> dict[str, float] | None:
    if weights is None:
        return None
    if isinstance(weights, Mapping):
        unknown = [name for name in weights if name not in style_layers]
        if unknown:
            raise ValueError(f"style_layer_weights names {unknown} that are not style layers {list(style_layers)}")
        return {name: float(weights.get(name, 1.0)) for name in style_layers}
    weights = [float(w) for w in weights]
    if len(weights) != len(style_layers):
        raise ValueError(
            f"style_layer_weights has {len(weights)} values for {len(style_layers)} style layers {list(style_layers)}"
        )
    return dict(zip(style_layers, weights))


class ReCoNetLoss(nn.Module):
    """ReCoNet objective: perceptual losses on both frames plus the two temporal losses.

    Args:
        loss_network: frozen feature extractor, ``forward(x (B, 3, H, W) [0, 1], layers=None)
            -> dict`` of named features, with attribute ``layers`` (the names it returns when
            ``layers`` is None; otherwise it returns just the names asked for). It is set to
            ``requires_grad_(False)`` and kept in eval mode.
        style_image: (3, H, W) or (1, 3, H, W) RGB in [0, 1], or a sequence of such images for
            a multi-style network (one per style row, Dumoulin et al. 2017). Their Gram matrices
            are computed once here and stored as (non-persistent) buffers (N, C, C); one style
            is broadcast over any batch, several are picked per sample by ``style_index``.
            They follow ``.to(device)``.
        content_layer: feature name for the content loss.
        style_layers: feature names for the style loss.
        style_layer_weights: per-layer weights w_l (mapping name -> weight, or a sequence
            aligned with ``style_layers``); default 1 each.
        alpha, beta, gamma: content, style and total-variation weights (applied to the sum
            over both frames).
        lambda_f, lambda_o: feature- and output-temporal weights.
        style_size: resize the style image before computing its Grams: an int sets the
            shorter side (aspect kept), a pair an exact (H, W); ``None`` keeps it as is.
        style_names: one name per style image (for the per-style terms ``style_<name>`` that
            :meth:`forward` adds, unweighted by the total, when there are several styles).
        style_scales: one multiplier of ``beta`` per style (default 1 each): styles differ in
            Gram magnitude by orders of magnitude, so one shared weight under-trains some and
            over-trains others.
    """

    def __init__(
        self,
        loss_network: nn.Module,
        style_image: torch.Tensor,
        *,
        content_layer: str = DEFAULT_CONTENT_LAYER,
        style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
        style_layer_weights: Mapping[str, float] | Sequence[float] | None = None,
        alpha: float = DEFAULT_WEIGHTS["alpha"],
        beta: float = DEFAULT_WEIGHTS["beta"],
        gamma: float = DEFAULT_WEIGHTS["gamma"],
        lambda_f: float = DEFAULT_WEIGHTS["lambda_f"],
        lambda_o: float = DEFAULT_WEIGHTS["lambda_o"],
        style_size: int | Sequence[int] | None = None,
        style_names: Sequence[str] | None = None,
        style_scales: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        style_layers = tuple(style_layers)
        if not style_layers:
            raise ValueError("style_layers is empty")
        available = tuple(getattr(loss_network, "layers", ()))
        wanted = (content_layer, *style_layers)
        missing = [name for name in wanted if name not in available]
        if missing:
            raise ValueError(f"loss network does not return layer(s) {missing}; it returns {list(available)}")
        images = [style_image] if isinstance(style_image, torch.Tensor) else list(style_image)
        if not images:
            raise ValueError("no style image given")
        for index, image in enumerate(images):
            if image.ndim == 3:
                images[index] = image = image.unsqueeze(0)
            if image.ndim != 4 or image.shape[:2] != (1, 3):
                raise ValueError(f"style_image must be (3, H, W) or (1, 3, H, W), got shape {tuple(image.shape)}")
        self.style_names = tuple(style_names) if style_names is not None else tuple(str(i) for i in range(len(images)))
        if len(self.style_names) != len(images):
            raise ValueError(f"{len(self.style_names)} style names for {len(images)} style images")
        scales = [1.0] * len(images) if style_scales is None else [float(v) for v in style_scales]
        if len(scales) != len(images) or min(scales) < 0:
            raise ValueError(f"style_scales must be {len(images)} values >= 0, got {list(scales)}")
        self.register_buffer("style_scales", torch.tensor(scales), persistent=False)  # (N,)

        self.loss_network = loss_network.requires_grad_(False).eval()
        self.content_layer = content_layer
        self.style_layers = style_layers
        self.style_layer_weights = _layer_weights(style_layers, style_layer_weights)
        self.weights = {
            "alpha": float(alpha),
            "beta": float(beta),
            "gamma": float(gamma),
            "lambda_f": float(lambda_f),
            "lambda_o": float(lambda_o),
        }

        device = _module_device(loss_network, images[0].device)
        grams: dict[str, list[torch.Tensor]] = {name: [] for name in style_layers}
        for image in images:  # each at its own size: one forward per style, once
            style = resize_style_image(image.detach().float(), style_size).to(device)  # (1, 3, Hs, Ws)
            with torch.no_grad():
                features = self.loss_network(style)
            for name in style_layers:
                grams[name].append(gram_matrix(features[name]).detach())  # (1, C, C)
        for name in style_layers:
            # Non-persistent: derived from the style images, recomputed at construction, so they
            # never make a checkpoint depend on which style image was on disk.
            self.register_buffer(f"style_gram_{name}", torch.cat(grams[name]), persistent=False)  # (N, C, C)

    @property
    def num_styles(self) -> int:
        return len(self.style_names)

    @property
    def style_grams(self) -> dict[str, torch.Tensor]:
        """Layer name -> (N, C, C) Gram matrices of the N style images."""
        return {name: getattr(self, f"style_gram_{name}") for name in self.style_layers}

    def train(self, mode: bool = True) -> ReCoNetLoss:
        super().train(mode)
        self.loss_network.eval()  # the loss network is a fixed measuring device
        return self

    def extra_repr(self) -> str:
        weights = ", ".join(f"{k}={v:g}" for k, v in self.weights.items())
        return f"content_layer={self.content_layer!r}, style_layers={list(self.style_layers)}, {weights}"

    def forward(
        self,
        input1: torch.Tensor,
        input2: torch.Tensor,
        result1: Any,
        result2: Any,
        flow: torch.Tensor,
        mask: torch.Tensor,
        style_index: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Weighted loss terms for a batch of frame pairs.

        Args:
            input1, input2: (B, 3, H, W) frames N and N+1 in [0, 1] (targets; no gradient).
            result1, result2: the stylization network's results for them (``ReCoNetOutput``
                or anything with ``.features`` (B, C, H', W') and ``.output`` (B, 3, H, W)).
            flow: (B, 2, H, W) forward flow N -> N+1.
            mask: (B, 1, H, W) 1 = use pixel.
            style_index: (B,) which style each pair was stylized in (several styles only).

        Returns:
            {"content", "style", "tv", "temporal_feature", "temporal_output", "total"}: 0-dim
            tensors, each term already multiplied by its weight, "total" their sum. With several
            styles also ``style_<name>`` (not in the total): the weighted style term of the
            pairs of that style in this batch, for per-style curves.
        """
        output1, output2 = result1.output, result2.output
        shapes = [tuple(t.shape) for t in (input1, input2, output1, output2)]
        if len(set(shapes)) != 1 or len(shapes[0]) != 4 or shapes[0][1] != 3:
            raise ValueError(f"input1, input2, output1, output2 must be equal (B, 3, H, W), got {shapes}")
        # Inputs, flow and mask are data: never differentiate through them.
        input1, input2 = input1.detach(), input2.detach()
        flow, mask = flow.detach(), mask.detach()

        # Each image goes through the loss network once per step. The content targets need no
        # autograd graph and only the content layer, so the inputs run under no_grad and stop
        # there; only the outputs carry a graph. (One cat([inputs, outputs]) batch would also
        # back-propagate through the input rows, since a convolution's input gradient covers
        # its whole batch; scripts/benchmark_training.py measures the difference.)
        with torch.no_grad():
            inputs = torch.cat([input1, input2]).to(output1.dtype)  # (2B, 3, H, W)
            targets = self.loss_network(inputs, layers=(self.content_layer,))[self.content_layer]
        features = self.loss_network(torch.cat([output1, output2]))  # name -> (2B, C, h, w)
        # Under mixed precision the networks ran in bf16/fp16; every loss is computed in fp32
        # from here on (Micikevicius et al., ICLR 2018: reductions in fp32), since the terms
        # are means of small squared differences that an 8-bit mantissa would round away.
        if self.num_styles > 1:
            if style_index is None or style_index.shape != (input1.shape[0],):
                shape = None if style_index is None else tuple(style_index.shape)
                raise ValueError(f"{self.num_styles} styles: style_index must be ({input1.shape[0]},), got {shape}")
        with torch.autocast(output1.device.type, enabled=False):
            return self._terms(input1, input2, result1, result2, flow, mask, targets, features, style_index)

    def _terms(self, input1, input2, result1, result2, flow, mask, targets, features, style_index=None) -> dict[str, torch.Tensor]:
        """The weighted terms of :meth:`forward`, all in fp32 (see there for the arguments)."""
        batch = input1.shape[0]
        output1, output2 = result1.output.float(), result2.output.float()
        features = {name: value.float() for name, value in features.items()}
        targets = targets.float()

        def chunk(tensor: torch.Tensor, index: int) -> torch.Tensor:
            return tensor[index * batch : (index + 1) * batch]  # (B, C, h, w)

        grams = self.style_grams
        content = 0.0
        style = 0.0
        per_sample = 0.0  # several styles: (B,) style term of each pair, before beta
        for frame in (0, 1):  # Σ over frames N and N+1
            content = content + content_loss(chunk(features[self.content_layer], frame), chunk(targets, frame))
            outputs = {name: chunk(features[name], frame) for name in self.style_layers}
            if self.num_styles == 1:
                style = style + style_loss(outputs, grams, self.style_layer_weights)
            else:
                per_sample = per_sample + self._style_per_sample(outputs, grams, style_index)
        tv = total_variation(output1) + total_variation(output2)
        temporal_f = feature_temporal_loss(result1.features.float(), result2.features.float(), flow, mask)
        temporal_o = output_temporal_loss(output1, output2, input1, input2, flow, mask)

        if self.num_styles > 1:
            # The mean over the batch of each pair's style term times its style's scale: with
            # every scale 1 this is exactly style_loss's batch mean.
            style = (per_sample * self.style_scales[style_index]).mean()
        raw = {
            "content": content,
            "style": style,
            "tv": tv,
            "temporal_feature": temporal_f,
            "temporal_output": temporal_o,
        }
        terms = weighted_terms(raw, self.weights)
        if self.num_styles > 1:
            beta = self.weights["beta"]
            for index in style_index.unique().tolist():
                chosen = style_index == index
                terms[f"style_{self.style_names[index]}"] = beta * per_sample[chosen].mean().detach()
        return terms

    def _style_per_sample(
        self, outputs: Mapping[str, torch.Tensor], grams: Mapping[str, torch.Tensor], style_index: torch.Tensor
    ) -> torch.Tensor:
        """(B,) style term of each output against its own style's Grams (the terms of
        :func:`style_loss`, per sample instead of averaged over the batch)."""
        total = 0.0
        for name, feat in outputs.items():
            gram = gram_matrix(feat)  # (B, C, C)
            target = grams[name][style_index].to(gram.dtype)  # (B, C, C)
            weight = 1.0 if self.style_layer_weights is None else float(self.style_layer_weights.get(name, 1.0))
            total = total + weight * (gram - target).square().mean(dim=(1, 2))
        return total
