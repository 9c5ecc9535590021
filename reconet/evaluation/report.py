"""Evaluation output: markdown tables, the JSON report file and PNG plots.

Plots use matplotlib's object API with the Agg canvas (no pyplot, no global backend switch),
so they work on headless machines and inside other programs. Every file is written to a
temporary name next to its destination and then renamed, so a failed run never leaves a
half-written report behind.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reconet.fileio import atomic_write

# (JSON key, column title) of the overall table; the per-scene table uses the first five
COLUMNS = (
    ("n_pairs", "pairs"),
    ("temporal_error", "temporal error"),
    ("temporal_rmse", "RMSE"),
    ("temporal_error_ratio", "ratio vs input"),
    ("frame_difference", "frame diff"),
    ("frame_difference_ratio", "frame diff ratio"),
    ("style_distance", "style dist"),
    ("content_distance", "content dist"),
    ("content_structure", "structure"),
)
SCENE_COLUMNS = COLUMNS[:4]


def format_number(value) -> str:
    """4 significant digits; missing values as "n/a"."""
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def format_markdown(report: dict) -> str:
    """The report as markdown: a header, the overall table, and a per-scene table if there are several scenes."""
    dataset = report["dataset"]
    flow = report["flow"]
    quality = report.get("quality")
    sizes = ", ".join(f"{w}x{h}" for h, w in dataset.get("sizes", []))
    if dataset["kind"] == "sintel":
        what = f"MPI Sintel ({', '.join(dataset['passes'])})"
    else:
        what = "video: " + ", ".join(Path(v).name for v in dataset.get("videos", []))
    flow_text = "ground truth" if flow["source"] == "ground_truth" else f"estimated ({flow['method']})"
    lines = [
        f"## Temporal consistency — {what}",
        "",
        f"- pairs: {dataset['n_pairs']}, evaluated at {sizes}; flow: {flow_text}; mask: {flow['mask']}",
        "- temporal error = masked mean squared warping error per RGB channel ([0, 1]); "
        "ratio vs input = model / unstylized input (1 = as coherent as the input video)",
    ]
    if quality:
        style = Path(quality["style_image"]).name if quality.get("style_image") else "none (no --style)"
        lines.append(
            f"- loss network: {quality['loss_network']} ({quality['weights']}); content layer "
            f"{quality['content_layer']}; style image: {style}"
        )
    lines += ["", _row(["model", *(title for _, title in COLUMNS)]), _row(["---"] * (len(COLUMNS) + 1))]
    for name, entry in report["models"].items():
        agg = entry["aggregate"]
        lines.append(_row([name, *(format_number(agg[key]) for key, _ in COLUMNS)]))
    first = next(iter(report["models"].values()))
    if len(first["scenes"]) > 1:
        lines += [
            "",
            "### Per scene",
            "",
            _row(["model", "scene", *(title for _, title in SCENE_COLUMNS)]),
            _row(["---"] * (len(SCENE_COLUMNS) + 2)),
        ]
        for name, entry in report["models"].items():
            for scene in entry["scenes"]:
                label = f"{scene['pass']}/{scene['scene']}" if scene.get("pass") else scene["scene"]
                lines.append(_row([name, label, *(format_number(scene[key]) for key, _ in SCENE_COLUMNS)]))
    return "\n".join(lines) + "\n"


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_json(report: dict, path: str | Path) -> None:
    """Write the report as JSON (NaN/inf become null, so the file is strict JSON)."""
    text = json.dumps(_json_safe(report), indent=2, allow_nan=False)
    atomic_write(Path(path), lambda handle: handle.write(text.encode("utf-8") + b"\n"))


def _png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def plot_pair_errors(report: dict) -> bytes:
    """PNG of grouped bars: temporal error of every pair, one colour per model."""
    models = report["models"]
    names = list(models)
    pairs = models[names[0]]["pairs"]
    groups = {(p.get("pass"), p["scene"]) for p in pairs}
    if len(groups) == 1:  # one scene: label bars by frame, name the scene on the axis
        labels = [f"{p['frame']:04d}" for p in pairs]
        ((pass_name, scene),) = groups
        axis_label = f"frame N of pair (N, N+1), {pass_name + '/' if pass_name else ''}{scene}"
    else:
        labels = [(f"{p['pass']}/" if p.get("pass") else "") + f"{p['scene']}/{p['frame']:04d}" for p in pairs]
        axis_label = "pair (scene / frame N)"
    x = np.arange(len(pairs))
    width = 0.8 / max(len(names), 1)
    fig = Figure(figsize=(max(6.0, 0.35 * len(pairs) * max(len(names), 2) ** 0.5 + 2), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for k, name in enumerate(names):
        values = [p["temporal_error"] if p["temporal_error"] is not None else np.nan for p in models[name]["pairs"]]
        ax.bar(x + (k - (len(names) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(
        labels,
        rotation=90 if len(pairs) > 8 else 30,
        ha="center" if len(pairs) > 8 else "right",
        fontsize=7 if len(pairs) > 20 else 8,
    )
    finite = [p["temporal_error"] for m in models.values() for p in m["pairs"] if p["temporal_error"]]
    # scenes differ by orders of magnitude (alley vs ambush); a linear axis would hide the small ones
    log_scale = bool(finite) and max(finite) / min(finite) > 100
    if log_scale:
        ax.set_yscale("log")
    ax.set_ylabel("temporal error (MSE per channel)" + (", log scale" if log_scale else ""))
    ax.set_xlabel(axis_label)
    flow = report["flow"]
    flow_text = "ground-truth flow" if flow["source"] == "ground_truth" else f"flow: {flow['method']}"
    ax.set_title(f"Temporal error per pair ({flow_text})")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png_bytes(fig)


def plot_error_heatmap(heatmap: dict) -> bytes:
    """PNG for one pair: each model's frame N (top) and its per-pixel warping error (bottom), on one
    colour scale; pixels outside the mask (occluded / invalid) are grey."""
    methods = heatmap["methods"]
    mask = heatmap["mask"] > 0.5
    errors = {name: np.where(mask, m["error"], np.nan) for name, m in methods.items()}
    finite = np.concatenate([e[np.isfinite(e)] for e in errors.values()]) if errors else np.zeros(1)
    vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    cols = len(methods)
    height, width = mask.shape
    panel_w = 3.2
    fig = Figure(figsize=(panel_w * cols + 1.0, 2 * panel_w * height / width + 1.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, cols, squeeze=False)
    cmap = matplotlib.colormaps["magma"].copy()
    cmap.set_bad("0.6")
    image = None
    for k, (name, m) in enumerate(methods.items()):
        axes[0, k].imshow(np.clip(m["frame"], 0, 1))
        axes[0, k].set_title(name, fontsize=9)
        image = axes[1, k].imshow(errors[name], cmap=cmap, vmin=0.0, vmax=vmax)
        for row in (0, 1):
            axes[row, k].set_axis_off()
    fig.suptitle(f"Warping error, pair {heatmap['label']} (grey: occluded/invalid)", fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes[1, :].tolist(), shrink=0.8, label="squared error / 3")
    return _png_bytes(fig)


PAIRS_PLOT = "temporal_error_pairs.png"
HEATMAP_PLOT = "temporal_error_heatmap.png"


def render_plots(report: dict, heatmap: dict | None) -> dict[str, bytes]:
    """File name -> PNG bytes of every plot (rendered in memory, nothing written)."""
    plots = {PAIRS_PLOT: plot_pair_errors(report)}
    if heatmap is not None:
        plots[HEATMAP_PLOT] = plot_error_heatmap(heatmap)
    return plots


def write_plots(plots: dict[str, bytes], directory: str | Path) -> list[Path]:
    """Write rendered plots (:func:`render_plots`) into ``directory`` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in plots.items():
        path = directory / name
        atomic_write(path, lambda handle, data=data: handle.write(data))
        written.append(path)
    return written
