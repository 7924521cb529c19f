"""NeuralGS (arXiv 2503.23162): compress an original 3DGS scene with per-cluster neural fields.

    from reprolab.papers.neuralgs import compress, decompress
    f = compress("point_cloud.ply", cameras, images)     # images: (V, H, W, 3) in [0, 1]
    f.save("scene.ngs"); scene = decompress("scene.ngs")
"""

from .neuralgs import (
    ClusterLayout,
    ClusterMLPs,
    NeuralGSConfig,
    NeuralGSFile,
    OperatingPoint,
    choose_operating_point,
    mlp_parameters,
    predicted_bytes,
    attribute_targets,
    canonical_quats,
    cluster_gaussians,
    clustering_features,
    compress,
    decompress,
    importance_scores,
    positional_encoding,
    prune_least_important,
    scene_from_targets,
)

__all__ = [
    "ClusterLayout", "ClusterMLPs", "NeuralGSConfig", "NeuralGSFile", "OperatingPoint", "choose_operating_point", "mlp_parameters", "predicted_bytes", "attribute_targets", "canonical_quats",
    "cluster_gaussians", "clustering_features", "compress", "decompress", "importance_scores",
    "positional_encoding", "prune_least_important", "scene_from_targets",
]
