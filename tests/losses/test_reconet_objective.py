"""ReCoNetLoss: one loss-network pass per step, Grams once, terms and gradients right."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reconet.image import load_image
from reconet.losses import LOSS_TERMS, ReCoNetLoss

LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


class CountingNet(nn.Module):
    """A small VGG-like fake: named ReLU features at 1, 1/2, 1/4, 1/8 resolution; records calls
    as (input shape, layers asked for, whether autograd was on)."""

    def __init__(self, layers: tuple[str, ...] = LAYERS) -> None:
        super().__init__()
        torch.manual_seed(11)
        self.layers = layers
        self.convs = nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1),
                                    nn.Conv2d(6, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)])
        self.calls: list[tuple] = []

    def forward(self, x: torch.Tensor, layers: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        wanted = self.layers if layers is None else tuple(layers)
        self.calls.append((tuple(x.shape), wanted, torch.is_grad_enabled()))
        out = {}
        for index, (name, conv) in enumerate(zip(LAYERS, self.convs)):
            if len(out) == len(wanted):
                break
            if index > 0:
                x = F.avg_pool2d(x, 2)
            x = F.relu(conv(x))
            if name in wanted:
                out[name] = x
        return out


class Result(NamedTuple):  # same fields as reconet.models.ReCoNetOutput
    features: torch.Tensor
    output: torch.Tensor


class TinyStylizer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Conv2d(3, 5, 3, stride=4, padding=1)
        self.decode = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> Result:
        return Result(F.relu(self.encode(x)), torch.sigmoid(self.decode(x)))


def _hand_gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    return torch.einsum("bihw,bjhw->bij", f, f) / (c * h * w)


@pytest.fixture()
def style(styles_dir) -> torch.Tensor:
    return load_image(styles_dir / "candy.jpg")[:, :40, :56].contiguous()  # (3, 40, 56)


@pytest.fixture()
def frames(sintel_root) -> tuple[torch.Tensor, torch.Tensor]:
    root = sintel_root / "training" / "clean" / "alley_1"
    frame1 = load_image(root / "frame_0002.png")[:, 120:152, 400:448]
    frame2 = load_image(root / "frame_0003.png")[:, 120:152, 400:448]
    return torch.stack([frame1, frame1.flip(-1)]), torch.stack([frame2, frame2.flip(-1)])  # (2, 3, 32, 48)


def _flow_mask(batch: int, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(batch, 2, *size), torch.ones(batch, 1, *size)


def test_each_image_through_the_loss_network_once_per_step_and_grams_computed_once(style, frames):
    net = CountingNet()
    criterion = ReCoNetLoss(net, style)
    style_call = ((1, 3, 40, 56), LAYERS, False)
    assert net.calls == [style_call]  # the style image, once
    grams = {name: g.clone() for name, g in criterion.style_grams.items()}
    model = TinyStylizer()
    input1, input2 = frames
    flow, mask = _flow_mask(2, (32, 48))
    for _ in range(3):
        criterion(input1, input2, model(input1), model(input2), flow, mask)["total"].backward()
    # per step: cat([I1, I2]) without autograd, only as deep as the content layer (relu3_3),
    # then cat([O1, O2]) with autograd for every layer
    step = [((4, 3, 32, 48), ("relu3_3",), False), ((4, 3, 32, 48), LAYERS, True)]
    assert net.calls == [style_call] + step * 3
    for name, gram in criterion.style_grams.items():
        assert torch.equal(gram, grams[name])


def test_style_grams_are_the_style_image_grams_as_buffers(style):
    net = CountingNet()
    criterion = ReCoNetLoss(net, style)
    with torch.no_grad():
        expected = {name: _hand_gram(f) for name, f in CountingNet()(style[None]).items()}
    assert set(criterion.style_grams) == set(LAYERS)
    for name, gram in criterion.style_grams.items():
        assert gram.shape == (1, expected[name].shape[1], expected[name].shape[1])
        torch.testing.assert_close(gram, expected[name])
        assert not gram.requires_grad
    buffer_names = {name for name, _ in criterion.named_buffers()}
    assert {f"style_gram_{name}" for name in LAYERS} <= buffer_names
    # a (1, 3, H, W) style image is the same as (3, H, W)
    batched = ReCoNetLoss(CountingNet(), style[None])
    for name in LAYERS:
        assert torch.equal(batched.style_grams[name], criterion.style_grams[name])


def test_style_size_resizes_the_style_image_before_the_grams(style):
    net = CountingNet()
    ReCoNetLoss(net, style, style_size=20)  # shorter side 40 -> 20, aspect kept
    ReCoNetLoss(net, style, style_size=(16, 24))
    assert [call[0] for call in net.calls] == [(1, 3, 20, 28), (1, 3, 16, 24)]


def test_terms_match_hand_computation_and_total_is_their_sum(style, frames):
    weights = dict(alpha=2.0, beta=3.0, gamma=0.5, lambda_f=5.0, lambda_o=7.0)
    layer_weights = {"relu1_2": 1.0, "relu2_2": 0.5, "relu3_3": 2.0, "relu4_3": 0.25}
    criterion = ReCoNetLoss(CountingNet(), style, content_layer="relu2_2", style_layers=LAYERS,
                            style_layer_weights=layer_weights, **weights)
    input1, input2 = frames
    # outputs close to their own inputs, so pairing O_1 with I_2 would change the content term a lot
    result1 = Result(F.avg_pool2d(input1, 4), 0.8 * input1 + 0.1)
    result2 = Result(F.avg_pool2d(input2, 4).flip(-1), 0.8 * input2 + 0.1)
    flow = torch.full((2, 2, 32, 48), 0.0)
    flow[:, 0] = 1.5  # a constant forward flow; mask drops the pixels that leave the frame
    mask = torch.ones(2, 1, 32, 48)
    mask[..., -2:] = 0
    terms = criterion(input1, input2, result1, result2, flow, mask)
    assert set(terms) == set(LOSS_TERMS) | {"total"}
    torch.testing.assert_close(terms["total"], sum(terms[name] for name in LOSS_TERMS))

    # independent evaluation of each frame with its own network call (frames are not equal, so
    # pairing O_1 with I_2, or the wrong chunk of the stacked batch, would change the numbers)
    ref = CountingNet()
    with torch.no_grad():
        f_in = [ref(input1), ref(input2)]
        f_out = [ref(result1.output), ref(result2.output)]
        f_style = ref(style[None])
    content = sum(((f_out[i]["relu2_2"] - f_in[i]["relu2_2"]) ** 2).mean() for i in (0, 1))
    style_term = sum(
        layer_weights[n] * ((_hand_gram(f_out[i][n]) - _hand_gram(f_style[n])) ** 2).mean()
        for i in (0, 1) for n in LAYERS
    )
    tv = sum((o[..., 1:, :] - o[..., :-1, :]).abs().mean() + (o[..., 1:] - o[..., :-1]).abs().mean()
             for o in (result1.output, result2.output))
    torch.testing.assert_close(terms["content"], 2.0 * content)
    torch.testing.assert_close(terms["style"], 3.0 * style_term)
    torch.testing.assert_close(terms["tv"], 0.5 * tv)
    for name in ("temporal_feature", "temporal_output"):
        assert terms[name].item() > 0


def test_identity_stylization_of_the_style_image_zeroes_content_style_and_temporal(style):
    # Frames N = N+1 = the style image, outputs = inputs, zero flow: every term but TV is zero.
    frame = style[None]
    result = Result(F.avg_pool2d(frame, 4), frame)
    criterion = ReCoNetLoss(CountingNet(), style, alpha=1, beta=1, gamma=1, lambda_f=1, lambda_o=1)
    flow, mask = _flow_mask(1, (40, 56))
    terms = criterion(frame, frame.clone(), result, Result(result.features.clone(), frame.clone()), flow, mask)
    for name in ("content", "style", "temporal_feature", "temporal_output"):
        assert terms[name].item() == pytest.approx(0.0, abs=1e-10), name
    assert terms["tv"].item() > 0.05


def test_gradients_reach_the_stylizer_not_the_inputs_or_loss_network(style, frames):
    net = CountingNet()
    criterion = ReCoNetLoss(net, style)
    model = TinyStylizer()
    input1, input2 = (f.clone().requires_grad_(True) for f in frames)
    flow, mask = _flow_mask(2, (32, 48))
    flow.requires_grad_(True)
    before = [t.detach().clone() for t in (input1, input2, flow, mask)]
    # the stylizer sees detached copies, so any gradient on input1/input2 would come from the loss
    result1, result2 = model(input1.detach()), model(input2.detach())
    criterion(input1, input2, result1, result2, flow, mask)["total"].backward()
    for parameter in model.parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    for parameter in net.parameters():
        assert not parameter.requires_grad and parameter.grad is None
    assert input1.grad is None and input2.grad is None and flow.grad is None
    for tensor, copy in zip((input1, input2, flow, mask), before):
        assert torch.equal(tensor.detach(), copy)


def test_each_term_reaches_the_output_that_it_should(style, frames):
    # The feature temporal term must reach the features, the others the images.
    criterion = ReCoNetLoss(CountingNet(), style)
    input1, input2 = frames
    outputs = [torch.rand(2, 3, 32, 48, requires_grad=True) for _ in range(2)]
    features = [torch.rand(2, 5, 8, 12, requires_grad=True) for _ in range(2)]
    flow, mask = _flow_mask(2, (32, 48))
    terms = criterion(input1, input2, Result(features[0], outputs[0]), Result(features[1], outputs[1]), flow, mask)
    for name in LOSS_TERMS:
        grads = torch.autograd.grad(terms[name], outputs + features, allow_unused=True, retain_graph=True)
        reaches_features = any(g is not None and g.abs().sum() > 0 for g in grads[2:])
        reaches_outputs = any(g is not None and g.abs().sum() > 0 for g in grads[:2])
        assert reaches_features == (name == "temporal_feature"), name
        assert reaches_outputs == (name != "temporal_feature"), name


def test_loss_network_is_frozen_and_stays_in_eval_mode(style):
    net = CountingNet().train()
    criterion = ReCoNetLoss(net, style).train()
    assert criterion.training and not net.training
    assert all(not p.requires_grad for p in net.parameters())


def test_weights_and_layers_are_validated(style):
    with pytest.raises(ValueError, match="relu5_1"):
        ReCoNetLoss(CountingNet(), style, style_layers=("relu1_2", "relu5_1"))
    with pytest.raises(ValueError, match="relu2_1"):
        ReCoNetLoss(CountingNet(), style, content_layer="relu2_1")
    with pytest.raises(ValueError, match="3 values for 4"):
        ReCoNetLoss(CountingNet(), style, style_layer_weights=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="relu9_9"):
        ReCoNetLoss(CountingNet(), style, style_layer_weights={"relu9_9": 1.0})
    with pytest.raises(ValueError, match=r"\(2, 3, 40, 56\)"):
        ReCoNetLoss(CountingNet(), torch.stack([style, style]))
    # a sequence of layer weights is aligned with style_layers
    as_list = ReCoNetLoss(CountingNet(), style, style_layer_weights=[1.0, 0.5, 2.0, 0.25])
    assert as_list.style_layer_weights == {"relu1_2": 1.0, "relu2_2": 0.5, "relu3_3": 2.0, "relu4_3": 0.25}


def test_forward_shape_errors_name_the_shapes(style, frames):
    criterion = ReCoNetLoss(CountingNet(), style)
    input1, input2 = frames
    model = TinyStylizer()
    flow, mask = _flow_mask(2, (32, 48))
    with pytest.raises(ValueError, match=r"\(1, 3, 32, 48\)"):
        criterion(input1, input2[:1], model(input1), model(input2), flow, mask)
    with pytest.raises(ValueError, match=r"\(2, 2, 16, 48\)"):
        criterion(input1, input2, model(input1), model(input2), flow[..., :16, :], mask[..., :16, :])


def test_default_layers_exist_in_both_vgg_networks():
    from reconet.losses import DEFAULT_CONTENT_LAYER, DEFAULT_STYLE_LAYERS
    from reconet.models.loss_network import VGG_LAYERS

    for name in ("vgg16", "vgg19"):
        assert set((DEFAULT_CONTENT_LAYER, *DEFAULT_STYLE_LAYERS)) <= set(VGG_LAYERS[name]), name


def test_with_the_real_reconet_and_a_vgg19_loss_network(style, sintel_root):
    # Integration with the package's own modules: odd frame size (features from the padded
    # input), untrained VGG-19 for speed, real Sintel frames.
    from reconet.models import build_reconet
    from reconet.models.loss_network import build_loss_network

    root = sintel_root / "training" / "clean" / "alley_1"
    input1 = load_image(root / "frame_0002.png")[None, :, 200:238, 500:546]  # (1, 3, 38, 46)
    input2 = load_image(root / "frame_0003.png")[None, :, 200:238, 500:546]
    network = build_loss_network("vgg19", weights="random")
    criterion = ReCoNetLoss(network, style, style_size=24)
    model = build_reconet("tiny")
    flow, mask = _flow_mask(1, (38, 46))
    terms = criterion(input1, input2, model(input1), model(input2), flow, mask)
    assert all(torch.isfinite(value) and value >= 0 for value in terms.values())
    terms["total"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert all(p.grad is None for p in network.parameters())


def test_under_bf16_autocast_every_term_is_fp32_and_matches_fp32(styles_dir, sintel_root):
    """Mixed precision (trainer.precision=bf16-mixed) runs the networks in bf16 but every loss
    term in fp32: the terms and the gradient agree with an fp32 step.

    Real Sintel pair with its ground-truth flow and occlusion mask, the bundled VGG-19, candy.
    Measured: content 0.65 % and style 0.25 % off (the bf16 VGG features), total variation and
    the temporal terms, which see no VGG, 0.007-0.06 %; gradient cosine 0.988 (bf16 backward
    convolutions). With the terms left to autocast, total variation came back as bf16 and the
    temporal terms were 0.17-2.2 % off.
    """
    from reconet.data.sintel import SintelPairs
    from reconet.models import build_reconet, ReCoNetOutput
    from reconet.models.loss_network import build_loss_network

    pairs = SintelPairs(sintel_root, scenes=["alley_1"], missing_occlusion="skip")
    sample = next(pairs[i] for i in range(len(pairs)) if pairs.pairs[i].frame1.name == "frame_0002.png")
    crop = (slice(None), slice(96, 224), slice(384, 576))  # (3 or 1 or 2, 128, 192)
    frame1, frame2 = sample["frame1"][crop][None], sample["frame2"][crop][None]  # (1, 3, 128, 192)
    flow, mask = sample["flow"][crop][None], sample["mask"][crop][None]
    criterion = ReCoNetLoss(build_loss_network("vgg19", layers=LAYERS), load_image(styles_dir / "candy.jpg"), style_size=128)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_reconet("tiny")

    def step(autocast: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            both = model(torch.cat([frame1, frame2]))
            result1, result2 = (ReCoNetOutput(both.features[i : i + 1], both.output[i : i + 1]) for i in (0, 1))
            terms = criterion(frame1, frame2, result1, result2, flow, mask)
        terms["total"].backward()
        return terms, torch.cat([p.grad.flatten() for p in model.parameters()])

    reference, reference_grad = step(autocast=False)
    mixed, mixed_grad = step(autocast=True)
    assert reference["temporal_output"] > 0 and mask.mean() < 1  # a real mask, a real term
    through_vgg = ("content", "style", "total")
    for name, value in mixed.items():
        assert value.dtype == torch.float32, name
        assert value.item() == pytest.approx(reference[name].item(), rel=0.02 if name in through_vgg else 1e-3), name
    assert F.cosine_similarity(mixed_grad, reference_grad, dim=0) > 0.98


# -- several styles (conditional instance norm) ----------------------------------------------


def test_several_styles_pick_each_pairs_own_grams_and_scale(style, frames):
    """Each pair is compared with the Grams of its own style; with one style repeated and every
    scale 1 the total is the single-style loss; per-style terms are reported beside it."""
    other = style.flip(-1).roll(7, dims=-2) * 0.7  # a second, different "painting"
    single = ReCoNetLoss(CountingNet(), style)
    twice = ReCoNetLoss(CountingNet(), [style, style], style_names=["a", "b"])
    assert twice.style_grams["relu1_2"].shape == (2, 4, 4)
    model = TinyStylizer()
    input1, input2 = frames
    flow, mask = _flow_mask(2, (32, 48))
    result1, result2 = model(input1), model(input2)
    reference = single(input1, input2, result1, result2, flow, mask)
    same = twice(input1, input2, result1, result2, flow, mask, style_index=torch.tensor([0, 1]))
    torch.testing.assert_close(same["style"], reference["style"], rtol=1e-6, atol=0)
    torch.testing.assert_close(same["total"], reference["total"], rtol=1e-6, atol=0)
    assert set(same) == set(reference) | {"style_a", "style_b"}

    mixed = ReCoNetLoss(CountingNet(), [style, other], style_names=["a", "b"], style_scales=[1.0, 3.0])
    index = torch.tensor([1, 0])
    terms = mixed(input1, input2, result1, result2, flow, mask, style_index=index)
    # by hand: per pair, Σ frames Σ layers mean (G(O) - G(S_index))^2, times its scale, averaged
    per_pair = torch.zeros(2)
    for result in (result1, result2):
        for name in LAYERS:
            for pair in range(2):
                gram = _hand_gram(CountingNet()(result.output[pair : pair + 1])[name])[0]
                target = mixed.style_grams[name][index[pair]]
                per_pair[pair] += (gram - target).square().mean()
    beta = mixed.weights["beta"]
    expected = beta * (per_pair * torch.tensor([3.0, 1.0])).mean()
    torch.testing.assert_close(terms["style"], expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(terms["style_b"], beta * per_pair[0], rtol=1e-5, atol=0)  # unscaled, per style
    torch.testing.assert_close(terms["style_a"], beta * per_pair[1], rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match=r"2 styles: style_index must be \(2,\), got None"):
        mixed(input1, input2, result1, result2, flow, mask)
    with pytest.raises(ValueError, match="style_scales must be 2 values >= 0"):
        ReCoNetLoss(CountingNet(), [style, other], style_scales=[1.0])
    with pytest.raises(ValueError, match="1 style names for 2 style images"):
        ReCoNetLoss(CountingNet(), [style, other], style_names=["a"])
