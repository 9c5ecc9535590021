"""Known answers for gram_matrix, content_loss, style_loss and total_variation."""

from __future__ import annotations

import pytest
import torch

from reconet.image import load_image
from reconet.losses import content_loss, gram_matrix, style_loss, total_variation


def _hand_gram(f: torch.Tensor) -> torch.Tensor:
    """Independent Gram: G[b, i, j] = Σ_hw f[b, i] f[b, j] / (C·H·W)."""
    b, c, h, w = f.shape
    return torch.einsum("bihw,bjhw->bij", f, f) / (c * h * w)


def test_gram_matrix_hand_example():
    # channel 0 = [1, 2], channel 1 = [3, 4] (H=1, W=2): F Fᵀ = [[5, 11], [11, 25]], / (C·H·W = 4)
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    expected = torch.tensor([[[1.25, 2.75], [2.75, 6.25]]])
    assert torch.equal(gram_matrix(f), expected)


def test_gram_matrix_constant_image_is_size_independent(styles_dir):
    # A constant colour v gives G = H·W·v vᵀ / (3·H·W) = v vᵀ / 3 at any size.
    v = torch.tensor([0.2, 0.5, 0.9])
    expected = torch.outer(v, v) / 3
    for size in ((4, 5), (17, 3)):
        image = v.view(1, 3, 1, 1).expand(2, 3, *size).contiguous()
        gram = gram_matrix(image)
        assert gram.shape == (2, 3, 3)
        torch.testing.assert_close(gram, expected.expand(2, 3, 3))
    # and on a real image it matches the einsum definition per batch element
    style = load_image(styles_dir / "candy.jpg")[:, :64, :48]
    batch = torch.stack([style, style.flip(-1) * 0.5])
    torch.testing.assert_close(gram_matrix(batch), _hand_gram(batch))


def test_gram_matrix_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\(3, 4, 5\)"):
        gram_matrix(torch.zeros(3, 4, 5))


def test_content_loss_known_value_and_shape_check():
    a = torch.zeros(2, 3, 4, 5)
    b = torch.full((2, 3, 4, 5), 0.5)
    assert content_loss(a, b).item() == pytest.approx(0.25)
    assert content_loss(b, b).item() == 0.0
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 5\).*\(2, 3, 4, 4\)"):
        content_loss(a, b[..., :4])


def test_style_loss_zero_for_the_style_features_and_known_weighted_value():
    torch.manual_seed(1)
    feats = {"relu1_2": torch.rand(1, 4, 6, 7), "relu2_2": torch.rand(1, 8, 3, 4)}
    targets = {name: _hand_gram(f) for name, f in feats.items()}
    assert style_loss(feats, targets).item() == pytest.approx(0.0, abs=1e-12)

    # hand example: G = [[1.25, 2.75], [2.75, 6.25]] against a zero target -> mean(G²)
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    mean_sq = (1.25**2 + 2 * 2.75**2 + 6.25**2) / 4
    two = {"a": f, "b": 2 * f}  # 2f has Gram 4G -> mean 16·mean(G²)
    zero = {"a": torch.zeros(1, 2, 2), "b": torch.zeros(1, 2, 2)}
    assert style_loss(two, zero).item() == pytest.approx(17 * mean_sq)
    assert style_loss(two, zero, {"a": 2.0, "b": 0.5}).item() == pytest.approx((2 + 0.5 * 16) * mean_sq)
    # a layer missing from layer_weights keeps weight 1
    assert style_loss(two, zero, {"b": 0.0}).item() == pytest.approx(mean_sq)


def test_style_loss_broadcasts_a_single_style_gram_over_the_batch():
    torch.manual_seed(2)
    feats = torch.rand(3, 4, 5, 5)
    target = _hand_gram(torch.rand(1, 4, 9, 9))  # (1, 4, 4), another image size
    batched = style_loss({"l": feats}, {"l": target})
    per_sample = [((_hand_gram(feats[i : i + 1]) - target) ** 2).mean() for i in range(3)]
    assert batched.item() == pytest.approx(torch.stack(per_sample).mean().item(), rel=1e-6)


def test_style_loss_errors_name_layers_and_shapes():
    feats = {"relu1_2": torch.rand(2, 4, 5, 5)}
    with pytest.raises(ValueError, match="relu1_2"):
        style_loss(feats, {"relu2_2": torch.zeros(1, 4, 4)})
    with pytest.raises(ValueError, match=r"\(2, 4, 4\).*\(3, 4, 4\)"):
        style_loss(feats, {"relu1_2": torch.zeros(3, 4, 4)})
    with pytest.raises(ValueError, match=r"\(1, 5, 5\)"):
        style_loss(feats, {"relu1_2": torch.zeros(1, 5, 5)})


def test_total_variation_known_values():
    x = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])  # vertical diffs (1, 0), horizontal (1, 0)
    assert total_variation(x).item() == pytest.approx(1.0)
    assert total_variation(torch.full((2, 3, 5, 7), 0.3)).item() == 0.0
    checker = (torch.arange(6).view(-1, 1) + torch.arange(8).view(1, -1)) % 2  # every neighbour differs by 1
    assert total_variation(checker.float().expand(1, 3, 6, 8)).item() == pytest.approx(2.0)
    # mean, not sum: a larger image of the same pattern keeps the value
    ramp = torch.linspace(0, 1, 11).view(1, 1, 1, 11).expand(1, 3, 4, 11)  # steps of 0.1 horizontally only
    assert total_variation(ramp).item() == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"\(3, 1, 5\)"):
        total_variation(torch.zeros(3, 1, 5))


def test_perceptual_losses_do_not_modify_their_inputs(styles_dir):
    image = load_image(styles_dir / "mosaic.jpg")[None, :, :32, :40].requires_grad_(True)
    other = image.detach().flip(-1).contiguous()
    target = {"l": _hand_gram(other)}
    before = (image.detach().clone(), other.clone(), target["l"].clone())
    loss = gram_matrix(image).sum() + content_loss(image, other) + style_loss({"l": image}, target)
    loss = loss + total_variation(image)
    loss.backward()
    assert torch.equal(image.detach(), before[0])
    assert torch.equal(other, before[1])
    assert torch.equal(target["l"], before[2])
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_gram_matrix_stays_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    features = torch.rand(2, 8, 24, 32).to(torch.bfloat16)
    reference = gram_matrix(features.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = gram_matrix(features)
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, reference, rtol=1e-6, atol=1e-7)
