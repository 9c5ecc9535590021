"""Run an evaluation: every method on every pair, per-pair records, per-scene and overall aggregates.

The result is a JSON-able dict (the report contract, documented in docs/evaluation.md) plus
the data for the error heat-map of one pair. Nothing is written here; see
:mod:`reconet.evaluation.report` for the table, the JSON file and the plots.

Aggregates (per scene and overall, over the valid pairs: those whose mask is not empty):

- ``temporal_error``: mean of E over pairs;  ``temporal_rmse`` = sqrt(mean E);
- ``temporal_error_ratio``: mean E of the method / mean E of the unstylized input on the same
  pairs (the headline: 1 = as coherent as the input video itself);
- ``frame_difference`` (flow-free, mean over pairs) and its ratio to the input;
- ``style_distance`` / ``content_distance`` means over frame N of every pair, when computed;
- ``content_structure``: mean over frame N of every pair of the edge-layout correlation with
  the input frame (:mod:`reconet.evaluation.structure`; 1 = the scene's layout is kept).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from reconet.devices import resolve_device
from reconet.evaluation.methods import INPUT_NAME, InputBaseline, MethodSpec, build_method
from reconet.evaluation.quality import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS, QualityScorer
from reconet.evaluation.sources import EvalPair, EvaluationError, SintelPairSource, VideoPairSource
from reconet.evaluation.structure import content_structure
from reconet.evaluation.temporal import frame_difference_error, temporal_error, temporal_error_map
from reconet.image import load_image
from reconet.losses.objective import resize_style_image
from reconet.models.loss_network import build_loss_network

REPORT_FORMAT = "reconet-evaluation"
REPORT_VERSION = 1


@dataclass
class EvaluationConfig:
    """Everything one evaluation run needs; the CLI only fills this in."""

    data: str = "sintel"  # "sintel" | "video"
    root: Path | None = None  # Sintel: the folder that contains training/
    videos: Sequence[str | Path] = ()  # video files or frame folders (data == "video")
    passes: Sequence[str] = ("clean",)
    scenes: Sequence[str] | None = None
    missing_occlusion: str = "skip"  # Sintel pairs without occlusion/invalid maps: skip | in_frame | error
    size: tuple[int, int] | None = None  # evaluation (H, W)
    scale: float | None = None  # or a factor of the original size
    max_frames: int | None = None  # video: only the first frames
    methods: Sequence[MethodSpec] = ()
    style: Path | None = None  # style image for the style distance
    style_size: int | None = None
    quality: bool = True  # style / content distances on the loss network
    loss_network: str = "vgg19"  # bundled weights: the default downloads nothing
    loss_weights: str = "auto"
    content_layer: str = DEFAULT_CONTENT_LAYER
    style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS
    flow_method: str = "auto"  # video: auto | raft | dis
    raft_weights: Path | None = None
    device: str = "cpu"
    precision: str = "fp32"  # of the models evaluated: fp32, bf16, fp16 or auto
    model_style: str | None = None  # the style (or blend) of multi-style models
    heatmap_pair: str | None = None  # "SCENE/FRAME" or "PASS/SCENE/FRAME"; default: first pair
    progress: bool = True


@dataclass
class EvaluationResult:
    report: dict
    heatmap: dict | None = field(default=None)  # label, frames and error maps of one pair


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def aggregate(records: Sequence[dict], reference: Sequence[dict] | None = None) -> dict:
    """Aggregates of per-pair records (see the module docstring); ``reference`` = the input's records
    for the same pairs, in the same order."""
    valid = [i for i, r in enumerate(records) if r["valid"]]
    te = _mean(records[i]["temporal_error"] for i in valid)
    fd = _mean(r["frame_difference"] for r in records)
    result = {
        "n_pairs": len(valid),
        "n_excluded": len(records) - len(valid),
        "temporal_error": te,
        "temporal_rmse": math.sqrt(te) if te is not None else None,
        "temporal_error_ratio": None,
        "frame_difference": fd,
        "frame_difference_ratio": None,
        "style_distance": _mean(r.get("style_distance") for r in records),
        "content_distance": _mean(r.get("content_distance") for r in records),
        "content_structure": _mean(r.get("content_structure") for r in records),
    }
    if reference is not None:
        ref_te = _mean(reference[i]["temporal_error"] for i in valid)
        ref_fd = _mean(r["frame_difference"] for r in reference)
        result["temporal_error_ratio"] = _ratio(te, ref_te)
        result["frame_difference_ratio"] = _ratio(fd, ref_fd)
    return result


def _group(records: Sequence[dict]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault((r["pass"], r["scene"]), []).append(i)
    return groups


def _build_source(config: EvaluationConfig, device: torch.device):
    if config.data == "sintel":
        if config.root is None:
            raise EvaluationError("--data sintel needs --root (the folder that contains training/)")
        return SintelPairSource(
            config.root,
            config.passes,
            config.scenes,
            size=config.size,
            scale=config.scale,
            missing_occlusion=config.missing_occlusion,
        )
    if config.data == "video":
        return VideoPairSource(
            list(config.videos),
            flow_method=config.flow_method,
            raft_weights=config.raft_weights,
            device=device,
            size=config.size,
            scale=config.scale,
            max_frames=config.max_frames,
        )
    raise EvaluationError(f"unknown data kind {config.data!r} (expected 'sintel' or 'video')")


def _build_methods(config: EvaluationConfig, device: torch.device) -> list:
    # the input is always evaluated: every ratio is taken against it
    methods: list = [InputBaseline()]
    seen = {INPUT_NAME}
    for spec in config.methods:
        if spec.kind == "baseline":
            if spec.name != INPUT_NAME:
                raise EvaluationError(f"unknown baseline {spec.name!r}; available: {INPUT_NAME!r}")
            continue
        if spec.name in seen:
            raise EvaluationError(
                f"duplicate name {spec.name!r} (names must be unique and {INPUT_NAME!r} is reserved; use NAME=PATH)"
            )
        seen.add(spec.name)
        methods.append(build_method(spec, device, config.precision, config.model_style))
    return methods


def _build_scorer(config: EvaluationConfig, device: torch.device) -> QualityScorer | None:
    if not config.quality:
        return None
    style_image = None
    if config.style is not None:
        if not Path(config.style).is_file():
            raise EvaluationError(f"style image not found: {config.style}")
        style_image = load_image(config.style)

    layers = tuple(dict.fromkeys((config.content_layer, *config.style_layers)))
    network = build_loss_network(config.loss_network, layers=layers, weights=config.loss_weights).to(device)
    if style_image is not None:
        style_h, style_w = resize_style_image(style_image.unsqueeze(0), config.style_size).shape[-2:]
        if min(style_h, style_w) < network.min_side:
            raise EvaluationError(
                network.too_small_message(f"--style {config.style} ({style_w}x{style_h})") + "; give --style-size"
            )
    return QualityScorer(
        network,
        style_image,
        content_layer=config.content_layer,
        style_layers=config.style_layers,
        style_size=config.style_size,
    )


def _parse_heatmap_pair(spec: str | None) -> tuple[str | None, str | None, int] | None:
    """ "[PASS/]SCENE/FRAME" or "FRAME" -> (pass or None, scene or None, frame)."""
    if spec is None:
        return None
    parts = spec.strip("/").split("/")
    if len(parts) > 3 or not parts[-1].isdigit():
        raise EvaluationError(f"--heatmap-pair {spec!r}: expected FRAME, SCENE/FRAME or PASS/SCENE/FRAME")
    padded = [None] * (3 - len(parts)) + parts
    return padded[0], padded[1], int(parts[-1])


def _heatmap_matches(pair: EvalPair, wanted: tuple | None, first: bool) -> bool:
    if wanted is None:
        return first
    pass_name, scene, frame = wanted
    return (
        frame == pair.frame
        and (scene is None or scene == pair.scene)
        and (pass_name is None or pass_name == pair.pass_name)
    )


def _score(method, pair: EvalPair, flow, mask, scorer, input_features, device) -> tuple[dict, tuple]:
    """One method on one pair: the per-pair record and its outputs (frame N, frame N+1)."""
    out1, out2 = method.outputs(pair)
    out1, out2 = out1.to(device).float(), out2.to(device).float()  # (1, 3, H, W)
    te = float(temporal_error(out1, out2, flow, mask)[0])  # NaN = empty mask
    fd = float(frame_difference_error(out1, out2)[0])
    record = {
        "scene": pair.scene,
        "frame": pair.frame,
        "pass": pair.pass_name,
        "temporal_error": _finite(te),
        "valid": math.isfinite(te),
        "frame_difference": _finite(fd),
        "mask_fraction": float(mask.float().mean()),
        # needs no loss network, so it is reported with --no-quality too
        "content_structure": _finite(float(content_structure(out1, pair.frame1.to(device).float())[0])),
    }
    if scorer is not None:
        if method.name == INPUT_NAME:
            distances = scorer.distances(input_features, None)
            distances["content_distance"] = torch.zeros(1, dtype=torch.float64)  # by definition
        else:
            distances = scorer.distances(scorer.features(out1), input_features)
        for key, value in distances.items():
            record[key] = _finite(float(value[0]))
    return record, (out1, out2)


def _entries(methods: list, records: dict[str, list[dict]]) -> dict[str, dict]:
    """Per-method report entries: description, overall and per-scene aggregates, pair records."""
    reference = records[INPUT_NAME]
    groups = _group(reference)
    entries = {}
    for method in methods:
        recs = records[method.name]
        scenes = [
            {
                "scene": scene,
                "pass": pass_name,
                **aggregate([recs[i] for i in indices], [reference[i] for i in indices]),
            }
            for (pass_name, scene), indices in groups.items()
        ]
        entries[method.name] = {
            **method.describe(),
            "aggregate": aggregate(recs, reference),
            "scenes": scenes,
            "pairs": recs,
        }
    return entries


def evaluate(config: EvaluationConfig) -> EvaluationResult:
    """Score every method on every pair of the configured data.

    Raises EvaluationError (a ValueError), or another ValueError / OSError from the loaders, on
    bad input; models, data and the loss network are all loaded before the first pair.
    """
    from tqdm import tqdm

    device = resolve_device(config.device)
    if config.size is not None and (len(config.size) != 2 or min(config.size) < 8):
        raise EvaluationError(f"size must be two integers H W of at least 8, got {config.size}")
    if config.scale is not None and not 0 < config.scale <= 4:
        raise EvaluationError(f"scale must be in (0, 4], got {config.scale}")
    wanted_heatmap = _parse_heatmap_pair(config.heatmap_pair)
    methods = _build_methods(config, device)
    source = _build_source(config, device)
    scorer = _build_scorer(config, device)

    records: dict[str, list[dict]] = {m.name: [] for m in methods}
    heatmap = None
    sizes: list[list[int]] = []  # distinct evaluation sizes (H, W), in order of appearance
    total = source.expected_pairs()
    with tqdm(total=total, desc="pairs", unit="pair", disable=not config.progress, file=sys.stderr) as bar:
        for index, pair in enumerate(source):
            size = [int(v) for v in pair.frame1.shape[-2:]]
            if size not in sizes:
                sizes.append(size)
            flow, mask = pair.flow.to(device), pair.mask.to(device)
            # the input's features are shared by the content distance of every method
            input_features = scorer.features(pair.frame1.to(device)) if scorer is not None else None
            keep_heatmap = heatmap is None and _heatmap_matches(pair, wanted_heatmap, index == 0)
            if keep_heatmap:
                heatmap = {"label": pair.label, "mask": mask[0, 0].cpu().numpy(), "methods": {}}
            for method in methods:
                record, (out1, out2) = _score(method, pair, flow, mask, scorer, input_features, device)
                records[method.name].append(record)
                if keep_heatmap:
                    heatmap["methods"][method.name] = {
                        "frame": out1[0].permute(1, 2, 0).cpu().numpy(),  # (H, W, 3)
                        "error": temporal_error_map(out1, out2, flow)[0, 0].cpu().numpy(),  # (H, W)
                    }
            bar.update(1)
    if not records[INPUT_NAME]:
        raise EvaluationError("no pairs were evaluated")
    if wanted_heatmap is not None and heatmap is None:
        raise EvaluationError(f"--heatmap-pair {config.heatmap_pair!r} matches no evaluated pair")

    reference = records[INPUT_NAME]
    entries = _entries(methods, records)
    report = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "reference": INPUT_NAME,
        "dataset": {**source.description, "sizes": sizes, "n_pairs": len(reference)},
        "flow": source.flow_info,
        "metric": {
            "temporal_error": "sum_p M(p) * ||O_N(p) - warp(O_N+1, F)(p)||^2 / (3 * sum_p M(p)), RGB in [0, 1]",
            "frame_difference": "mean_p ||O_N(p) - O_N+1(p)||^2 / 3, no flow",
            "content_structure": "pearson(blur(|sobel Y(O_N)|), blur(|sobel Y(I_N)|)), Y luminance at a 128-px "
            "shorter side, Gaussian sigma 2 px; 1 = edge layout of the input kept, ~0 = unrelated",
            "overall": "mean over valid pairs; temporal_rmse = sqrt(temporal_error); ratios are to 'input'",
        },
        "quality": None
        if scorer is None
        else {
            "loss_network": str(getattr(scorer.loss_network, "name", type(scorer.loss_network).__name__)),
            "weights": str(getattr(scorer.loss_network, "weights_source", "unknown")),
            "content_layer": scorer.content_layer,
            "style_layers": list(scorer.style_layers) if scorer.has_style else None,
            "style_image": str(config.style) if config.style is not None else None,
            "style_size": config.style_size,
        },
        "device": str(device),
        "precision": config.precision,
        "model_style": config.model_style,
        "models": entries,
    }
    return EvaluationResult(report=report, heatmap=heatmap)
