"""SintelPairs on the partial MPI Sintel copy in the shared sample data.

Known answers come from the sample data's README: alley_1 has flows 0001-0003 (occlusion and
invalid maps only for 0002), ambush_4 has final-pass frames 0003-0008 and flows 0004, 0006;
on alley_1/0002 (clean) mean |I_N - I_N+1| = 0.0406, after warping 0.0109, on non-occluded
pixels 0.0075.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reconet.data import DatasetError, DatasetWarning, SintelPairs
from reconet.flow.io import write_flo
from reconet.flow.warp import in_frame_mask, warp


def _pairs_by_scene(dataset: SintelPairs) -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = defaultdict(list)
    for pair in dataset.pairs:
        found[(pair.pass_, pair.scene)].append(pair.frame)
    return dict(found)


def _quiet(**kwargs) -> SintelPairs:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        return SintelPairs(**kwargs)


def _masked_error(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean over masked pixels of the channel-mean |a - b|; (3, H, W), (3, H, W), (1, H, W)."""
    error = (a - b).abs().mean(dim=0, keepdim=True)
    return float((error * mask).sum() / mask.sum())


def _warp1(frame2: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    return warp(frame2.unsqueeze(0), flow.unsqueeze(0))[0]


@pytest.mark.parametrize(
    ("passes", "expected"),
    [
        ("clean", {("clean", "alley_1"): [1, 2, 3]}),
        ("final", {("final", "alley_1"): [1, 2, 3], ("final", "ambush_4"): [4, 6]}),
        (
            "both",
            {
                ("clean", "alley_1"): [1, 2, 3],
                ("final", "alley_1"): [1, 2, 3],
                ("final", "ambush_4"): [4, 6],
            },
        ),
    ],
)
def test_pairs_follow_the_flow_files_present(sintel_root: Path, passes: str, expected: dict) -> None:
    dataset = _quiet(root=sintel_root, passes=passes)
    assert _pairs_by_scene(dataset) == expected
    assert len(dataset) == sum(len(v) for v in expected.values())


def test_scene_filter_and_unknown_scene(sintel_root: Path) -> None:
    dataset = _quiet(root=sintel_root, passes="final", scenes=["ambush_4"])
    assert _pairs_by_scene(dataset) == {("final", "ambush_4"): [4, 6]}
    with pytest.raises(DatasetError, match="market_2"):
        SintelPairs(sintel_root, scenes=["market_2"])


def test_missing_occlusion_in_frame_warns_once_with_count(sintel_root: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = SintelPairs(sintel_root, passes="clean")
    occlusion_warnings = [w for w in caught if "occlusion" in str(w.message)]
    assert len(occlusion_warnings) == 1
    assert issubclass(occlusion_warnings[0].category, DatasetWarning)
    assert "2 of 3 pairs" in str(occlusion_warnings[0].message)
    # Pair 0001 has no maps: its mask is exactly the in-frame test of its flow.
    sample = dataset[0]
    assert sample["meta"]["frame"] == 1
    expected = in_frame_mask(sample["flow"].unsqueeze(0))[0]
    assert torch.equal(sample["mask"], expected)
    assert 0.9 < float(sample["mask"].mean()) < 1.0


def test_missing_occlusion_skip_and_error(sintel_root: Path) -> None:
    with pytest.warns(DatasetWarning, match="skipping 2 of 3 pairs"):
        skipped = SintelPairs(sintel_root, passes="clean", scenes=["alley_1"], missing_occlusion="skip")
    assert [(p.scene, p.frame) for p in skipped.pairs] == [("alley_1", 2)]
    with pytest.raises(DatasetError, match="frame_0001.png"):
        _quiet(root=sintel_root, passes="clean", missing_occlusion="error")
    with pytest.raises(ValueError, match="missing_occlusion"):
        SintelPairs(sintel_root, missing_occlusion="ignore")


def test_sample_format_and_meta(sintel_root: Path) -> None:
    dataset = _quiet(root=sintel_root, passes="final", scenes=["ambush_4"])
    sample = dataset[1]
    assert sample["frame1"].shape == (3, 436, 1024) and sample["frame2"].shape == (3, 436, 1024)
    assert sample["flow"].shape == (2, 436, 1024) and sample["mask"].shape == (1, 436, 1024)
    for key in ("frame1", "frame2", "flow", "mask"):
        assert sample[key].dtype == torch.float32
    assert sample["meta"] == {"dataset": "sintel", "scene": "ambush_4", "frame": 6, "pass": "final"}
    assert 0.0 <= float(sample["frame1"].min()) and float(sample["frame1"].max()) <= 1.0
    assert set(sample["mask"].unique().tolist()) <= {0.0, 1.0}


def test_mask_polarity_on_alley_1_0002(sintel_root: Path) -> None:
    """Occluded (255) pixels must be 0 in the mask; the GT-masked warp error matches the README."""
    dataset = _quiet(root=sintel_root, passes="clean", scenes=["alley_1"])
    sample = dataset[1]
    assert sample["meta"]["frame"] == 2
    occluded = np.asarray(Image.open(sintel_root / "training/occlusions/alley_1/frame_0002.png")) > 127
    invalid = np.asarray(Image.open(sintel_root / "training/invalid/alley_1/frame_0002.png")) > 127
    mask = sample["mask"][0].numpy()
    assert occluded.sum() > 1000  # the map really marks something
    assert (mask[occluded] == 0).all() and (mask[invalid] == 0).all()
    # Visible, valid pixels are used unless their flow target leaves the frame.
    visible = ~occluded & ~invalid
    assert mask[visible].mean() > 0.99

    frame1, frame2, flow, m = sample["frame1"], sample["frame2"], sample["flow"], sample["mask"]
    warped = _warp1(frame2, flow)
    everywhere = torch.ones_like(m)
    no_warp = _masked_error(frame1, frame2, everywhere)
    unmasked = _masked_error(frame1, warped, everywhere)
    masked = _masked_error(frame1, warped, m)
    on_occluded = _masked_error(frame1, warped, 1.0 - m)
    assert no_warp == pytest.approx(0.0406, abs=5e-4)
    assert unmasked == pytest.approx(0.0109, abs=5e-4)
    assert masked == pytest.approx(0.0075, abs=5e-4)
    assert masked < 0.75 * unmasked
    # An inverted mask would select exactly these pixels.
    assert on_occluded > 10 * masked


@pytest.mark.parametrize("passes", ["clean", "final"])
def test_every_alley_1_pair_warp_cuts_error_3x(sintel_root: Path, passes: str) -> None:
    # ambush_4 is left out on purpose: 50-66 px motion, blur and fog (see the data README).
    dataset = _quiet(root=sintel_root, passes=passes, scenes=["alley_1"])
    for sample in dataset:
        m = sample["mask"]
        no_warp = _masked_error(sample["frame1"], sample["frame2"], m)
        warped = _masked_error(sample["frame1"], _warp1(sample["frame2"], sample["flow"]), m)
        assert no_warp > 3 * warped, (sample["meta"], no_warp, warped)


def test_transform_is_applied(sintel_root: Path) -> None:
    calls = []

    def record(sample: dict) -> dict:
        calls.append(sample["meta"]["frame"])
        return {**sample, "meta": {**sample["meta"], "scene": "seen"}}

    dataset = _quiet(root=sintel_root, passes="clean", transform=record)
    assert dataset[2]["meta"]["scene"] == "seen" and calls == [3]


def test_bad_roots_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="nowhere"):
        SintelPairs(missing)
    (tmp_path / "MPI-Sintel").mkdir()
    with pytest.raises(DatasetError, match=r"training[/\\]flow"):
        SintelPairs(tmp_path / "MPI-Sintel")
    # A flow file without frames: no pairs, and the message says what was looked for.
    flow_dir = tmp_path / "MPI-Sintel/training/flow/alley_1"
    flow_dir.mkdir(parents=True)
    write_flo(flow_dir / "frame_0001.flo", np.zeros((4, 6, 2), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        with pytest.raises(DatasetError, match="frame_NNNN.png"):
            SintelPairs(tmp_path / "MPI-Sintel")
    with pytest.raises(ValueError, match="passes"):
        SintelPairs(tmp_path / "MPI-Sintel", passes="albedo")
