"""JavisDiT: joint audio-video diffusion with hierarchical spatio-temporal prior synchronisation (arXiv 2503.23377).

    from reprolab.papers.javisdit import HiSTSypoConfig, HiSTSypoEstimator, VAEncoder, prior_loss, attach_st_prior
    from reprolab.papers.javisdit import javis_score, avh_score, av_align, score_folder
"""

from .metrics import SyncScores, audio_onsets, av_align, av_align_peaks, avh_score, flow_peaks, javis_score, score_clip, score_folder, windows
from .prior import (AttentionDiscriminator, HiSTSypoConfig, HiSTSypoEstimator, PriorOutput, STPriorBlock, VAEncoder, attach_st_prior,
                    attach_st_prior_ltx2, prior_loss, prior_loss_terms)
from .sync_encoders import AudioWindowEncoder, FrameEncoder, SyncEncoderConfig, train_sync_encoders

__all__ = ["AttentionDiscriminator", "AudioWindowEncoder", "FrameEncoder", "HiSTSypoConfig", "HiSTSypoEstimator", "PriorOutput",
           "STPriorBlock", "SyncEncoderConfig", "SyncScores", "VAEncoder", "attach_st_prior", "attach_st_prior_ltx2", "audio_onsets",
           "av_align", "av_align_peaks", "avh_score", "flow_peaks", "javis_score", "prior_loss", "prior_loss_terms", "score_clip", "score_folder",
           "train_sync_encoders", "windows"]
