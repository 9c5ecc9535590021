"""What the command lines share: exit codes, one-line errors and warnings, argument types.

Every command reports a failure as one line ``PROG: error: ...`` and a warning as one line
``PROG: warning: ...``; a bad argument value is argparse's one-line usage error. Standard
library only at import time: ``--help`` and usage errors must not wait for torch.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import warnings
from collections.abc import Iterator

EXIT_ERROR = 1  # the input, the output or the run failed; the message says which
EXIT_USAGE = 2  # argparse's code; also unknown config keys and bad overrides
EXIT_SIGNAL_BASE = 128  # 128 + N: stopped by signal N (the shell's convention)
EXIT_INTERRUPTED = EXIT_SIGNAL_BASE + signal.SIGINT  # 130, Ctrl-C
EXIT_TERMINATED = EXIT_SIGNAL_BASE + signal.SIGTERM  # 143


def one_line(error: BaseException) -> str:
    """An exception's message on one line; a FileNotFoundError names its file."""
    text = " ".join(str(error).split())
    if isinstance(error, FileNotFoundError) and error.filename and str(error.filename) not in text:
        text = f"{error.filename}: {text}"
    return text or type(error).__name__


@contextlib.contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Show warnings as ``PROG: warning: ...`` lines without source lines; restored on exit, so a
    command called in-process (tests, notebooks) leaves the caller's warning settings alone."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"{prog}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def size_wh(text: str) -> tuple[int, int]:
    """``"640x360"`` -> (640, 360): width first, as the option is written."""
    from reconet.media import parse_size_wh  # imports torch and PyAV

    try:
        return parse_size_wh(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
