"""``reconet-export``: turn a trained model into ONNX or TorchScript with dynamic H and W.

After writing, the exported file is run on an odd-sized random frame and compared with the
PyTorch model; the maximum absolute difference is printed (and must be <= 1e-4).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from reconet.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, one_line

PROG = "reconet-export"
PARITY_TOLERANCE = 1e-4
# Odd and different from the export example, so dynamic shapes and pad/crop are exercised.
CHECK_SHAPE = (1, 3, 75, 101)

EXAMPLES = """\
examples:
  reconet-export udnie.pt --format onnx udnie.onnx
  reconet-export last.ckpt --format torchscript udnie.ts
  reconet-stylize clip.mp4 out.mp4 --model udnie.onnx     (runs through ONNX Runtime)

Input: (B, 3, H, W) float32 RGB in [0, 1] named "input"; output "output", same shape.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export a reconet model (inference artifact or Lightning checkpoint) to ONNX or "
        "TorchScript, with dynamic batch, height and width.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="inference artifact (.pt) or Lightning checkpoint (.ckpt)")
    parser.add_argument("output", help="file to write (e.g. model.onnx or model.ts)")
    parser.add_argument("--format", required=True, choices=("onnx", "torchscript"), help="export format")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip the parity check against PyTorch (for ONNX it needs onnxruntime)",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    return parser


def parity(model: object, output: Path, fmt: str) -> float | None:
    """Max |exported - PyTorch| on a random odd-sized frame (None if ONNX Runtime is missing)."""
    import torch

    from reconet.inference.stylizer import OnnxStylizer
    from reconet.models.reconet import OutputModel

    x = torch.rand(CHECK_SHAPE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = OutputModel(model).eval()(x)  # type: ignore[arg-type]
        if fmt == "onnx":
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                return None
            exported = OnnxStylizer(output, device="cpu")(x)
        else:
            exported = torch.jit.load(str(output), map_location="cpu")(x)
    return float((exported - reference).abs().max())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import warnings

        from reconet.inference.export import export_model
        from reconet.models.artifact import load_stylizer

        warnings.filterwarnings("ignore", category=FutureWarning)
        model, _meta = load_stylizer(args.model, map_location="cpu")
        output = export_model(model, args.output, args.format, overwrite=args.overwrite)
        message = f"{PROG}: wrote {output} ({args.format}, dynamic batch/height/width)"
        if not args.no_check:
            diff = parity(model, output, args.format)
            if diff is None:
                message += "; parity not checked (onnxruntime not installed)"
            elif diff > PARITY_TOLERANCE:
                output.unlink()
                raise ValueError(
                    f"{output}: exported model differs from PyTorch by {diff:.2e} > {PARITY_TOLERANCE:g}; removed"
                )
            else:
                message += f"; max |exported - PyTorch| = {diff:.1e} on a {CHECK_SHAPE[3]}x{CHECK_SHAPE[2]} frame"
        print(message, file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # one line unless --debug
        if args.debug:
            raise
        known = isinstance(error, (ValueError, OSError, ImportError))
        hint = "" if known else " (run with --debug for the traceback)"
        print(f"{PROG}: error: {one_line(error)}{hint}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
