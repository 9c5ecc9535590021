"""Evaluation of video style transfer: temporal error, style/content distances, reports.

:func:`temporal_error` is the one definition of the warping error used by training validation
and by ``reconet-evaluate``; :func:`evaluate` runs a whole comparison (see docs/evaluation.md).
"""

from reconet.evaluation.methods import INPUT_NAME, MethodSpec
from reconet.evaluation.quality import QualityScorer
from reconet.evaluation.runner import EvaluationConfig, EvaluationResult, aggregate, evaluate
from reconet.evaluation.sources import EvaluationError
from reconet.evaluation.temporal import frame_difference_error, temporal_error, temporal_error_map

__all__ = [
    "INPUT_NAME",
    "EvaluationConfig",
    "EvaluationError",
    "EvaluationResult",
    "MethodSpec",
    "QualityScorer",
    "aggregate",
    "evaluate",
    "frame_difference_error",
    "temporal_error",
    "temporal_error_map",
]
