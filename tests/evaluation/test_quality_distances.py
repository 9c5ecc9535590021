"""Style and content distances (on a randomly initialized loss network, for speed) and the
aggregation of per-pair records."""

from __future__ import annotations

import math

import pytest
import torch

from reconet.evaluation.quality import QualityScorer
from reconet.evaluation.runner import aggregate
from reconet.losses.perceptual import content_loss, style_loss

LAYERS = ("relu1_2", "relu2_2", "relu3_3")


@pytest.fixture(scope="module")
def loss_network():
    from reconet.models.loss_network import build_loss_network

    torch.manual_seed(0)
    return build_loss_network("vgg16", layers=LAYERS, weights="random")


def test_distances_are_zero_for_the_style_image_and_the_input_itself(loss_network) -> None:
    style = torch.rand(1, 3, 40, 52)
    scorer = QualityScorer(loss_network, style, content_layer="relu2_2", style_layers=LAYERS)
    result = scorer.score(style, style)
    assert result["style_distance"].item() == pytest.approx(0.0, abs=1e-12)
    assert result["content_distance"].item() == 0.0
    other = scorer.score(torch.rand(1, 3, 40, 52), style)
    assert other["style_distance"].item() > 0 and other["content_distance"].item() > 0


def test_per_frame_values_do_not_depend_on_the_batch(loss_network) -> None:
    """Regression guard: the training losses average over the batch; the metric must not."""
    style = torch.rand(3, 32, 32)
    scorer = QualityScorer(loss_network, style, content_layer="relu3_3", style_layers=LAYERS)
    outputs, inputs = torch.rand(2, 3, 24, 36), torch.rand(2, 3, 24, 36)
    together = scorer.score(outputs, inputs)
    for i in range(2):
        alone = scorer.score(outputs[i : i + 1], inputs[i : i + 1])
        for key in ("style_distance", "content_distance"):
            assert together[key][i].item() == pytest.approx(alone[key].item(), rel=1e-5)


def test_distances_equal_the_unweighted_training_losses(loss_network) -> None:
    style = torch.rand(1, 3, 30, 30)
    scorer = QualityScorer(loss_network, style, content_layer="relu2_2", style_layers=LAYERS)
    output, content = torch.rand(1, 3, 28, 28), torch.rand(1, 3, 28, 28)
    result = scorer.score(output, content)
    with torch.no_grad():
        out_f, in_f, style_f = loss_network(output), loss_network(content), loss_network(style)
        from reconet.losses.perceptual import gram_matrix

        grams = {name: gram_matrix(style_f[name]) for name in LAYERS}
        expected_style = style_loss({name: out_f[name] for name in LAYERS}, grams).item()
        expected_content = content_loss(out_f["relu2_2"], in_f["relu2_2"]).item()
    assert result["style_distance"].item() == pytest.approx(expected_style, rel=1e-5)
    assert result["content_distance"].item() == pytest.approx(expected_content, rel=1e-5)


def test_style_size_is_the_shorter_side_as_in_training(loss_network) -> None:
    """style_size=20 on a 40x80 image means a 20x40 style image (training's loss.style_size)."""
    style = torch.rand(1, 3, 40, 80)
    small = torch.nn.functional.interpolate(style, size=(20, 40), mode="bilinear", antialias=True).clamp(0, 1)
    scorer = QualityScorer(loss_network, style, content_layer="relu2_2", style_layers=LAYERS, style_size=20)
    assert scorer.score(small, small)["style_distance"].item() == pytest.approx(0.0, abs=1e-12)
    unresized = QualityScorer(loss_network, style, content_layer="relu2_2", style_layers=LAYERS)
    assert unresized.score(small, small)["style_distance"].item() > 1e-9


def test_missing_layer_is_reported(loss_network) -> None:
    with pytest.raises(ValueError, match="relu4_3"):
        QualityScorer(loss_network, torch.rand(3, 16, 16), content_layer="relu2_2", style_layers=("relu4_3",))


def _record(te, fd=0.1, valid=True):
    return {"temporal_error": te, "valid": valid, "frame_difference": fd}


def test_aggregate_excludes_invalid_pairs_and_takes_ratios_on_the_same_pairs() -> None:
    model = [_record(0.04), _record(None, valid=False), _record(0.02, fd=0.3)]
    reference = [_record(0.01), _record(None, valid=False), _record(0.03, fd=0.1)]
    agg = aggregate(model, reference)
    assert agg["n_pairs"] == 2 and agg["n_excluded"] == 1
    assert agg["temporal_error"] == pytest.approx(0.03)
    assert agg["temporal_rmse"] == pytest.approx(math.sqrt(0.03))
    assert agg["temporal_error_ratio"] == pytest.approx(0.03 / 0.02)
    assert agg["frame_difference_ratio"] == pytest.approx((0.5 / 3) / 0.1)
    assert agg["style_distance"] is None and agg["content_distance"] is None


def test_aggregate_of_only_invalid_pairs_is_undefined_not_zero() -> None:
    agg = aggregate([_record(None, valid=False)], [_record(None, valid=False)])
    assert agg["n_pairs"] == 0
    assert agg["temporal_error"] is None and agg["temporal_rmse"] is None and agg["temporal_error_ratio"] is None
