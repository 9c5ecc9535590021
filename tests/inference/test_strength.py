"""--strength on the bundled multi-style network: the style distance to the painting falls
monotonically as the strength rises, from the input's own at 0 (measured on bundled photos with
the bundled VGG-19, the distance of reconet-evaluate)."""

from __future__ import annotations

import pytest
import torch

from reconet.evaluation.quality import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, QualityScorer
from reconet.image import load_image
from reconet.inference.stylizer import load
from reconet.models.loss_network import build_loss_network
from reconet.models.pretrained import bundled_network_path
from reconet.resources import asset_path

pytestmark = pytest.mark.slow  # VGG-19 over 5 strengths x 3 styles
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    names = ("kodak_kodim23", "skimage_coffee", "kodak_kodim05")
    images = [load_image(asset_path(f"photos/{name}.jpg")) for name in names]
    return torch.stack([torch.nn.functional.interpolate(i[None], size=(192, 256), mode="area")[0] for i in images])


@pytest.fixture(scope="module")
def loss_network():
    return build_loss_network("vgg19", layers=(DEFAULT_CONTENT_LAYER, *DEFAULT_STYLE_LAYERS), download=False).eval()


@pytest.mark.parametrize("style", ["candy", "udnie", "wave"])
def test_style_distance_falls_monotonically_with_strength(photos: torch.Tensor, loss_network, style: str) -> None:
    model = bundled_network_path("multistyle")
    scorer = QualityScorer(loss_network, load_image(asset_path(f"styles/{style}.jpg")), style_size=256)
    distances = []
    with torch.no_grad():
        for strength in STRENGTHS:
            out = load(model, precision="fp32", style=style, strength=strength, compile=False)(photos)
            if strength == 0.0:
                assert torch.equal(out, photos)  # the input, unchanged
            distances.append(float(scorer.distances(scorer.features(out), None)["style_distance"].mean()))
    assert all(a > b for a, b in zip(distances, distances[1:])), dict(zip(STRENGTHS, distances))
    assert distances[-1] < 0.5 * distances[0]  # the full style is far from the photo's own distance
