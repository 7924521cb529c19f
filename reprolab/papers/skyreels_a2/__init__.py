"""SkyReels-A2: composing a video from reference elements (arXiv 2504.02436).

    from reprolab.papers.skyreels_a2 import SkyReelsA2Pipeline, a2_scheduler, prepare_condition, set_image_token_count
"""

from .attention import A2AttnProcessor, set_image_token_count
from .conditioning import (
                           crop_resize,
                           crop_resize_pad,
                           image_tokens,
                           latent_frames_with_references,
                           model_input,
                           normalize_latents,
                           prepare_condition,
                           reference_mask,
                           reference_slots,
                           reference_video,
                           unnormalize_latents,
)
from .pipeline import NEGATIVE_PROMPT, A2Output, SkyReelsA2Pipeline, a2_scheduler
from .tiny import tiny_components, word_tokenizer

__all__ = [
                           "NEGATIVE_PROMPT",
                           "A2AttnProcessor",
                           "A2Output",
                           "SkyReelsA2Pipeline",
                           "a2_scheduler",
                           "crop_resize",
                           "crop_resize_pad",
                           "image_tokens",
                           "latent_frames_with_references",
                           "model_input",
                           "normalize_latents",
                           "prepare_condition",
                           "reference_mask",
                           "reference_slots",
                           "reference_video",
                           "set_image_token_count",
                           "tiny_components",
                           "unnormalize_latents",
                           "word_tokenizer",
]
