"""experiment=multistyle: one conditional-norm network for the bundled paintings, composed from
the real config and shrunk; its artifact carries the style table and runs any style or blend;
init_from starts it from an existing artifact."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch
from conftest import compose_train, shrunk_training

from reconet.inference.stylizer import load
from reconet.models import load_stylizer, save_artifact
from reconet.models.artifact import style_table
from reconet.models.pretrained import pretrained_path
from reconet.training.config import ConfigError
from reconet.training.train import prepare, train

BUNDLED = [
    "candy", "mosaic", "udnie", "starry_night", "starry_night_crop", "the_scream", "wave",
    "composition_vii", "edtaonisl", "the_shipwreck_of_the_minotaur",
]  # fmt: skip
ASSET_STYLES = Path(__file__).resolve().parents[2] / "reconet" / "assets" / "styles"


def multistyle(tmp_path: Path, *overrides: str):
    return compose_train(*shrunk_training("experiment=multistyle", f"output_dir={tmp_path}", "data.batch_size=2", *overrides))


def test_the_recipe_holds_ten_licence_clean_paintings_each_with_its_own_rows(tmp_path):
    run = prepare(multistyle(tmp_path, "debug=fdr"))
    assert list(run.config["styles"]) == BUNDLED
    assert run.module.network.num_styles == len(BUNDLED) == run.module.loss.num_styles
    assert run.module.loss.style_names == tuple(BUNDLED)
    scales = dict(zip(BUNDLED, run.module.loss.style_scales.tolist()))
    assert scales["candy"] == 1.0 and scales["wave"] == 3.0  # per-style beta multipliers from the config
    for name in BUNDLED:  # every painting is one the package may ship (ATTRIBUTION.md lists them)
        assert (ASSET_STYLES / f"{name}.jpg").is_file()


@pytest.mark.slow  # a real (one-step) training run and the artifact it writes
def test_a_run_logs_per_style_terms_and_writes_an_artifact_with_the_style_table(tmp_path):
    metrics, run = train(multistyle(tmp_path, "debug=fdr", "trainer.max_steps=1"))
    per_style = [name for name in metrics if name.startswith(("train/style_", "val/style_"))]
    assert per_style and all(math.isfinite(metrics[name]) for name in per_style)
    model, meta = load_stylizer(tmp_path / "stylizer.pt")
    rows = style_table(meta, model.num_styles)
    assert [row["name"] for row in rows] == BUNDLED
    udnie = rows[BUNDLED.index("udnie")]
    assert udnie["style_sha256"] == hashlib.sha256((ASSET_STYLES / "udnie.jpg").read_bytes()).hexdigest()
    assert udnie["style_size"] == 64 and udnie["scale"] == 2.0
    # the artifact runs one style, or a blend, as a plain single-style stylizer
    x = torch.rand(1, 3, 32, 40)
    wave = load(tmp_path / "stylizer.pt", device="cpu", precision="fp32", style="wave")
    blend = load(tmp_path / "stylizer.pt", device="cpu", precision="fp32", style="wave:0.5,udnie:0.5")
    with torch.no_grad():
        expected = model(x, style=BUNDLED.index("wave")).output
        mix = torch.zeros(len(BUNDLED))
        mix[BUNDLED.index("wave")] = mix[BUNDLED.index("udnie")] = 0.5
        expected_blend = model(x, style=mix).output
    torch.testing.assert_close(wave(x), expected, rtol=0, atol=1e-4)
    torch.testing.assert_close(blend(x), expected_blend, rtol=0, atol=1e-4)
    assert blend.meta["style_mix"] == {"udnie": 0.5, "wave": 0.5}
    with pytest.raises(ValueError, match="holds 10 styles"):
        load(tmp_path / "stylizer.pt", device="cpu")


def test_init_from_a_single_style_artifact_copies_its_weights_into_every_row(tmp_path):
    run = prepare(multistyle(tmp_path, "debug=fdr", "loss.network.weights=random", "init_from=candy"))
    candy, _ = load_stylizer(pretrained_path("candy"))
    network = run.module.network
    assert torch.equal(network.encoder.conv1.conv.weight, candy.encoder.conv1.conv.weight)
    table = network.encoder.res1.norm2.weight  # (10, C)
    assert all(torch.equal(row, candy.encoder.res1.norm2.weight) for row in table)


def test_init_from_must_fit_the_architecture_and_the_style_order(tmp_path):
    with pytest.raises(ConfigError, match="init_from .*architecture"):
        prepare(multistyle(tmp_path / "a", "debug=fdr", "model=small", "init_from=candy"))
    # a multi-style artifact whose styles are not the run's first styles, in order
    from reconet.models import build_reconet

    other = save_artifact(tmp_path / "other.pt", build_reconet("tiny", num_styles=2), {"styles": [{"name": "wave"}, {"name": "candy"}]})
    with pytest.raises(ConfigError, match=r"its styles \['wave', 'candy'\] must come first"):
        prepare(multistyle(tmp_path / "b", "debug=fdr", f"init_from={other}"))


def test_a_missing_style_image_fails_at_once_naming_the_style(tmp_path):
    with pytest.raises(ConfigError, match=r"styles.wave.image: file not found: .*nowhere.jpg"):
        prepare(multistyle(tmp_path, "debug=fdr", f"styles.wave.image={tmp_path / 'nowhere.jpg'}"))


# -- experiment=add_style: one new row on top of a trained multi-style network -------------


@pytest.fixture()
def three_styles(tmp_path: Path) -> Path:
    from reconet.models import build_reconet

    torch.manual_seed(4)
    model = build_reconet("tiny", num_styles=3)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    rows = [{"name": "candy", "global_step": 900}, {"name": "wave"}, {"name": "mosaic"}]
    return save_artifact(tmp_path / "three.pt", model, {"styles": rows})


def add_style(tmp_path: Path, *overrides: str):
    return compose_train(*shrunk_training("experiment=add_style", f"output_dir={tmp_path}", "data.batch_size=2", *overrides))


@pytest.mark.slow  # a short real training run
def test_add_style_trains_only_the_new_row_and_keeps_every_other_weight_bit_identical(tmp_path, three_styles):
    metrics, run = train(add_style(tmp_path / "run", f"init_from={three_styles}", "style=udnie", "trainer.max_steps=3"))
    assert run.trainer.global_step == 3 and math.isfinite(metrics["train/total"])
    source, _ = load_stylizer(three_styles)
    added, meta = load_stylizer(tmp_path / "run" / "stylizer.pt")
    assert added.num_styles == 4
    rows = style_table(meta, 4)
    assert [row["name"] for row in rows] == ["candy", "wave", "mosaic", "udnie"]
    assert rows[0] == {"name": "candy", "global_step": 900} and rows[3]["global_step"] == 3
    moved = 0
    before, after = source.state_dict(), added.state_dict()
    for key, value in before.items():
        if after[key].shape == value.shape:
            assert torch.equal(after[key], value), key  # shared convolutions untouched
        else:
            assert torch.equal(after[key][:3], value), key  # the bundled rows, bit for bit
            moved += int(not torch.allclose(after[key][3], value.mean(dim=0)))
    assert moved > 0  # the new row learned something
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():  # so every old style gives exactly what it gave before
        for index in range(3):
            assert torch.equal(added.eval()(x, style=index).output, source.eval()(x, style=index).output)


def test_add_style_needs_a_source_and_a_new_name(tmp_path, three_styles):
    with pytest.raises(ConfigError, match="init_from"):
        prepare(add_style(tmp_path / "a", "debug=fdr", "style=udnie"))
    with pytest.raises(ConfigError, match="already holds a style named 'wave'"):
        prepare(add_style(tmp_path / "b", "debug=fdr", f"init_from={three_styles}", "style=wave"))


@pytest.mark.slow  # two short training runs
def test_a_multi_style_checkpoint_resumes_and_runs_as_a_stylizer(tmp_path):
    overrides = ("trainer.max_steps=2", "trainer.val_check_interval=2", "data.val_pairs=1", "styles.mosaic=null")
    train(multistyle(tmp_path, *overrides))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 2
    model, _ = load_stylizer(last)  # a Lightning checkpoint of a multi-style run is a stylizer too
    assert model.num_styles == len(BUNDLED) - 1
    _, run = train(multistyle(tmp_path, *overrides[1:], "trainer.max_steps=3", f"ckpt_path={last}"))
    assert run.trainer.global_step == 3
    assert [row["name"] for row in style_table(load_stylizer(tmp_path / "stylizer.pt")[1], 9)] == [n for n in BUNDLED if n != "mosaic"]
