"""Which small ReCoNet runs fastest on this CPU: the measurements behind the ``fast`` preset.

    python scripts/architecture_candidates.py                # every candidate (about 4 minutes)
    python scripts/architecture_candidates.py tiny,H,I        # candidates whose label starts so

Each candidate keeps ReCoNet's contract (encoder features at 1/4 scale, sigmoid output in [0, 1],
nearest-upsampling + convolution decoder, any H x W) and varies widths c1/c2/c3, residual blocks
(b), the kernel of the two RGB layers (k) and depthwise-separable blocks (sep: depthwise 3x3 +
pointwise 1x1, MobileNet style) in the residual blocks or the last upsampling layer. Every
candidate runs at 640x360, batch 1, through the project's own stylizer: fp32 with tuned kernels,
bf16 eager and bf16 compiled, in interleaved rounds (best of 5). Random weights: speed does not
depend on them. The results and the choice are in docs/models.md.
"""

import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from collections import OrderedDict  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

from reconet.inference.benchmark import gflop_per_frame, interleaved  # noqa: E402
from reconet.inference.stylizer import TorchStylizer  # noqa: E402
from reconet.models.reconet import ReCoNet, ResidualBlock, _ChannelsLastForBackward, _conv, _ConvNormReLU  # noqa: E402


def instance_norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True)


class SeparableConv(nn.Sequential):
    """[upsample] -> reflect pad -> depthwise kxk -> pointwise 1x1 -> norm -> [ReLU]."""

    def __init__(self, c_in: int, c_out: int, upsample: bool = False, relu: bool = True) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if upsample:
            layers["upsample"] = nn.Upsample(scale_factor=2, mode="nearest")
        layers["pad"] = nn.ReflectionPad2d(1)
        layers["depthwise"] = nn.Conv2d(c_in, c_in, 3, groups=c_in)
        layers["pointwise"] = nn.Conv2d(c_in, c_out, 1)
        layers["norm"] = instance_norm(c_out)
        if relu:
            layers["relu"] = nn.ReLU()
        super().__init__(layers)


class SeparableResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = SeparableConv(channels, channels)
        self.second = SeparableConv(channels, channels, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.second(self.first(x))


def candidate(channels, blocks, kernel=3, separable_blocks=False, separable_last_upsample=False) -> ReCoNet:
    """A ReCoNet whose encoder and decoder are rebuilt with the candidate's layers."""
    c1, c2, c3 = channels
    network = ReCoNet(channels, 0)
    encoder = OrderedDict(
        conv1=_ConvNormReLU(3, c1, kernel, instance_norm),
        conv2=_ConvNormReLU(c1, c2, 3, instance_norm, stride=2),
        conv3=_ConvNormReLU(c2, c3, 3, instance_norm, stride=2),
    )
    for index in range(blocks):
        encoder[f"res{index + 1}"] = SeparableResidualBlock(c3) if separable_blocks else ResidualBlock(c3, instance_norm)
    network.encoder = nn.Sequential(encoder)
    up2 = SeparableConv(c2, c1, upsample=True) if separable_last_upsample else _ConvNormReLU(c2, c1, 3, instance_norm, upsample=True)
    network.decoder = nn.Sequential(
        OrderedDict(
            up1=_ConvNormReLU(c3, c2, 3, instance_norm, upsample=True),
            up2=up2,
            layout=_ChannelsLastForBackward(),
            output=_conv(c1, 3, kernel),
            activation=nn.Sigmoid(),
        )
    )
    return network


CANDIDATES = {
    "tiny 24/48/96 b3 k9": dict(channels=(24, 48, 96), blocks=3, kernel=9),
    "A 16/32/64 b3 k3": dict(channels=(16, 32, 64), blocks=3),
    "B 16/32/64 b2 k3": dict(channels=(16, 32, 64), blocks=2),
    "D 16/32/96 sep-b4 k3": dict(channels=(16, 32, 96), blocks=4, separable_blocks=True),
    "E 16/32/64 b3 k3 sep-up2": dict(channels=(16, 32, 64), blocks=3, separable_last_upsample=True),
    "F 12/24/64 b3 k3": dict(channels=(12, 24, 64), blocks=3),
    "G 16/32/64 b3 k5": dict(channels=(16, 32, 64), blocks=3, kernel=5),
    "H 12/24/48 b3 k3": dict(channels=(12, 24, 48), blocks=3),
    "I 16/32/48 b2 k3 (= fast)": dict(channels=(16, 32, 48), blocks=2),
    "K 12/24/64 b2 k3": dict(channels=(12, 24, 64), blocks=2),
    "M 16/32/48 b3 k3": dict(channels=(16, 32, 48), blocks=3),
}


def main() -> int:
    selected = sys.argv[1].split(",") if len(sys.argv) > 1 else list(CANDIDATES)
    x = torch.rand(1, 3, 360, 640)
    runs = {}
    for label, settings in CANDIDATES.items():
        if not any(label.startswith(prefix) for prefix in selected):
            continue
        model = candidate(**settings).eval()
        gflop = gflop_per_frame(model, 360, 640)
        stylizers = {
            "fp32 tuned": TorchStylizer(model, device="cpu", precision="fp32", accelerate=True),
            "bf16 eager": TorchStylizer(model, device="cpu", precision="bf16"),
            "bf16 compiled": TorchStylizer(model, device="cpu", precision="bf16", compile=True),
        }
        for name, stylizer in stylizers.items():
            for _ in range(3):  # tuning, compiling
                stylizer(x)
            runs[f"{label:28s} {gflop:6.2f} GFLOP  {name:13s}"] = lambda s=stylizer: s(x)
    timings = interleaved(runs, 5)
    print(f"640x360, batch 1, {torch.get_num_threads()} threads, best of 5 interleaved rounds")
    for name, timing in timings.items():
        print(f"{name} {1 / timing.best:6.1f} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
