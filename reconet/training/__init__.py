"""Training: Lightning module, callbacks, checkpoint IO and the config-driven run (``reconet-train``).

See docs/training.md. The Hydra configs live in :mod:`reconet.conf`.
"""

from reconet.training.config import ConfigError
from reconet.training.module import ReCoNetModule
from reconet.training.train import TrainingRun, fit, prepare, train

__all__ = ["ConfigError", "ReCoNetModule", "TrainingRun", "fit", "prepare", "train"]
