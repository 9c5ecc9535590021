"""Optical-flow file formats: Middlebury ``.flo`` (Sintel, FlyingChairs) and ``.pfm`` (Scene Flow).

All readers return ``np.ndarray`` of shape (H, W, 2), float32, channel 0 = u (x, to the
right), channel 1 = v (y, downwards), in pixels of the image the flow belongs to.
A malformed file raises :class:`FlowFileError` naming the file and the problem.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from reconet.fileio import atomic_write

FLO_MAGIC = 202021.25  # bytes "PIEH" read as little-endian float32
_FLO_HEADER_BYTES = 12
_PFM_HEADER = re.compile(rb"(PF|Pf)\s+(\d+)\s+(\d+)\s+(-?[\d.eE+-]+)\s")  # kind, width, height, scale


class FlowFileError(ValueError):
    """A flow file that cannot be read: wrong magic, truncated, wrong size, non-finite values."""


def _flo_header(path: Path, header: bytes, length: int) -> tuple[int, int]:
    """(width, height) from a ``.flo`` header, checked against the file's ``length`` in bytes."""
    if len(header) < _FLO_HEADER_BYTES:
        raise FlowFileError(f"{path}: truncated .flo header ({len(header)} bytes, need 12)")
    magic = np.frombuffer(header, "<f4", count=1, offset=0)[0]
    if magic != np.float32(FLO_MAGIC):
        raise FlowFileError(f"{path}: not a .flo file (magic {magic!r}, expected {FLO_MAGIC})")
    width, height = (int(v) for v in np.frombuffer(header, "<i4", count=2, offset=4))
    if width <= 0 or height <= 0 or width > 100_000 or height > 100_000:
        raise FlowFileError(f"{path}: implausible .flo size {width}x{height}")
    expected = _FLO_HEADER_BYTES + 8 * width * height
    if length != expected:
        what = "truncated" if length < expected else "trailing bytes in"
        raise FlowFileError(f"{path}: {what} .flo file: {length} bytes, expected {expected} for {width}x{height}")
    return width, height


def read_flo(path: str | Path) -> np.ndarray:
    """Read a Middlebury ``.flo`` file.

    Layout (little-endian): float32 magic 202021.25, int32 width, int32 height, then
    height * width * 2 float32 values (u, v interleaved, row-major). File size = 12 + 8 w h.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FlowFileError(f"{path}: flow file not found") from None
    width, height = _flo_header(path, data[:_FLO_HEADER_BYTES], len(data))
    flow = np.frombuffer(data, "<f4", offset=_FLO_HEADER_BYTES).reshape(height, width, 2)
    return _check_finite(path, flow.astype(np.float32))


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    """Write (H, W, 2) flow as a ``.flo`` file (written to a temporary name, then renamed)."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"expected flow of shape (H, W, 2), got {tuple(flow.shape)}")
    height, width = flow.shape[:2]
    payload = (
        np.array([FLO_MAGIC], "<f4").tobytes()
        + np.array([width, height], "<i4").tobytes()
        + np.ascontiguousarray(flow, dtype="<f4").tobytes()
    )
    atomic_write(path, lambda handle: handle.write(payload))


def read_pfm(path: str | Path) -> np.ndarray:
    """Read a PFM file (Scene Flow datasets) as float32, top row first.

    PFM stores rows bottom-to-top; a negative scale means little-endian. Colour PFMs
    ("PF") have 3 channels; for flow the third channel is zero and is dropped, so a
    Scene Flow ``.pfm`` flow comes back as (H, W, 2). Greyscale ("Pf") gives (H, W).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FlowFileError(f"{path}: PFM file not found") from None
    match = _PFM_HEADER.match(data)
    if match is None:
        raise FlowFileError(f"{path}: not a PFM file (bad header)")
    channels = 3 if match.group(1) == b"PF" else 1
    width, height = int(match.group(2)), int(match.group(3))
    scale = float(match.group(4))
    if scale == 0 or width <= 0 or height <= 0:
        raise FlowFileError(f"{path}: invalid PFM header (size {width}x{height}, scale {scale})")
    offset = match.end()
    expected = offset + 4 * width * height * channels
    if len(data) != expected:
        raise FlowFileError(
            f"{path}: PFM payload is {len(data) - offset} bytes, expected "
            f"{4 * width * height * channels} for {width}x{height}x{channels}"
        )
    dtype = "<f4" if scale < 0 else ">f4"
    array = np.frombuffer(data, dtype, offset=offset).reshape(height, width, channels)
    array = np.flipud(array).astype(np.float32)
    array = array[:, :, :2] if channels == 3 else array[:, :, 0]
    return _check_finite(path, np.ascontiguousarray(array))


def write_pfm(path: str | Path, array: np.ndarray) -> None:
    """Write (H, W), (H, W, 2) or (H, W, 3) float data as PFM (2 channels are padded with zeros)."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 3 and array.shape[2] == 2:
        array = np.concatenate([array, np.zeros_like(array[:, :, :1])], axis=2)
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"expected (H, W), (H, W, 2) or (H, W, 3), got {tuple(array.shape)}")
    kind = b"PF" if array.ndim == 3 else b"Pf"
    header = kind + b"\n%d %d\n-1.0\n" % (array.shape[1], array.shape[0])
    payload = header + np.ascontiguousarray(np.flipud(array), "<f4").tobytes()
    atomic_write(path, lambda handle: handle.write(payload))


def flow_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of a ``.flo`` or ``.pfm`` flow file from its header, without reading the payload.

    The file's length is checked against the header too, so a truncated file is found here,
    as cheaply as a ``stat``, instead of halfway through training.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".flo", ".pfm"):
        raise FlowFileError(f"{path}: unknown flow format {path.suffix!r} (expected .flo or .pfm)")
    try:
        with path.open("rb") as handle:
            header = handle.read(_FLO_HEADER_BYTES if suffix == ".flo" else 256)
        length = path.stat().st_size
    except FileNotFoundError:
        raise FlowFileError(f"{path}: flow file not found") from None
    if suffix == ".flo":
        width, height = _flo_header(path, header, length)
        return height, width
    match = _PFM_HEADER.match(header)
    if match is None:
        raise FlowFileError(f"{path}: not a PFM file (bad header)")
    if match.group(1) != b"PF":
        raise FlowFileError(f"{path}: single-channel PFM is not a flow field")
    width, height = int(match.group(2)), int(match.group(3))
    expected = match.end() + 4 * width * height * 3
    if width <= 0 or height <= 0 or length != expected:
        raise FlowFileError(f"{path}: PFM file is {length} bytes, expected {expected} for {width}x{height}x3")
    return height, width


def read_flow(path: str | Path) -> np.ndarray:
    """Read a flow file by suffix (``.flo`` or ``.pfm``) as (H, W, 2) float32."""
    path = Path(path)
    if path.suffix.lower() == ".flo":
        return read_flo(path)
    if path.suffix.lower() == ".pfm":
        flow = read_pfm(path)
        if flow.ndim != 3:
            raise FlowFileError(f"{path}: single-channel PFM is not a flow field")
        return flow
    raise FlowFileError(f"{path}: unknown flow format {path.suffix!r} (expected .flo or .pfm)")


def _check_finite(path: Path, flow: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(flow)
    if bad.any():
        raise FlowFileError(f"{path}: {int(bad.sum())} non-finite flow values (NaN or inf)")
    return flow
