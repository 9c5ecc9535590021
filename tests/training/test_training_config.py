"""The real Hydra config: every group option composes, styles load, defaults are the paper recipe,
bad configs fail before training with one-line messages."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from conftest import compose_train, shrunk_training
from omegaconf import OmegaConf

from reconet.image import load_image
from reconet.training.config import ConfigError, register_resolvers
from reconet.training.train import prepare

register_resolvers()

CONF = resources.files("reconet.conf")
# never bundled (see the sample data's README): copyrighted, or of unknown/US-only status
NOT_SHIPPABLE = {"la_muse", "rain_princess", "rain_princess_cropped", "feathers", "autoportrait", "composition_reconet"}


def options(group: str) -> list[str]:
    return sorted(p.name[:-5] for p in (CONF / group).iterdir() if p.name.endswith(".yaml"))


def fast(tmp_path: Path, *overrides: str) -> list[str]:
    return shrunk_training(f"output_dir={tmp_path}", *overrides)


def test_defaults_are_the_paper_gpu_recipe_on_the_bundled_photos():
    cfg = compose_train("output_dir=unused")
    assert list(cfg.data.size) == [360, 640]  # (H, W) = 640x360
    assert cfg.data.batch_size == 2
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == pytest.approx(1e-3)
    assert cfg.optimizer._partial_ is True
    assert cfg.model.preset == "paper" and list(cfg.model.channels) == [48, 96, 192]
    # the bundled VGG-19, so the default run downloads nothing (tests/test_offline_defaults.py)
    assert cfg.loss.network.name == "vgg19" and cfg.loss.network.weights == "auto"
    assert cfg.data.train.photos._target_ == "reconet.data.PhotoPairs"
    assert cfg.data.root is None  # null = the photos bundled with the package
    assert cfg.trainer.max_epochs == 2 and cfg.trainer.accelerator == "auto"
    assert cfg.logger.tensorboard._target_.endswith("TensorBoardLogger")


@pytest.mark.parametrize("style", options("style"))
def test_every_style_composes_and_its_image_loads(style):
    cfg = compose_train("output_dir=unused", f"style={style}")
    assert cfg.style.name == style
    path = Path(cfg.style.image)
    assert path.is_file(), path
    image = load_image(path)  # (3, H, W)
    assert image.shape[0] == 3 and max(image.shape[1:]) <= 1024 and min(image.shape[1:]) >= 256


def test_bundled_styles_are_shippable_and_attributed():
    bundled = {p.name.rsplit(".", 1)[0] for p in (resources.files("reconet") / "assets" / "styles").iterdir() if p.name.endswith(".jpg")}
    assert bundled == set(options("style"))
    assert not bundled & NOT_SHIPPABLE
    attribution = (resources.files("reconet") / "assets" / "styles" / "ATTRIBUTION.md").read_text()
    for name in bundled:
        assert f"{name}.jpg" in attribution
    assert "BSD 3-Clause" in attribution


@pytest.mark.parametrize(
    "group", ["model", "loss", "data", "optimizer", "scheduler", "trainer", "logger", "callbacks", "experiment", "debug"]
)
def test_every_group_option_composes(group):
    for option in options(group):
        cfg = compose_train("output_dir=unused", f"{group}={option}")
        OmegaConf.to_container(cfg.model, resolve=True)
        assert cfg.style.name == "candy"


GROUPS = ["model", "loss", "optimizer", "scheduler", "trainer", "logger", "callbacks", "experiment", "debug", "data"]
# What an option needs on this machine: a data root from the sample data, the CPU for a GPU config.
CLIP = "videos/mdn_cc0_flower.mp4"
SINTEL_SAMPLE = ["data.train_scenes=[alley_1]", "data.val_scenes=[alley_1]"]  # the scenes of the sample
CHAIRS_SAMPLE = ["data.val.flyingchairs.split=train"]  # the sample's pairs are all in the train split
NEEDS = {
    ("trainer", "ddp"): lambda data, tmp: ["trainer.accelerator=cpu"],
    # a new style added to a bundled (single-style) model: grown to two rows
    ("experiment", "add_style"): lambda data, tmp: ["init_from=candy", "style=udnie"],
    ("trainer", "gpu"): lambda data, tmp: ["trainer.accelerator=cpu"],
    # distillation learns from a trained network, not from a painting through VGG
    ("loss", "distill"): lambda data, tmp: ["teacher=candy"],
    ("data", "sintel"): lambda data, tmp: [f"data.root={data / 'sintel'}", *SINTEL_SAMPLE],
    ("data", "flyingchairs"): lambda data, tmp: [
        f"data.root={data / 'flyingchairs/FlyingChairs_release'}", *CHAIRS_SAMPLE],
    ("data", "sintel_flyingchairs"): lambda data, tmp: [
        f"data.sintel_root={data / 'sintel'}", f"data.chairs_root={data / 'flyingchairs/FlyingChairs_release'}",
        *SINTEL_SAMPLE],
    ("data", "videos"): lambda data, tmp: [f"data.paths=[{data / CLIP}]", "data.max_frames=8", f"data.cache_dir={tmp}"],
    ("data", "photos_videos"): lambda data, tmp: [
        f"data.paths=[{data / CLIP}]", "data.max_frames=8", f"data.cache_dir={tmp}"],
    # No sample of these datasets exists here: the option must reach its dataset class, which
    # names the missing root in one line (a wrong _target_ would fail differently).
    ("data", "flyingchairs2"): lambda data, tmp: [f"data.root={tmp / 'missing'}"],
    ("data", "scene_flow"): lambda data, tmp: [f"data.root={tmp / 'missing'}"],
}
NO_SAMPLE = {("data", "flyingchairs2"), ("data", "scene_flow")}


@pytest.mark.slow  # builds Trainer, datasets and loss network 31 times (about 20 s)
@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_instantiates(tmp_path, sample_data, group, option):
    """Not only composed: prepare() builds every object of the run from it (network, loss
    network, datasets, optimizer and scheduler factories, loggers, callbacks, Trainer)."""
    extra = NEEDS.get((group, option), lambda data, tmp: [])(sample_data, tmp_path)
    overrides = shrunk_training(f"output_dir={tmp_path / 'run'}", f"{group}={option}", *extra)
    if (group, option) == ("callbacks", "none"):
        overrides = [o for o in overrides if not o.startswith("callbacks.")]  # no such node
    if option == "distill":  # no loss network: the shrinking of its VGG settings does not apply
        overrides = [o for o in overrides if not o.startswith("loss.")]
    cfg = compose_train(*overrides)
    if (group, option) in NO_SAMPLE:
        with pytest.raises(ConfigError, match=f"{tmp_path / 'missing'}.*does not exist"):
            prepare(cfg)
        return
    run = prepare(cfg)
    assert run.trainer is not None and run.module is not None
    callbacks = {type(c).__name__ for c in run.trainer.callbacks}
    if (group, option) == ("callbacks", "none"):
        assert "SampleExport" not in callbacks
    else:
        assert {"Checkpoint", "ArtifactExport", "SampleExport"} <= callbacks
    if group == "logger":
        kinds = {type(logger).__name__ for logger in run.trainer.loggers}
        assert kinds == {"csv": {"CSVLogger"}, "tensorboard": {"TensorBoardLogger"},
                         "many": {"CSVLogger", "TensorBoardLogger"}}[option]


def test_vgg16_losses_stay_available_on_request():
    cfg = compose_train("output_dir=unused", "loss=vgg16")
    assert cfg.loss.network.name == "vgg16" and cfg.loss.network.allow_fallback is True
    # same objective as the default, only the network differs
    default = compose_train("output_dir=unused")
    assert OmegaConf.to_container(cfg.loss.weights) == OmegaConf.to_container(default.loss.weights)
    assert cfg.loss.content_layer == default.loss.content_layer
    assert list(cfg.loss.style_layers) == list(default.loss.style_layers)


def test_experiments_are_one_override_patches():
    cfg = compose_train("output_dir=unused", "experiment=no_temporal")
    assert cfg.loss.lambda_f == 0 and cfg.loss.lambda_o == 0
    assert cfg.loss.alpha is None and cfg.loss.beta is None  # still the loss network's own values
    for network in ("vgg16", "vgg19"):
        assert cfg.loss.weights[network].alpha > 0 and cfg.loss.weights[network].beta > 0
    quick = compose_train("output_dir=unused", "experiment=quickstart")
    assert quick.model.preset == "tiny" and quick.trainer.accelerator == "cpu"
    assert quick.trainer.max_steps > 0
    assert quick.data.train.photos._target_ == "reconet.data.PhotoPairs"  # natural content by default
    # The README's first command downloads nothing: the bundled VGG-19, no VGG-16 fallback path.
    assert quick.loss.network.name == "vgg19" and quick.loss.network.allow_fallback is False


def test_debug_configs():
    fdr = compose_train("output_dir=unused", "debug=fdr")
    assert fdr.trainer.fast_dev_run is True
    overfit = compose_train("output_dir=unused", "debug=overfit")
    assert overfit.trainer.overfit_batches == 1


# -- bad configs fail early, in one line --------------------------------------------------
def _prepare_error(tmp_path: Path, *overrides: str) -> str:
    cfg = compose_train(*fast(tmp_path, *overrides))
    with pytest.raises(ConfigError) as info:
        prepare(cfg)
    message = str(info.value)
    assert "\n" not in message
    assert not list(tmp_path.glob("checkpoints/*")), "nothing may be written before the config is checked"
    return message


def test_missing_style_image(tmp_path):
    message = _prepare_error(tmp_path, f"style.image={tmp_path / 'nope.jpg'}")
    assert message.startswith("style.image: file not found") and "nope.jpg" in message


def test_unknown_model_preset(tmp_path):
    message = _prepare_error(tmp_path, "model.preset=huge")
    assert "huge" in message and "paper" in message


def test_dataset_root_missing(tmp_path):
    message = _prepare_error(tmp_path, "data=sintel", f"data.root={tmp_path / 'no_such_dir'}")
    assert "no_such_dir" in message and "does not exist" in message


def test_dataset_root_without_pairs(tmp_path):
    root = tmp_path / "sintel"
    (root / "training" / "flow" / "alley_1").mkdir(parents=True)
    (root / "training" / "clean" / "alley_1").mkdir(parents=True)
    message = _prepare_error(tmp_path, "data=sintel", f"data.root={root}", "data.train_scenes=null")
    assert "no pairs" in message and str(root) in message


def test_missing_dataset_root_value(tmp_path):
    message = _prepare_error(tmp_path, "data=sintel")
    assert "data.root" in message


def _cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "reconet.cli.train", f"hydra.run.dir={tmp_path / 'run'}", *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow  # subprocesses of the real command
@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["model=huge"], "unknown model preset 'huge'"),
        (["data=sintel", "data.root=/no/such/sintel"], "/no/such/sintel does not exist"),
    ],
)
def test_cli_bad_config_is_one_line_nonzero_exit_no_traceback(tmp_path, overrides, expected):
    result = _cli(tmp_path, "loss.network.weights=random", *overrides)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("reconet-train: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
