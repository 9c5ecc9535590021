"""Argument types shared by the command lines: a bad value is argparse's one-line usage error.

Standard library only at import time: ``--help`` and usage errors must not wait for torch.
"""

from __future__ import annotations

import argparse


def size_wh(text: str) -> tuple[int, int]:
    """``"640x360"`` -> (640, 360): width first, as the option is written."""
    from reconet.inference.io import parse_size  # imports torch and PyAV

    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
