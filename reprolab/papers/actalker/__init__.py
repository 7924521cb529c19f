"""ACTalker: talking heads under audio and motion control with masked selective state spaces (arXiv 2504.02542).

    from reprolab.papers.actalker import PCMLayer, gate_masks, four_pass_guidance, guidance_passes
"""

from .audio import audio_features, frame_windows, mel_features, whisper_features
from .faces import FacesConfig, TalkingClip, generate_talking_clips, mouth_track, phoneme_opening, render_face
from .integrations import PCMController, attach_pcm
from .sync import OffsetClassifier, mouth_crops, train_offset_classifier
from .pcm import BRANCHES, GUIDANCE_SCALES, CrossAttentionFusion, PCMLayer, four_pass_guidance, gate_masks, guidance_passes

__all__ = ["BRANCHES", "GUIDANCE_SCALES", "CrossAttentionFusion", "PCMController", "PCMLayer", "FacesConfig", "TalkingClip", "attach_pcm", "generate_talking_clips", "mouth_track", "phoneme_opening", "render_face", "audio_features", "frame_windows", "mel_features", "whisper_features", "four_pass_guidance", "gate_masks", "guidance_passes", "OffsetClassifier", "mouth_crops", "train_offset_classifier"]
