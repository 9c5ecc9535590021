"""experiment=distill: the fast preset learns a bundled network's frames without a loss network;
composed from the real config and shrunk. The artifact carries the teacher's style rows and runs
through the same loader as every model."""

from __future__ import annotations

import pytest
import torch
from conftest import compose_train

from reconet.inference.stylizer import load
from reconet.losses.distill import DistillationLoss
from reconet.models import load_stylizer
from reconet.models.artifact import style_table
from reconet.training.config import ConfigError
from reconet.training.train import prepare, train


def distill(tmp_path, *overrides: str):
    return compose_train(
        "experiment=distill",
        f"output_dir={tmp_path}",
        "data.size=[48,48]",
        "data.val_size=[48,48]",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.val_pairs=2",
        "data.num_samples=8",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.precision=32-true",
        "callbacks.samples.clip=null",
        "loss.compile_teacher=false",
        *overrides,
    )


def test_the_recipe_is_the_fast_preset_against_a_bundled_teacher_without_vgg(tmp_path):
    run = prepare(distill(tmp_path))
    assert run.module.network.config == {"channels": [16, 32, 48], "num_residual_blocks": 2, "norm": "instance", "outer_kernel": 3}
    assert isinstance(run.module.loss, DistillationLoss)
    assert not any("vgg" in type(m).__name__.lower() for m in run.module.modules())
    assert run.config["style_table"][0]["name"] == "candy"
    assert run.config["style_table"][0]["distilled_from"] == "candy"


@pytest.mark.slow  # a real two-step run, its artifact and the stylizer that reads it
def test_a_multi_style_teacher_gives_a_student_with_the_chosen_rows(tmp_path):
    metrics, run = train(
        distill(tmp_path, "teacher=multistyle", "teacher_styles=[udnie,wave]", "trainer.max_steps=2", "trainer.val_check_interval=2")
    )
    assert {"train/pixel", "val/pixel_udnie", "val/pixel_wave", "val/temporal_error"} <= set(metrics)
    model, meta = load_stylizer(tmp_path / "stylizer.pt")
    assert model.num_styles == 2 and model.config["outer_kernel"] == 3
    rows = style_table(meta, model.num_styles)
    assert [row["name"] for row in rows] == ["udnie", "wave"]
    assert [row["teacher_row"] for row in rows] == [2, 6] and rows[0]["distilled_from"] == "multistyle"
    assert rows[1]["global_step"] == 2
    wave = load(tmp_path / "stylizer.pt", device="cpu", precision="fp32", style="wave")
    x = torch.rand(1, 3, 30, 50)
    with torch.no_grad():
        torch.testing.assert_close(wave(x), model(x, style=1).output, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_a_single_style_student_is_named_after_its_teacher_and_resumes(tmp_path):
    train(distill(tmp_path, "trainer.max_steps=1", "trainer.val_check_interval=1"))
    _, meta = load_stylizer(tmp_path / "stylizer.pt")
    assert meta["style"] == "candy" and style_table(meta, 1)[0]["name"] == "candy"
    resumed = tmp_path / "resumed"
    train(distill(resumed, "trainer.max_steps=2", "trainer.val_check_interval=1", f"ckpt_path={tmp_path}/checkpoints/last.ckpt"))
    _, meta = load_stylizer(resumed / "stylizer.pt")
    assert meta["global_step"] == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["teacher=null"], "loss=distill needs a teacher"),
        (["teacher=multistyle", "teacher_styles=[candy,nope]"], r"teacher_styles: \['nope'\] not among"),
        (["teacher=no_such_style"], "teacher no_such_style: unknown style"),
    ],
)
def test_a_bad_teacher_is_a_one_line_error(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        prepare(distill(tmp_path, *overrides))
