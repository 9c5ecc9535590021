"""Stylization-quality distances reported beside temporal error.

Temporal error alone rewards blur and weak stylization (an unstylized or constant output is
perfectly "coherent"), so every evaluation also reports, on the loss network phi:

- style distance to the style image S, per frame O:
      D_style(O) = sum_l (1 / C_l^2) * sum_{i,j} (G_l(O) - G_l(S))_{ij}^2
  with G the Gram matrix normalized by C*H*W (:func:`reconet.losses.perceptual.gram_matrix`),
  i.e. the training style loss with unit layer weights. Lower = closer to the style.
- content distance to the input frame I:
      D_content(O, I) = (1 / (C*H*W)) * sum (phi_c(O) - phi_c(I))^2
  at the content layer c, i.e. the training content loss. 0 for the unstylized input.

Both are the training losses evaluated per frame (batch of one), so their numbers are on
the scale the training logs show for the same loss network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# the training objective's style resizing, so that the same style_size means the same Grams
from reconet.losses.objective import resize_style_image
from reconet.losses.perceptual import content_loss, gram_matrix, style_loss

DEFAULT_CONTENT_LAYER = "relu3_3"
DEFAULT_STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


class QualityScorer:
    """Style distance to one style image and content distance to the input, per frame.

    Args:
        loss_network: a :class:`reconet.models.loss_network.LossNetwork` (or any module with
            the same contract: (B, 3, H, W) RGB [0, 1] -> dict of named features) that
            provides ``content_layer`` and, if a style image is given, every style layer.
        style_image: (3, H, W) or (1, 3, H, W) RGB [0, 1], or None (no style distance).
        content_layer: layer for the content distance.
        style_layers: layers for the style distance.
        style_size: resize the style image before computing its Grams, exactly as training
            does (``loss.style_size``): an int is the shorter side (aspect kept), a pair an exact
            (H, W); None = as given.
    """

    def __init__(
        self,
        loss_network: nn.Module,
        style_image: torch.Tensor | None = None,
        *,
        content_layer: str = DEFAULT_CONTENT_LAYER,
        style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
        style_size: int | Sequence[int] | None = None,
    ) -> None:
        self.loss_network = loss_network
        self.content_layer = content_layer
        self.style_layers = tuple(style_layers)
        available = tuple(getattr(loss_network, "layers", ()))
        wanted = (content_layer, *self.style_layers) if style_image is not None else (content_layer,)
        missing = [name for name in wanted if available and name not in available]
        if missing:
            raise ValueError(f"loss network provides layers {list(available)}, missing {missing}")
        self.style_grams: dict[str, torch.Tensor] | None = None
        if style_image is not None:
            if style_image.ndim == 3:
                style_image = style_image.unsqueeze(0)
            if style_image.ndim != 4 or style_image.shape[:2] != (1, 3):
                raise ValueError(f"style image must be (3, H, W) or (1, 3, H, W), got {tuple(style_image.shape)}")
            style = resize_style_image(style_image.float(), style_size)  # (1, 3, H_s, W_s)
            with torch.inference_mode():
                features = self._features(style)
            # computed once: the style image does not change during an evaluation
            self.style_grams = {name: gram_matrix(features[name]) for name in self.style_layers}  # (1, C, C)

    @property
    def has_style(self) -> bool:
        return self.style_grams is not None

    @torch.inference_mode()
    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, H, W) RGB [0, 1] -> the loss-network features the distances need.

        Compute the input frame's features once and reuse them for every model scored on it.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
        return self._features(images)

    def _features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        device = next(iter(self.loss_network.parameters())).device
        return self.loss_network(images.to(device))

    @torch.inference_mode()
    def distances(
        self, output_features: dict[str, torch.Tensor], input_features: dict[str, torch.Tensor] | None
    ) -> dict[str, torch.Tensor]:
        """Distances of stylized frames to the style image and to their input frames.

        Args:
            output_features: :meth:`features` of (B, 3, H, W) stylized frames.
            input_features: :meth:`features` of the (B, 3, H, W) input frames they were made
                from, or None to skip the content distance.

        Returns:
            ``"content_distance"`` (B,) when ``input_features`` is given and ``"style_distance"``
            (B,) when a style image is set; float64 on the CPU.
        """
        out_content = output_features[self.content_layer]  # (B, C, H', W')
        batch = out_content.shape[0]
        result: dict[str, torch.Tensor] = {}
        if input_features is not None:
            in_content = input_features[self.content_layer]
            if in_content.shape != out_content.shape:
                raise ValueError(
                    f"content features differ in shape: output {tuple(out_content.shape)}, "
                    f"input {tuple(in_content.shape)} (frames of different sizes?)"
                )
            # per frame: content_loss averages over the batch, so feed it one frame at a time
            content_d = [content_loss(out_content[i : i + 1], in_content[i : i + 1]) for i in range(batch)]
            result["content_distance"] = torch.stack(content_d).double().cpu()
        if self.style_grams is not None:
            grams = {name: g.to(out_content.device) for name, g in self.style_grams.items()}
            style_d = [
                style_loss({name: output_features[name][i : i + 1] for name in self.style_layers}, grams)
                for i in range(batch)
            ]
            result["style_distance"] = torch.stack(style_d).double().cpu()
        return result

    def score(self, output: torch.Tensor, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """Convenience: :meth:`distances` of (B, 3, H, W) ``output`` against its input ``content``."""
        if output.shape != content.shape:
            raise ValueError(
                f"QualityScorer.score expects output and content of equal shape, "
                f"got {tuple(output.shape)} and {tuple(content.shape)}"
            )
        return self.distances(self.features(output), self.features(content))
