"""The app's model list and its jobs as plain functions (no Gradio, no server)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from reconet.app.catalog import blend_spec, build_catalog, check_style_name
from reconet.app.jobs import StyleSettings, Workspace, input_kind, preview_first_frame, stylize_file
from reconet.image import read_image, tensor_to_uint8, uint8_to_tensor
from reconet.models.pretrained import bundled_network_path, list_styles, pretrained_path
from reconet.resources import asset_path

PHOTO = Path(asset_path("photos/kodak_kodim23.jpg"))


def test_catalog_lists_bundled_networks_styles_and_your_models(tmp_path: Path) -> None:
    shutil.copy(pretrained_path("candy"), tmp_path / "my_candy.pt")
    (tmp_path / "broken.pt").write_bytes(b"not a model")
    (tmp_path / ".partial.pt").write_bytes(b"a copy in progress")
    catalog = build_catalog(tmp_path)
    labels = list(catalog.models)
    assert labels[:2] == ["multistyle", "fast"]  # the bundled networks, then the six single styles
    assert labels[2 : 2 + len(list_styles())] == [style.name for style in list_styles()]
    assert list(catalog.models["fast"].styles) == ["candy"]
    assert labels[-1] == "my_candy.pt" and catalog.models["my_candy.pt"].origin == "yours"
    assert catalog.models["multistyle"].multi_style and len(catalog.models["multistyle"].styles) >= 10
    assert not catalog.models["candy"].multi_style
    assert list(catalog.skipped) == ["broken.pt"]  # named with its reason, never offered
    assert catalog.skipped["broken.pt"].endswith("broken.pt: not a reconet model (not a readable torch file)")
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        catalog.get("nope")


def test_catalog_without_a_models_folder_is_the_bundled_set(tmp_path: Path) -> None:
    assert list(build_catalog(tmp_path / "missing").models) == list(build_catalog(None).models)


@pytest.mark.parametrize(
    "args, expected",
    [
        (("udnie", None, 0.5), "udnie"),
        (("udnie", "udnie", 0.5), "udnie"),
        (("udnie", "wave", 0.0), "udnie"),
        (("udnie", "wave", 1.0), "wave"),
        (("udnie", "wave", 0.4), "udnie:0.6,wave:0.4"),
        ((None, "wave", 0.4), None),
    ],
)
def test_blend_spec(args, expected) -> None:
    assert blend_spec(*args) == expected


def test_blend_spec_runs_as_the_models_own_blend() -> None:
    model = bundled_network_path("multistyle")
    photo = uint8_to_tensor(read_image(PHOTO)[:96, :128]).unsqueeze(0)
    from reconet.inference.stylizer import load

    def run(spec: str) -> np.ndarray:
        return tensor_to_uint8(load(model, precision="fp32", style=spec, expected_frames=1)(photo))[0]

    assert np.array_equal(run(blend_spec("udnie", "wave", 1.0)), run("wave"))
    half = run(blend_spec("udnie", "wave", 0.5)).astype(int)
    assert np.abs(half - run("udnie")).mean() > 1 and np.abs(half - run("wave")).mean() > 1


@pytest.mark.parametrize("name", ["", " ", "a b", "../x", "x" * 41, "-x", "näme"])
def test_bad_style_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="style name"):
        check_style_name(name, set())


def test_style_names_must_be_new() -> None:
    assert check_style_name(" my_painting ", {"candy"}) == "my_painting"
    with pytest.raises(ValueError, match="'candy' is taken"):
        check_style_name("candy", {"candy"})


def test_input_kind_by_suffix() -> None:
    assert input_kind("a.MP4") == "video" and input_kind("b.webm") == "video"
    assert input_kind("c.JPG") == "image"
    with pytest.raises(ValueError, match="notes.txt: not a video or image file"):
        input_kind("notes.txt")


def test_a_photo_job_writes_what_reconet_stylize_writes(tmp_path: Path) -> None:
    settings = StyleSettings(pretrained_path("candy"), None, 128, "fp32")
    result = stylize_file(PHOTO, tmp_path, settings)
    assert result.kind == "image" and result.path == tmp_path / "kodak_kodim23_candy.png"
    from reconet.cli.stylize import main

    assert main([str(PHOTO), str(tmp_path / "cli.png"), "--style", "candy", "--max-side", "128", "--fp32", "--no-progress"]) == 0
    assert np.array_equal(read_image(result.path), read_image(tmp_path / "cli.png"))
    first, stylized = preview_first_frame(PHOTO, settings)
    assert first.shape == stylized.shape == (128, 128, 3)
    assert np.array_equal(stylized, read_image(result.path))


def test_workspace_removes_old_results(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws", keep_seconds=0.0)
    old = workspace.result_dir()
    (old / "out.mp4").write_bytes(b"x")
    newer = workspace.result_dir()  # results older than keep_seconds go when a new one starts
    assert newer.exists() and not old.exists()
    workspace.remove()
    assert not (tmp_path / "ws").exists()


def test_multistyle_settings_reject_unknown_styles_before_any_work() -> None:
    pytest.importorskip("gradio")
    from reconet.app.ui import App

    app = App(Workspace(), Path("/nonexistent-models"))
    try:
        with pytest.raises(ValueError, match="has no style 'nope'"):
            app.settings("multistyle", "nope", "(none)", 0.0, 1.0, "360 px", "fp32")
        with pytest.raises(ValueError, match="precision must be one of"):
            app.settings("multistyle", "candy", "(none)", 0.0, 1.0, "360 px", "int4")
        settings = app.settings("multistyle", "udnie", "wave", 0.25, 1.0, "original size", "auto")
        assert settings.style == "udnie:0.75,wave:0.25" and settings.max_side is None
        assert app.settings("candy", "whatever", "wave", 0.5, 1.0, "480 px", "fp32").style is None  # single style
    finally:
        app.workspace.remove()



def test_only_the_page_imports_gradio_and_nothing_below_imports_the_app() -> None:
    import subprocess
    import sys

    code = (
        "import sys, reconet, reconet.cli.stylize, reconet.cli.app, reconet.app.catalog, reconet.app.jobs, "
        "reconet.app.training, reconet.inference, reconet.training.module\n"
        "assert 'gradio' not in sys.modules, 'gradio imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    root = Path(__file__).resolve().parents[2] / "reconet"
    for path in root.rglob("*.py"):
        if path.is_relative_to(root / "app") or path == root / "cli" / "app.py":
            continue
        text = path.read_text()
        assert "reconet.app" not in text and "import gradio" not in text, f"{path.name} reaches up into the app"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "70000"], "--port must be in 1-65535"),
        (["--max-upload-mb", "0"], "--max-upload-mb must be >= 1"),
    ],
)
def test_app_usage_errors_are_one_line(args: list[str], message: str, capsys) -> None:
    from reconet.cli.app import main

    assert main(args) == 2
    assert message in capsys.readouterr().err.strip()


def test_the_strength_slider_reaches_the_stylizer(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from reconet.app.ui import App

    app = App(Workspace(tmp_path / "ws"), tmp_path)
    try:
        assert app.settings("multistyle", "candy", "(none)", 0.0, 0.4, "360 px", "fp32").strength == 0.4
        assert app.settings("candy", "candy", "(none)", 0.0, 1.0, "360 px", "fp32").strength is None
        with pytest.raises(ValueError, match="strength must be in"):
            app.settings("candy", "candy", "(none)", 0.0, 1.5, "360 px", "fp32")
        _, stylized = preview_first_frame(PHOTO, app.settings("candy", "candy", "(none)", 0.0, 0.0, "360 px", "fp32"))
        first, _ = preview_first_frame(PHOTO, app.settings("candy", "candy", "(none)", 0.0, 1.0, "360 px", "fp32"))
        assert np.abs(stylized.astype(int) - first.astype(int)).max() <= 1  # strength 0: the input
    finally:
        app.workspace.remove()


def test_a_webcam_frame_is_stylized_like_a_photo(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from reconet.app.ui import App

    app = App(Workspace(tmp_path / "ws"), tmp_path)
    try:
        frame = read_image(PHOTO)[:120, :160]  # (H, W, 3) uint8, as the browser's webcam stream delivers it
        rgba = np.concatenate([frame, np.full(frame.shape[:2] + (1,), 255, np.uint8)], axis=2)
        out = app.webcam_frame(rgba, "multistyle", "wave", "(none)", 0.0, 1.0, "original size", "fp32")
        from reconet.inference.stylizer import load

        expected = tensor_to_uint8(load(bundled_network_path("multistyle"), precision="fp32", style="wave")(uint8_to_tensor(frame)[None]))[0]
        assert out.shape == frame.shape and np.abs(out.astype(int) - expected).max() <= 1
        assert app.webcam_frame(None, "multistyle", "wave", "(none)", 0.0, 1.0, "original size", "fp32") is None
        assert app.webcam_frame(rgba, "multistyle", "wave", "(none)", 0.0, 1.0, "360 px", "fp32").shape == (120, 160, 3)
        small = np.concatenate([rgba] * 3, axis=1)  # 480 wide: the size control shrinks it to 360
        assert app.webcam_frame(small, "multistyle", "wave", "(none)", 0.0, 1.0, "360 px", "fp32").shape == (90, 360, 3)
    finally:
        app.workspace.remove()
