"""Shared fixtures.

Real sample data lives in ``../shared/data`` relative to the project root (override with
``RECONET_SAMPLE_DATA``). Locally a test that needs it is skipped when it is missing; in CI
(``CI=true``) it fails, so a broken checkout can never pass by skipping.
"""

from __future__ import annotations

import importlib
import os
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]


# -- the real training config, composed and shrunk -------------------------------------------


def compose_train(*overrides: str):
    """reconet/conf/train.yaml with Hydra ``overrides``, composed as reconet-train composes it."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from reconet.training.config import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("reconet.conf", version_base="1.3"):
            return compose("train", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def shrunk_training(*overrides: str, size: int = 64, trainer: str = "cpu", workers: int = 0) -> list[str]:
    """Overrides that shrink the real training config for a test, the one definition for every
    training test (in process and through the command line): the tiny network, a random loss
    network, ``size`` x ``size`` frames and style, no workers, a quiet trainer without an epoch
    limit, fp32, no sample clip. ``overrides`` come last and may change any of it."""
    return [
        "model=tiny",
        f"trainer={trainer}",
        "loss.network.weights=random",
        f"loss.style_size={size}",
        f"data.size=[{size},{size}]",
        f"data.num_workers={workers}",
        "data.val_pairs=2",
        "trainer.max_epochs=-1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "trainer.precision=32-true",  # the same numbers on every CPU (auto is bf16 on AMX CPUs)
        "callbacks.samples.clip=null",
        *overrides,
    ]


# -- optional packages -----------------------------------------------------------------------


def require_onnx():
    """The onnxruntime module, or skip the calling test: an ONNX test exports (needs ``onnx``) and
    runs the file (needs ``onnxruntime``), so either package alone is not enough."""
    missing = []
    for name in ("onnx", "onnxruntime"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        pytest.skip(f"needs onnx and onnxruntime (reconet[onnx]); missing: {', '.join(missing)}")
    return importlib.import_module("onnxruntime")


def require_int8():
    """torchao (the ``[int8]`` extra, in the README's test command), or fail in CI / skip elsewhere."""
    try:
        return importlib.import_module("torchao")
    except ImportError:
        message = "needs torchao (reconet[int8])"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def _sample_data_root() -> Path:
    env = os.environ.get("RECONET_SAMPLE_DATA")
    return Path(env) if env else PROJECT_ROOT.parent / "shared" / "data"


def require_path(path: Path) -> Path:
    """Return ``path`` if it exists; otherwise fail in CI, skip elsewhere."""
    if path.exists():
        return path
    message = f"sample data missing: {path}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def sample_data() -> Path:
    return require_path(_sample_data_root())


@pytest.fixture(scope="session")
def sintel_root(sample_data: Path) -> Path:
    return require_path(sample_data / "sintel")


@pytest.fixture(scope="session")
def chairs_root(sample_data: Path) -> Path:
    return require_path(sample_data / "flyingchairs" / "FlyingChairs_release")


@pytest.fixture(scope="session")
def styles_dir(sample_data: Path) -> Path:
    return require_path(sample_data / "styles")


@pytest.fixture(scope="session")
def videos_dir(sample_data: Path) -> Path:
    return require_path(sample_data / "videos")


def write_faststart_clip(path: Path, frames: int = 150, size: tuple[int, int] = (96, 64), rate: int = 25) -> Path:
    """An H.264 MP4 of random frames with its index (moov) at the front, as web downloads have.

    Cut short, such a file still opens and demuxes without an error up to the cut.
    """
    import av
    import numpy as np

    width, height = size
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def truncate_file(source: Path, destination: Path, fraction: float) -> Path:
    """The first ``fraction`` of ``source``'s bytes, as an interrupted download leaves it."""
    data = source.read_bytes()
    destination.write_bytes(data[: int(len(data) * fraction)])
    return destination


def copy_small_sintel(source: Path, root: Path) -> Path:
    """alley_1's clean frames 1-4 and flows 1-3 in the Sintel layout (occlusion maps as shipped)."""
    training = source / "training"
    for kind, names in (("clean", [f"frame_{i:04d}.png" for i in range(1, 5)]),
                        ("flow", [f"frame_{i:04d}.flo" for i in range(1, 4)]),
                        ("occlusions", None), ("invalid", None)):
        folder = training / kind / "alley_1"
        target = root / "training" / kind / "alley_1"
        target.mkdir(parents=True)
        for file in sorted(folder.iterdir()) if names is None else [folder / name for name in names]:
            if file.is_file():
                shutil.copy2(file, target / file.name)
    return root


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb when huge)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def warp_errors(sample: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel channel-mean |I1 - warp(I2, F)| and |I1 - I2| of a dataset sample, each (1, H, W)."""
    from reconet.flow.warp import warp

    warped = warp(sample["frame2"].unsqueeze(0), sample["flow"].unsqueeze(0))[0]
    return (
        (sample["frame1"] - warped).abs().mean(dim=0, keepdim=True),
        (sample["frame1"] - sample["frame2"]).abs().mean(dim=0, keepdim=True),
    )


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    return float((values * mask).sum() / mask.sum())


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _own_cache_dir(tmp_path_factory, monkeypatch) -> None:
    """Every test (and every command it runs) gets an empty reconet cache of its own: tuned
    kernels chosen by one test never decide another, and nothing is written to the user's."""
    monkeypatch.setenv("RECONET_CACHE_DIR", str(tmp_path_factory.mktemp("reconet-cache")))
    monkeypatch.delenv("RECONET_KERNEL_CACHE", raising=False)
    monkeypatch.delenv("RECONET_TUNING_CACHE", raising=False)


@pytest.fixture(autouse=True)
def _int8_candidate_off_unless_asked(monkeypatch) -> None:
    """auto's int8 candidate (compiled CPU jobs on VNNI/AMX-INT8 machines) is tested in
    tests/inference/test_int8.py, which forces it on; elsewhere it is off, so that a compiled
    ``auto`` run is compared with fp32 at the float precisions' bars on every machine.
    ``RECONET_NATIVE_INT8=1 python -m pytest`` runs the whole suite with it."""
    if "RECONET_NATIVE_INT8" not in os.environ:
        monkeypatch.setenv("RECONET_NATIVE_INT8", "0")


def force_native_bf16(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    """Run this test as if on a CPU with (True) or without (False) native bf16 matrix units, on
    any machine: the documented override of reconet.hardware, read at every decision (and by
    the commands a test starts). ``RECONET_NATIVE_BF16=0/1 python -m pytest`` does the same for
    a whole suite run."""
    monkeypatch.setenv("RECONET_NATIVE_BF16", "1" if native else "0")


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """One intra-op thread for the test, restored afterwards (CLIs' --threads set it
    process-wide). The suite shares two cores: OpenMP threads that wait on each other under
    load are far slower than one thread, and the tensors in these tests are small."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _probe_media(path: Path) -> dict:
    """Facts about a media file from demuxing and decoding it, independent of reconet's I/O:
    frame count, frame rate, size, audio codec, and each stream's time span and length."""
    import av

    info: dict = {}
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        info["rate"] = video.average_rate
        info["size"] = (video.codec_context.width, video.codec_context.height)
        info["audio_codec"] = container.streams.audio[0].codec_context.name if container.streams.audio else None
        spans: dict[str, list[Fraction]] = {}
        for packet in container.demux():
            if packet.pts is None or packet.size == 0:
                continue
            start = packet.pts * packet.time_base
            end = (packet.pts + (packet.duration or 0)) * packet.time_base
            old = spans.get(packet.stream.type)
            spans[packet.stream.type] = [start, end] if old is None else [min(old[0], start), max(old[1], end)]
    with av.open(str(path)) as container:
        info["frames"] = sum(1 for _ in container.decode(video=0))
    for kind in ("video", "audio"):
        span = spans.get(kind)
        info[f"{kind}_span"] = span
        info[f"{kind}_length"] = None if span is None else span[1] - span[0]
    return info


@pytest.fixture(scope="session")
def probe() -> Callable[[Path], dict]:
    """``probe(path)`` -> the facts of :func:`_probe_media`."""
    return _probe_media
