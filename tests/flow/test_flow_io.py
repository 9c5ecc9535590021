"""Flow file formats: .flo and .pfm, byte-level known answers, round trips, corrupt files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reconet.flow import FlowFileError, read_flo, read_flow, read_pfm, write_flo, write_pfm

SINTEL_FLOW = "training/flow/alley_1/frame_0002.flo"


def _flo_bytes(width: int, height: int, values: np.ndarray, magic: float = 202021.25) -> bytes:
    """A .flo file built by hand from its specification (not by write_flo)."""
    return struct.pack("<fii", magic, width, height) + np.asarray(values, "<f4").tobytes()


# --- .flo --------------------------------------------------------------------------------


def test_write_flo_byte_layout(tmp_path: Path) -> None:
    flow = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)  # (H=2, W=3, 2)
    write_flo(tmp_path / "a.flo", flow)
    data = (tmp_path / "a.flo").read_bytes()
    assert data[:4] == b"PIEH"  # the float 202021.25 in little-endian bytes
    assert struct.unpack("<ii", data[4:12]) == (3, 2)  # width first, then height
    assert len(data) == 12 + 8 * 3 * 2
    # row-major, u and v interleaved: the value after (u, v) of pixel (0, 0) is u of (0, 1)
    assert struct.unpack("<6f", data[12:36]) == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flo"], "temporary file left behind"


def test_read_flo_hand_written(tmp_path: Path) -> None:
    values = np.array([1.5, -2.0, 3.25, 0.0, -7.0, 8.5], np.float32)  # one row of 3 pixels
    path = tmp_path / "h.flo"
    path.write_bytes(_flo_bytes(3, 1, values))
    flow = read_flo(path)
    assert flow.shape == (1, 3, 2) and flow.dtype == np.float32
    np.testing.assert_array_equal(flow[0, :, 0], [1.5, 3.25, -7.0])  # u
    np.testing.assert_array_equal(flow[0, :, 1], [-2.0, 0.0, 8.5])  # v


def test_read_sintel_flo_matches_raw_bytes(sintel_root: Path) -> None:
    path = sintel_root / SINTEL_FLOW
    raw = path.read_bytes()
    width, height = struct.unpack("<ii", raw[4:12])
    assert (width, height) == (1024, 436)
    flow = read_flo(path)
    assert flow.shape == (436, 1024, 2)
    y, x = 200, 517
    offset = 12 + 8 * (y * width + x)
    assert tuple(flow[y, x]) == struct.unpack("<2f", raw[offset : offset + 8])


def test_flo_round_trip(tmp_path: Path) -> None:
    flow = np.random.default_rng(0).normal(0, 20, size=(7, 11, 2)).astype(np.float32)
    write_flo(tmp_path / "r.flo", flow)
    np.testing.assert_array_equal(read_flo(tmp_path / "r.flo"), flow)
    np.testing.assert_array_equal(read_flow(tmp_path / "r.flo"), flow)


_finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=25, deadline=None)
@given(flow=hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9).map(
    lambda s: (*s, 2)), elements=_finite))
def test_flo_round_trip_any_shape(flow: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("flo") / "x.flo"
    write_flo(path, flow)
    np.testing.assert_array_equal(read_flo(path), flow)


def test_write_flo_rejects_wrong_shape_without_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\(4, 5, 3\)"):
        write_flo(tmp_path / "bad.flo", np.zeros((4, 5, 3), np.float32))
    assert not list(tmp_path.iterdir())


def _nan_payload() -> bytes:
    values = np.zeros(2 * 2 * 2, np.float32)
    values[3] = np.nan
    return _flo_bytes(2, 2, values)


CORRUPT_FLO = {
    "wrong_magic": (lambda: _flo_bytes(2, 2, np.zeros(8), magic=1.0), "not a .flo file"),
    "truncated_header": (lambda: struct.pack("<fi", 202021.25, 2), "truncated .flo header"),
    "empty": (lambda: b"", "truncated .flo header"),
    "truncated_payload": (lambda: _flo_bytes(2, 2, np.zeros(7)), "truncated .flo"),
    "trailing_bytes": (lambda: _flo_bytes(2, 2, np.zeros(9)), "trailing bytes"),
    "nan_values": (_nan_payload, "non-finite"),
    "implausible_size": (lambda: _flo_bytes(-3, 2, np.zeros(0)), "implausible .flo size"),
}


@pytest.mark.parametrize("kind", sorted(CORRUPT_FLO))
def test_corrupt_flo_names_file_and_problem(tmp_path: Path, kind: str) -> None:
    make, problem = CORRUPT_FLO[kind]
    path = tmp_path / f"{kind}.flo"
    path.write_bytes(make())
    with pytest.raises(FlowFileError) as info:
        read_flo(path)
    message = str(info.value)
    assert str(path) in message and problem in message
    assert "\n" not in message


def test_missing_flo(tmp_path: Path) -> None:
    path = tmp_path / "nope.flo"
    with pytest.raises(FlowFileError, match="not found") as info:
        read_flo(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncated_real_sintel_flo(sintel_root: Path, tmp_path: Path) -> None:
    data = (sintel_root / SINTEL_FLOW).read_bytes()
    path = tmp_path / "cut.flo"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FlowFileError, match=r"truncated .flo file: 1785862 bytes, expected 3571724 for 1024x436"):
        read_flo(path)


# --- .pfm ---------------------------------------------------------------------------------


def test_read_pfm_hand_written_bottom_up_little_endian(tmp_path: Path) -> None:
    # A 3-wide, 2-high colour PFM; PFM stores the BOTTOM row first.
    stored_first = [1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 5.0, 6.0, 0.0]  # bottom row: (u, v, 0) x 3
    stored_second = [-1.0, -2.0, 0.0, -3.0, -4.0, 0.0, -5.0, -6.0, 0.0]  # top row
    path = tmp_path / "flow.pfm"
    path.write_bytes(b"PF\n3 2\n-1.0\n" + struct.pack("<18f", *stored_first, *stored_second))
    flow = read_pfm(path)
    assert flow.shape == (2, 3, 2) and flow.dtype == np.float32
    np.testing.assert_array_equal(flow[0], [[-1, -2], [-3, -4], [-5, -6]])  # row 0 = top
    np.testing.assert_array_equal(flow[1], [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(read_flow(path), flow)


def test_read_pfm_big_endian_greyscale(tmp_path: Path) -> None:
    path = tmp_path / "disp.pfm"
    path.write_bytes(b"Pf\n2 2\n1.0\n" + struct.pack(">4f", 1.0, 2.0, 3.0, 4.0))  # scale > 0: big-endian
    np.testing.assert_array_equal(read_pfm(path), [[3.0, 4.0], [1.0, 2.0]])
    with pytest.raises(FlowFileError, match="single-channel PFM is not a flow field"):
        read_flow(path)


def test_write_pfm_two_channel_byte_layout_and_round_trip(tmp_path: Path) -> None:
    flow = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    path = tmp_path / "w.pfm"
    write_pfm(path, flow)
    data = path.read_bytes()
    header = b"PF\n3 2\n-1.0\n"
    assert data.startswith(header)
    first_stored_row = struct.unpack("<9f", data[len(header) : len(header) + 36])
    assert first_stored_row == (6.0, 7.0, 0.0, 8.0, 9.0, 0.0, 10.0, 11.0, 0.0)  # bottom row, zero 3rd channel
    np.testing.assert_array_equal(read_pfm(path), flow)


@settings(max_examples=20, deadline=None)
@given(flow=hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8).map(
    lambda s: (*s, 2)), elements=_finite))
def test_pfm_round_trip_any_shape(flow: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("pfm") / "x.pfm"
    write_pfm(path, flow)
    np.testing.assert_array_equal(read_flow(path), flow)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"P6\n3 2\n255\n" + bytes(18), "bad header"),
        (b"PF\n3 2\n-1.0\n" + bytes(4 * 17), "PFM payload is 68 bytes, expected 72"),
        (b"PF\n3 2\n0\n" + bytes(72), "invalid PFM header"),
        (b"Pf\n1 1\n-1.0\n" + struct.pack("<f", float("inf")), "non-finite"),
    ],
)
def test_corrupt_pfm(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "bad.pfm"
    path.write_bytes(content)
    with pytest.raises(FlowFileError) as info:
        read_pfm(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_read_flow_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(FlowFileError, match=r"unknown flow format '\.png'"):
        read_flow(tmp_path / "x.png")


def test_writes_are_atomic_and_world_readable(tmp_path: Path) -> None:
    import os

    path = tmp_path / "p.flo"
    path.write_bytes(b"old content")
    write_flo(path, np.ones((2, 2, 2), np.float32))
    write_pfm(tmp_path / "p.pfm", np.ones((2, 2, 2), np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.flo", "p.pfm"]  # no temporary files left
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~umask
    np.testing.assert_array_equal(read_flo(path), np.ones((2, 2, 2), np.float32))


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import reconet.fileio as fileio  # the package's one write-then-rename

    path = tmp_path / "keep.flo"
    write_flo(path, np.ones((2, 2, 2), np.float32))

    def failing_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_flo(path, np.zeros((3, 3, 2), np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["keep.flo"]
    np.testing.assert_array_equal(read_flo(path), np.ones((2, 2, 2), np.float32))
