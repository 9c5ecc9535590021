"""Conditional instance norm (Dumoulin et al. 2017): the per-style table's shapes, one row that
reproduces a single-style network, blends and batches of styles, growing the table, and the
style table of the artifact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reconet.models import build_reconet, load_stylizer, save_artifact
from reconet.models.artifact import style_table
from reconet.models.conditional_norm import ConditionalInstanceNorm2d
from reconet.models.reconet import ReCoNet

ASSETS = Path(__file__).resolve().parents[2] / "reconet" / "assets"


def trained_like(seed: int = 0) -> ReCoNet:
    """The tiny network with every parameter moved off its initial value (gamma 1, beta 0 would
    hide mistakes in how rows are mixed)."""
    torch.manual_seed(seed)
    model = build_reconet("tiny").eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return model


def distinct_rows(model: ReCoNet) -> ReCoNet:
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, ConditionalInstanceNorm2d):
                layer.weight.add_(0.2 * torch.randn_like(layer.weight))
                layer.bias.add_(0.2 * torch.randn_like(layer.bias))
    return model


def test_the_table_holds_one_gamma_and_beta_row_per_style():
    model = build_reconet("tiny", num_styles=5)
    layers = [m for m in model.modules() if isinstance(m, ConditionalInstanceNorm2d)]
    assert len(layers) == 3 + 2 * 3 + 2  # conv1-3, two per residual block, up1-2
    assert all(layer.weight.shape == (5, layer.norm.num_features) == layer.bias.shape for layer in layers)
    assert model.config["num_styles"] == 5 and "num_styles" not in build_reconet("tiny").config
    # a style is a few thousand numbers: 2 x sum of the norm widths
    per_style = sum(layer.weight.shape[1] * 2 for layer in layers)
    assert per_style == 2 * (24 + 48 + 96 + 6 * 96 + 48 + 24)


def test_a_norm_without_style_weights_or_with_the_wrong_ones_is_an_error():
    layer = ConditionalInstanceNorm2d(4, num_styles=3)
    x = torch.rand(2, 4, 8, 8)
    with pytest.raises(RuntimeError, match="needs style mixing weights"):
        layer(x)
    layer.style = torch.ones(3, 3)
    with pytest.raises(ValueError, match=r"\(3, 3\) do not fit a batch of 2 and 3 styles"):
        layer(x)


def test_one_row_reproduces_the_single_style_network_and_for_style_gives_back_a_plain_one():
    single = trained_like()
    multi = single.with_styles(3)
    x = torch.rand(2, 3, 37, 41)
    with torch.no_grad():
        expected = single(x).output
        for index in range(3):  # new rows start as the mean of the old: the same one row here
            torch.testing.assert_close(multi(x, style=index).output, expected, rtol=0, atol=1e-5)
        plain = multi.for_style(1)
        assert plain.num_styles == 1 and plain.config == single.config
        torch.testing.assert_close(plain(x).output, expected, rtol=0, atol=1e-5)
        # the rows of the single-style network are copied exactly
        assert torch.equal(multi.encoder.conv1.norm.weight[0], single.encoder.conv1.norm.weight)


def test_blend_endpoints_are_the_pure_styles_and_a_batch_runs_every_style_at_once():
    multi = distinct_rows(trained_like().with_styles(3)).eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        pure = [multi(x, style=index).output for index in range(3)]
        assert (pure[0] - pure[1]).abs().max() > 1e-2  # the rows really differ
        torch.testing.assert_close(multi(x, style=[1.0, 0.0, 0.0]).output, pure[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(multi(x, style=[0.0, 0.0, 1.0]).output, pure[2], rtol=0, atol=1e-6)
        half = multi(x, style=[0.5, 0.5, 0.0]).output
        assert not torch.allclose(half, pure[0], atol=1e-3) and not torch.allclose(half, pure[1], atol=1e-3)
        torch.testing.assert_close(multi.for_style([0.5, 0.5, 0.0])(x).output, half, rtol=0, atol=1e-5)
        gallery = multi(x.expand(3, -1, -1, -1), style=torch.eye(3)).output  # (3, 3, H, W), one pass
        for index in range(3):
            torch.testing.assert_close(gallery[index : index + 1], pure[index], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("style", "message"),
    [
        (None, "holds 3 styles: pass style="),
        (3, "style index 3 out of range for 3 style"),
        ([0.5, 0.5], r"weights of shape \(2,\) do not fit 3 style"),
        (torch.ones(2, 3), r"weights of shape \(2, 3\) do not fit 3 style\(s\) and a batch of 1"),
    ],
)
def test_bad_style_arguments_are_one_line_errors(style, message):
    multi = build_reconet("tiny", num_styles=3)
    with pytest.raises(ValueError, match=message):
        multi(torch.rand(1, 3, 16, 16), style=style)


def test_a_single_style_network_takes_only_its_one_style():
    single = build_reconet("tiny")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(single(x, style=0).output, single(x).output, rtol=0, atol=0)
    with pytest.raises(ValueError, match="out of range for 1 style"):
        single(x, style=1)
    with pytest.raises(ValueError, match="several styles need conditional instance norm"):
        build_reconet("tiny", norm="batch", num_styles=2)


def test_growing_the_table_keeps_every_existing_row_bit_identical():
    multi = distinct_rows(trained_like().with_styles(3))
    grown = multi.with_styles(5)
    before, after = multi.state_dict(), grown.state_dict()
    for key, value in before.items():
        if after[key].shape == value.shape:
            assert torch.equal(after[key], value), key
        else:  # a norm's table: the 3 old rows, then two rows at their mean
            assert torch.equal(after[key][:3], value), key
            torch.testing.assert_close(after[key][3], value.mean(dim=0), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="cannot shrink"):
        multi.with_styles(2)


def test_the_style_table_round_trips_through_the_artifact(tmp_path):
    multi = distinct_rows(trained_like().with_styles(2))
    rows = [{"name": "udnie", "style_sha256": "ab" * 32, "style_size": 256}, {"name": "wave", "style_size": 256}]
    path = save_artifact(tmp_path / "two.pt", multi, {"styles": rows})
    loaded, meta = load_stylizer(path)
    assert loaded.num_styles == 2 and style_table(meta, loaded.num_styles) == rows
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, style=1).output, multi.eval()(x, style=1).output, rtol=0, atol=0)


def test_todays_single_style_artifacts_load_as_a_one_row_table():
    model, meta = load_stylizer(ASSETS / "models" / "candy.pt")
    assert model.num_styles == 1
    assert style_table(meta, 1) == [{"name": "candy", "style_image": "candy.jpg", "global_step": 700}]
    # a table that does not fit the network is not trusted: numbered rows instead
    assert [row["name"] for row in style_table({"styles": [{"name": "a"}]}, 2)] == ["style0", "style1"]
