"""SkyReels-A2: composing a video from reference elements (arXiv 2504.02436).

    from reprolab.papers.skyreels_a2 import SkyReelsA2Pipeline, a2_scheduler, prepare_condition, set_image_token_count
    from reprolab.papers.skyreels_a2 import ElementsConfig, generate_element_clips   # the toy elements-to-video data
"""

from .attention import A2AttnProcessor, set_image_token_count
from .conditioning import (crop_resize, crop_resize_pad, image_tokens, latent_frames_with_references, model_input, normalize_latents,
                           prepare_condition, reference_mask, reference_slots, reference_video, unnormalize_latents)
from .elements import BACKGROUNDS, ElementClip, ElementsConfig, generate_element_clips, identity_names, render_background
from .tiny import CAPTION_WORDS, tiny_components, word_tokenizer

_LAZY = {"NEGATIVE_PROMPT", "A2Output", "SkyReelsA2Pipeline", "a2_scheduler"}  # .pipeline imports diffusers: only on use


def __getattr__(name: str):
    if name in _LAZY:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BACKGROUNDS", "CAPTION_WORDS", "NEGATIVE_PROMPT", "A2AttnProcessor", "A2Output", "ElementClip", "ElementsConfig", "SkyReelsA2Pipeline",
           "a2_scheduler", "crop_resize", "crop_resize_pad", "generate_element_clips", "identity_names", "image_tokens",
           "latent_frames_with_references", "model_input", "normalize_latents", "prepare_condition", "reference_mask", "reference_slots",
           "reference_video", "render_background", "set_image_token_count", "tiny_components", "unnormalize_latents", "word_tokenizer"]
