"""Tiny SkyReels-A2 components built from configs (no download): for tests, the README and the study.

The classes are the real ones (diffusers ``WanTransformer3DModel`` in the I2V layout and ``AutoencoderKLWan``,
transformers ``CLIPVisionModel``, ``CLIPImageProcessor`` and ``UMT5EncoderModel``); only the sizes are small,
and the tokenizer is a word-level one over a caption vocabulary (the real pipeline loads UMT5's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ...data.shapes import COLOURS, SHAPES, TEXTURES
from .elements import BACKGROUNDS, DIRECTIONS, ROLES

__all__ = ["CAPTION_WORDS", "tiny_components", "word_tokenizer"]

CAPTION_WORDS = tuple(dict.fromkeys(
    "a an the and on moves".split() + list(ROLES) + list(SHAPES) + list(COLOURS) + list(TEXTURES) + list(BACKGROUNDS) + list(DIRECTIONS)))
"""The elements captions' vocabulary (:mod:`.elements`): every word a caption can hold."""


def word_tokenizer(words: Sequence[str] = CAPTION_WORDS) -> Any:
    """A ``PreTrainedTokenizerFast`` over ``words`` (lower-cased, split on whitespace and punctuation)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1}
    for w in words:
        vocab.setdefault(w.lower(), len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>")


def tiny_components(seed: int = 0, *, z_dim: int = 4, heads: int = 2, head_dim: int = 12, layers: int = 2, text_dim: int = 16,
                    image_dim: int = 20, image_size: int = 32, words: Sequence[str] = CAPTION_WORDS) -> dict[str, Any]:
    """``transformer, vae, image_encoder, image_processor, text_encoder, tokenizer`` for ``SkyReelsA2Pipeline(**c, scheduler=...)``.

    The transformer takes ``[noise z_dim, mask 4, condition z_dim]`` channels (Wan I2V's 16 + 4 + 16 at z_dim 16);
    its image branch has ``added_kv_proj_dim`` = inner dim, as SkyReels-A2's ``A2Model`` has.
    """
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
    )

    torch.manual_seed(seed)
    tokenizer = word_tokenizer(words)
    inner = heads * head_dim
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=head_dim,
                                        in_channels=2 * z_dim + 4, out_channels=z_dim, text_dim=text_dim, freq_dim=16, ffn_dim=2 * inner,
                                        num_layers=layers, cross_attn_norm=True, image_dim=image_dim, added_kv_proj_dim=inner,
                                        rope_max_seq_len=64)
    vae = AutoencoderKLWan(base_dim=8, z_dim=z_dim, dim_mult=[1, 1, 1, 1], num_res_blocks=1, attn_scales=[],
                           temperal_downsample=[False, True, True], latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim)
    image_encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=image_dim, intermediate_size=2 * image_dim, num_hidden_layers=2,
                                                     num_attention_heads=2, image_size=image_size, patch_size=8))
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=text_dim, d_kv=8, d_ff=2 * text_dim, num_layers=1,
                                               num_heads=2))
    for m in (transformer, vae, image_encoder, text_encoder):
        m.eval()
    return {"transformer": transformer, "vae": vae, "image_encoder": image_encoder, "image_processor": image_processor,
                "text_encoder": text_encoder, "tokenizer": tokenizer}
