"""FlyingChairs (Dosovitskiy et al., ICCV 2015) and FlyingChairs2 (Ilg et al., ECCV 2018).

FlyingChairs, release layout (``root`` = ``FlyingChairs_release``)::

    data/NNNNN_img1.ppm, data/NNNNN_img2.ppm   512x384 frames
    data/NNNNN_flow.flo                         forward flow img1 -> img2
    FlyingChairs_train_val.txt                  line i is pair i+1: 1 = train, 2 = validation

It ships no occlusion maps; the mask is :func:`reconet.data.masks.photometric_mask`.

FlyingChairs2 (``root`` contains ``train/`` and ``val/``)::

    train/0000000-img_0.png, -img_1.png         frames
    train/0000000-flow_01.flo, -flow_10.flo     flow img_0 -> img_1 and img_1 -> img_0
    train/0000000-occ_01.png, -occ_10.png       255 = pixel of img_0 (img_1) not visible in img_1 (img_0)
    train/0000000-mb_01.png, -mb_10.png         motion boundaries: NOT occlusion, never used as a mask
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from reconet.data.errors import DatasetError, DatasetWarning
from reconet.data.masks import (
    PHOTOMETRIC_THRESHOLD,
    apply_missing_policy,
    check_missing_policy,
    mask_from_maps,
    photometric_mask,
)
from reconet.data.sample import check_pair_headers, check_same_size, flow_to_tensor, load_binary_map, make_meta, make_sample
from reconet.flow.io import read_flo
from reconet.image import load_image

Transform = Callable[[dict[str, Any]], dict[str, Any]]

SPLIT_FILE = "FlyingChairs_train_val.txt"
_SPLIT_CODES = {"train": {1}, "val": {2}, "validation": {2}, "all": {1, 2}}
_CHAIRS_FLOW = re.compile(r"^(\d+)_flow\.flo$")


@dataclass(frozen=True)
class ChairsPair:
    pair_id: int
    img1: Path
    img2: Path
    flow: Path


class FlyingChairs(Dataset):
    """FlyingChairs pairs of one split, using only the pairs present on disk.

    Args:
        root: the ``FlyingChairs_release`` folder (``data/`` and ``FlyingChairs_train_val.txt``).
        split: ``"train"``, ``"val"`` (or ``"validation"``) per the official split file, or
            ``"all"`` (every pair present; the split file is then optional).
        transform: callable applied to each sample dict.
        photometric_threshold: the mask keeps pixels whose colour differs from the warped
            second frame by less than this in every channel (see ``photometric_mask``).

    The split file lists all 22,872 pairs; if fewer are present (a partial download or a
    sample), the present ones are used and one DatasetWarning gives the counts.
    """

    dataset_name = "flyingchairs"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Transform | None = None,
        photometric_threshold: float = PHOTOMETRIC_THRESHOLD,
    ) -> None:
        if split not in _SPLIT_CODES:
            raise ValueError(f"FlyingChairs: split must be one of {sorted(_SPLIT_CODES)}, got {split!r}")
        self.root = Path(root)
        self.split = "val" if split == "validation" else split
        self.transform = transform
        self.photometric_threshold = float(photometric_threshold)
        data_dir = self.root / "data"
        if not self.root.is_dir():
            raise DatasetError(f"FlyingChairs: root {self.root} does not exist (expected FlyingChairs_release/)")
        if not data_dir.is_dir():
            raise DatasetError(
                f"FlyingChairs: no {data_dir} (root must be FlyingChairs_release/ containing data/NNNNN_flow.flo)"
            )
        present: dict[int, ChairsPair] = {}
        incomplete = 0
        for flow_path in data_dir.glob("*_flow.flo"):
            match = _CHAIRS_FLOW.match(flow_path.name)
            if match is None:
                continue
            stem = match.group(1)
            img1, img2 = data_dir / f"{stem}_img1.ppm", data_dir / f"{stem}_img2.ppm"
            if img1.is_file() and img2.is_file():
                present[int(stem)] = ChairsPair(int(stem), img1, img2, flow_path)
            else:
                incomplete += 1

        split_file = self.root / SPLIT_FILE
        if split_file.is_file():
            codes = _read_split(split_file)
            wanted = _SPLIT_CODES[self.split]
            listed = [i + 1 for i, code in enumerate(codes) if code in wanted]
            if self.split == "all":
                listed = sorted(set(listed) | set(present))
        elif self.split == "all":
            listed = sorted(present)
        else:
            raise DatasetError(
                f"FlyingChairs: split {self.split!r} needs {split_file} (or use split='all')"
            )
        self.pairs = [present[i] for i in listed if i in present]
        if not self.pairs:
            raise DatasetError(
                f"FlyingChairs: no {self.split} pairs under {data_dir}: looked for NNNNN_img1.ppm, "
                f"NNNNN_img2.ppm and NNNNN_flow.flo for the {len(listed)} pairs the split lists"
            )
        for pair in self.pairs:
            check_pair_headers("FlyingChairs", (pair.img1, pair.img2), (pair.flow,))
        if len(self.pairs) < len(listed) or incomplete:
            note = f"; {incomplete} flow files without both images ignored" if incomplete else ""
            warnings.warn(
                f"FlyingChairs: split {self.split!r} lists {len(listed):,} pairs, {len(self.pairs):,} "
                f"are present under {data_dir}; using those{note}",
                DatasetWarning,
                stacklevel=2,
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        frame1 = load_image(pair.img1)  # (3, H, W)
        frame2 = load_image(pair.img2)
        flow = flow_to_tensor(read_flo(pair.flow))  # (2, H, W)
        check_same_size("FlyingChairs", (pair.img1, pair.img2, pair.flow), frame1, frame2, flow)
        mask = photometric_mask(frame1, frame2, flow, self.photometric_threshold)
        meta = make_meta(self.dataset_name, f"{pair.pair_id:05d}", pair.pair_id)
        sample = make_sample(frame1, frame2, flow, mask, meta)
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return f"FlyingChairs(root={str(self.root)!r}, split={self.split!r}, pairs={len(self)})"


def _read_split(path: Path) -> list[int]:
    codes = []
    for number, line in enumerate(path.read_text().split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        if line not in ("1", "2"):
            raise DatasetError(f"FlyingChairs: {path} line {number}: expected 1 or 2, got {line[:20]!r}")
        codes.append(int(line))
    return codes


@dataclass(frozen=True)
class Chairs2Pair:
    split: str
    stem: str
    direction: str  # "01" (img_0 -> img_1) or "10" (img_1 -> img_0)
    frame1: Path
    frame2: Path
    flow: Path
    occlusion: Path | None


_CHAIRS2_FLOW = re.compile(r"^(\d+)-flow_(01|10)\.flo$")


class FlyingChairs2(Dataset):
    """FlyingChairs2 pairs with ground-truth occlusion.

    Args:
        root: folder containing ``train/`` and ``val/``.
        split: ``"train"``, ``"val"`` or ``"all"``.
        transform: callable applied to each sample dict.
        backward_pairs: also yield the reversed pairs (img_1, img_0) with the dataset's own
            backward flow ``flow_10`` and occlusion ``occ_10`` (a real backward flow, never a
            negated forward one); doubles the data.
        missing_occlusion: ``"in_frame"``, ``"skip"`` or ``"error"`` for pairs whose ``occ``
            file is absent (as for :class:`reconet.data.SintelPairs`).

    mask = NOT occluded (``occ_01`` is 255 where a pixel of img_0 is not visible in img_1) AND
    target inside the frame. The ``mb`` files are motion boundaries and are never read.
    """

    dataset_name = "flyingchairs2"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Transform | None = None,
        backward_pairs: bool = False,
        missing_occlusion: str = "in_frame",
    ) -> None:
        splits = {"train": ("train",), "val": ("val",), "validation": ("val",), "all": ("train", "val")}
        if split not in splits:
            raise ValueError(f"FlyingChairs2: split must be one of {sorted(splits)}, got {split!r}")
        self.root = Path(root)
        self.split = "val" if split == "validation" else split
        self.transform = transform
        self.missing_occlusion = check_missing_policy(missing_occlusion)
        if not self.root.is_dir():
            raise DatasetError(f"FlyingChairs2: root {self.root} does not exist (expected the folder with train/ and val/)")
        directions = ("01", "10") if backward_pairs else ("01",)
        pairs: list[Chairs2Pair] = []
        for folder in splits[split]:
            directory = self.root / folder
            if not directory.is_dir():
                raise DatasetError(f"FlyingChairs2: no {directory} (root must contain train/ and val/)")
            for flow_path in sorted(directory.glob("*-flow_*.flo")):
                match = _CHAIRS2_FLOW.match(flow_path.name)
                if match is None or match.group(2) not in directions:
                    continue
                stem, direction = match.groups()
                first, second = ("0", "1") if direction == "01" else ("1", "0")
                frame1 = directory / f"{stem}-img_{first}.png"
                frame2 = directory / f"{stem}-img_{second}.png"
                if not (frame1.is_file() and frame2.is_file()):
                    continue
                occlusion = directory / f"{stem}-occ_{direction}.png"
                pairs.append(
                    Chairs2Pair(folder, stem, direction, frame1, frame2, flow_path,
                                occlusion if occlusion.is_file() else None)
                )
        if not pairs:
            raise DatasetError(
                f"FlyingChairs2: no pairs under {self.root} for split {self.split!r}: looked for "
                f"<split>/NNNNNNN-img_0.png, -img_1.png and -flow_01.flo in {list(splits[split])}"
            )

        def missing_maps(pair: Chairs2Pair) -> list[Path]:
            expected = pair.flow.with_name(f"{pair.stem}-occ_{pair.direction}.png")
            return [] if pair.occlusion is not None else [expected]

        self.pairs = apply_missing_policy(pairs, missing_maps, self.missing_occlusion, "FlyingChairs2", self.root)
        if not self.pairs:
            raise DatasetError(f"FlyingChairs2: no pair under {self.root} has its occ file (missing_occlusion='skip')")
        for pair in self.pairs:
            check_pair_headers("FlyingChairs2", (pair.frame1, pair.frame2, pair.occlusion), (pair.flow,))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        frame1 = load_image(pair.frame1)  # (3, H, W)
        frame2 = load_image(pair.frame2)
        flow = flow_to_tensor(read_flo(pair.flow))  # (2, H, W)
        occluded = load_binary_map(pair.occlusion) if pair.occlusion is not None else None  # True = occluded
        paths = (pair.frame1, pair.frame2, pair.flow) + ((pair.occlusion,) if pair.occlusion else ())
        check_same_size("FlyingChairs2", paths, frame1, frame2, flow, *([occluded] if occluded is not None else []))
        mask = mask_from_maps(flow, occluded)  # inverts: 1 = visible in both frames
        meta = make_meta(self.dataset_name, f"{pair.split}/{pair.stem}", int(pair.direction[0]))
        sample = make_sample(frame1, frame2, flow, mask, meta)
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return f"FlyingChairs2(root={str(self.root)!r}, split={self.split!r}, pairs={len(self)})"
