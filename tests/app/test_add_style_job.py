"""Add-a-style as the web app runs it: a real ``reconet-train experiment=add_style`` child process
(shrunk), polled for its curve and preview, finished into the models folder or cancelled without
a trace. No Gradio needed: this is the job the page's buttons drive."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from conftest import shrunk_training

from reconet.app.catalog import build_catalog
from reconet.app.training import AddStyleJob, read_curve, train_command
from reconet.models.artifact import load_stylizer, style_table
from reconet.models.pretrained import bundled_network_path
from reconet.resources import asset_path

pytestmark = pytest.mark.slow

PAINTING = Path(asset_path("styles/udnie.jpg"))


def _shrunk() -> list[str]:
    # the test-size config of every training test, minus keys add_style sets its own way
    kept = [o for o in shrunk_training(size=64) if not o.startswith(("model=", "trainer=", "trainer.max_epochs"))]
    return [*kept, "trainer.log_every_n_steps=1"]


def _wait(job: AddStyleJob, states: tuple[str, ...], timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job.status()
        if status.state in states:
            return status
        time.sleep(0.5)
    raise AssertionError(f"job still {job.status().state} after {timeout} s: {job.status().message}")


def test_a_finished_style_lands_in_the_models_folder_with_the_others_untouched(tmp_path: Path) -> None:
    base = bundled_network_path("multistyle")
    assert base is not None
    job = AddStyleJob(tmp_path / "work", tmp_path / "models")
    job.start(PAINTING, "my_udnie", base, steps=4, preview_every=2, overrides=_shrunk())
    status = _wait(job, ("done", "failed"))
    assert status.state == "done", status.message
    assert status.model_path == tmp_path / "models" / "my_udnie.pt"
    assert status.preview is not None and status.preview.dtype.name == "uint8"
    assert {term for _, term, _ in status.curve} >= {"total", "style"}
    assert not (tmp_path / "work" / "add_style" / "my_udnie").exists()  # the run folder is gone

    old_net, old_meta = load_stylizer(base)
    new_net, new_meta = load_stylizer(status.model_path)
    old_rows = [row["name"] for row in style_table(old_meta, old_net.num_styles)]
    assert [row["name"] for row in style_table(new_meta, new_net.num_styles)] == [*old_rows, "my_udnie"]
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        for index in range(len(old_rows)):  # every bundled style bit-identical
            assert torch.equal(old_net.for_style(index)(x).output, new_net.for_style(index)(x).output)
    catalog = build_catalog(tmp_path / "models")
    assert catalog.get("my_udnie.pt").styles[-1] == "my_udnie"


def test_cancel_stops_the_run_and_keeps_nothing(tmp_path: Path) -> None:
    job = AddStyleJob(tmp_path / "work", tmp_path / "models")
    job.start(PAINTING, "never", bundled_network_path("multistyle"), steps=100000, preview_every=1000, overrides=_shrunk())
    deadline = time.monotonic() + 120
    while job.status().step < 1 and time.monotonic() < deadline:  # really training
        time.sleep(0.5)
    process = job._process
    job.cancel()
    assert process is not None and process.poll() is not None
    assert job.status().state == "cancelled"
    assert not (tmp_path / "work" / "add_style" / "never").exists()
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())


def test_a_bad_painting_fails_with_the_runs_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "painting.jpg"
    bad.write_bytes(b"not an image")
    job = AddStyleJob(tmp_path / "work", tmp_path / "models")
    job.start(bad, "broken", bundled_network_path("multistyle"), steps=4, overrides=_shrunk())
    status = _wait(job, ("done", "failed"))
    assert status.state == "failed"
    assert "painting.jpg" in status.message and "\n" not in status.message
    assert not (tmp_path / "models" / "broken.pt").exists()


def test_one_run_at_a_time_and_no_overwriting(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "mine.pt").write_bytes(b"the user's file")
    job = AddStyleJob(tmp_path / "work", models)
    with pytest.raises(FileExistsError, match="mine.pt already exists"):
        job.start(PAINTING, "mine", bundled_network_path("multistyle"), steps=4, overrides=_shrunk())
    assert (models / "mine.pt").read_bytes() == b"the user's file"
    job.start(PAINTING, "first", bundled_network_path("multistyle"), steps=100000, overrides=_shrunk())
    try:
        with pytest.raises(RuntimeError, match="already being added"):
            job.start(PAINTING, "second", bundled_network_path("multistyle"), steps=4, overrides=_shrunk())
    finally:
        job.cancel()


def test_the_command_is_the_documented_add_style_run(tmp_path: Path) -> None:
    command = train_command(PAINTING, "x", "base.pt", tmp_path, steps=300, preview_every=50)
    assert command[1:4] == ["-m", "reconet.cli.train", "experiment=add_style"]
    assert {"init_from=base.pt", f"style.image={PAINTING}", "style.name=x", "trainer.max_steps=300"} <= set(command)


def test_read_curve_takes_the_training_terms_of_a_csv_log(tmp_path: Path) -> None:
    log = tmp_path / "metrics.csv"
    log.write_text("epoch,step,train/total,train/style,val/total\n0,9,5.0,2.0,\n0,19,4.0,1.5,\n0,19,,,3.0\n")
    last, curve = read_curve(log)
    assert last == 19
    assert curve == [(9, "total", 5.0), (9, "style", 2.0), (19, "total", 4.0), (19, "style", 1.5)]
    assert read_curve(tmp_path / "missing.csv") == (0, [])
