"""Optimization-based video stylization: Gatys et al. per frame, flow-warped start and temporal loss.

Slow (seconds per frame) but needs no training and works with any style image; the quality
reference for the feed-forward ReCoNet. Shares the loss network, the perceptual losses, the
flow code and the video I/O with the rest of the package.

    from reconet.optimize import OptimizeConfig, VideoOptimizer
    frames = VideoOptimizer(style, OptimizeConfig(iterations=300)).stylize(content_frames)
"""

from reconet.optimize.config import OptimizeConfig
from reconet.optimize.flow_cache import CachedFlowEstimator
from reconet.optimize.objective import FrameTargets, GatysObjective, masked_mse
from reconet.optimize.parts import PartsDir, ResumeMismatchError, parts_dir_for
from reconet.optimize.sequence import FrameResult, VideoOptimizer
from reconet.optimize.solver import SolveResult, solve

__all__ = [
    "CachedFlowEstimator",
    "FrameResult",
    "FrameTargets",
    "GatysObjective",
    "OptimizeConfig",
    "PartsDir",
    "ResumeMismatchError",
    "SolveResult",
    "VideoOptimizer",
    "masked_mse",
    "parts_dir_for",
    "solve",
]
