"""The source's audio track carried into a stylized video.

Audio is demuxed from the source file a second time and interleaved with the video by
time: packets are copied unchanged when the output container accepts the codec (AAC into
MP4/MKV, Vorbis/Opus into WebM/MKV), otherwise decoded and re-encoded (e.g. Vorbis -> AAC
for MP4, AAC -> Opus for WebM).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av

# Containers that accept a codec only in theory: FFmpeg can put Vorbis into MP4 or AVI, but
# players cannot play it, so such audio is transcoded instead of copied.
_AUDIO_COPY_DENYLIST = {
    "mp4": {"vorbis"},
    "mov": {"vorbis"},
    "ipod": {"vorbis"},
    "avi": {"vorbis"},
}
# Audio encoder used when the source codec cannot be copied into the container.
_AUDIO_TRANSCODE = {
    "mp4": "aac",
    "mov": "aac",
    "ipod": "aac",
    "matroska": "aac",
    "webm": "libopus",
    "avi": "libmp3lame",
}
# AVI stores one tick per video frame and cannot start a stream before zero: an audio packet
# that ends before time zero (AAC encoder priming, hidden by an MP4 edit list) would make the
# muxer shift the video by a whole frame, so such packets are left out there.
_DROP_PRE_ROLL = {"avi"}
# libopus only runs at these sample rates; anything else is resampled to 48 kHz.
_OPUS_RATES = (48000, 24000, 16000, 12000, 8000)


class AudioTrack:
    """Audio of the source file, copied or transcoded into the output, interleaved by time."""

    def __init__(self, source_path: Path, output: Any, container_format: str):
        self._input = av.open(str(source_path))
        self._in_stream = self._input.streams.audio[0]
        codec = self._in_stream.codec_context.name
        supported = getattr(output, "supported_codecs", set())
        denied = _AUDIO_COPY_DENYLIST.get(container_format, set())
        self.copy = codec in supported and codec not in denied
        if self.copy:
            self._out_stream = output.add_stream_from_template(self._in_stream)
            self.description = f"{codec} copied"
        else:
            encoder = _AUDIO_TRANSCODE.get(container_format, "aac")
            rate = self._in_stream.codec_context.sample_rate or 48000
            if encoder == "libopus" and rate not in _OPUS_RATES:
                rate = 48000
            self._out_stream = output.add_stream(encoder, rate=rate)
            layout = self._in_stream.codec_context.layout
            if layout is not None and layout.nb_channels <= 2:
                self._out_stream.layout = layout.name
            else:
                self._out_stream.layout = "stereo"
            if encoder == "aac":
                self._out_stream.bit_rate = 192_000
            self.description = f"{codec} -> {self._out_stream.codec_context.name}"
        self._packets = self._input.demux(self._in_stream)
        self._drop_pre_roll = container_format in _DROP_PRE_ROLL
        self._pending: Any = None
        self._exhausted = False

    def _next_packet(self) -> Any:
        if self._pending is None and not self._exhausted:
            for packet in self._packets:
                if packet.pts is None or packet.size == 0:  # demuxer flush packets
                    continue
                if self._drop_pre_roll and packet.pts + (packet.duration or 0) <= 0:
                    continue
                self._pending = packet
                break
            else:
                self._exhausted = True
        return self._pending

    def mux_until(self, output: Any, limit: Fraction | None, *, cut: bool = False) -> None:
        """Mux every audio packet starting before ``limit`` seconds (all of them if None).

        With ``cut`` the packets from ``limit`` on are dropped (trimmed output).
        """
        while True:
            packet = self._next_packet()
            if packet is None:
                break
            start = packet.pts * packet.time_base
            if limit is not None and start >= limit:
                break
            self._pending = None
            self._mux_packet(output, packet)
        if cut:
            self._exhausted = True
            self._pending = None

    def _mux_packet(self, output: Any, packet: Any) -> None:
        if self.copy:
            packet.stream = self._out_stream
            output.mux(packet)
            return
        try:
            frames = packet.decode()
        except av.FFmpegError:
            return  # a damaged audio packet: skip it rather than lose the whole video
        for frame in frames:
            frame.pts = None  # the encoder numbers samples itself
            output.mux(self._out_stream.encode(frame))

    def finish(self, output: Any) -> None:
        if not self.copy:
            output.mux(self._out_stream.encode(None))
        self._input.close()

    def close(self) -> None:
        self._input.close()
