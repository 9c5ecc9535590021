"""Training pairs from your own videos, with estimated optical flow cached on disk.

Real video has no ground-truth flow, so it is estimated once per video and cached:

1. decode every frame (PyAV through :func:`reconet.media.open_frames`; a folder of
   image files is read as one frame sequence), shrunk so the shorter side is ``short_side``;
2. for each pair (t, t + frame_step) estimate the forward flow t -> t+step AND the backward
   flow t+step -> t (:func:`reconet.flow.estimate.estimate_flows`: torchvision RAFT when its
   weights are available locally, otherwise OpenCV DIS);
3. the mask is forward-backward consistency plus motion boundaries and the in-frame test
   (:func:`reconet.flow.occlusion.mask_from_flows`, 1 = use pixel) -- never a negated forward
   flow.

Cache layout, one folder per video under ``cache_dir``::

    <stem>-<hash of the absolute path>/
        manifest.json   source fingerprint, settings, shapes
        frames.u8       (N, H, W, 3) uint8 RGB, raw
        flow.npy        (P, 2, H, W) float16 forward flow (pixels; float16 keeps 1/4 px up
                        to 512 px of motion, far below estimator error)
        mask.npy        (P, H, W) uint8, 1 = use pixel

The cache is reused while the video and the settings are unchanged. A video counts as
changed when its size or mtime differ AND its SHA-256 differs (a copy with a new mtime
is recognised by its hash and not re-processed); any change of ``short_side``,
``frame_step``, ``max_frames``, the flow method or the RAFT weights rebuilds it. A cache is
built in a temporary folder and renamed into place, and concurrent processes (one per GPU)
serialize on a lock file, so a crash or a second rank never sees half a cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from reconet.data.errors import DatasetError
from reconet.data.sample import make_meta, make_sample
from reconet.fileio import replace_folder, write_json
from reconet.flow.estimate import FLOW_METHODS, build_flow_estimator, estimate_flows, find_cached_raft_weights
from reconet.image import IMAGE_SUFFIXES, uint8_to_tensor
from reconet.media import VIDEO_SUFFIXES, SizeSpec, open_frames

CACHE_VERSION = 1
SPLITS = ("train", "val", "all")
DATASET_NAME = "videos"


def find_videos(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Expand ``paths`` (video files and folders) into a sorted list of sources.

    A folder contributes every video file below it and every folder below it (itself
    included) that holds image files, each as one frame sequence in natural name order.

    Raises:
        DatasetError: a path does not exist, or nothing usable was found.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    suffixes = VIDEO_SUFFIXES
    sources: list[Path] = []
    for entry in paths:
        path = Path(entry).expanduser()
        if not path.exists():
            raise DatasetError(f"videos: {path} does not exist (data.paths lists video files and folders)")
        if path.is_file():
            if path.suffix.lower() not in suffixes:
                raise DatasetError(f"videos: {path} is not a video file (suffixes: {', '.join(suffixes)})")
            sources.append(path.resolve())
            continue
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        videos = [p for p in files if p.suffix.lower() in suffixes]
        frame_dirs = sorted({p.parent for p in files if p.suffix.lower() in IMAGE_SUFFIXES})
        if not videos and not frame_dirs:
            raise DatasetError(f"videos: {path} holds no video files and no folders of image frames")
        sources.extend(p.resolve() for p in [*videos, *frame_dirs])
    if not sources:
        raise DatasetError("videos: data.paths is empty")
    return list(dict.fromkeys(sources))


# -- fingerprints ---------------------------------------------------------------------------
def _stat(path: Path) -> dict[str, Any]:
    """Size and mtime of a file, or of a frame folder's listing."""
    if path.is_file():
        info = path.stat()
        return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return {
        "size": sum(p.stat().st_size for p in files),
        "mtime_ns": max((p.stat().st_mtime_ns for p in files), default=0),
    }


def _content_hash(path: Path) -> str:
    """SHA-256 of a file, or of every frame file of a folder (names and bytes)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    for file in files:
        if not path.is_file():
            digest.update(file.name.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_folder(cache_dir: str | os.PathLike, source: Path) -> Path:
    key = hashlib.sha1(str(source).encode()).hexdigest()[:12]
    return Path(cache_dir).expanduser() / f"{source.stem or source.name}-{key}"


@dataclass(frozen=True)
class CacheSettings:
    """Everything that shapes a cache; a change of any field rebuilds it."""

    short_side: int | None
    frame_step: int
    max_frames: int | None
    flow_method: str
    raft_weights: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"cache_version": CACHE_VERSION, **self.__dict__}


def resolve_settings(
    short_side: int | None,
    frame_step: int,
    max_frames: int | None,
    flow_method: str,
    raft_weights: str | os.PathLike | None,
) -> CacheSettings:
    if flow_method not in FLOW_METHODS:
        raise DatasetError(f"videos: flow_method must be one of {FLOW_METHODS}, got {flow_method!r}")
    if frame_step < 1:
        raise DatasetError(f"videos: frame_step must be >= 1, got {frame_step}")
    if short_side is not None and short_side < 8:
        raise DatasetError(f"videos: short_side must be >= 8 or null, got {short_side}")
    weights: str | None = None
    if raft_weights is not None:
        weights = str(Path(raft_weights).expanduser().resolve())
    elif flow_method in ("auto", "raft"):
        # "auto" picks RAFT when weights sit in the torch hub cache: which file it finds is
        # part of the settings, so newly available weights rebuild the cache with RAFT.

        found = find_cached_raft_weights()
        weights = str(found) if found is not None else None
    return CacheSettings(short_side, int(frame_step), max_frames, flow_method, weights)


def _target_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(W, H) with the shorter side shrunk to ``short_side`` (never enlarged), even numbers."""
    if short_side is None or min(width, height) <= short_side:
        return width, height
    factor = short_side / min(width, height)
    return max(2, 2 * round(width * factor / 2)), max(2, 2 * round(height * factor / 2))


# -- building -------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive lock file (POSIX flock); other processes building the same cache wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: single-process use only
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _cache_is_valid(folder: Path, source: Path, settings: CacheSettings) -> bool:
    """True if the cache matches the settings and the source; refreshes a stale stat."""
    manifest = _read_manifest(folder)
    if manifest is None or manifest.get("settings") != settings.to_dict():
        return False
    recorded = manifest.get("source", {})
    if recorded.get("path") != str(source):
        return False
    stat = _stat(source)
    if stat["size"] == recorded.get("size") and stat["mtime_ns"] == recorded.get("mtime_ns"):
        return True
    if stat["size"] != recorded.get("size") or _content_hash(source) != recorded.get("sha256"):
        return False
    manifest["source"].update(stat)  # same bytes, new mtime (copied or touched): keep the cache
    write_json(folder / "manifest.json", manifest)
    return True


def _progress(total: int | None, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="frame" if "decode" in desc else "pair", disable=not enabled, leave=False)


def _decode(source: Path, folder: Path, settings: CacheSettings, progress: bool) -> tuple[int, int, int]:
    """Decode ``source`` into ``folder/frames.u8``; returns (N, H, W)."""

    with open_frames(source) as probe:
        width, height = _target_size(*probe.source_size, settings.short_side)
    count = 0
    with open_frames(source, size=SizeSpec(size_wh=(width, height)), max_frames=settings.max_frames) as frames:
        bar = _progress(frames.frames_hint, f"decode {source.name}", progress)
        with open(folder / "frames.u8", "wb") as out, bar:
            for frame in frames.frames():
                image = np.ascontiguousarray(frame.image, dtype=np.uint8)  # (H, W, 3)
                if image.shape != (height, width, 3):
                    raise DatasetError(f"videos: {source} frame {frame.index} is {image.shape}, expected {(height, width, 3)}")
                out.write(image.tobytes())
                count += 1
                bar.update(1)
    return count, height, width


def _estimate(
    folder: Path,
    source: Path,
    shape: tuple[int, int, int],
    settings: CacheSettings,
    device: torch.device,
    batch_size: int,
    progress: bool,
) -> str:
    """Forward flow and mask of every pair into ``flow.npy`` / ``mask.npy``; returns the estimator name."""

    count, height, width = shape
    step = settings.frame_step
    pairs = count - step
    estimator = build_flow_estimator(settings.flow_method, raft_weights=settings.raft_weights, device=device)
    frames = np.memmap(folder / "frames.u8", dtype=np.uint8, mode="r", shape=(count, height, width, 3))
    flows = np.lib.format.open_memmap(folder / "flow.npy", mode="w+", dtype=np.float16, shape=(pairs, 2, height, width))
    masks = np.lib.format.open_memmap(folder / "mask.npy", mode="w+", dtype=np.uint8, shape=(pairs, height, width))
    with _progress(pairs, f"flow ({estimator.name}) {source.name}", progress) as bar, torch.no_grad():
        for start in range(0, pairs, batch_size):
            stop = min(start + batch_size, pairs)
            first = torch.stack([uint8_to_tensor(frames[i]) for i in range(start, stop)]).to(device)  # (b, 3, H, W)
            second = torch.stack([uint8_to_tensor(frames[i + step]) for i in range(start, stop)]).to(device)
            forward, _, mask = estimate_flows(estimator, first, second)  # (b, 2, H, W), _, (b, 1, H, W)
            flows[start:stop] = forward.float().cpu().numpy().astype(np.float16)
            masks[start:stop] = (mask[:, 0] > 0.5).cpu().numpy().astype(np.uint8)
            bar.update(stop - start)
    flows.flush()
    masks.flush()
    del flows, masks, frames
    return str(estimator.name)


def build_cache(
    source: Path,
    cache_dir: str | os.PathLike,
    settings: CacheSettings,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 4,
    progress: bool = True,
) -> Path:
    """Return the cache folder of ``source``, building it first if missing or stale."""
    folder = cache_folder(cache_dir, source)
    with _locked(folder.with_name(folder.name + ".lock")):
        if _cache_is_valid(folder, source, settings):
            return folder
        device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        building = Path(tempfile.mkdtemp(prefix=f".{folder.name}.building-", dir=folder.parent))
        os.chmod(building, 0o755)  # mkdtemp makes it private; a cache may be shared
        try:
            count, height, width = _decode(source, building, settings, progress)
            if count <= settings.frame_step:
                raise DatasetError(
                    f"videos: {source} has {count} frame(s); at least frame_step + 1 = {settings.frame_step + 1} are needed"
                )
            estimator = _estimate(building, source, (count, height, width), settings, device, batch_size, progress)
            manifest = {
                "settings": settings.to_dict(),
                "source": {"path": str(source), **_stat(source), "sha256": _content_hash(source)},
                "frames": count,
                "pairs": count - settings.frame_step,
                "height": height,
                "width": width,
                "estimator": estimator,
            }
            write_json(building / "manifest.json", manifest)
            replace_folder(building, folder)  # the old cache (if any) is swapped out, then deleted
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return folder


# -- the dataset ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Video:
    source: Path
    folder: Path
    frames: int
    pairs: int
    height: int
    width: int


class VideoPairs(Dataset):
    """Pairs (t, t + frame_step) of your own videos with cached estimated flow and mask.

    Args:
        paths: video files and/or folders (see :func:`find_videos`).
        cache_dir: where the per-video caches live.
        short_side: shrink frames so the shorter side has this length before caching (None: native).
        frame_step: pair frame t with t + frame_step.
        max_frames: decode at most this many frames per video.
        flow_method: ``"auto"`` (RAFT if weights are available locally, else DIS), ``"raft"``, ``"dis"``, ``"farneback"``.
        raft_weights: a local RAFT state dict (optional).
        split: ``"train"``, ``"val"`` (the last ``val_fraction`` of each video's pairs) or ``"all"``.
        val_fraction: share of each video's pairs held out for validation (at least one pair
            per video with two or more pairs when > 0).
        transform: sample transform (:mod:`reconet.data.transforms`).
        device: where flow is estimated when a cache is built (default: CUDA if available).
        progress: show tqdm progress bars while building.

    Raises:
        DatasetError: a path is missing, holds no video, a video is too short, or the split is empty.
    """

    dataset_name = DATASET_NAME

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        cache_dir: str | os.PathLike,
        short_side: int | None = 360,
        frame_step: int = 1,
        max_frames: int | None = None,
        flow_method: str = "auto",
        raft_weights: str | os.PathLike | None = None,
        split: str = "train",
        val_fraction: float = 0.05,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        device: str | torch.device | None = None,
        progress: bool = True,
    ) -> None:
        if split not in SPLITS:
            raise DatasetError(f"videos: split must be one of {SPLITS}, got {split!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise DatasetError(f"videos: val_fraction must be in [0, 1), got {val_fraction}")
        self.transform = transform
        self.split = split
        folders = self.prepare(
            paths, cache_dir, short_side, frame_step, max_frames, flow_method, raft_weights, device=device, progress=progress
        )
        self.videos: list[_Video] = []
        self.index: list[tuple[int, int]] = []  # (video, pair)
        for source, folder in folders:
            manifest = _read_manifest(folder)
            if manifest is None:
                raise DatasetError(f"videos: cache {folder} has no readable manifest.json")
            video = _Video(source, folder, manifest["frames"], manifest["pairs"], manifest["height"], manifest["width"])
            self.videos.append(video)
            held_out = min(video.pairs - 1, math.ceil(val_fraction * video.pairs)) if val_fraction > 0 else 0
            held_out = max(held_out, 0)
            first_val = video.pairs - held_out
            chosen = {
                "train": range(0, first_val),
                "val": range(first_val, video.pairs),
                "all": range(0, video.pairs),
            }[split]
            self.index.extend((len(self.videos) - 1, pair) for pair in chosen)
        self.frame_step = int(frame_step)
        if not self.index:
            raise DatasetError(
                f"videos: no {split} pairs in {[str(v.source) for v in self.videos]} "
                f"(val_fraction={val_fraction}; a video needs two or more pairs to give one to validation)"
            )
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @classmethod
    def prepare(
        cls,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        cache_dir: str | os.PathLike,
        short_side: int | None = 360,
        frame_step: int = 1,
        max_frames: int | None = None,
        flow_method: str = "auto",
        raft_weights: str | os.PathLike | None = None,
        *,
        device: str | torch.device | None = None,
        progress: bool = True,
        **_: Any,  # split, val_fraction, transform: irrelevant to the cache
    ) -> list[tuple[Path, Path]]:
        """Build (or reuse) the cache of every video; returns (source, cache folder) pairs."""
        settings = resolve_settings(short_side, frame_step, max_frames, flow_method, raft_weights)
        return [
            (source, build_cache(source, cache_dir, settings, device=device, progress=progress))
            for source in find_videos(paths)
        ]

    def __len__(self) -> int:
        return len(self.index)

    def _open(self, video_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Opened lazily (per DataLoader worker) rather than pickled with the dataset.
        if video_index not in self._arrays:
            video = self.videos[video_index]
            frames = np.memmap(
                video.folder / "frames.u8", dtype=np.uint8, mode="r", shape=(video.frames, video.height, video.width, 3)
            )
            flows = np.load(video.folder / "flow.npy", mmap_mode="r")
            masks = np.load(video.folder / "mask.npy", mmap_mode="r")
            self._arrays[video_index] = (frames, flows, masks)
        return self._arrays[video_index]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_arrays"] = {}
        return state

    def __getitem__(self, index: int) -> dict[str, Any]:
        video_index, pair = self.index[index]
        frames, flows, masks = self._open(video_index)
        video = self.videos[video_index]
        sample = make_sample(
            uint8_to_tensor(np.asarray(frames[pair])),  # (3, H, W)
            uint8_to_tensor(np.asarray(frames[pair + self.frame_step])),
            torch.from_numpy(np.asarray(flows[pair], dtype=np.float32)),  # (2, H, W)
            torch.from_numpy(np.asarray(masks[pair], dtype=np.float32)).unsqueeze(0),  # (1, H, W)
            make_meta(DATASET_NAME, video.source.stem or video.source.name, pair),
        )
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return f"VideoPairs({len(self.videos)} videos, {len(self)} {self.split} pairs)"
