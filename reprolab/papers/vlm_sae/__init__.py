"""SAEs on a vision encoder, the Monosemanticity Score, and steering (Pach et al., arXiv 2504.02821).

    from reprolab.papers.vlm_sae import SAEConfig, MatryoshkaBatchTopKSAE, ActivationStore, TrainConfig, train_sae
    sae = MatryoshkaBatchTopKSAE(SAEConfig(d_in=320, expansion_factor=8))   # K=20, auxk 0.03, official prefixes
    train_sae(sae, ActivationStore("acts/"), TrainConfig(steps=5000, batch_size=1024), checkpoint="sae.pt")
    ms = monosemanticity_score(sae_codes, other_encoder_embeddings)         # (K,) per-latent MS, Eq. 7
    with splice(model, "_blocks.15", SAESplice(sae, LatentEdit(7, 10.0), channel_dim=1)): model(x)
"""

from ...nn.hooks import record_activations, splice
from .monosemanticity import MSSummary, monosemanticity_score, monosemanticity_score_pairwise
from .sae import (
    OFFICIAL_GROUP_FRACTIONS,
    BatchTopKSAE,
    MatryoshkaBatchTopKSAE,
    SAEConfig,
    SAEOutput,
    build_sae,
    load_sae,
    official_lr,
    save_sae,
)
from .steering import AddVector, LatentEdit, SAESplice, diffmean_vector, latent_direction
from .training import ActivationStore, ActivationWriter, TrainConfig, TrainResult, encode_all, geometric_median, train_sae

__all__ = [
    "OFFICIAL_GROUP_FRACTIONS", "ActivationStore", "ActivationWriter", "AddVector", "BatchTopKSAE", "LatentEdit",
    "MSSummary", "MatryoshkaBatchTopKSAE", "SAEConfig", "SAEOutput", "SAESplice", "TrainConfig", "TrainResult",
    "build_sae", "diffmean_vector", "encode_all", "geometric_median", "latent_direction", "load_sae",
    "monosemanticity_score", "monosemanticity_score_pairwise", "official_lr", "record_activations", "save_sae",
    "splice", "train_sae",
]
