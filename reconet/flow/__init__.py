"""Optical flow: file formats, backward warping, occlusion masks, flow estimation.

Direction rule (see :mod:`reconet.flow.warp`): ``flow`` is the forward flow N -> N+1 on frame
N's grid; ``warp(x_{N+1}, flow)`` brings frame N+1 onto frame N's grid. Masks are 1 where a
pixel is used; occlusion maps are 1 where it is occluded.
"""

from reconet.flow.estimate import (
    FLOW_METHODS,
    DISFlowEstimator,
    FarnebackFlowEstimator,
    FlowEstimator,
    FlowEstimatorError,
    RAFTFlowEstimator,
    RAFTWeightsNotFoundError,
    build_flow_estimator,
    estimate_flows,
    find_cached_raft_weights,
    load_raft,
)
from reconet.flow.io import FlowFileError, read_flo, read_flow, read_pfm, write_flo, write_pfm
from reconet.flow.occlusion import agreement_mask, mask_from_flows, motion_boundaries, occlusion_from_flows
from reconet.flow.warp import in_frame_mask, resize_flow, resize_mask, warp

__all__ = [
    "FLOW_METHODS",
    "DISFlowEstimator",
    "FarnebackFlowEstimator",
    "FlowEstimator",
    "FlowEstimatorError",
    "FlowFileError",
    "RAFTFlowEstimator",
    "RAFTWeightsNotFoundError",
    "agreement_mask",
    "build_flow_estimator",
    "estimate_flows",
    "find_cached_raft_weights",
    "in_frame_mask",
    "load_raft",
    "mask_from_flows",
    "motion_boundaries",
    "occlusion_from_flows",
    "read_flo",
    "read_flow",
    "read_pfm",
    "resize_flow",
    "resize_mask",
    "warp",
    "write_flo",
    "write_pfm",
]
