"""The shared sample format: validation messages and batching of mixed datasets."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader

from reconet.data import (
    META_KEYS,
    DatasetWarning,
    FlyingChairs,
    FlyingShapes,
    SintelPairs,
    build_transform,
    check_sample,
    make_sample,
)
from reconet.data.sample import make_meta


def test_make_sample_rejects_mismatched_shapes() -> None:
    frames = torch.zeros(2, 3, 8, 10)
    with pytest.raises(ValueError, match=r"flow \(2, 8, 9\)"):
        make_sample(frames[0], frames[1], torch.zeros(2, 8, 9), torch.ones(1, 8, 10), make_meta("d", "s", 0))
    with pytest.raises(ValueError, match=r"mask must be \(1, 8, 10\)"):
        make_sample(frames[0], frames[1], torch.zeros(2, 8, 10), torch.ones(8, 10), make_meta("d", "s", 0))
    with pytest.raises(ValueError, match="meta is missing"):
        check_sample({"frame1": frames[0], "frame2": frames[1], "flow": torch.zeros(2, 8, 10),
                      "mask": torch.ones(1, 8, 10), "meta": {"dataset": "d"}})


def test_mixed_datasets_batch_with_default_collate(sintel_root: Path, chairs_root: Path) -> None:
    transform = build_transform((64, 96), crop="center")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        sintel = SintelPairs(sintel_root, passes="clean", transform=transform)
        chairs = FlyingChairs(chairs_root, split="train", transform=transform)
    shapes = FlyingShapes(2, size=(64, 96), seed=0)
    mixed = ConcatDataset([sintel, chairs, shapes])
    indices = [0, len(sintel), len(sintel) + len(chairs)]  # one sample of each
    batch = next(iter(DataLoader(torch.utils.data.Subset(mixed, indices), batch_size=3)))
    assert batch["frame1"].shape == (3, 3, 64, 96) and batch["flow"].shape == (3, 2, 64, 96)
    assert batch["mask"].shape == (3, 1, 64, 96)
    assert set(batch["meta"]) == set(META_KEYS)
    assert batch["meta"]["dataset"] == ["sintel", "flyingchairs", "flyingshapes"]
    assert batch["meta"]["frame"].tolist() == [1, 1, 0]
