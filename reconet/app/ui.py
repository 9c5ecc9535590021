"""The page: Gradio components wired to :mod:`reconet.app.jobs` and :mod:`reconet.app.training`.

Three tabs: **Stylize** (video, photo or webcam; a preview of the first frame, then the whole
clip with a progress bar, side by side with the input, and a download), **Add a style** (a
painting becomes a new style of the multi-style network in a background run with a live loss
curve and preview) and **Compare** (two models on one clip with reconet-evaluate's numbers).

Every handler turns an error into a one-line message in the page (``gr.Error``); the server
keeps answering. Stylizing, previews and comparisons share one queue slot (``cpu``): one job
at a time, so two browsers do not thrash the cores. Every endpoint has an ``api_name``, so
``gradio_client`` drives the same functions the buttons do.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from reconet.app.catalog import Catalog, blend_spec, build_catalog, check_style_name
from reconet.app.jobs import StyleSettings, Workspace, compare_models, preview_first_frame, stylize_file
from reconet.app.training import AddStyleJob
from reconet.cli.common import one_line
from reconet.image import tensor_to_uint8, uint8_to_tensor
from reconet.media import SizeSpec
from reconet.media.sizes import resize_uint8

SIZES = {"original size": None, "1080 px": 1080, "720 px": 720, "480 px": 480, "360 px": 360}
DEFAULT_SIZE = "480 px"
PRECISIONS = ["auto", "fp32", "bf16"]
NO_BLEND = "(none)"
DEFAULT_MODEL = "multistyle"
CPU_QUEUE = "cpu"  # one stylization (or preview, or comparison) at a time


def _page_errors(fn: Callable) -> Callable:
    """Any failure of a handler becomes a one-line message in the page, never a server crash."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:  # bad uploads, unreadable models, full disks: all one line
            raise gr.Error(one_line(error), print_exception=False) from None

    return wrapper


class App:
    """The app's state: the model catalog, the workspace and the add-a-style job."""

    def __init__(self, workspace: Workspace, models_dir: Path):
        self.workspace = workspace
        self.models_dir = Path(models_dir)
        self.catalog: Catalog = build_catalog(self.models_dir)
        self.training = AddStyleJob(workspace.root, self.models_dir)
        self._webcam_lock = threading.Lock()
        self._webcam: tuple[tuple, Any] | None = None  # (settings key, stylizer)

    # ---------------------------------------------------------------- catalog

    def refresh(self) -> Catalog:
        self.catalog = build_catalog(self.models_dir)
        return self.catalog

    def model_labels(self) -> list[str]:
        return list(self.catalog.models)

    def choice(self, label: str):
        """The model ``label``; a file dropped into the models folder since the last look is found."""
        if label not in self.catalog.models:
            self.refresh()
        return self.catalog.get(label)

    def settings(
        self, model: str, style: str | None, blend: str | None, weight: float, strength: float, size: str, precision: str
    ) -> StyleSettings:
        choice = self.choice(model)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
        spec = None
        if choice.multi_style:
            style = style or choice.styles[0]
            for name in (style, blend):
                if name and name != NO_BLEND and name not in choice.styles:
                    raise ValueError(f"{choice.label} has no style {name!r}; its styles: {', '.join(choice.styles)}")
            spec = blend_spec(style, None if blend == NO_BLEND else blend, float(weight or 0.0))
        amount = 1.0 if strength is None else float(strength)
        if not 0.0 <= amount <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        return StyleSettings(choice.path, spec, SIZES[size], precision, None if amount == 1.0 else amount)

    def style_updates(self, model: str) -> tuple[dict, dict, dict]:
        choice = self.choice(model)
        styles = list(choice.styles)
        return (
            gr.update(choices=styles, value=styles[0], interactive=choice.multi_style),
            gr.update(choices=[NO_BLEND, *styles], value=NO_BLEND, visible=choice.multi_style),
            gr.update(value=0.0, visible=choice.multi_style),
        )

    # ---------------------------------------------------------------- stylize

    def preview(self, video: str | None, model: str, style: str, blend: str, weight: float, strength: float, size: str, precision: str):
        if not video:
            raise gr.Error("upload a video first")
        started = time.perf_counter()
        _, stylized = preview_first_frame(video, self.settings(model, style, blend, weight, strength, size, precision))
        note = f"first frame in {time.perf_counter() - started:.1f} s ({stylized.shape[1]}x{stylized.shape[0]})"
        return stylized, note

    def stylize_video(self, video: str | None, model: str, style: str, blend: str, weight: float, strength: float, size: str, precision: str, progress=gr.Progress()):
        if not video:
            raise gr.Error("upload a video first")
        settings = self.settings(model, style, blend, weight, strength, size, precision)
        progress(0.0, desc="loading the model")
        result = stylize_file(video, self.workspace.result_dir(), settings, on_frame=_progress_with_eta(progress))
        return str(result.path), gr.update(value=str(result.path), visible=True), _summary(result)

    def stylize_photo(self, photo: str | None, model: str, style: str, blend: str, weight: float, strength: float, size: str, precision: str):
        if not photo:
            raise gr.Error("upload a photo first")
        settings = self.settings(model, style, blend, weight, strength, size, precision)
        result = stylize_file(photo, self.workspace.result_dir(), settings)
        return str(result.path), gr.update(value=str(result.path), visible=True), _summary(result)

    def webcam_frame(self, frame: np.ndarray | None, model: str, style: str, blend: str, weight: float, strength: float, size: str, precision: str):
        if frame is None:
            return None
        settings = self.settings(model, style, blend, weight, strength, size, precision)
        key = (settings.model, settings.style, settings.strength, settings.precision)
        with self._webcam_lock:
            if self._webcam is None or self._webcam[0] != key:
                from reconet.inference.stylizer import load

                stylizer = load(
                    settings.model,
                    precision=settings.precision,
                    style=settings.style,
                    strength=settings.strength,
                    expected_frames=1,
                )
                self._webcam = (key, stylizer)
            stylizer = self._webcam[1]
            image = np.ascontiguousarray(frame[..., :3])  # (H, W, 3): RGBA from some browsers
            # the size control, exactly as reconet-stylize's webcam source applies it
            image = resize_uint8(image, SizeSpec(max_side=settings.max_side).resolve(image.shape[1], image.shape[0]))
            return tensor_to_uint8(stylizer(uint8_to_tensor(image).unsqueeze(0)))[0]

    # ---------------------------------------------------------------- compare

    def compare(self, clip: str | None, model_a: str, style_a: str, model_b: str, style_b: str, size: str, frames: float, progress=gr.Progress()):
        if not clip:
            raise gr.Error("upload a clip first")
        first = self.settings(model_a, style_a, NO_BLEND, 0.0, 1.0, size, "fp32")
        second = self.settings(model_b, style_b, NO_BLEND, 0.0, 1.0, size, "fp32")
        steps = iter(range(1, 5))
        result = compare_models(
            clip,
            self.workspace.result_dir(),
            first,
            second,
            max_frames=int(frames),
            on_step=lambda text: progress((next(steps, 4), 4), desc=text),
        )
        table = [[row["run"], _fmt(row["temporal error (x input)"]), _fmt(row["temporal error"], ".2e"), _fmt(row["content structure"]), row["pairs"]] for row in result.rows]
        return str(result.videos[0]), str(result.videos[1]), table

    # ---------------------------------------------------------------- add a style

    def start_add_style(self, painting: str | None, name: str, base: str, steps: float = 100):
        if not painting:
            raise gr.Error("upload a painting first")
        choice = self.choice(base)
        if not choice.multi_style:
            raise gr.Error(f"{base} is a single-style model; add styles to a multi-style one (e.g. {DEFAULT_MODEL})")
        taken = set(choice.styles) | {Path(label).stem for label in self.catalog.models}
        name = check_style_name(name, taken)
        from reconet.image import read_image

        read_image(painting)  # an unreadable painting is named here, not deep in the run's log
        self.training.start(Path(painting), name, choice.path, steps=int(steps), preview_every=max(10, int(steps) // 6))
        status = self.training.status()
        return status.message, gr.update(active=True), self.training.display_command()

    def poll_add_style(self):
        """(message, loss curve, preview, timer, model list): the timer stops when the run ends."""
        import pandas as pd

        status = self.training.status()
        curve = pd.DataFrame(status.curve, columns=["step", "term", "loss"]) if status.curve else None
        finished = status.state in ("done", "failed", "cancelled", "idle")
        models = gr.update()
        if status.state == "done":
            self.refresh()
            models = gr.update(choices=self.model_labels())
        return status.message, curve, status.preview, gr.update(active=not finished), models, models

    def cancel_add_style(self):
        self.training.cancel()
        return self.training.status().message, gr.update(active=False)


def _progress_with_eta(progress: gr.Progress) -> Callable[[int, int | None], None]:
    started = time.perf_counter()

    def update(done: int, total: int | None) -> None:
        elapsed = time.perf_counter() - started
        if total:
            left = elapsed / done * max(0, total - done)
            progress((done, total), desc=f"frame {done}/{total}, about {left:.0f} s left", unit="frames")
        else:
            progress((done, None), desc=f"frame {done}", unit="frames")

    return update


def _summary(result) -> str:
    summary = result.summary.split(" -> ")[0]  # not the server's path: the download button has the file
    lines = [f"{result.path.name}: {summary}"]
    if result.precision_note:
        lines.append(f"precision auto: {result.precision_note}")
    return "\n".join(lines)


def _fmt(value: Any, form: str = ".3f") -> str:
    return format(value, form) if isinstance(value, (int, float)) else "-"


def build_ui(app: App) -> gr.Blocks:
    labels = app.model_labels()
    default = DEFAULT_MODEL if DEFAULT_MODEL in labels else labels[0]
    default_styles = list(app.catalog.get(default).styles)
    multi = app.catalog.get(default).multi_style
    with gr.Blocks(title="reconet", analytics_enabled=False, delete_cache=(900, 3600)) as demo:
        gr.Markdown(
            "# reconet\nCoherent style transfer for video: pick a painting's style, upload a clip or a photo. "
            "Everything runs on this computer; nothing is uploaded anywhere else."
        )
        with gr.Tab("Stylize", id="stylize"):
            with gr.Row():
                model = gr.Dropdown(labels, value=default, label="Model", info="bundled styles and your models folder", allow_custom_value=True)
                # custom values: the choices follow the model picked, and the server checks them itself
                style = gr.Dropdown(default_styles, value=default_styles[0], label="Style", interactive=multi, allow_custom_value=True)
                blend = gr.Dropdown([NO_BLEND, *default_styles], value=NO_BLEND, label="Blend with", visible=multi, allow_custom_value=True)
                weight = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="Blend amount", visible=multi)
                strength = gr.Slider(
                    0.0,
                    1.0,
                    value=1.0,
                    step=0.05,
                    label="Strength",
                    info="0: the input as it is, 1: the full style",
                )
            with gr.Row():
                size = gr.Dropdown(list(SIZES), value=DEFAULT_SIZE, label="Size (longer side)")
                precision = gr.Radio(PRECISIONS, value="auto", label="Precision", info="auto: measured on this CPU")
                refresh = gr.Button("Refresh model list", size="sm")
            controls = [model, style, blend, weight, strength, size, precision]
            with gr.Tab("Video", id="video"):
                with gr.Row():
                    video_in = gr.Video(label="Your clip", sources=["upload"], elem_id="video_in")
                    with gr.Column():
                        video_out = gr.Video(label="Stylized", interactive=False, elem_id="video_out")
                        video_download = gr.DownloadButton("Download the stylized clip", visible=False, elem_id="video_download")
                with gr.Row():
                    first_frame = gr.Image(label="Preview: first frame", interactive=False, height=240)
                    with gr.Column():
                        preview_button = gr.Button("Preview first frame")
                        video_button = gr.Button("Stylize the clip", variant="primary", elem_id="stylize_video")
                        video_note = gr.Textbox(label="Result", lines=2, interactive=False, elem_id="video_note")
            with gr.Tab("Photo", id="photo"):
                with gr.Row():
                    photo_in = gr.Image(label="Your photo", type="filepath", sources=["upload"])
                    photo_out = gr.Image(label="Stylized", interactive=False)
                with gr.Row():
                    photo_button = gr.Button("Stylize the photo", variant="primary")
                    photo_download = gr.DownloadButton("Download", visible=False)
                photo_note = gr.Textbox(label="Result", lines=2, interactive=False)
            with gr.Tab("Webcam", id="webcam"):
                gr.Markdown("Live: each webcam frame is stylized as it arrives (frames are dropped rather than delayed).")
                with gr.Row():
                    cam_in = gr.Image(label="Webcam", sources=["webcam"], streaming=True, type="numpy")
                    cam_out = gr.Image(label="Stylized", interactive=False)

        with gr.Tab("Add a style", id="add_style"):
            gr.Markdown(
                "Upload a painting: a new style is trained on top of the multi-style network (only the new "
                "style's normalization parameters learn, the other styles stay as they are). It runs in the "
                "background; the finished model appears in the model list and in your models folder "
                f"(`{app.models_dir}`)."
            )
            with gr.Row():
                painting = gr.Image(label="Painting", type="filepath", sources=["upload"], height=260, elem_id="painting")
                with gr.Column():
                    style_name = gr.Textbox(label="Name of the new style", placeholder="my_painting", elem_id="style_name")
                    multi_labels = [label for label, c in app.catalog.models.items() if c.multi_style]
                    base = gr.Dropdown(multi_labels, value=multi_labels[0] if multi_labels else None, label="Add to", allow_custom_value=True)
                    steps = gr.Slider(
                        50, 1000, value=100, step=50, label="Training steps", info="100 steps: about 7 minutes on 2 CPU cores"
                    )
                    with gr.Row():
                        start = gr.Button("Start", variant="primary", elem_id="add_style_start")
                        cancel = gr.Button("Cancel", variant="stop")
            train_status = gr.Textbox(label="Status", interactive=False, elem_id="train_status")
            with gr.Row():
                curve = gr.LinePlot(x="step", y="loss", color="term", label="Loss", height=260)
                train_preview = gr.Image(label="Preview (updates as it trains)", interactive=False, height=260)
            train_command = gr.Textbox(label="The same run from a terminal", interactive=False)
            timer = gr.Timer(2.0, active=False)

        with gr.Tab("Compare", id="compare"):
            gr.Markdown(
                "Two models on the same clip, with `reconet-evaluate`'s numbers: temporal error (flicker along "
                "the optical flow; ratio to the input's, lower is steadier) and content structure (1 = the input's "
                "edges kept)."
            )
            with gr.Row():
                clip = gr.Video(label="Clip", sources=["upload"])
                with gr.Column():
                    model_a = gr.Dropdown(labels, value=default, label="Model A", allow_custom_value=True)
                    style_a = gr.Dropdown(default_styles, value=default_styles[0], label="Style A", allow_custom_value=True)
                    model_b = gr.Dropdown(labels, value=labels[min(1, len(labels) - 1)], label="Model B", allow_custom_value=True)
                    b_styles = list(app.catalog.get(labels[min(1, len(labels) - 1)]).styles)
                    style_b = gr.Dropdown(b_styles, value=b_styles[0], label="Style B", allow_custom_value=True)
                    compare_size = gr.Dropdown(list(SIZES), value="360 px", label="Size (longer side)")
                    frames = gr.Slider(8, 240, value=48, step=8, label="Frames")
                    compare_button = gr.Button("Compare", variant="primary")
            with gr.Row():
                video_a = gr.Video(label="A", interactive=False)
                video_b = gr.Video(label="B", interactive=False)
            numbers = gr.Dataframe(
                headers=["run", "temporal error (x input)", "temporal error", "content structure", "pairs"],
                label="Measured",
                interactive=False,
            )

        # ---------------------------------------------------------------- wiring
        handler = _page_errors
        model.change(handler(app.style_updates), model, [style, blend, weight], api_visibility="private")

        def refreshed():
            app.refresh()
            labels = app.model_labels()
            return gr.update(choices=labels), gr.update(choices=labels), gr.update(choices=labels)

        refresh.click(handler(refreshed), None, [model, model_a, model_b], api_name="refresh")
        model_a.change(handler(lambda m: app.style_updates(m)[0]), model_a, style_a, api_visibility="private")
        model_b.change(handler(lambda m: app.style_updates(m)[0]), model_b, style_b, api_visibility="private")

        preview_args = dict(concurrency_id=CPU_QUEUE, concurrency_limit=1)
        video_in.upload(handler(app.preview), [video_in, *controls], [first_frame, video_note], api_name=False, **preview_args)
        preview_button.click(handler(app.preview), [video_in, *controls], [first_frame, video_note], api_name="preview_first_frame", **preview_args)
        video_button.click(
            handler(app.stylize_video), [video_in, *controls], [video_out, video_download, video_note], api_name="stylize_video", **preview_args
        )
        photo_button.click(
            handler(app.stylize_photo), [photo_in, *controls], [photo_out, photo_download, photo_note], api_name="stylize_photo", **preview_args
        )
        cam_in.stream(
            handler(app.webcam_frame),
            [cam_in, *controls],
            cam_out,
            api_name="webcam_frame",
            stream_every=0.1,
            concurrency_limit=1,
            concurrency_id="webcam",
            trigger_mode="always_last",
        )
        compare_button.click(
            handler(app.compare),
            [clip, model_a, style_a, model_b, style_b, compare_size, frames],
            [video_a, video_b, numbers],
            api_name="compare",
            **preview_args,
        )
        start.click(handler(app.start_add_style), [painting, style_name, base, steps], [train_status, timer, train_command], api_name="add_style")
        timer.tick(handler(app.poll_add_style), None, [train_status, curve, train_preview, timer, model, model_a], api_name="add_style_status")
        cancel.click(handler(app.cancel_add_style), None, [train_status, timer], api_name="add_style_cancel")
    return demo
