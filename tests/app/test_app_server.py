"""The web app as a user's browser would use it, through its HTTP API (``gradio_client``) against a
real ``reconet-app`` process on localhost: the same handlers the buttons call."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import truncate_file
from PIL import Image

from app_helpers import require_app_extra, running_app, start_app  # noqa: F401  (running_app: a fixture)

pytestmark = pytest.mark.slow

CONTROLS = ("multistyle", "candy", "(none)", 0.0, 1.0, "360 px", "fp32")


@pytest.fixture(scope="module")
def client(running_app):
    from gradio_client import Client

    return Client(running_app.url, verbose=False)


def _error_text(error: BaseException) -> str:
    return " ".join(str(error).split())


def test_a_clip_comes_back_with_its_frames_rate_and_audio(client, videos_dir: Path, probe) -> None:
    from gradio_client import handle_file

    clip = videos_dir / "mdn_cc0_flower.mp4"
    video, download, note = client.predict(handle_file(str(clip)), *CONTROLS, api_name="/stylize_video")
    before, after = probe(clip), probe(Path(video))
    assert Path(video).suffix == ".mp4"
    assert after["frames"] == before["frames"] == 150
    assert after["rate"] == before["rate"]
    assert after["size"] == (360, 202)  # 960x540 to a 360-px longer side, even
    assert after["audio_codec"] == "aac"
    assert abs(after["audio_length"] - before["audio_length"]) < 0.05
    assert Path(download["value"]).read_bytes() == Path(video).read_bytes()
    assert "150 frames" in note


def test_a_webm_with_vorbis_audio_comes_back_as_mp4_with_sound(client, videos_dir: Path, probe) -> None:
    from gradio_client import handle_file

    clip = videos_dir / "mdn_stream_of_water.webm"
    video, _, _ = client.predict(handle_file(str(clip)), *CONTROLS, api_name="/stylize_video")
    after = probe(Path(video))
    assert after["frames"] == probe(clip)["frames"] == 90
    assert after["audio_codec"] is not None


def test_a_photo_is_stylized_at_its_size(client) -> None:
    from gradio_client import handle_file

    photo = Path(__file__).resolve().parents[2] / "reconet" / "assets" / "photos" / "kodak_kodim23.jpg"
    image, _, _ = client.predict(handle_file(str(photo)), "candy", "candy", "(none)", 0.0, 1.0, "original size", "fp32", api_name="/stylize_photo")
    out = np.asarray(Image.open(image).convert("RGB"))
    src = np.asarray(Image.open(photo).convert("RGB"))
    assert out.shape == src.shape
    assert np.abs(out.astype(int) - src.astype(int)).mean() > 10  # stylized, not passed through


def test_a_blend_differs_from_both_styles_and_the_preview_is_quick(client, videos_dir: Path) -> None:
    from gradio_client import handle_file

    clip = handle_file(str(videos_dir / "mdn_cc0_flower.mp4"))
    frames = {}
    for blend, weight in (("(none)", 0.0), ("wave", 1.0), ("wave", 0.5)):
        image, note = client.predict(clip, "multistyle", "candy", blend, weight, 1.0, "360 px", "fp32", api_name="/preview_first_frame")
        frames[(blend, weight)] = np.asarray(Image.open(image).convert("RGB")).astype(int)
        assert "first frame in" in note
    candy, wave, half = frames[("(none)", 0.0)], frames[("wave", 1.0)], frames[("wave", 0.5)]
    assert np.abs(candy - wave).mean() > 10
    assert np.abs(half - candy).mean() > 3 and np.abs(half - wave).mean() > 3


@pytest.mark.parametrize(
    "name, expected",
    [
        ("notes.txt", "not a video or image file"),
        ("broken.mp4", "broken.mp4"),
    ],
)
def test_bad_files_are_one_line_errors_and_the_server_keeps_answering(
    client, tmp_path: Path, videos_dir: Path, name: str, expected: str
) -> None:
    from gradio_client import handle_file

    bad = tmp_path / name
    if name.endswith(".mp4"):
        truncate_file(videos_dir / "mdn_cc0_flower.mp4", bad, 0.02)  # the header only: no frame decodes
    else:
        bad.write_text("not a video")
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(str(bad)), *CONTROLS, api_name="/stylize_video")
    text = _error_text(caught.value)
    assert expected in text and "Traceback" not in text
    # still serving: a real job right after the failure
    image, _, _ = client.predict(
        handle_file(str(Path(__file__).resolve().parents[2] / "reconet" / "assets" / "photos" / "kodak_kodim23.jpg")),
        *CONTROLS,
        api_name="/stylize_photo",
    )
    assert Path(image).is_file()


def test_an_unknown_style_is_named(client, videos_dir: Path) -> None:
    from gradio_client import handle_file

    with pytest.raises(Exception) as caught:
        client.predict(handle_file(str(videos_dir / "mdn_cc0_flower.mp4")), "multistyle", "nope", "(none)", 0.0, 1.0, "360 px", "fp32", api_name="/preview_first_frame")
    assert "has no style 'nope'" in _error_text(caught.value)


def test_compare_reports_both_models_beside_the_input(client, videos_dir: Path, probe) -> None:
    from gradio_client import handle_file

    a, b, table = client.predict(
        handle_file(str(videos_dir / "mdn_cc0_flower.mp4")), "multistyle", "wave", "candy", "candy", "360 px", 8, api_name="/compare"
    )
    assert probe(Path(a))["frames"] == probe(Path(b))["frames"] == 8
    rows = table["data"]
    assert [row[0].split(":")[0] for row in rows] == ["input", "A", "B"]
    assert float(rows[0][1]) == pytest.approx(1.0)  # the input's ratio to itself
    for row in rows[1:]:
        assert float(row[1]) > 0 and 0 < float(row[3]) <= 1 and int(row[4]) == 7


def test_uploads_over_the_limit_are_refused(tmp_path: Path, videos_dir: Path) -> None:
    require_app_extra()
    import httpx
    from gradio_client import Client, handle_file

    big, small = videos_dir / "lengstrom_fox.mp4", videos_dir / "mdn_stream_of_water.webm"  # 1.5 MB, 0.4 MB
    app = start_app(tmp_path, "--max-upload-mb", "1")
    try:
        # the page's client reads the limit and refuses before sending ...
        client = Client(app.url, verbose=False)
        with pytest.raises(Exception) as caught:
            client.predict(handle_file(str(big)), *CONTROLS, api_name="/stylize_video")
        assert "exceeds the maximum file size of 1048576 bytes" in _error_text(caught.value)
        # ... and the server refuses what a client sends anyway, keeping smaller files
        upload = app.url + "gradio_api/upload"
        with big.open("rb") as handle:
            refused = httpx.post(upload, files={"files": (big.name, handle, "video/mp4")}, timeout=60)
        assert refused.status_code == 413
        with small.open("rb") as handle:
            assert httpx.post(upload, files={"files": (small.name, handle, "video/webm")}, timeout=60).status_code == 200
    finally:
        assert app.stop() == 0
    assert not list(app.temp.glob("reconet-app-*")), "the app's temporary folder outlived it"


def test_stop_removes_every_temporary_file_and_exits_0(tmp_path: Path, videos_dir: Path) -> None:
    require_app_extra()
    from gradio_client import Client, handle_file

    app = start_app(tmp_path)
    client = Client(app.url, verbose=False)
    client.predict(handle_file(str(videos_dir / "mdn_cc0_flower.mp4")), *CONTROLS, api_name="/stylize_video")
    assert list(app.temp.glob("reconet-app-*/**/*.mp4"))  # the upload and the result, while running
    assert app.stop() == 0
    assert "stopped" in app.log.read_text()
    assert not list(app.temp.glob("reconet-app-*"))


def test_binding_beyond_localhost_warns(tmp_path: Path) -> None:
    require_app_extra()
    app = start_app(tmp_path, "--host", "0.0.0.0")
    try:
        assert "warning: listening on 0.0.0.0" in app.log.read_text()
    finally:
        app.stop()


def test_without_gradio_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    blocker = tmp_path / "gradio.py"
    blocker.write_text("raise ImportError('no gradio here')\n")
    result = subprocess.run(
        [sys.executable, "-m", "reconet.app"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(tmp_path)),
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == 'reconet-app: error: the web app needs Gradio: pip install "reconet[app]"'


def test_add_style_checks_its_inputs_then_runs_and_cancels_cleanly(client, running_app) -> None:
    from gradio_client import handle_file

    painting = handle_file(str(Path(__file__).resolve().parents[2] / "reconet" / "assets" / "styles" / "udnie.jpg"))
    with pytest.raises(Exception) as caught:
        client.predict(painting, "bad name!", "multistyle", 50, api_name="/add_style")
    assert "style name 'bad name!'" in _error_text(caught.value)
    with pytest.raises(Exception) as caught:
        client.predict(painting, "candy", "multistyle", 50, api_name="/add_style")
    assert "'candy' is taken" in _error_text(caught.value)
    with pytest.raises(Exception) as caught:
        client.predict(painting, "mine", "candy", 50, api_name="/add_style")
    assert "single-style model" in _error_text(caught.value)

    message, _, command = client.predict(painting, "mine", "multistyle", 50, api_name="/add_style")
    assert "training 'mine'" in message
    assert command == "reconet-train experiment=add_style init_from=multistyle style.image=udnie.jpg style.name=mine trainer.max_steps=50 trainer.val_check_interval=10"
    status = client.predict(api_name="/add_style_status")
    assert "training 'mine'" in status[0]
    message, _ = client.predict(api_name="/add_style_cancel")
    assert message.startswith("cancelled")
    assert not list(running_app.models.iterdir())
    assert not list(running_app.temp.glob("reconet-app-*/add_style/mine"))
