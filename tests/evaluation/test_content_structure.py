"""Content-structure score: known answers (identity, noise, a constructed case) and real frames."""

from __future__ import annotations

import math

import pytest
import torch

from reconet.evaluation.structure import content_structure, edge_map, pearson
from reconet.image import load_image


def _photo() -> torch.Tensor:
    from reconet.data.photos import bundled_photos_dir

    return load_image(bundled_photos_dir() / "kodak_kodim23.jpg").unsqueeze(0)  # (1, 3, 500, 500)


def test_pearson_known_values() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0]])
    assert float(pearson(a, torch.tensor([[1.0, 3.0, 2.0]]))[0]) == pytest.approx(0.5)
    assert float(pearson(a, -a)[0]) == pytest.approx(-1.0)
    assert math.isnan(float(pearson(a, torch.ones(1, 3))[0]))  # undefined for a constant


def test_identical_images_and_contrast_changes_score_one() -> None:
    photo = _photo()
    assert float(content_structure(photo, photo)[0]) == pytest.approx(1.0, abs=1e-9)
    # brightness and contrast scale the gradient magnitude, which a correlation ignores
    assert float(content_structure(0.5 * photo + 0.2, photo)[0]) == pytest.approx(1.0, abs=1e-6)


def test_noise_and_unrelated_texture_score_near_zero() -> None:
    photo = _photo()
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(photo.shape, generator=generator)
    assert abs(float(content_structure(noise, photo)[0])) < 0.1
    # a texture that ignores the scene: stripes
    x = torch.arange(photo.shape[-1], dtype=torch.float32)
    stripes = (0.5 + 0.5 * torch.sin(x / 3.0)).expand_as(photo).contiguous()
    assert abs(float(content_structure(stripes, photo)[0])) < 0.2


def test_constructed_case_two_edges_against_one() -> None:
    # Input: one vertical step edge. Output: the same edge plus a second, identical one far away
    # (blurred edge maps g and g' with disjoint supports). For maps that are zero almost
    # everywhere, pearson(g, g + g') -> 1/sqrt(2): cov = E[g^2] - 2 E[g]^2, var(g + g') =
    # 2 E[g^2] - 4 E[g]^2, and E[g]^2 << E[g^2] when the edge covers ~4 % of the columns.
    height, width = 128, 512
    one = torch.zeros(1, 3, height, width)
    one[..., 128:] = 1.0
    two = one.clone()
    two[..., 384:] = 0.0  # a second edge, of the same contrast, 256 px away
    score = float(content_structure(two, one)[0])
    assert score == pytest.approx(1.0 / math.sqrt(2.0), abs=0.02)


def test_shrinks_to_a_128_px_shorter_side_and_checks_shapes() -> None:
    assert edge_map(torch.rand(2, 3, 256, 512)).shape == (2, 1, 128, 256)
    assert edge_map(torch.rand(1, 3, 64, 80)).shape == (1, 1, 64, 80)  # never enlarged
    with pytest.raises(ValueError, match="equal shape"):
        content_structure(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 48))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        edge_map(torch.rand(3, 32, 32))


def test_real_frames_blur_keeps_structure_a_shift_breaks_it(sintel_root) -> None:
    frame = load_image(sintel_root / "training" / "clean" / "alley_1" / "frame_0001.png").unsqueeze(0)
    blurred = torch.nn.functional.avg_pool2d(frame, 5, stride=1, padding=2, count_include_pad=False)
    shifted = torch.roll(frame, shifts=(0, 200), dims=(2, 3))
    assert float(content_structure(blurred, frame)[0]) > 0.9
    assert float(content_structure(shifted, frame)[0]) < 0.5
