"""The whole CUPS pseudo-label pipeline on a stereo video, and the peers' pipelines on the same scenes.

:func:`pseudo_label_scene` runs steps 1-3 for one scene: cues (OpenCV, or the exact maps of synthetic
data for the oracle arm), motion instances, depth-guided semantics, majority merge. The dataset-level
thing/stuff split comes after (:func:`.labels.thing_stuff_split`). Peers on the same semantics:
``u2seg`` (MaskCut instances on the sliding-window code, majority merge; U2Seg uses STEGO semantics
without depth, so the slide-only semantics), ``no_motion`` (connected components of the thing clusters).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import ConfigError
from .cues import CueConfig, stereo_cues
from .labels import cluster_instances, component_instances, majority_merge, maskcut_instances
from .motion import MotionConfig, disparity_to_depth, motion_instances
from .semantics import depth_guided_fusion

ARMS = ("cups", "oracle", "u2seg", "no_motion")


@dataclass(frozen=True)
class PseudoLabelConfig:
    motion: MotionConfig = field(default_factory=MotionConfig)
    cues: CueConfig = field(default_factory=CueConfig)
    fusion: str = "depth"  # "depth" (official), "low" or "slide" (the ablation of claim e)
    maskcut_objects: int = 3  # U2Seg/CutLER MaskCut N
    min_pixels: int = 16  # smallest peer instance (px)

    def __post_init__(self) -> None:
        if self.fusion not in ("depth", "low", "slide"):
            raise ConfigError("fusion", self.fusion, "'depth', 'low' or 'slide'")


def fused_semantics(log_low: np.ndarray, log_slide: np.ndarray, depth: np.ndarray, fusion: str = "depth") -> np.ndarray:
    """Cluster map (H, W) from the two views' log-probs (K, H, W): depth-guided, low-only or slide-only."""
    if fusion == "low":
        return log_low.argmax(0)
    if fusion == "slide":
        return log_slide.argmax(0)
    return depth_guided_fusion(log_low, log_slide, depth).argmax(0)


def estimated_depth(disparity: np.ndarray, focal: float, baseline: float) -> np.ndarray:
    """Depth for the fusion weight from an estimated disparity; where there is none the depth is taken as
    infinite (w = 0: the sliding window), as the official f*B/(|d| + 1e-10) does."""
    z = disparity_to_depth(disparity, focal, baseline)
    return np.where(z > 0, z, 1e9)


def pseudo_label_scene(scene: dict, log_low: np.ndarray, log_slide: np.ndarray, code: np.ndarray, focal: float,
                       baseline: float, arm: str = "cups", config: PseudoLabelConfig = PseudoLabelConfig(),
                       seed: int = 0, cues: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """One scene's pseudo-label (semantic cluster map after the merge, instance map) for an arm.

    ``scene``: left0/right0/left1/right1 images (3, H, W) and, for the oracle arm, the exact
    disparity0/disparity1/flow/flow_valid maps. ``cues``: precomputed :func:`.cues.stereo_cues` maps.
    """
    if arm not in ARMS:
        raise ConfigError("arm", arm, f"one of {ARMS}")
    if arm == "oracle":
        z = np.asarray(scene["depth0"], np.float64)
        semantic = fused_semantics(log_low, log_slide, z, config.fusion)
        d0, d1, fl = scene["disparity0"], scene["disparity1"], scene["flow"]
        inst = motion_instances(d0, d0, d1, d1, fl, -fl, focal, baseline, config.motion, seed=seed,
                                valid=scene["flow_valid"], noise=0.0)
    elif arm == "cups":
        cues = cues or stereo_cues(scene["left0"], scene["right0"], scene["left1"], scene["right1"], config.cues)
        semantic = fused_semantics(log_low, log_slide, estimated_depth(cues["disparity0"], focal, baseline), config.fusion)
        inst = motion_instances(**cues, focal=focal, baseline=baseline, config=config.motion, seed=seed)
    elif arm == "u2seg":  # thing classes come after, over the dataset (u2seg_thing_classes)
        semantic = log_slide.argmax(0)
        inst = maskcut_instances(code, config.maskcut_objects, min_pixels=config.min_pixels)
        return {"semantic": semantic, "instance": inst}
    else:
        cues = cues or stereo_cues(scene["left0"], scene["right0"], scene["left1"], scene["right1"], config.cues)
        semantic = fused_semantics(log_low, log_slide, estimated_depth(cues["disparity0"], focal, baseline), config.fusion)
        inst = np.zeros(semantic.shape, np.int64)  # instances come after the split (component_instances)
    return {"semantic": majority_merge(semantic, inst), "instance": inst}


def add_component_instances(semantic: np.ndarray, thing_clusters, min_pixels: int = 16) -> np.ndarray:
    """The no-motion control's instances, once the thing clusters are known."""
    return component_instances(semantic, thing_clusters, min_pixels)


def u2seg_thing_classes(semantic_maps: list[np.ndarray], instance_maps: list[np.ndarray], codes: list[np.ndarray],
                        num_clusters: int, k_thing: int, seed: int = 0) -> tuple[list[np.ndarray], tuple[int, ...], tuple[int, ...]]:
    """U2Seg's labels: instance pixels take a thing class id ``num_clusters + c`` from k-means over the
    instances' mean codes (:func:`.labels.cluster_instances`); every semantic cluster is stuff.
    Returns the semantic maps and the (things, stuff) id tuples."""
    assign = cluster_instances(codes, instance_maps, k_thing, seed)
    out = []
    for sem, inst, a in zip(semantic_maps, instance_maps, assign):
        s = np.asarray(sem).copy()
        for i, c in a.items():
            s[inst == i] = num_clusters + c
        out.append(s)
    return out, tuple(range(num_clusters, num_clusters + k_thing)), tuple(range(num_clusters))
