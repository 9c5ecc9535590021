"""Export a trained ReCoNet for deployment: ONNX (ONNX Runtime, TensorRT, ...) or TorchScript.

Both formats take a (B, 3, H, W) float32 RGB batch in [0, 1] named ``input`` and return the
stylized (B, 3, H, W) batch named ``output``; batch, height and width are dynamic (the model's
pad-to-4/crop is traced as shape arithmetic, so any H, W >= 5 works, odd sizes included).

The ONNX file is produced by PyTorch's TorchScript-based exporter (``dynamo=False``), which
needs the ``onnx`` package (extra ``reconet[onnx]``) but not ``onnxscript``; the tracer's "might cause the trace to be incorrect"
warnings come from the model's input checks, which do not change the graph, and are silenced.
Files are written atomically (temporary name next to the destination, then renamed).
"""

from __future__ import annotations

import contextlib
import io
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import torch

from reconet.media import OutputError, check_destination, commit_file
from reconet.models.reconet import OutputModel, ReCoNet

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17
# Odd on purpose: the traced graph must not specialize to a multiple of 4.
_EXAMPLE_SHAPE = (1, 3, 67, 93)


def _example(model: ReCoNet) -> torch.Tensor:
    parameter = next(model.parameters())
    return torch.rand(_EXAMPLE_SHAPE, generator=torch.Generator().manual_seed(0)).to(parameter.device)


@contextlib.contextmanager
def _quiet_tracing() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        for message in ("legacy TorchScript-based ONNX export", "will be removed", "Constant folding", "instance_norm"):
            warnings.filterwarnings("ignore", message=f".*{message}.*")
        yield


def export_onnx(model: ReCoNet, destination: str | Path | BinaryIO, *, opset: int = ONNX_OPSET) -> None:
    """Write ``model`` (float32, eval) as ONNX with dynamic batch, height and width."""
    try:
        import onnx  # noqa: F401  (torch's exporter builds the file with it)
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'reconet[onnx]'") from None
    wrapper = OutputModel(model.float().eval()).eval()
    dynamic = {0: "batch", 2: "height", 3: "width"}
    target: str | BinaryIO = destination if isinstance(destination, io.IOBase) else str(destination)
    with _quiet_tracing(), torch.no_grad():
        torch.onnx.export(
            wrapper,
            (_example(model),),
            target,
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": dynamic, "output": dynamic},
            opset_version=opset,
            do_constant_folding=True,
        )


def export_torchscript(model: ReCoNet, destination: str | Path | BinaryIO) -> None:
    """Write ``model`` (float32, eval) as a traced TorchScript module (``torch.jit.load``-able)."""
    wrapper = OutputModel(model.float().eval()).eval()
    with _quiet_tracing(), torch.no_grad():
        traced = torch.jit.trace(wrapper, (_example(model),), check_trace=False)
        torch.jit.save(traced, destination if isinstance(destination, io.IOBase) else str(destination))


def export_model(model: ReCoNet, output: str | Path, fmt: str, *, overwrite: bool = False) -> Path:
    """Export ``model`` to ``output`` in ``fmt`` ("onnx" or "torchscript"), atomically."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    output = Path(output)
    check_destination(output, overwrite=overwrite)
    temp = output.with_name(f".{output.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        with open(temp, "wb") as handle:
            if fmt == "onnx":
                export_onnx(model, handle)
            else:
                export_torchscript(model, handle)
        commit_file(temp, output, overwrite)
    except OSError as error:  # a full disk or a quota: name the file the user asked for
        raise OutputError(f"{output}: writing failed ({error.strerror or error})") from None
    finally:
        if temp.exists():
            temp.unlink()
    return output
