"""The per-frame objective: each term is zero where it must be, switched-off terms stay zero."""

from __future__ import annotations

import pytest
import torch

from reconet.losses.perceptual import content_loss
from reconet.models.loss_network import build_loss_network
from reconet.optimize.config import OptimizeConfig
from reconet.optimize.objective import LOSS_TERMS, GatysObjective, masked_mse


@pytest.fixture(scope="module")
def network():
    return build_loss_network("vgg19", layers=OptimizeConfig().layers, weights="random")


def _images(seed: int = 0, size=(24, 32)):
    generator = torch.Generator().manual_seed(seed)
    content = torch.rand(1, 3, *size, generator=generator)
    other = torch.rand(1, 3, *size, generator=generator)
    style = torch.rand(3, 40, 40, generator=generator)
    return content, other, style


def test_content_and_temporal_terms_vanish_at_their_targets(network):
    content, other, style = _images()
    objective = GatysObjective(network, style, OptimizeConfig(tv_weight=1.0), (24, 32))
    mask = torch.ones(1, 1, 24, 32)
    targets = objective.targets(content, warped_previous=content.clone(), mask=mask)
    terms = objective(content, targets)
    moved = objective(other, targets)
    # Feature terms: batched (targets) and single forwards differ only by float rounding.
    assert terms["content"].item() <= 1e-9 * moved["content"].item()
    assert terms["temporal_feature"].item() <= 1e-9 * moved["temporal_feature"].item()
    assert terms["temporal"].item() == 0.0
    assert moved["temporal"].item() > 0.0
    assert terms["style"].item() > 0.0 and terms["tv"].item() > 0.0
    assert terms["total"].item() == pytest.approx(sum(terms[k].item() for k in LOSS_TERMS))


def test_temporal_pixel_term_ignores_masked_out_pixels(network):
    content, other, style = _images(1)
    config = OptimizeConfig(temporal_feature_weight=0.0)
    objective = GatysObjective(network, style, config, (24, 32))
    mask = torch.zeros(1, 1, 24, 32)
    mask[..., :, :16] = 1.0  # only the left half is reliable
    image = other.clone()
    image[..., :, :16] = content[..., :, :16]  # agrees with the warped frame where it counts
    targets = objective.targets(content, warped_previous=content, mask=mask)
    assert objective(image, targets)["temporal"].item() == 0.0
    # Known value: (1/D) * sum over the reliable half, D = 3 * H * W, times the weight.
    image[..., 0, 0] += 0.5
    expected = config.temporal_weight * 3 * 0.25 / (3 * 24 * 32)
    assert objective(image, targets)["temporal"].item() == pytest.approx(expected, rel=1e-5)


def test_switched_off_terms_are_zero_and_do_not_need_a_previous_frame(network):
    content, other, style = _images(2)
    config = OptimizeConfig(temporal_weight=0.0, temporal_feature_weight=0.0, tv_weight=0.0)
    objective = GatysObjective(network, style, config, (24, 32))
    assert not objective.uses_temporal
    targets = objective.targets(content, warped_previous=other, mask=torch.ones(1, 1, 24, 32))
    terms = objective(other, targets)
    assert terms["temporal"].item() == terms["temporal_feature"].item() == terms["tv"].item() == 0.0
    # The content term is exactly the shared content loss at the configured layer.
    features = network(torch.cat([other, content]))
    expected = content_loss(features[config.content_layer][:1], features[config.content_layer][1:])
    assert terms["content"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_style_image_is_scaled_to_the_frame(network):
    _, _, style = _images()
    objective = GatysObjective(network, style, OptimizeConfig(style_scale=0.5), (24, 64))
    assert max(objective.style_size) == 32  # 0.5 * longer frame side; the style image is square


def test_gradients_flow_to_the_image_only(network):
    content, other, style = _images(3)
    objective = GatysObjective(network, style, OptimizeConfig(), (24, 32))
    targets = objective.targets(content, warped_previous=other, mask=torch.ones(1, 1, 24, 32))
    image = content.clone().requires_grad_(True)
    objective(image, targets)["total"].backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in network.parameters())


def test_masked_mse_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(1, 3, 4, 4\)"):
        masked_mse(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5), torch.ones(1, 1, 4, 4))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"optimizer": "sgd"}, "optimizer"),
    ({"style_weight": -1.0}, "style_weight"),
    ({"style_layer_weights": (1.0,)}, "style_layer_weights"),
    ({"flow": "flownet"}, "flow"),
    ({"iterations": -1}, "iterations"),
    ({"occlusion_fill": "noise"}, "occlusion_fill"),
    ({"flow_agreement": -1.0}, "flow_agreement"),
    ({"line_search": "armijo"}, "line_search"),
    ({"optimizer": "adam", "line_search": "strong_wolfe"}, "needs optimizer 'lbfgs'"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OptimizeConfig(**kwargs)
