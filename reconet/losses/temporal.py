"""ReCoNet's temporal losses (Gao et al., ACCV 2018, eqs. 4-5).

Direction and mask rules (the same everywhere in reconet):

- index 1 is frame N, index 2 is frame N+1;
- ``flow`` is the FORWARD flow N -> N+1 on frame N's grid, (B, 2, H, W) in pixels at full
  image resolution; ``warp(x2, flow)`` (:func:`reconet.flow.warp.warp`) brings frame N+1's
  tensor onto frame N's grid, where it is compared with frame N's;
- ``mask`` is (B, 1, H, W), 1 where the pixel is used (visible in both frames, valid),
  0 otherwise (occluded, invalid, or flowing out of the frame).

Both losses divide by the full element count D (not by the number of unmasked pixels),
as in the paper, and average over the batch. They never modify their arguments.
"""

from __future__ import annotations

import torch

from reconet.flow.warp import resize_flow, resize_mask, warp
from reconet.image import luminance


def _check_pair(name1: str, x1: torch.Tensor, name2: str, x2: torch.Tensor) -> None:
    if x1.ndim != 4 or x1.shape != x2.shape:
        raise ValueError(
            f"{name1} {tuple(x1.shape)} and {name2} {tuple(x2.shape)} must be equal (B, C, H, W) shapes"
        )


def _check_flow_mask(flow: torch.Tensor, mask: torch.Tensor, batch: int, size: tuple[int, int] | None) -> None:
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (B, 2, H, W), got shape {tuple(flow.shape)}")
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != flow.shape[-2:] or mask.shape[0] != flow.shape[0]:
        raise ValueError(
            f"mask must be (B, 1, H, W) matching flow {tuple(flow.shape)}, got shape {tuple(mask.shape)}"
        )
    if flow.shape[0] != batch:
        raise ValueError(f"flow {tuple(flow.shape)} and mask {tuple(mask.shape)} have batch {flow.shape[0]}, expected {batch}")
    if size is not None and tuple(flow.shape[-2:]) != tuple(size):
        raise ValueError(f"flow {tuple(flow.shape)} and mask {tuple(mask.shape)} must have the image size {tuple(size)}")


def feature_temporal_loss(
    features1: torch.Tensor, features2: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Feature temporal loss at the encoder output (ReCoNet eq. 4):

        L_f = (1/D) Σ_p M'(p) · ‖F_1(p) − W(F_2, f')(p)‖²,   D = C·H'·W',

    averaged over the batch, where F_1, F_2 are the (B, C, H', W') encoder features of frames
    N and N+1, f' = resize_flow(flow, (H', W')) the forward flow resized to the feature grid
    (u × W'/W, v × H'/H — each component by its own axis ratio) and M' = resize_mask(mask,
    (H', W')) (a feature pixel counts only if every image pixel it covers is valid).

    The flow and mask are resized to the exact feature size, whatever it is. For ReCoNet's
    encoder (stride 4, input reflect-padded to a multiple of 4) the features are
    (ceil(H/4), ceil(W/4)); when H or W is not a multiple of 4 the ratio H'/H then differs
    slightly from 1/4 (at most 3/H relative), a sub-feature-pixel approximation.

    Args:
        features1: (B, C, H', W') features of frame N.
        features2: (B, C, H', W') features of frame N+1.
        flow: (B, 2, H, W) forward flow N -> N+1 at full image resolution.
        mask: (B, 1, H, W) 1 = use pixel, at full image resolution.

    Returns:
        0-dim tensor.
    """
    _check_pair("features1", features1, "features2", features2)
    _check_flow_mask(flow, mask, features1.shape[0], None)
    size = tuple(features1.shape[-2:])  # (H', W')
    flow_f = resize_flow(flow.to(features1.dtype), size)  # (B, 2, H', W')
    mask_f = resize_mask(mask, size).to(features1.dtype)  # (B, 1, H', W')
    diff = features1 - warp(features2, flow_f)  # (B, C, H', W')
    return (mask_f * diff.square()).mean()  # mean over B·C·H'·W' = batch mean of (1/D) Σ


def output_temporal_loss(
    output1: torch.Tensor,
    output2: torch.Tensor,
    input1: torch.Tensor,
    input2: torch.Tensor,
    flow: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Output temporal loss with the luminance term (ReCoNet eq. 5):

        L_o = (1/D) Σ_c Σ_p M(p) · ((O_1 − W(O_2))_c(p) − Y(I_1 − W(I_2))(p))²,   D = 3·H·W,

    averaged over the batch, with W(x) = warp(x, flow) and Y = 0.2126 R + 0.7152 G + 0.0722 B
    (:func:`reconet.image.luminance`). The stylized frames may change along the flow only as
    much as the input's luminance does (lighting changes are allowed, swimming texture is not);
    the luminance change is subtracted from each of the three output channels.

    Args:
        output1, output2: (B, 3, H, W) stylized frames N and N+1 in [0, 1].
        input1, input2: (B, 3, H, W) input frames N and N+1 in [0, 1].
        flow: (B, 2, H, W) forward flow N -> N+1.
        mask: (B, 1, H, W) 1 = use pixel.

    Returns:
        0-dim tensor.
    """
    _check_pair("output1", output1, "output2", output2)
    _check_pair("input1", input1, "input2", input2)
    if output1.shape != input1.shape or output1.shape[1] != 3:
        raise ValueError(
            f"outputs {tuple(output1.shape)} and inputs {tuple(input1.shape)} must both be (B, 3, H, W)"
        )
    _check_flow_mask(flow, mask, output1.shape[0], tuple(output1.shape[-2:]))
    flow = flow.to(output1.dtype)
    output_change = output1 - warp(output2, flow)  # (B, 3, H, W)
    input_change = luminance(input1 - warp(input2.to(output1.dtype), flow))  # (B, 1, H, W), broadcast over c
    return (mask.to(output1.dtype) * (output_change - input_change).square()).mean()
