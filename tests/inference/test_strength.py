"""--strength on the bundled multi-style network: its identity row reproduces the input, and the
style distance to the painting falls monotonically as the strength rises (measured here on the
bundled photos with the bundled VGG-19, the reconet-evaluate distance)."""

from __future__ import annotations

import pytest
import torch

from reconet.evaluation.quality import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, QualityScorer
from reconet.evaluation.structure import content_structure
from reconet.image import load_image
from reconet.inference.stylizer import load
from reconet.models import load_stylizer
from reconet.models.artifact import style_table
from reconet.models.loss_network import build_loss_network
from reconet.models.pretrained import bundled_network_path
from reconet.models.style_mix import identity_row
from reconet.resources import asset_path

pytestmark = pytest.mark.slow  # VGG-19 over 5 strengths x 3 styles
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    images = [load_image(asset_path(f"photos/{name}.jpg")) for name in ("kodak_kodim23", "skimage_coffee")]
    return torch.stack([torch.nn.functional.interpolate(i[None], size=(192, 256), mode="area")[0] for i in images])


@pytest.fixture(scope="module")
def loss_network():
    return build_loss_network("vgg19", layers=(DEFAULT_CONTENT_LAYER, *DEFAULT_STYLE_LAYERS), download=False).eval()


def test_the_bundled_network_ships_an_identity_row() -> None:
    network, meta = load_stylizer(bundled_network_path("multistyle"))
    rows = style_table(meta, network.num_styles)
    assert identity_row(rows) is not None and rows[identity_row(rows)]["name"] == "original"


def test_strength_zero_keeps_the_photo(photos: torch.Tensor) -> None:
    model = bundled_network_path("multistyle")
    with torch.no_grad():
        out = load(model, precision="fp32", style="candy", strength=0.0, compile=False)(photos)
    assert float(content_structure(out, photos).min()) >= 0.9
    assert float((out - photos).abs().mean()) < 0.08  # colours too, not only edges


@pytest.mark.parametrize("style", ["candy", "udnie", "wave"])
def test_style_distance_falls_monotonically_with_strength(photos: torch.Tensor, loss_network, style: str) -> None:
    model = bundled_network_path("multistyle")
    scorer = QualityScorer(loss_network, load_image(asset_path(f"styles/{style}.jpg")), style_size=256)
    distances = []
    with torch.no_grad():
        for strength in STRENGTHS:
            out = load(model, precision="fp32", style=style, strength=strength, compile=False)(photos)
            distances.append(float(scorer.distances(scorer.features(out), None)["style_distance"].mean()))
    assert all(a > b for a, b in zip(distances, distances[1:])), dict(zip(STRENGTHS, distances))
