"""The saved-model format of reconet and strict loading of stylizers.

Inference artifact (format version 1) = ``torch.save`` of a plain dict, nothing but tensors,
strings, numbers, lists and dicts, so it loads with ``torch.load(weights_only=True)``::

    {
        "format": "reconet-stylizer",
        "version": 1,
        "model_config": {"channels": [48, 96, 192], "num_residual_blocks": 4, "norm": "instance"},
        "state_dict": {"encoder.conv1.conv.weight": Tensor, ...},   # ReCoNet.state_dict(), CPU
        "meta": {...},   # JSON-able: style name, training step, loss network used, ...
    }

A multi-style network (``model_config["num_styles"]`` > 1, conditional instance norm) carries
its *style table* in ``meta["styles"]``: one row per style, in the order of its gamma/beta rows,
``{"name", "style_image", "style_sha256", "style_size", "scale", "global_step", ...}`` plus what
was measured. A single-style artifact reads as a one-row table (:func:`style_table`).

:func:`load_stylizer` also accepts a PyTorch Lightning checkpoint of reconet training: its
``state_dict`` keys of the stylization network start with ``network.`` (the LightningModule
attribute) and ``hyper_parameters["model_config"]`` rebuilds the architecture. Other
entries of a checkpoint (loss network, optimizer, ...) are ignored.

Loading is strict: every key the architecture expects must be present with its exact shape and
finite values, and no other key may be present. Earlier public ReCoNet code loaded weights
"selectively", silently skipping every renamed key, so a model that loaded nothing looked fine.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from reconet.fileio import atomic_write
from reconet.models.reconet import ReCoNet

__all__ = ["ARTIFACT_FORMAT", "ARTIFACT_VERSION", "ModelFileError", "load_stylizer", "save_artifact", "style_table"]

ARTIFACT_FORMAT = "reconet-stylizer"
ARTIFACT_VERSION = 1
LIGHTNING_PREFIX = "network."
_MAX_LISTED = 8


class ModelFileError(ValueError):
    """A file that is not a (valid) reconet model; the message names the file and the problem."""


def save_artifact(
    path: str | os.PathLike, model: ReCoNet, meta: Mapping[str, Any] | None = None, dtype: torch.dtype = torch.float32
) -> Path:
    """Write ``model`` as an inference artifact at ``path`` (atomically) and return the path.

    The file is written to a temporary name in the destination folder and renamed when complete,
    so an interrupted save never leaves a partial file at ``path``. Floating-point weights are
    stored on the CPU as ``dtype`` whatever the model's device and dtype: float32 (default) or
    float16 (half the size, for the bundled models; loading converts to the model's float32).
    ``meta`` must be JSON-able.
    """
    if not isinstance(model, ReCoNet):
        raise TypeError(f"save_artifact expects a ReCoNet, got {type(model).__name__}")
    if dtype not in (torch.float32, torch.float16):
        raise ValueError(f"artifact weights are stored as float32 or float16, got {dtype}")
    meta = dict(meta or {})
    try:
        meta = json.loads(json.dumps(meta))  # a deep, JSON-only copy
    except (TypeError, ValueError) as error:
        raise ValueError(f"artifact meta must be JSON-able: {error}") from error
    state_dict = {
        key: (value.detach().to("cpu", dtype) if value.is_floating_point() else value.detach().cpu()).clone()
        for key, value in model.state_dict().items()
    }
    overflow = [key for key, value in state_dict.items() if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    if overflow:
        raise ValueError(f"weights not finite as {dtype}: {_listed(overflow)}")
    payload = {
        "format": ARTIFACT_FORMAT,
        "version": ARTIFACT_VERSION,
        "model_config": model.config,
        "state_dict": state_dict,
        "meta": meta,
    }
    path = Path(path)
    return atomic_write(path, lambda handle: torch.save(payload, handle))


def load_stylizer(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[ReCoNet, dict[str, Any]]:
    """Load a ReCoNet (in eval mode, on ``map_location``) and its meta dict from an artifact or
    a reconet Lightning checkpoint.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ModelFileError: anything else that is wrong with the file (one line naming the file).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: empty file (0 bytes), not a reconet model")
    payload = _torch_load(path)
    config, state_dict, meta = _unpack(payload, path)
    try:
        model = ReCoNet(**config)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: invalid model_config {config!r}: {error}") from error
    _check_state_dict(model, state_dict, path)
    model.load_state_dict(state_dict, strict=True)
    return model.to(torch.device(map_location)).eval(), meta


def _torch_load(path: Path) -> Any:
    # Always on the CPU: a "cuda" map_location on a machine without CUDA must not be reported as
    # a broken file. weights_only=True: loading a model must never run code from the file.
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        message = " ".join(str(error).split())
        if "GLOBAL" in message or "global" in message:
            raise ModelFileError(
                f"{path}: refused to load: the file needs arbitrary Python objects (a pickled model or "
                "config object?); reconet model files hold only tensors and plain containers"
            ) from error
        raise ModelFileError(f"{path}: not a reconet model (not a readable torch file)") from error
    except (struct.error, RuntimeError, EOFError, ValueError, KeyError, IndexError) as error:
        raise ModelFileError(f"{path}: not a reconet model (not a readable torch file: {type(error).__name__})") from error


def _unpack(payload: Any, path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(model_config, state_dict, meta) from an artifact or a Lightning checkpoint dict."""
    if not isinstance(payload, dict):
        raise ModelFileError(
            f"{path}: not a reconet model (a torch file holding a {type(payload).__name__}, "
            f"expected a {ARTIFACT_FORMAT!r} artifact or a Lightning checkpoint)"
        )
    if "format" in payload:
        if payload["format"] != ARTIFACT_FORMAT:
            raise ModelFileError(f"{path}: not a reconet model (format {payload['format']!r}, expected {ARTIFACT_FORMAT!r})")
        version = payload.get("version")
        if version != ARTIFACT_VERSION:
            raise ModelFileError(
                f"{path}: artifact format version {version!r} is not supported (this reconet reads version {ARTIFACT_VERSION})"
            )
        config, state_dict, meta = payload.get("model_config"), payload.get("state_dict"), payload.get("meta", {})
        if not isinstance(config, dict) or not isinstance(state_dict, dict) or not isinstance(meta, dict):
            raise ModelFileError(f"{path}: broken artifact: model_config, state_dict and meta must be dicts")
        return config, state_dict, dict(meta)
    if isinstance(payload.get("state_dict"), dict) and ("hyper_parameters" in payload or "pytorch-lightning_version" in payload):
        hparams = payload.get("hyper_parameters")
        config = hparams.get("model_config") if isinstance(hparams, Mapping) else None
        if not isinstance(config, Mapping):
            raise ModelFileError(
                f"{path}: Lightning checkpoint without hyper_parameters['model_config'] (not written by reconet training)"
            )
        full = payload["state_dict"]
        state_dict = {key[len(LIGHTNING_PREFIX) :]: value for key, value in full.items() if key.startswith(LIGHTNING_PREFIX)}
        if not state_dict:
            raise ModelFileError(
                f"{path}: Lightning checkpoint without '{LIGHTNING_PREFIX}*' weights; keys start {_listed(sorted(full))}"
            )
        meta: dict[str, Any] = {
            "source": "lightning-checkpoint",
            "epoch": payload.get("epoch"),
            "global_step": payload.get("global_step"),
        }
        meta["hyper_parameters"] = {str(k): v for k, v in hparams.items() if k != "model_config" and _is_json(v)}
        return dict(config), state_dict, meta
    if payload and all(isinstance(value, torch.Tensor) for value in payload.values()):
        raise ModelFileError(
            f"{path}: a bare state dict without model_config, so the architecture is unknown; "
            "save models with reconet.models.save_artifact"
        )
    raise ModelFileError(
        f"{path}: not a reconet model (a dict with keys {_listed(sorted(map(str, payload)))}, "
        f"expected a {ARTIFACT_FORMAT!r} artifact or a Lightning checkpoint)"
    )


def _check_state_dict(model: ReCoNet, state_dict: Mapping[str, Any], path: Path) -> None:
    """Strict comparison with the architecture's own state dict; every problem is listed."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched, non_finite = [], []
    for key in sorted(set(expected) & set(state_dict)):
        value = state_dict[key]
        if not isinstance(value, torch.Tensor):
            mismatched.append(f"{key} is a {type(value).__name__}, not a tensor")
        elif value.shape != expected[key].shape:
            mismatched.append(f"{key} {tuple(value.shape)} (model {tuple(expected[key].shape)})")
        elif value.is_floating_point() and not bool(torch.isfinite(value).all()):
            non_finite.append(key)
    problems = []
    if missing:
        problems.append(f"missing keys {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listed(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches {_listed(mismatched)}")
    if non_finite:
        problems.append(f"non-finite values in {_listed(non_finite)}")
    if problems:
        raise ModelFileError(f"{path}: weights do not fit ReCoNet({_config_text(model.config)}): " + "; ".join(problems))


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = f", ... (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return f"[{shown}{more}]"


def _config_text(config: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in config.items())


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def style_table(meta: Mapping[str, Any], num_styles: int) -> list[dict[str, Any]]:
    """The rows of a model's style table, one per style in row order (see the module doc).

    A single-style artifact without a table is one row named by ``meta["style"]`` (its
    ``style_image``'s stem, else "style"); a table that does not fit ``num_styles`` is ignored
    in favour of numbered rows (``style0``, ``style1``, ...), so every style stays reachable.
    """
    rows = meta.get("styles")
    if isinstance(rows, list) and len(rows) == num_styles and all(isinstance(r, Mapping) and r.get("name") for r in rows):
        return [dict(row) for row in rows]
    if num_styles == 1:
        image = meta.get("style_image")
        name = meta.get("style") or (Path(str(image)).stem if image else None) or "style"
        return [{"name": str(name), "style_image": image, "global_step": meta.get("global_step")}]
    return [{"name": f"style{index}"} for index in range(num_styles)]
