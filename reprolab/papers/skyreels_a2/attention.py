"""The semantic path's attention for diffusers' ``WanTransformer3DModel``, with the image-token count given explicitly.

In every block's cross-attention, SkyReels-A2 (official ``WanAttnProcessor2_0`` in ``models/transformer_a2.py``)
and Wan I2V attend with one query to the text tokens and, through their own ``add_k_proj`` / ``add_v_proj``
(keys normalised by ``norm_added_k``), to the image tokens, and add the two outputs before ``to_out``:

    out = to_out( softmax(q k_txt^T) v_txt + softmax(q k_img^T) v_img ).

Both the official processor and diffusers 0.42's ``WanAttnProcessor`` find the image tokens by assuming the
text has exactly 512 tokens (``encoder_hidden_states[:, :-512]``). :class:`A2AttnProcessor` takes the number of
image tokens instead (the transformer puts them first: ``concat([image, text])``), so a tiny model can use a
short text without padding it to 512 (the spec sheet measured 1.8 s against 0.5 s per step for 128 video and 8
text tokens). With 512 text tokens it computes exactly what diffusers' processor computes (tested).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ...errors import ConfigError, ShapeError

__all__ = ["A2AttnProcessor", "set_image_token_count"]


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.unflatten(2, (heads, -1)).transpose(1, 2)  # (B, S, H*D) -> (B, H, S, D)


class A2AttnProcessor:
    """Cross-attention over ``[image tokens (num_image_tokens), text tokens (the rest)]`` for a ``WanAttention``."""

    def __init__(self, num_image_tokens: int = 0):
        self.num_image_tokens = int(num_image_tokens)

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, rotary_emb: Any = None) -> torch.Tensor:
        if encoder_hidden_states is None:
            raise ShapeError("encoder_hidden_states", None, "the text (and image) tokens: A2AttnProcessor is for cross-attention")
        n_img = self.num_image_tokens
        if not 0 <= n_img < encoder_hidden_states.shape[1]:
            raise ShapeError("encoder_hidden_states", tuple(encoder_hidden_states.shape),
                             f"{n_img} image tokens followed by at least one text token")
        img, txt = encoder_hidden_states[:, :n_img], encoder_hidden_states[:, n_img:]
        query = attn.norm_q(attn.to_q(hidden_states))
        key = attn.norm_k(attn.to_k(txt))
        value = attn.to_v(txt)
        q = _heads(query, attn.heads)
        out = F.scaled_dot_product_attention(q, _heads(key, attn.heads), _heads(value, attn.heads), attn_mask=attention_mask)
        out = out.transpose(1, 2).flatten(2, 3).type_as(query)
        if n_img:
            if getattr(attn, "add_k_proj", None) is None:
                raise ConfigError("num_image_tokens", n_img, "0 for a transformer without an image branch (added_kv_proj_dim=None)")
            k_img = attn.norm_added_k(attn.add_k_proj(img))
            v_img = attn.add_v_proj(img)
            out_img = F.scaled_dot_product_attention(q, _heads(k_img, attn.heads), _heads(v_img, attn.heads))
            out = out + out_img.transpose(1, 2).flatten(2, 3).type_as(query)
        out = attn.to_out[0](out)
        return attn.to_out[1](out)


def set_image_token_count(transformer: Any, num_image_tokens: int) -> None:
    """Install (or update) :class:`A2AttnProcessor` on every block's cross-attention of a ``WanTransformer3DModel``."""
    if num_image_tokens < 0:
        raise ConfigError("num_image_tokens", num_image_tokens, "a count >= 0")
    blocks = getattr(transformer, "blocks", None)
    if not blocks:
        raise ConfigError("transformer", type(transformer).__name__, "a diffusers WanTransformer3DModel (with .blocks)")
    for block in blocks:
        proc = block.attn2.processor
        if isinstance(proc, A2AttnProcessor):
            proc.num_image_tokens = int(num_image_tokens)
        else:
            block.attn2.set_processor(A2AttnProcessor(num_image_tokens))
