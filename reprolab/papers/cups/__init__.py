"""CUPS: Scene-Centric Unsupervised Panoptic Segmentation (arXiv 2504.01955): panoptic pseudo-labels from
stereo video (motion instances + depth-guided semantics), DropLoss, copy-paste and self-training.

    from reprolab.papers.cups import stereo_cues, motion_instances, depth_guided_fusion, majority_merge, thing_stuff_split
    cues = stereo_cues(left0, right0, left1, right1)           # OpenCV: disparity both ways at t, t+1; flow both ways
    inst = motion_instances(**cues, focal=f, baseline=B)      # (H, W) moving-object instances
"""

from .cues import CueConfig, motorcycle_disparity_error, optical_flow, sgbm_disparity, sgbm_disparity_right, stereo_cues
from .labels import (IGNORE, ThingStuffSplit, cluster_instances, component_instances, majority_merge, maskcut_instances,
                     read_pseudo_label, read_split_statistics, self_training_labels, split_statistics, thing_stuff_split,
                     write_pseudo_label, write_split_statistics)
from .motion import (MotionConfig, consistent_disparity, consistent_flow, cue_noise, disparity_edges, disparity_to_depth,
                     fill_holes, kabsch, matrix_nms, motion_instances, postprocess_proposals, relabel, rigid_motion_masks,
                     run_consistency, scene_flow_points, surface_area, valid_scene_flow)
from .network import TinyPanopticNet, TrainConfig, copy_paste, drop_loss, mask_iou, panoptic_loss, predict_panoptic, self_train, \
    train_panoptic
from .panoptic import PQCounts, confusion, evaluate_clusters, match_clusters, miou, miou_rows, panoptic_quality, pq_counts
from .pipeline import ARMS, PseudoLabelConfig, add_component_instances, estimated_depth, fused_semantics, pseudo_label_scene, \
    u2seg_thing_classes
from .semantics import ClusterSemantics, SemanticConfig, depth_guided_fusion

__all__ = [
    "ARMS", "IGNORE", "ClusterSemantics", "CueConfig", "MotionConfig", "PQCounts", "PseudoLabelConfig", "SemanticConfig",
    "ThingStuffSplit", "TinyPanopticNet", "TrainConfig", "add_component_instances", "cluster_instances", "component_instances",
    "confusion", "consistent_disparity", "consistent_flow", "copy_paste", "cue_noise", "depth_guided_fusion", "disparity_edges",
    "disparity_to_depth", "drop_loss", "estimated_depth", "evaluate_clusters", "fill_holes", "fused_semantics", "kabsch",
    "majority_merge", "mask_iou", "maskcut_instances", "match_clusters", "matrix_nms", "miou", "miou_rows", "motion_instances",
    "motorcycle_disparity_error", "optical_flow", "panoptic_loss", "panoptic_quality", "postprocess_proposals", "pq_counts",
    "predict_panoptic", "pseudo_label_scene", "read_pseudo_label", "read_split_statistics", "relabel", "rigid_motion_masks",
    "run_consistency", "scene_flow_points", "self_train", "self_training_labels", "sgbm_disparity", "sgbm_disparity_right",
    "split_statistics", "stereo_cues", "surface_area", "thing_stuff_split", "train_panoptic", "u2seg_thing_classes",
    "valid_scene_flow", "write_pseudo_label", "write_split_statistics",
]
