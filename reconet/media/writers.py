"""Frame writers: a video file (timing kept exactly, audio carried over), an image, a frame folder.

Video timing. A stylized video must have exactly the source's frames at exactly the
source's times, otherwise audio drifts and motion stutters. Writers therefore set every
frame's presentation timestamp (PTS) explicitly:

* constant-rate sources (``fps`` known): PTS_i = PTS_0 + i * ticks_per_frame in a time base
  in which one frame is a whole number of ticks (1/30000 s for 30000/1001 fps), so no
  rounding error accumulates; a source timestamp more than half a frame away from that grid
  (a real gap) is kept as it is;
* variable-rate sources (GIF delays): each frame keeps its source timestamp and duration.
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from reconet.fileio import PartialOutput, remove_stale_partials
from reconet.image import IMAGE_SUFFIXES
from reconet.media.audio import AudioTrack
from reconet.media.destinations import (
    check_destination,
    check_not_input,
    commit_file,
    commit_folder,
)
from reconet.media.frame import VIDEO_SUFFIXES, Frame, MediaError, OutputError
from reconet.media.sources import FolderSource, FrameSource, VideoSource, ffmpeg_message


class FrameWriter:
    """Base of all sinks: ``write(frame)`` then ``commit()``; ``abort()`` removes all traces.

    Used as a context manager, leaving the block normally commits and any exception aborts.
    """

    def __init__(self, dest: str | Path, *, overwrite: bool = False, folder: bool = False):
        self.dest = Path(dest)
        self.overwrite = overwrite
        check_destination(self.dest, overwrite=overwrite, folder=folder)
        self._folder = folder
        self._partial: PartialOutput | None = None  # created by the first write
        stale = remove_stale_partials(self.dest, folder=folder)
        if stale:
            names = ", ".join(p.name for p in stale)
            warnings.warn(f"{self.dest}: removed the partial output of an interrupted run ({names})", stacklevel=2)
        self.frames_written = 0
        self._done = False

    @property
    def temp(self) -> Path:
        """The hidden partial output (locked while this writer lives), created on first use."""
        if self._partial is None:
            try:
                self._partial = PartialOutput(self.dest, folder=self._folder)
            except OSError as err:
                raise OutputError(f"{self.dest}: cannot create output ({err.strerror})") from None
        return self._partial.path

    def write(self, frame: Frame) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush everything into ``self.temp``."""

    def _commit(self) -> None:
        commit_file(self.temp, self.dest, self.overwrite)

    def _discard(self) -> None:
        if self._partial is None:
            return
        if self.temp.is_dir():
            shutil.rmtree(self.temp, ignore_errors=True)
        elif self.temp.exists():
            self.temp.unlink()
        self._partial.release()

    def commit(self) -> Path:
        if self._done:
            return self.dest
        if self.frames_written == 0:
            self.abort()
            raise MediaError("no frames were written; output not created")
        try:
            self._finish()
            self._commit()
        except BaseException:
            self.abort()
            raise
        self._done = True
        if self._partial is not None:
            self._partial.release()
        return self.dest

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._close_quietly()
        finally:
            self._discard()

    def _close_quietly(self) -> None:
        pass

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class ImageWriter(FrameWriter):
    """A single image file (format from the suffix)."""

    def __init__(self, dest: str | Path, *, overwrite: bool = False, quality: int = 95):
        super().__init__(dest, overwrite=overwrite)
        if self.dest.suffix.lower() not in IMAGE_SUFFIXES:
            raise OutputError(f"{self.dest}: unknown image suffix (use one of {', '.join(IMAGE_SUFFIXES)})")
        self.quality = quality

    def write(self, frame: Frame) -> None:
        if self.frames_written:
            raise OutputError(
                f"{self.dest}: an image holds one frame but the input has more; "
                "give a video file or a folder as output"
            )
        _save_uint8(self.temp, frame.image, self.quality, self.dest)
        self.frames_written = 1


def _save_uint8(path: Path, image: np.ndarray, quality: int, dest: Path) -> None:
    """Encode ``image`` into ``path`` (inside the partial output of ``dest``); a failed write
    (a full disk, a quota) names ``dest``, the file the user asked for."""
    try:
        _encode(path, image, quality)
    except OSError as error:
        raise OutputError(f"{dest}: writing failed ({error.strerror or error})") from None


def _encode(path: Path, image: np.ndarray, quality: int) -> None:
    params: dict[str, Any] = {}
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt == "JPEG":
        params["quality"] = quality
    Image.fromarray(image).save(path, format=fmt, **params)


class FolderWriter(FrameWriter):
    """A folder of numbered frames (``frame_000001.png``...) or of the given names."""

    def __init__(
        self,
        dest: str | Path,
        *,
        overwrite: bool = False,
        suffix: str = ".png",
        names: list[str] | None = None,
        quality: int = 95,
    ):
        super().__init__(dest, overwrite=overwrite, folder=True)
        suffix = suffix if suffix.startswith(".") else f".{suffix}"
        if suffix.lower() not in IMAGE_SUFFIXES:
            raise OutputError(f"frame format {suffix!r} is not one of {', '.join(IMAGE_SUFFIXES)}")
        self.suffix = suffix
        self.names = names
        self.quality = quality

    def write(self, frame: Frame) -> None:
        index = self.frames_written
        if self.names is not None and index < len(self.names):
            stem = self.names[index]
        else:
            stem = f"frame_{index + 1:06d}"
        _save_uint8(self.temp / f"{stem}{self.suffix}", frame.image, self.quality, self.dest)
        self.frames_written += 1

    def _commit(self) -> None:
        commit_folder(self.temp, self.dest, self.overwrite)


def _lcm(a: int, b: int) -> int:
    return a * b // math.gcd(a, b)


class _Timeline:
    """Turns source times into output PTS (see the module docstring)."""

    def __init__(self, fps: Fraction | None, *, frame_based: bool = False):
        self.fps = fps
        if fps is not None and frame_based:
            # AVI stores one tick per frame: its time base must be exactly 1/fps.
            self.time_base = 1 / fps
            self.ticks_per_frame = 1
        elif fps is not None:
            # One frame = an integer number of ticks, ticks no coarser than 1 ms.
            denominator = _lcm(fps.numerator, 1000)
            self.time_base = Fraction(1, denominator)
            self.ticks_per_frame = denominator * fps.denominator // fps.numerator
        else:
            self.time_base = Fraction(1, 1000)
            self.ticks_per_frame = None
        self.origin: int | None = None
        self.last_pts: int | None = None
        self.last_duration: int | None = None

    def pts(self, index: int, when: Fraction | None, duration: Fraction | None) -> tuple[int, int]:
        """(pts, duration) in ticks of ``time_base`` for frame ``index`` shown at ``when``."""
        source_ticks = None if when is None else round(when / self.time_base)
        if self.origin is None:
            self.origin = source_ticks if source_ticks is not None else 0
            self.index_origin = index
        if self.ticks_per_frame is not None:
            expected = self.origin + (index - self.index_origin) * self.ticks_per_frame
            if source_ticks is None or abs(source_ticks - expected) * 2 <= self.ticks_per_frame:
                pts = expected
            else:
                pts = source_ticks  # a real gap in the source: keep it
            length = self.ticks_per_frame
        else:
            pts = source_ticks if source_ticks is not None else (
                0 if self.last_pts is None else self.last_pts + (self.last_duration or 40)
            )
            if duration is not None and duration > 0:
                length = max(1, round(duration / self.time_base))
            elif self.last_pts is not None:
                length = max(1, pts - self.last_pts)
            else:
                length = 40  # 25 fps until we learn better
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1  # timestamps must increase strictly
        self.last_pts, self.last_duration = pts, length
        return pts, length

    def end_time(self) -> Fraction | None:
        if self.last_pts is None:
            return None
        return (self.last_pts + (self.last_duration or 0)) * self.time_base


@dataclass(frozen=True)
class _VideoCodec:
    name: str
    pix_fmt: str
    options: dict[str, str]


def _video_codec(container_format: str, size: tuple[int, int], crf: int | None) -> _VideoCodec:
    odd = size[0] % 2 or size[1] % 2
    if container_format == "gif":
        return _VideoCodec("gif", "pal8", {})
    if container_format == "webm":
        # VP9 at constant quality; "good" + cpu-used 4 is several times faster than the
        # default and keeps encoding well below the model's cost.
        return _VideoCodec(
            "libvpx-vp9",
            "yuv420p",
            {"crf": str(31 if crf is None else crf), "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
        )
    if container_format == "avi":
        return _VideoCodec("mpeg4", "yuv420p", {"qscale": "3"})
    # mp4, mov, mkv, ...: H.264. x264's 4:2:0 needs even sizes; odd sizes get 4:4:4.
    return _VideoCodec(
        "libx264",
        "yuv444p" if odd else "yuv420p",
        {"crf": str(18 if crf is None else crf), "preset": "medium"},
    )



class VideoWriter(FrameWriter):
    """A video file; container and codec from the suffix, audio from ``audio_from``.

    ``fps`` None means variable rate: frames keep their own times (``Frame.time``).
    """

    def __init__(
        self,
        dest: str | Path,
        *,
        size: tuple[int, int],
        fps: Fraction | None,
        audio_from: str | Path | None = None,
        overwrite: bool = False,
        crf: int | None = None,
    ):
        super().__init__(dest, overwrite=overwrite)
        if self.dest.suffix.lower() not in VIDEO_SUFFIXES:
            raise OutputError(
                f"{self.dest}: unknown video suffix (use one of {', '.join(VIDEO_SUFFIXES)})"
            )
        self.size = size
        frame_based = self.dest.suffix.lower() == ".avi"
        self.timeline = _Timeline(Fraction(fps) if fps else None, frame_based=frame_based)
        self.audio: AudioTrack | None = None
        try:
            self._output = av.open(str(self.temp), "w")
        except (av.FFmpegError, OSError) as err:
            raise OutputError(f"{self.dest}: cannot create output ({ffmpeg_message(err)})") from None
        try:
            self._setup(fps, audio_from, crf)
        except BaseException:
            self.abort()
            raise

    def _setup(self, fps: Fraction | None, audio_from: str | Path | None, crf: int | None) -> None:
        self.container_format = self._output.format.name.split(",")[0]
        codec = _video_codec(self.container_format, self.size, crf)
        self.pix_fmt = codec.pix_fmt
        stream = self._output.add_stream(codec.name, rate=fps if fps else None)
        stream.width, stream.height = self.size
        stream.pix_fmt = codec.pix_fmt
        stream.time_base = self.timeline.time_base
        stream.codec_context.time_base = self.timeline.time_base
        stream.options = codec.options
        self._stream = stream
        if self.pix_fmt == "yuv444p":
            warnings.warn(
                f"{self.dest.name}: odd frame size {self.size[0]}x{self.size[1]} is encoded as "
                "H.264 4:4:4, which some players cannot show; pick an even --size for 4:2:0",
                stacklevel=3,
            )
        if audio_from is not None:
            if self.container_format == "gif":
                warnings.warn(f"{self.dest.name}: GIF has no audio; the soundtrack is dropped", stacklevel=3)
            else:
                with av.open(str(audio_from)) as probe:
                    has_audio = bool(probe.streams.audio)
                if has_audio:
                    self.audio = AudioTrack(Path(audio_from), self._output, self.container_format)

    def _make_frame(self, image: np.ndarray) -> av.VideoFrame:
        if self.pix_fmt == "pal8":
            # GIF: a 256-colour palette per frame (median cut) looks far better than the
            # fixed 3-3-2 palette a plain pixel-format conversion would use.
            quantized = Image.fromarray(image).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
            palette = np.asarray(quantized.getpalette()[: 256 * 3], dtype=np.uint8).reshape(-1, 3)
            palette = np.pad(palette, ((0, 256 - len(palette)), (0, 0)))
            argb = np.concatenate([np.full((256, 1), 255, np.uint8), palette], axis=1)  # (256, 4)
            return av.VideoFrame.from_ndarray((np.asarray(quantized), argb), format="pal8")
        return av.VideoFrame.from_ndarray(image, format="rgb24")

    def write(self, frame: Frame) -> None:
        image = frame.image
        if (image.shape[1], image.shape[0]) != tuple(self.size):
            raise ValueError(
                f"frame is {image.shape[1]}x{image.shape[0]} but the video is {self.size[0]}x{self.size[1]}"
            )
        pts, duration = self.timeline.pts(frame.index, frame.time, frame.duration)
        video_frame = self._make_frame(image)
        video_frame.pts = pts
        video_frame.time_base = self.timeline.time_base
        video_frame.duration = duration
        try:
            if self.audio is not None:
                self.audio.mux_until(self._output, pts * self.timeline.time_base)
            self._output.mux(self._stream.encode(video_frame))
        except av.FFmpegError as err:
            raise OutputError(f"{self.dest}: writing failed ({ffmpeg_message(err)})") from None
        self.frames_written += 1

    def finish_audio_at(self, end: Fraction | None) -> None:
        """Trimmed input: end the soundtrack with the last video frame."""
        self._audio_end = end

    def _finish(self) -> None:
        try:
            self._output.mux(self._stream.encode(None))
            if self.audio is not None:
                end = getattr(self, "_audio_end", None)
                self.audio.mux_until(self._output, end, cut=end is not None)
                self.audio.finish(self._output)
            self._output.close()
        except av.FFmpegError as err:
            raise OutputError(f"{self.dest}: writing failed ({ffmpeg_message(err)})") from None

    def _close_quietly(self) -> None:
        for closable in (self.audio, self._output if hasattr(self, "_output") else None):
            if closable is None:
                continue
            try:
                closable.close()
            except (av.FFmpegError, OSError, ValueError):
                pass  # aborting: the temporary file is deleted next anyway

    def end_time(self) -> Fraction | None:
        return self.timeline.end_time()


def output_kind(dest: str | Path) -> str:
    """"video", "image" or "folder" from the destination's suffix."""
    path = Path(dest)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix == "" or path.is_dir() or str(dest).endswith(("/", os.sep)):
        return "folder"
    raise OutputError(
        f"{path}: unknown output suffix {suffix!r} (video: {', '.join(VIDEO_SUFFIXES)}; "
        f"image: {', '.join(IMAGE_SUFFIXES)}; or a folder name without suffix)"
    )


def _check_unique_names(source: FolderSource, suffix: str) -> None:
    """A folder written from a folder keeps the input names with the output format's suffix, so
    ``f.png`` and ``f.jpg`` would both become ``f.png`` and one stylized frame would replace the
    other. Refuse before any work, naming both files. Names that differ only in case collide on
    case-insensitive file systems (macOS, Windows) and are refused everywhere."""
    suffix = suffix if suffix.startswith(".") else f".{suffix}"
    seen: dict[str, Path] = {}
    for file in source.files:
        key = file.stem.casefold()
        if key in seen:
            raise OutputError(
                f"{source.path}: {seen[key].name} and {file.name} would both be written as "
                f"{file.stem}{suffix}; rename one of them (stylized frames keep their input names)"
            )
        seen[key] = file


def open_writer(
    dest: str | Path,
    source: FrameSource,
    *,
    overwrite: bool = False,
    fps: Fraction | None = None,
    audio: bool = True,
    crf: int | None = None,
    frame_suffix: str = ".png",
) -> FrameWriter:
    """The writer matching ``dest`` for frames from ``source``.

    ``fps`` overrides the source's rate (needed for images/folders written as video;
    ``source.fps`` is used when it is None, and 25 fps as a last resort).
    """
    kind = output_kind(dest)
    check_not_input(dest, getattr(source, "path", None))
    if kind == "image":
        count = source.num_frames or source.frames_hint or 0
        if count > 1 or source.kind == "webcam":
            raise OutputError(
                f"{dest}: an image holds one frame but the input has {count or 'many'}; "
                "give a video file or a folder as output"
            )
        return ImageWriter(dest, overwrite=overwrite)
    if kind == "folder":
        names = source.names if isinstance(source, FolderSource) else None
        if names is not None:
            _check_unique_names(source, frame_suffix)
        return FolderWriter(dest, overwrite=overwrite, suffix=frame_suffix, names=names)
    rate = fps if fps is not None else source.fps
    if rate is None and source.kind in ("image", "folder"):
        rate = Fraction(25)
    if source.kind == "webcam" and fps is None:
        rate = None  # wall-clock timestamps: plays back at the captured speed
    audio_from = source.path if audio and isinstance(source, VideoSource) and source.audio_codec else None
    return VideoWriter(dest, size=source.size, fps=rate, audio_from=audio_from, overwrite=overwrite, crf=crf)
