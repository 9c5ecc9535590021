"""The ReCoNet stylization network (Gao et al., "ReCoNet: Real-time Coherent Video Style
Transfer Network", ACCV 2018).

Images in and out are RGB float in [0, 1], shaped (B, 3, H, W), like everywhere in reconet.

Architecture (widths c1, c2, c3, N residual blocks and the outer kernel k are configurable; the
paper preset is 48/96/192 with N = 4 and k = 9)::

    encoder: reflect-pad conv kxk s1 (3 -> c1)   + norm + ReLU     # (B, c1, H,   W)
             reflect-pad conv 3x3 s2 (c1 -> c2)  + norm + ReLU     # (B, c2, H/2, W/2)
             reflect-pad conv 3x3 s2 (c2 -> c3)  + norm + ReLU     # (B, c3, H/4, W/4)
             N x residual block: x + norm(conv(ReLU(norm(conv(x)))))
    decoder: 2 x [nearest upsample x2 -> reflect-pad conv 3x3 -> norm -> ReLU]
             (c3 -> c2 at H/2, then c2 -> c1 at H)
             reflect-pad conv kxk (c1 -> 3) -> sigmoid             # (B, 3, H, W) in (0, 1)

The two kxk layers are the only full-resolution layers that touch RGB; at k = 9 they are a sixth
of the tiny preset's work. The ``fast`` preset (k = 3, 16/32/48, N = 2) is the CPU-first design of
docs/models.md: at 640x360 its time is dominated by memory passes over full-resolution maps, not by
multiply-adds, so it is thin at full resolution.

Nearest-neighbour upsampling followed by a convolution is used instead of transposed
convolutions because it avoids checkerboard artifacts (Odena et al., Distill 2016), as the
paper does.

The output activation is a sigmoid, sigma(z) = 1 / (1 + exp(-z)): it maps every pre-activation
into the package's image range without clipping, so gradients never vanish at a hard boundary
(a clamp would) and an 8-bit conversion can never overflow (earlier public code produced
0-255 floats and multiplied them by 255 again). (tanh(z) + 1) / 2 = sigmoid(2z) is the same
family, so nothing is lost by this choice.

The encoder output after the residual blocks is returned as ``features``: the feature
temporal loss compares these maps of consecutive frames (ReCoNet eq. 4).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from reconet.models.conditional_norm import ConditionalInstanceNorm2d
from reconet.resources import config_defaults

__all__ = [
    "MIN_INPUT_SIZE",
    "NORM_LAYERS",
    "PRESETS",
    "OutputModel",
    "ReCoNet",
    "ReCoNetOutput",
    "ResidualBlock",
    "build_reconet",
]

# Input sides are padded up to a multiple of this (two stride-2 convolutions, two x2 upsamplings).
SIZE_MULTIPLE = 4

# The smallest input side that works: the padded side P (a multiple of 4) must give a 1/4-scale
# map of at least 2 pixels, because reflection padding of 1 needs a side > 1 there; so P >= 8 and
# the input side must be > 4 (5 -> 8 is padded by 3, which reflection allows since 3 < 5).
MIN_INPUT_SIZE = 5


def _instance_norm(channels: int) -> nn.Module:
    # affine=True: a learned per-channel scale and shift after normalization, as in the paper's
    # instance-norm layers. No running statistics, so train and eval behave identically.
    return nn.InstanceNorm2d(channels, affine=True)


def _batch_norm(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels)


def _no_norm(channels: int) -> nn.Module:
    return nn.Identity()


# Registry of normalization layers, keyed by the name stored in ``ReCoNet.config``. A factory
# takes the channel count and returns a module mapping (B, C, H, W) -> (B, C, H, W). Keeping the
# choice a registered *name* (not a callable argument) keeps ``config`` JSON-able, so saved
# models can always be rebuilt. Add an entry here to experiment with e.g. filter response
# normalization (one public implementation's fix for instance-norm "bubble" artifacts).
NORM_LAYERS: dict[str, Callable[[int], nn.Module]] = {
    "instance": _instance_norm,
    "batch": _batch_norm,
    "none": _no_norm,
}

def _presets() -> dict[str, dict[str, Any]]:
    """The presets written in ``reconet/conf/model/*.yaml`` (paper 48/96/192 with 4 residual
    blocks, small 32/64/128 with 5, tiny 24/48/96 with 3): the configs are their one source."""
    presets = {}
    for name, option in config_defaults("model").items():
        keys = ("channels", "num_residual_blocks", "norm", "outer_kernel")
        settings = {key: option[key] for key in keys if key in option}
        settings["channels"] = tuple(settings["channels"])
        presets[name] = settings
    return presets


PRESETS: dict[str, dict[str, Any]] = _presets()


class ReCoNetOutput(NamedTuple):
    """What ``ReCoNet.forward`` returns.

    features: encoder output (B, channels[2], ceil(H/4), ceil(W/4)), computed on the input
        reflect-padded to a multiple of 4 (bottom/right), so it is not cropped.
    output: stylized frame (B, 3, H, W), RGB in (0, 1).
    """

    features: torch.Tensor
    output: torch.Tensor


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """Reflection padding (no zero border that the network would learn to paint) + convolution."""
    return nn.Sequential(
        OrderedDict(
            pad=nn.ReflectionPad2d(kernel_size // 2),
            conv=nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride),
        )
    )


class _ChannelsLastForBackward(nn.Module):
    """Identity on values; on the CPU, when gradients flow, hands the next layer NHWC memory.

    Why: oneDNN's weight gradient for the final 9x9 convolution (c1 -> 3 channels) is 3-4x
    slower on NCHW tensors than on NHWC ones (2.2 s vs 0.6 s for its forward + backward on 4
    frames at 320x180), and it was the single largest cost of a CPU training step. Other layers
    are faster in NCHW, so only this one switches. Inference (no gradients) and CUDA are left
    alone.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and x.device.type == "cpu":
            return x.contiguous(memory_format=torch.channels_last)
        return x


class _ConvNormReLU(nn.Sequential):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        norm: Callable[[int], nn.Module],
        stride: int = 1,
        upsample: bool = False,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if upsample:
            layers["upsample"] = nn.Upsample(scale_factor=2, mode="nearest")
        layers["pad"] = nn.ReflectionPad2d(kernel_size // 2)
        layers["conv"] = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride)
        layers["norm"] = norm(out_channels)
        layers["relu"] = nn.ReLU()
        super().__init__(layers)


class ResidualBlock(nn.Module):
    """y = x + norm(conv(ReLU(norm(conv(x))))), 3x3 reflection-padded convolutions, same width.

    No ReLU after the sum (Johnson et al. 2016 / Gross & Wilber's residual blocks), so the
    identity path stays linear.
    """

    def __init__(self, channels: int, norm: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.conv1 = _ConvNormReLU(channels, channels, 3, norm)
        self.conv2 = _conv(channels, channels, 3)
        self.norm2 = norm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C, h, w)
        return x + self.norm2(self.conv2(self.conv1(x)))


class ReCoNet(nn.Module):
    """Encoder-decoder stylization network; see the module docstring for the layer list.

    Args:
        channels: widths (c1, c2, c3) at full, 1/2 and 1/4 resolution.
        num_residual_blocks: residual blocks at 1/4 resolution (>= 0).
        norm: name of the normalization layer in :data:`NORM_LAYERS`.
        num_styles: more than 1 makes every instance norm a
            :class:`~reconet.models.conditional_norm.ConditionalInstanceNorm2d` with one
            (gamma, beta) row per style (Dumoulin et al., ICLR 2017); ``forward`` then takes the
            style. 1 (default) is the single-style network, with the same parameter names.
        outer_kernel: kernel size (odd) of the first and the last convolution, the two
            full-resolution layers on RGB: 9 in the paper, 3 in the CPU-first ``fast`` preset.
    """

    def __init__(
        self,
        channels: Sequence[int] = (48, 96, 192),
        num_residual_blocks: int = 4,
        norm: str = "instance",
        num_styles: int = 1,
        outer_kernel: int = 9,
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        if len(channels) != 3 or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels):
            raise ValueError(f"channels must be three positive ints (c1, c2, c3), got {channels!r}")
        if isinstance(num_residual_blocks, bool) or not isinstance(num_residual_blocks, int) or num_residual_blocks < 0:
            raise ValueError(f"num_residual_blocks must be an int >= 0, got {num_residual_blocks!r}")
        if norm not in NORM_LAYERS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {sorted(NORM_LAYERS)}")
        if isinstance(num_styles, bool) or not isinstance(num_styles, int) or num_styles < 1:
            raise ValueError(f"num_styles must be an int >= 1, got {num_styles!r}")
        if num_styles > 1 and norm != "instance":
            raise ValueError(f"several styles need conditional instance norm (norm='instance'), got norm={norm!r}")
        if isinstance(outer_kernel, bool) or not isinstance(outer_kernel, int) or outer_kernel < 1 or outer_kernel % 2 == 0:
            raise ValueError(f"outer_kernel must be an odd int >= 1, got {outer_kernel!r}")
        self._outer_kernel = outer_kernel
        self._channels = channels
        self._num_residual_blocks = num_residual_blocks
        self._norm = norm
        self.num_styles = num_styles
        norm_layer = NORM_LAYERS[norm]
        if num_styles > 1:
            norm_layer = lambda c: ConditionalInstanceNorm2d(c, num_styles)  # noqa: E731
        c1, c2, c3 = channels

        encoder: OrderedDict[str, nn.Module] = OrderedDict(
            conv1=_ConvNormReLU(3, c1, outer_kernel, norm_layer),  # (B, c1, H, W)
            conv2=_ConvNormReLU(c1, c2, 3, norm_layer, stride=2),  # (B, c2, H/2, W/2)
            conv3=_ConvNormReLU(c2, c3, 3, norm_layer, stride=2),  # (B, c3, H/4, W/4)
        )
        for i in range(num_residual_blocks):
            encoder[f"res{i + 1}"] = ResidualBlock(c3, norm_layer)  # (B, c3, H/4, W/4)
        self.encoder = nn.Sequential(encoder)

        self.decoder = nn.Sequential(
            OrderedDict(
                up1=_ConvNormReLU(c3, c2, 3, norm_layer, upsample=True),  # (B, c2, H/2, W/2)
                up2=_ConvNormReLU(c2, c1, 3, norm_layer, upsample=True),  # (B, c1, H, W)
                layout=_ChannelsLastForBackward(),  # no parameters: checkpoints are unchanged
                output=_conv(c1, 3, outer_kernel),  # (B, 3, H, W), unbounded
                activation=nn.Sigmoid(),  # (B, 3, H, W) in (0, 1)
            )
        )

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments: ``ReCoNet(**model.config)`` rebuilds the architecture.
        ``num_styles`` appears only when above 1 and ``outer_kernel`` only when not 9, so the
        configs of earlier artifacts read as before."""
        config: dict[str, Any] = {
            "channels": list(self._channels),
            "num_residual_blocks": self._num_residual_blocks,
            "norm": self._norm,
        }
        if self.num_styles > 1:
            config["num_styles"] = self.num_styles
        if self._outer_kernel != 9:
            config["outer_kernel"] = self._outer_kernel
        return config

    def style_mixing(self, style: int | Sequence[float] | torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """``style`` as (B, N) mixing weights for a batch of ``batch``: an index (one-hot), N
        weights for every sample (a blend), or (B, N) rows; None for a single-style network.

        Raises:
            ValueError: no style for a multi-style network, an index out of range, or weights
                of the wrong shape (the message names the shapes).
        """
        count = self.num_styles
        if style is None:
            if count > 1:
                raise ValueError(f"this network holds {count} styles: pass style= (an index or {count} mixing weights)")
            return None
        if isinstance(style, int) and not isinstance(style, bool):
            if not 0 <= style < count:
                raise ValueError(f"style index {style} out of range for {count} style(s)")
            return F.one_hot(torch.full((batch,), style), count).float() if count > 1 else None
        weights = torch.as_tensor(style, dtype=torch.float32)
        if weights.ndim == 1 and weights.shape[0] == count:
            weights = weights.expand(batch, count)
        if weights.shape != (batch, count):
            raise ValueError(f"style weights of shape {tuple(weights.shape)} do not fit {count} style(s) and a batch of {batch}")
        if count == 1:
            if not bool((weights == 1).all()):
                raise ValueError("a single-style network takes style 0 (weight 1) only")
            return None
        return weights

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items())

    @staticmethod
    def check_input(x: torch.Tensor) -> None:
        """Raise ValueError (naming the shape) unless x is a float (B, 3, H, W) with H, W >= 5."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"ReCoNet expects a (B, 3, H, W) RGB batch, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"ReCoNet expects a float image in [0, 1], got dtype {x.dtype} (shape {tuple(x.shape)})")
        if x.shape[2] < MIN_INPUT_SIZE or x.shape[3] < MIN_INPUT_SIZE:
            raise ValueError(
                f"ReCoNet needs H and W >= {MIN_INPUT_SIZE} (reflection padding), got shape {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor, style: int | Sequence[float] | torch.Tensor | None = None) -> ReCoNetOutput:
        """x: (B, 3, H, W) RGB in [0, 1], any H, W >= 5 -> ReCoNetOutput(features, output).

        ``style`` (multi-style networks; see :meth:`style_mixing`): an index, N mixing weights,
        or (B, N) weights, one row per sample (how a batch of N styles runs in one pass).

        The input is reflect-padded at the bottom/right to the next multiple of 4 so that the two
        stride-2 convolutions and the two x2 upsamplings return exactly the padded size; the
        output is cropped back to (H, W). The caller's tensor is never modified.
        """
        self.check_input(x)
        mixing = self.style_mixing(style, x.shape[0])
        if mixing is None:
            return self._forward(x)
        conditional = [m for m in self.modules() if isinstance(m, ConditionalInstanceNorm2d)]
        for layer in conditional:
            layer.style = mixing.to(x.device)
        try:
            return self._forward(x)
        finally:
            for layer in conditional:
                layer.style = None

    def _forward(self, x: torch.Tensor) -> ReCoNetOutput:
        # (-n) % 4 = amount up to the next multiple of 4. Padding unconditionally (a no-op for 0)
        # and cropping with negative padding instead of slicing keep the graph free of
        # shape-dependent branches, so torch.export / ONNX export work with dynamic H and W.
        pad_h = (-x.shape[-2]) % SIZE_MULTIPLE
        pad_w = (-x.shape[-1]) % SIZE_MULTIPLE
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")  # (B, 3, H + pad_h, W + pad_w)
        features = self.encoder(x)  # (B, c3, (H + pad_h) / 4, (W + pad_w) / 4)
        output = self.decoder(features)  # (B, 3, H + pad_h, W + pad_w)
        output = F.pad(output, (0, -pad_w, 0, -pad_h))  # (B, 3, H, W): negative padding crops
        output = output.contiguous()  # NCHW for callers, whatever layout the last layer used
        return ReCoNetOutput(features, output)

    def for_style(self, style: int | Sequence[float] | torch.Tensor) -> ReCoNet:
        """A single-style copy of this network for one style or blend: every conditional norm
        becomes an affine instance norm with gamma = w @ Gamma, beta = w @ Beta. It computes what
        ``self(x, style=style)`` computes (to float rounding), as a plain network that tuned
        kernels, precision islands, compiling and export handle like any single-style one."""
        mixing = self.style_mixing(style, 1)
        single = ReCoNet(self._channels, self._num_residual_blocks, self._norm, outer_kernel=self._outer_kernel)
        state = {}
        for key, value in self.state_dict().items():
            if mixing is not None and value.ndim == 2 and key.endswith(("norm.weight", "norm.bias", "norm2.weight", "norm2.bias")):
                value = mixing[0].to(value.dtype) @ value  # (N,) @ (N, C) -> (C,)
            state[key] = value
        single.load_state_dict(state, strict=True)
        return single.to(next(self.parameters()).device).train(self.training)

    def with_styles(self, num_styles: int, init: Sequence[float] | None = None) -> ReCoNet:
        """A copy with ``num_styles`` rows (>= the current count): the existing rows are copied
        exactly, new rows start from ``init`` mixing weights over the existing rows (default:
        their mean, a neutral start for a new style)."""
        if num_styles < self.num_styles:
            raise ValueError(f"cannot shrink {self.num_styles} styles to {num_styles}")
        grown = ReCoNet(
            self._channels, self._num_residual_blocks, self._norm, num_styles=num_styles, outer_kernel=self._outer_kernel
        )
        old = self.num_styles
        mixing = torch.full((old,), 1.0 / old) if init is None else torch.as_tensor(init, dtype=torch.float32)
        if mixing.shape != (old,):
            raise ValueError(f"init weights of shape {tuple(mixing.shape)} do not fit {old} style(s)")
        state = {}
        target = grown.state_dict()
        for key, value in self.state_dict().items():
            if target[key].shape != value.shape:  # a norm's table: (C,) or (old, C) -> (num_styles, C)
                rows = value.reshape(old, -1)
                new = (mixing.to(rows.dtype) @ rows).expand(num_styles - old, -1)
                value = torch.cat([rows, new])
            state[key] = value.clone()
        grown.load_state_dict(state, strict=True)
        return grown.to(next(self.parameters()).device)


class OutputModel(nn.Module):
    """ReCoNet with only the stylized image as output (what export and inference need)."""

    def __init__(self, model: ReCoNet):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 3, H, W)
        return self.model(x).output


def build_reconet(preset: str = "paper", **overrides: Any) -> ReCoNet:
    """ReCoNet from a named preset in :data:`PRESETS`; keyword arguments override preset values.

    >>> build_reconet("small", norm="batch").config
    {'channels': [32, 64, 128], 'num_residual_blocks': 5, 'norm': 'batch'}
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown ReCoNet preset {preset!r}; choose one of {sorted(PRESETS)}")
    kwargs: dict[str, Any] = {**PRESETS[preset], **overrides}
    return ReCoNet(**kwargs)

