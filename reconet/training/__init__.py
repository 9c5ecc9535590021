"""Training: Lightning module, callbacks, checkpoint IO and the config-driven run (``reconet-train``).

See docs/training.md. The Hydra configs live in :mod:`reconet.conf`.

Lightning takes seconds to import; the names below load it on first use (PEP 562) so that
``reconet-train`` can reject a mistyped override before paying for it.
"""

from importlib import import_module
from typing import Any

from reconet.training.config import ConfigError

_LAZY = {
    "ReCoNetModule": "reconet.training.module",
    "TrainingRun": "reconet.training.train",
    "fit": "reconet.training.train",
    "prepare": "reconet.training.train",
    "train": "reconet.training.train",
}

__all__ = ["ConfigError", "ReCoNetModule", "TrainingRun", "fit", "prepare", "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
