"""Inference artifact: atomic saving, strict loading of artifacts and Lightning checkpoints, and a
one-line ModelFileError for every kind of file that is not a reconet model."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from reconet.models import ReCoNet, build_reconet
from reconet.models.artifact import ARTIFACT_FORMAT, ModelFileError, load_stylizer, save_artifact


def trained_like(preset: str = "tiny") -> ReCoNet:
    """A model whose weights differ from any fresh initialization (so loading must really load)."""
    model = build_reconet(preset)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


def artifact_payload(model: ReCoNet, **changes) -> dict:
    payload = {
        "format": ARTIFACT_FORMAT,
        "version": 1,
        "model_config": model.config,
        "state_dict": model.state_dict(),
        "meta": {},
    }
    payload.update(changes)
    return payload


def lightning_like_checkpoint(model: ReCoNet, prefix: str = "network.") -> dict:
    """The layout PyTorch Lightning writes for a module holding the stylizer as ``self.network``."""
    state = {f"{prefix}{key}": value for key, value in model.state_dict().items()}
    state["loss.loss_network.features.conv1_1.weight"] = torch.zeros(64, 3, 3, 3)  # other submodules
    return {
        "epoch": 3,
        "global_step": 1200,
        "pytorch-lightning_version": "2.6.0",
        "state_dict": state,
        "loops": {},
        "callbacks": {},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3, "params": [0]}]}],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {"model_config": model.config, "run_config": {"style": {"name": "udnie"}}},
    }


def assert_same_network(a: ReCoNet, b: ReCoNet) -> None:
    x = torch.rand(1, 3, 12, 16)
    with torch.no_grad():
        torch.testing.assert_close(a(x).output, b(x).output, rtol=0, atol=0)


# -- round trips ---------------------------------------------------------------------------------
def test_artifact_round_trip(tmp_path: Path) -> None:
    model = trained_like()
    meta = {"style": "udnie", "global_step": 1200, "loss_network": {"name": "vgg19"}}
    path = save_artifact(tmp_path / "out" / "stylizer.pt", model, meta)
    assert path == tmp_path / "out" / "stylizer.pt"
    assert os.listdir(path.parent) == ["stylizer.pt"]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary new file, not mkstemp's 0600

    loaded, loaded_meta = load_stylizer(path)
    assert loaded_meta == meta
    assert loaded.config == model.config and not loaded.training
    assert_same_network(loaded, model)

    # The documented format, readable with nothing but torch.load(weights_only=True).
    raw = torch.load(path, weights_only=True)
    assert sorted(raw) == ["format", "meta", "model_config", "state_dict", "version"]
    assert raw["format"] == "reconet-stylizer" and raw["version"] == 1
    assert raw["model_config"] == {"channels": [24, 48, 96], "num_residual_blocks": 3, "norm": "instance"}
    assert all(v.device.type == "cpu" and v.dtype == torch.float32 for v in raw["state_dict"].values())


def test_artifact_of_a_half_precision_model_stores_float32(tmp_path: Path) -> None:
    model = trained_like()
    save_artifact(tmp_path / "m.pt", model.half(), {})
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert {v.dtype for v in raw["state_dict"].values()} == {torch.float32}


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stylizer.pt"
    save_artifact(path, trained_like(), {"version": "old"})
    before = path.read_bytes()

    def failing_save(obj, file) -> None:
        file.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_artifact(path, trained_like(), {"version": "new"})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["stylizer.pt"]


def test_meta_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="JSON"):
        save_artifact(tmp_path / "m.pt", trained_like(), {"path": Path("x")})
    assert not (tmp_path / "m.pt").exists()


def test_lightning_checkpoint_layout_loads(tmp_path: Path) -> None:
    model = trained_like("small")
    torch.save(lightning_like_checkpoint(model), tmp_path / "last.ckpt")
    loaded, meta = load_stylizer(tmp_path / "last.ckpt", map_location=torch.device("cpu"))
    assert loaded.config == model.config
    assert_same_network(loaded, model)
    assert meta["source"] == "lightning-checkpoint" and meta["epoch"] == 3 and meta["global_step"] == 1200
    assert meta["hyper_parameters"] == {"run_config": {"style": {"name": "udnie"}}}
    json.dumps(meta)


@pytest.mark.filterwarnings("ignore:.*LeafSpec")  # a deprecation inside Lightning, not ours
def test_real_lightning_checkpoint_loads(tmp_path: Path) -> None:
    # A checkpoint written by Lightning itself must pass torch.load(weights_only=True).
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    class Module(pl.LightningModule):
        def __init__(self, model_config: dict) -> None:
            super().__init__()
            self.network = ReCoNet(**model_config)
            self.save_hyperparameters()

        def training_step(self, batch, batch_index):
            return self.network(batch[0]).output.mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    module = Module(build_reconet("tiny", channels=(4, 8, 8), num_residual_blocks=1).config)
    trainer = pl.Trainer(
        max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, DataLoader(TensorDataset(torch.rand(1, 3, 8, 8)), batch_size=1))
    trainer.save_checkpoint(tmp_path / "real.ckpt")
    loaded, meta = load_stylizer(tmp_path / "real.ckpt")
    assert meta["global_step"] == 1
    assert_same_network(loaded, module.network.eval())


# -- strict loading ------------------------------------------------------------------------------
def test_renamed_keys_are_listed_not_skipped(tmp_path: Path) -> None:
    # Failure #8 of earlier public code: a "selective" loader skipped every renamed key.
    model = trained_like()
    state = {key.replace("encoder.conv1.conv.", "encoder.conv1.0."): v for key, v in model.state_dict().items()}
    torch.save(artifact_payload(model, state_dict=state), tmp_path / "renamed.pt")
    with pytest.raises(ModelFileError) as info:
        load_stylizer(tmp_path / "renamed.pt")
    message = str(info.value)
    assert "missing keys [encoder.conv1.conv.bias, encoder.conv1.conv.weight]" in message
    assert "unexpected keys [encoder.conv1.0.bias, encoder.conv1.0.weight]" in message
    assert "\n" not in message


def test_extra_key_is_rejected(tmp_path: Path) -> None:
    model = trained_like()
    state = {**model.state_dict(), "decoder.extra.weight": torch.zeros(3)}
    torch.save(artifact_payload(model, state_dict=state), tmp_path / "extra.pt")
    with pytest.raises(ModelFileError, match=r"unexpected keys \[decoder.extra.weight\]"):
        load_stylizer(tmp_path / "extra.pt")


def test_weights_of_another_architecture_are_rejected_with_shapes(tmp_path: Path) -> None:
    small = trained_like("small")
    torch.save(artifact_payload(small, model_config=build_reconet("tiny", num_residual_blocks=5).config), tmp_path / "mix.pt")
    with pytest.raises(ModelFileError, match=r"shape mismatches \[decoder.output.conv.weight \(3, 32, 9, 9\) \(model \(3, 24, 9, 9\)\)"):
        load_stylizer(tmp_path / "mix.pt")


def test_missing_residual_blocks_are_reported(tmp_path: Path) -> None:
    model = trained_like()  # 3 residual blocks saved, 4 announced
    torch.save(artifact_payload(model, model_config={**model.config, "num_residual_blocks": 4}), tmp_path / "m.pt")
    with pytest.raises(ModelFileError, match=r"missing keys \[encoder.res4.conv1.conv.bias"):
        load_stylizer(tmp_path / "m.pt")


def test_non_finite_weights_are_rejected(tmp_path: Path) -> None:
    model = trained_like()
    state = model.state_dict()
    state["encoder.res1.norm2.weight"] = torch.full_like(state["encoder.res1.norm2.weight"], float("nan"))
    torch.save(artifact_payload(model, state_dict=state), tmp_path / "nan.pt")
    with pytest.raises(ModelFileError, match=r"non-finite values in \[encoder.res1.norm2.weight\]"):
        load_stylizer(tmp_path / "nan.pt")


def test_lightning_checkpoint_with_other_prefix_or_no_config(tmp_path: Path) -> None:
    model = trained_like()
    torch.save(lightning_like_checkpoint(model, prefix="model."), tmp_path / "prefix.ckpt")
    with pytest.raises(ModelFileError, match="without 'network.\\*' weights"):
        load_stylizer(tmp_path / "prefix.ckpt")
    checkpoint = lightning_like_checkpoint(model)
    checkpoint["hyper_parameters"] = {"lr": 1e-3}
    torch.save(checkpoint, tmp_path / "noconfig.ckpt")
    with pytest.raises(ModelFileError, match="model_config"):
        load_stylizer(tmp_path / "noconfig.ckpt")


# -- files that are not reconet models -----------------------------------------------------------
class _Exploit:
    """Unpickling this would create a folder: a stand-in for arbitrary code in a model file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _bytes(data: bytes) -> Callable[[Path, Path], None]:
    return lambda path, marker: path.write_bytes(data)


def _torch(obj_factory: Callable[[Path], object]) -> Callable[[Path, Path], None]:
    return lambda path, marker: torch.save(obj_factory(marker), path)


NOT_MODELS = {
    "random bytes": (_bytes(bytes(range(256)) * 8), "not a readable torch file"),
    "json": (lambda path, marker: path.write_text(json.dumps({"format": "reconet-stylizer"})), "not a readable torch file"),
    "text": (lambda path, marker: path.write_text("hello\n"), "not a readable torch file"),
    "empty": (_bytes(b""), "empty file"),
    "truncated torch file": (
        lambda path, marker: (torch.save({"a": torch.zeros(100)}, path), path.write_bytes(path.read_bytes()[:200])),
        "not a readable torch file",
    ),
    "torch list": (_torch(lambda marker: [1, 2, 3]), "holding a list"),
    "torch dict of other things": (_torch(lambda marker: {"foo": 1, "bar": "x"}), r"keys \[bar, foo\]"),
    "bare state dict": (_torch(lambda marker: build_reconet("tiny").state_dict()), "bare state dict"),
    "other format": (_torch(lambda marker: {"format": "onnx", "version": 1}), "format 'onnx'"),
    "future version": (
        _torch(lambda marker: artifact_payload(build_reconet("tiny"), version=2)),
        "version 2 is not supported",
    ),
    "bad model_config": (
        _torch(lambda marker: artifact_payload(build_reconet("tiny"), model_config={"channels": [1, 2], "depth": 3})),
        "invalid model_config",
    ),
    "exploit (torch.save)": (_torch(lambda marker: {"state_dict": _Exploit(marker)}), "refused to load"),
    "exploit (raw pickle)": (
        lambda path, marker: path.write_bytes(pickle.dumps({"x": _Exploit(marker)}, protocol=2)),
        "refused to load",
    ),
}


@pytest.mark.parametrize("kind", sorted(NOT_MODELS))
def test_not_a_model_gives_one_line_model_file_error(tmp_path: Path, kind: str) -> None:
    writer, match = NOT_MODELS[kind]
    path = tmp_path / "model.pt"
    marker = tmp_path / "code_was_executed"
    writer(path, marker)
    with pytest.raises(ModelFileError, match=match) as info:
        load_stylizer(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert not marker.exists()  # nothing from the file was executed
    assert isinstance(info.value, ValueError)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_stylizer(tmp_path / "nope.pt")
    with pytest.raises(ModelFileError, match="not a file"):
        load_stylizer(tmp_path)
