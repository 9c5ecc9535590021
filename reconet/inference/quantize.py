"""Int8 inference on the CPU: PyTorch 2 export quantization for the x86 (oneDNN) backend.

The network is captured with ``torch.export``, its convolutions are annotated by torchao's
``X86InductorQuantizer`` (static, per-channel int8 weights, uint8 activations; Jacob et al.,
"Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference", CVPR 2018), calibrated on real frames, converted, and compiled by inductor with
frozen weights, which fuses each quantize -> int8 convolution -> dequantize into one oneDNN
kernel (VNNI / AMX-INT8 where the CPU has them).

What stays in higher precision, like the fp32 islands of :mod:`reconet.inference.precision`:

* instance norm: the quantizer does not annotate normalization, so its statistics are computed
  on dequantized values (float32, or bfloat16 under autocast on a native-bf16 CPU);
* the two RGB layers, the first convolution and the output convolution (with the sigmoid):
  an int8 output layer would be good to 1/256 of its range, a whole 8-bit level before the
  sigmoid steepens it; quantizing the input layer too cost 1.4 dB on the bundled candy model
  (worst of three photos at 640x360: 38.8 dB, 40.2 dB with it in float) at no measurable speed.

Calibration: the job's first frames plus a few of the bundled photos resized to the same size
(real content with the full range of colours, so one dark first frame does not set every
activation range). The parity bar for int8 is :data:`INT8_MIN_PSNR` against float32 (looser
than bf16's 45 dB: int8 has 8 bits of mantissa-equivalent where bf16 has 8 plus an exponent).
Needs the ``[int8]`` extra (torchao).
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reconet.hardware import native_bf16_cpu
from reconet.models.reconet import MIN_INPUT_SIZE, OutputModel, ReCoNet
from reconet.resources import asset_path

__all__ = ["INT8_MIN_PSNR", "Int8Network", "calibration_frames", "int8_unavailable", "quantize_int8"]

INT8_MIN_PSNR = 38.0
# How many bundled photos join the job's frames for calibration.
CALIBRATION_PHOTOS = 4


def int8_unavailable(device: torch.device) -> str | None:
    """Why int8 cannot run here (one line), or None when it can."""
    if device.type != "cpu":
        return "int8 is for the CPU (on CUDA use fp16 or bf16)"
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401
    except ImportError:
        return "int8 needs torchao: pip install 'reconet[int8]'"
    return None


def calibration_frames(frames: torch.Tensor, photos: int = CALIBRATION_PHOTOS) -> list[torch.Tensor]:
    """(1, 3, H, W) calibration inputs: each of ``frames`` (B, 3, H, W) and ``photos`` bundled
    photos, resized (antialiased) and centre-cropped to cover H x W."""
    height, width = frames.shape[-2:]
    inputs = [frame[None].float().contiguous() for frame in frames]
    from reconet.image import load_image

    for path in sorted(glob.glob(os.path.join(asset_path("photos"), "*.jpg")))[:photos]:
        image = load_image(path)[None]  # (1, 3, h, w)
        scale = max(height / image.shape[-2], width / image.shape[-1])
        size = (max(height, round(image.shape[-2] * scale)), max(width, round(image.shape[-1] * scale)))
        image = F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
        top, left = (size[0] - height) // 2, (size[1] - width) // 2
        inputs.append(image[..., top : top + height, left : left + width].clamp(0, 1).contiguous())
    return inputs


class Int8Network(nn.Module):
    """The quantized, compiled network: (B, 3, H, W) float in [0, 1] -> (B, 3, H, W) float32.

    Runs the non-quantized operations (instance norm, padding, upsampling) in bfloat16 under
    autocast when ``bf16`` (a native-bf16 CPU: 1.7x faster for the tiny preset at 640x360),
    else in float32.
    """

    def __init__(self, graph: nn.Module, compiled: object, bf16: bool, shape: torch.Size) -> None:
        super().__init__()
        self.graph = graph  # the converted (quantized) graph module, eager
        self._compiled = compiled
        self.bf16 = bf16
        self.shape = tuple(shape)  # the (1, 3, H, W) it was compiled for

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compiled = self._compiled is not None and tuple(x.shape[1:]) == self.shape[1:]
        runner = self._compiled if compiled else self.graph
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            x = x.float().contiguous()  # the layout it was compiled for
            if x.shape[0] == 1:
                return runner(x).float()
            return torch.cat([runner(frame[None]).float() for frame in x])  # compiled for batch 1


def quantize_int8(model: ReCoNet, frames: Sequence[torch.Tensor], bf16: bool | None = None) -> Int8Network:
    """An :class:`Int8Network` of a single-style ``model`` (eval, CPU), calibrated on ``frames``
    (each (1, 3, H, W), all one size: the size it is compiled for).

    Raises:
        RuntimeError: torchao is missing (:func:`int8_unavailable` says why).
    """
    reason = int8_unavailable(torch.device("cpu"))
    if reason is not None:
        raise RuntimeError(reason)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

    if not frames:
        raise ValueError("quantize_int8 needs at least one calibration frame")
    model = model.float().eval()
    example = frames[0].float()
    # Height and width dynamic: the quantized graph runs any frame size (compiled for one).
    sides = {2: torch.export.Dim("height", min=MIN_INPUT_SIZE), 3: torch.export.Dim("width", min=MIN_INPUT_SIZE)}
    with torch.no_grad():
        graph = torch.export.export(OutputModel(model).eval(), (example,), dynamic_shapes={"x": sides}).module()
    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    quantizer.set_module_name_qconfig("model.decoder.output.conv", None)  # the RGB layers stay float
    quantizer.set_module_name_qconfig("model.encoder.conv1.conv", None)
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for frame in frames:
            prepared(frame.float())
        converted = convert_pt2e(prepared)
    if bf16 is None:
        bf16 = native_bf16_cpu()
    import torch._inductor.config as inductor_config

    compiled = torch.compile(converted, dynamic=False)
    network = Int8Network(converted, compiled, bf16, example.shape)
    try:
        with warnings.catch_warnings(), inductor_config.patch(freezing=True):
            warnings.simplefilter("ignore")  # inductor's notes on frozen constants
            network(example)  # compile now, at the calibration size: the first frame is not delayed later
    except Exception as error:  # no C compiler, ...: the quantized graph still runs, eagerly and slowly
        if isinstance(error, torch.OutOfMemoryError):
            raise
        warnings.warn(
            f"torch.compile of the int8 network failed ({type(error).__name__}); running it uncompiled (slow)",
            stacklevel=2,
        )
        network._compiled = None
    return network

