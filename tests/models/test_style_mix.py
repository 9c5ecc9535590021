"""--style specs: names and blends of a multi-style model's table, and the one-line errors."""

from __future__ import annotations

import pytest
import torch

from reconet.models import build_reconet
from reconet.models.style_mix import StyleSpecError, parse_style_mix, select_style

NAMES = ["candy", "udnie", "wave"]


@pytest.mark.parametrize(
    ("spec", "weights"),
    [
        ("udnie", [0, 1, 0]),
        ("udnie:0.6,wave:0.4", [0, 0.6, 0.4]),
        (" wave : 3 , candy:1 ", [0.25, 0, 0.75]),  # normalized to sum 1
        ("candy:2", [1, 0, 0]),
    ],
)
def test_names_and_blends_become_mixing_weights(spec, weights):
    torch.testing.assert_close(parse_style_mix(spec, NAMES), torch.tensor(weights, dtype=torch.float32))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("vangogh", "unknown style 'vangogh' in 'vangogh'; this model's styles: candy, udnie, wave"),
        ("udnie:0.6,,wave:0.4", "malformed style"),
        ("", "malformed style"),
        ("udnie:lots", "malformed weight 'lots' for style 'udnie'"),
        ("udnie:-1", "malformed weight '-1'"),
        ("udnie:nan", "malformed weight 'nan'"),
        ("udnie:0,wave:0", "add up to 0"),
        ("udnie,udnie:2", "given twice"),
    ],
)
def test_malformed_specs_are_one_line_errors_that_list_the_styles(spec, message):
    with pytest.raises(StyleSpecError, match=message.replace("(", r"\(")) as caught:
        parse_style_mix(spec, NAMES)
    assert "\n" not in str(caught.value)


def test_a_multi_style_model_needs_a_style_and_gives_the_network_of_the_mix():
    model = build_reconet("tiny", num_styles=3).eval()
    meta = {"styles": [{"name": name} for name in NAMES]}
    with pytest.raises(StyleSpecError, match=r"m.pt holds 3 styles \(candy, udnie, wave\): choose one with --style"):
        select_style(model, meta, None, where="m.pt")
    single, chosen = select_style(model, meta, "udnie:1,wave:1")
    assert single.num_styles == 1 and chosen["style_mix"] == {"udnie": 0.5, "wave": 0.5}
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(single(x).output, model(x, style=[0, 0.5, 0.5]).output, rtol=0, atol=1e-5)


def test_a_single_style_model_accepts_only_its_own_name():
    model = build_reconet("tiny")
    assert select_style(model, {"style": "candy"}, None)[0] is model
    assert select_style(model, {"style": "candy"}, "candy")[0] is model
    with pytest.raises(StyleSpecError, match="this model's styles: candy"):
        select_style(model, {"style": "candy"}, "wave")
