"""ShortV (arXiv 2504.00502): freeze visual tokens in the layers that do not need them.

Yuan et al., 2025, "ShortV: Efficient Multimodal Large Language Models by Freezing Visual Tokens
in Ineffective Layers"; official code github.com/icip-cas/ShortV. Two parts:

1. **Layer Contribution** (Sec. 3.1). For a layer ``l`` and a token set ``S`` (the visual or the
   text tokens), run the MLLM once as is and once with layer ``l``'s transformations removed for
   the tokens of ``S`` (its attention output and MLP output are not added to their residual
   stream; the other tokens are untouched). ``LC_S(l)`` is the KL divergence between the two
   next-token distributions ``p`` (original) and ``p_l`` (modified) at the last position, i.e. of
   the first generated token, averaged over a small calibration set (Eq. 1-2; direction below).
2. **ShortV layers** (Sec. 3.2). The ``N`` layers with the lowest visual LC become ShortV layers:
   visual tokens are frozen there. They are not queries, receive no attention output, skip the
   MLP, so their hidden state passes through unchanged; they still give keys and values to the
   text tokens (Fig. 3). Saved compute per ShortV layer and visual token: the Q projection, the
   attention scores and output, the O projection and the whole MLP.

Implementation: :func:`apply_shortv` replaces each chosen decoder layer of the language model by a
:class:`FrozenTokenLayer` that holds the original module (no copies of weights) and computes only
what a ShortV layer needs (gathered text positions for Q / attention / O / MLP; K and V for every
position, written to the KV cache as usual). Visual positions are read from ``input_ids ==
image_token_id`` by a forward pre-hook on the model; in cached decoding the new tokens are text, so
a ShortV layer runs its original forward. :func:`remove_shortv` puts the original layers back.
Works on ``LlavaForConditionalGeneration`` (Llama, Qwen2 language models), ``Qwen2VLForConditionalGeneration``
and ``Qwen2_5_VLForConditionalGeneration`` (transformers 5 mixes M-RoPE's sections into cos/sin before the
layers, so the same rotary call applies); any other class is refused with a ``ConfigError`` naming these
(:data:`SUPPORTED_MODELS`), rather than wrapped on trust. The index work of a forward call (positions,
gathered rotary tables, the attention mask) is done once and shared by its wrapped layers.

FastV (Chen et al., 2024, arXiv 2403.06764), the paper's companion method (Table 3), is here as a
second option of the same wrapper: after layer ``K`` the ``R`` fraction of visual tokens that receive
the least attention from the last token in layer ``K-1`` is dropped from the sequence for every
later layer (no queries, keys or values). Both compose: ``apply_shortv(model, layers, fastv=FastVConfig())``.

Choices where the paper is vague (flagged in place):
- KL direction. The paper writes LC as the KL divergence between the original and the modified
  next-token distributions (the spec sheet: ``KL(p || p_l)``); the official code computes
  ``nn.KLDivLoss(reduction="batchmean")(log_softmax(original), softmax(modified))``, which is
  ``KL(p_l || p)``. We follow the official code (it produced the published layer lists) and return
  the other direction too (``LayerContribution.reverse``); ``direction="original_first"`` swaps them.
  Full vocabulary, float64.
- "Removing the transformation" of a token set is the ShortV layer itself (for text tokens: text
  tokens frozen, visual tokens computed), so ``LC_visual(l)`` is exactly what freezing layer ``l``
  alone costs at the first generated token.
- Calibration samples are drawn with a seeded generator (the official sampling is not seeded).
- FastV ranks visual tokens by the attention the last prompt token pays them, averaged over heads
  (FastV's ``last_layer_attention_avg_last_tok``); the prompt must be left-padded so the last position
  is the last token (``generate`` pads left). Kept tokens keep their original positions (RoPE ids).
- Attention in a wrapped layer is computed from gathered queries with an explicit mask (SDPA when the
  model's ``_attn_implementation`` is ``"sdpa"``, else eager matmuls). Sliding-window attention is not
  supported (``ConfigError``).
- FLOPs: Eq. 3-5 of the paper (matmul FLOPs of attention and FFN, 2 per multiply-add, the full square of
  attention scores); the paper computes its ratios with 64 text tokens (v2 Sec. 4.2) and 576 / 2,880 visual
  tokens (LLaVA-1.5 / LLaVA-NeXT, Sec. 4.1): :data:`PAPER_TABLE1` and :func:`paper_tflops` redo Table 1 with them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, NonFiniteError, ShapeError

TOKEN_KINDS = ("visual", "text")
# The model classes the wrapper is tested on (tests/papers/test_shortv.py builds a tiny one of each); any other
# class is refused by apply_shortv / apply_fastv / layer_contribution with a ConfigError naming these.
SUPPORTED_MODELS = ("LlavaForConditionalGeneration", "Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration")
SUPPORTED_LAYERS = ("LlamaDecoderLayer", "Qwen2DecoderLayer", "Qwen2VLDecoderLayer", "Qwen2_5_VLDecoderLayer")

# Table 1 of the paper (arXiv 2504.00502 v2), TFLOPs of the vanilla model and of ShortV with N layers, from each
# model's LLM shapes and the prompt the paper states: 576 visual tokens per image for LLaVA-1.5 and 2,880 for
# LLaVA-NeXT (Sec. 4.1), "we set the number of text tokens to 64" (Sec. 4.2), Eq. 3-5 for the count.
PAPER_TEXT_TOKENS = 64
PAPER_TABLE1 = {
    "LLaVA-1.5-7B": {"hidden": 4096, "intermediate": 11008, "layers": 32, "heads": 32, "visual": 576, "shortv_layers": 19, "tflops": (8.5, 4.7)},
    "LLaVA-1.5-13B": {"hidden": 5120, "intermediate": 13824, "layers": 40, "heads": 40, "visual": 576, "shortv_layers": 24, "tflops": (16.6, 9.1)},
    "LLaVA-NeXT-7B": {"hidden": 4096, "intermediate": 11008, "layers": 32, "heads": 32, "visual": 2880, "shortv_layers": 19, "tflops": (42.7, 21.6)},
    "LLaVA-NeXT-13B": {"hidden": 5120, "intermediate": 13824, "layers": 40, "heads": 40, "visual": 2880, "shortv_layers": 24, "tflops": (81.8, 41.0)},
}


def paper_llm_shapes(name: str):
    """The LLM shapes of a Table-1 model as a config object :func:`prefill_flops` reads (Vicuna = Llama, MHA)."""
    from types import SimpleNamespace

    if name not in PAPER_TABLE1:
        raise ConfigError("name", name, f"one of {', '.join(PAPER_TABLE1)}")
    r = PAPER_TABLE1[name]
    return SimpleNamespace(hidden_size=r["hidden"], intermediate_size=r["intermediate"], num_hidden_layers=r["layers"],
                           num_attention_heads=r["heads"], num_key_value_heads=r["heads"], head_dim=r["hidden"] // r["heads"])


def paper_tflops(name: str, shortv_layers: int | None = None, text_tokens: int = PAPER_TEXT_TOKENS) -> tuple[float, float]:
    """(vanilla, ShortV) TFLOPs of one prompt of a Table-1 model (Eq. 3-5; the ShortV layers' count, not
    which ones, matters), with the paper's prompt: its visual tokens and ``text_tokens`` (64 as stated)."""
    cfg = paper_llm_shapes(name)  # refuses an unknown name
    r = PAPER_TABLE1[name]
    n = r["shortv_layers"] if shortv_layers is None else int(shortv_layers)
    return prefill_flops(cfg, text_tokens, r["visual"]) / 1e12, prefill_flops(cfg, text_tokens, r["visual"], range(n)) / 1e12


@dataclass(frozen=True)
class FastVConfig:
    """FastV's two knobs, defaults from FastV's paper (K = 2, R = 50%), the setting ShortV combines with."""

    k: int = 2  # prune after layer K: layers K, K+1, ... see only the kept visual tokens (scores from layer K-1)
    ratio: float = 0.5  # R: fraction of visual tokens dropped

    def __post_init__(self) -> None:
        if int(self.k) != self.k or self.k < 1:
            raise ConfigError("k", self.k, "an integer >= 1 (FastV needs one layer to score the tokens)")
        if not (0.0 <= self.ratio < 1.0):
            raise ConfigError("ratio", self.ratio, "a fraction in [0, 1)")


# ----------------------------------------------------------------------------- finding the parts


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The language model's decoder layers of an MLLM (or of a plain causal LM)."""
    for path in ("model.language_model.layers", "language_model.layers", "language_model.model.layers", "model.layers", "layers"):
        obj: Any = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ConfigError("model", type(model).__name__, "a transformers MLLM with decoder layers at model.language_model.layers (e.g. LlavaForConditionalGeneration)")


def image_token_id(model: nn.Module) -> int:
    cfg = model.config
    for name in ("image_token_id", "image_token_index"):
        v = getattr(cfg, name, None)
        if v is not None:
            return int(v)
    raise ConfigError("config.image_token_id", None, "the id of the image placeholder token (set it on the model's config)")


# ----------------------------------------------------------------------------- shared state


class _Controller:
    """State shared by the wrapped layers of one model: which positions of the current call are
    visual, which visual positions FastV pruned, and what is frozen where."""

    def __init__(self, model: nn.Module, frozen: dict[int, str], fastv: FastVConfig | None):
        self.image_token_id = image_token_id(model)
        self.frozen = dict(frozen)  # layer index -> "visual" | "text"
        self.fastv = fastv
        self.visual: torch.Tensor | None = None  # (B, T) bool, positions of the current call
        self.override: torch.Tensor | None = None  # set by visual_positions()
        self.pruned: torch.Tensor | None = None  # (B, L_prompt) bool over absolute positions (FastV)
        self.hook = None
        self.memo: dict = {}  # per forward call: index work the wrapped layers share (FrozenTokenLayer._forward_frozen)

    def pre_hook(self, module, args, kwargs):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        decoding = cache is not None and hasattr(cache, "get_seq_length") and cache.get_seq_length() > 0
        if self.override is not None:
            self.visual = self.override
        else:
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None:  # inputs_embeds only: the image positions are unknown, refuse rather than skip ShortV
                raise ConfigError("input_ids", None, "input_ids with the image tokens, or the call inside `with visual_positions(model, mask):`")
            # cached decoding: the new tokens are text, even a generated id equal to the image token's
            self.visual = torch.zeros_like(ids, dtype=torch.bool) if decoding else ids == self.image_token_id
        self.memo = {}
        if not decoding:
            self.pruned = None  # a new prompt: FastV scores again
        return None


def _controller(model: nn.Module) -> _Controller | None:
    return getattr(model, "_shortv_controller", None)


# ----------------------------------------------------------------------------- the wrapped layer


def _gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x: (B, T, ...) -> (B, n, ...) at idx: (B, n)."""
    shape = (*idx.shape, *x.shape[2:])
    return torch.gather(x, 1, idx.reshape(*idx.shape, *([1] * (x.dim() - 2))).expand(shape))


def _positions(mask: torch.Tensor, what: str) -> torch.Tensor:
    """(B, T) bool -> (B, n) indices of the True entries; every row must have the same count."""
    counts = mask.sum(1)
    if (counts != counts[0]).any():
        raise ShapeError(what, tuple(counts.tolist()), "the same number of such positions in every row (one image per prompt, same number of image tokens)")
    n = int(counts[0])
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # True positions first, in order
    return order[:, :n]


class FrozenTokenLayer(nn.Module):
    """A decoder layer in which some positions are frozen (ShortV) or dropped (FastV).

    Holds the original layer as ``.layer``; when nothing is frozen or dropped in a call it runs the
    original forward unchanged. Otherwise, with ``h`` the input hidden states (Fig. 3 of the paper):
    K, V from ``input_layernorm(h)`` at every kept position (into the cache); Q, attention, O and the
    MLP only at the active positions; frozen positions leave the layer as they came in.
    """

    def __init__(self, layer: nn.Module, layer_idx: int, controller: _Controller):
        super().__init__()
        self.layer = layer
        self.layer_idx = layer_idx
        self._ctl = [controller]  # a list: not a submodule, not in state_dict
        attn = layer.self_attn
        for part in ("q_proj", "k_proj", "v_proj", "o_proj"):
            if not hasattr(attn, part):
                raise ConfigError("decoder layer", type(layer).__name__, "a Llama/Qwen2/Mistral-style layer (self_attn.q_proj/k_proj/v_proj/o_proj, mlp, two norms)")
        if getattr(attn, "sliding_window", None):
            raise ConfigError("sliding_window", attn.sliding_window, "None (ShortV's wrapper supports full causal attention only)")
        self._rope = getattr(sys.modules[type(attn).__module__], "apply_rotary_pos_emb", None)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("layer"), name)

    @property
    def controller(self) -> _Controller:
        return self._ctl[0]

    def forward(self, hidden_states: torch.Tensor, attention_mask=None, position_ids=None, cache=None, use_cache=False, position_embeddings=None, **kwargs):
        if cache is None and "past_key_values" in kwargs:
            cache = kwargs.pop("past_key_values")
        ctl = self.controller
        B, T, _ = hidden_states.shape
        vis = ctl.visual
        if vis is not None and tuple(vis.shape) != (B, T):
            if vis.any():  # e.g. a visual_positions() mask left in place for a decoding step
                raise ShapeError("visual position mask", tuple(vis.shape), f"(batch, sequence) = {(B, T)} (pass input_ids, or set visual_positions() for one inputs_embeds forward)")
            vis = None
        kind = ctl.frozen.get(self.layer_idx)
        frozen = torch.zeros(B, T, dtype=torch.bool, device=hidden_states.device)
        if kind is not None and vis is not None:
            frozen = vis if kind == "visual" else ~vis
        fv = ctl.fastv
        scoring = fv is not None and self.layer_idx == fv.k - 1 and vis is not None and bool(vis.any())
        prune_here = fv is not None and self.layer_idx >= fv.k and ctl.pruned is not None
        if kind is None and not scoring and not prune_here:  # nothing frozen or dropped here: the original layer
            return self.layer(hidden_states, attention_mask=attention_mask, position_ids=position_ids, cache=cache, use_cache=use_cache, position_embeddings=position_embeddings, **kwargs)
        memo = ctl.memo.setdefault((kind, prune_here), {})  # index work shared by the wrapped layers of one call
        if "frozen_any" not in memo:
            memo["frozen_any"] = bool(frozen.any())
        if not memo["frozen_any"] and not scoring and not prune_here:
            return self.layer(hidden_states, attention_mask=attention_mask, position_ids=position_ids, cache=cache, use_cache=use_cache, position_embeddings=position_embeddings, **kwargs)
        return self._forward_frozen(hidden_states, frozen, scoring, prune_here, attention_mask, cache, position_embeddings, memo)

    def _forward_frozen(self, h, frozen, scoring, prune_here, attention_mask, cache, position_embeddings, memo):
        """``memo``: positions, gathered rotary tables and the attention mask, computed by the first wrapped
        layer of a forward call and reused by the others with the same frozen kind (they are the same for
        all of them: same positions, same mask); this is most of the wrapper's own cost on a small model."""
        layer, attn, ctl = self.layer, self.layer.self_attn, self.controller
        B, T, D = h.shape
        hd = attn.head_dim
        dev = h.device
        cos, sin = position_embeddings  # (B or 1, T, hd)
        cos, sin = cos.expand(B, -1, -1), sin.expand(B, -1, -1)
        if "act_idx" not in memo:
            # positions of this call that FastV dropped (prompt positions) -> no Q, K, V, MLP
            dropped = torch.zeros(B, T, dtype=torch.bool, device=dev)
            key_drop = None
            if prune_here:
                past_len = cache.get_seq_length(self.layer_idx) if cache is not None else 0
                total = past_len + T
                key_drop = torch.zeros(B, total, dtype=torch.bool, device=dev)
                n = min(ctl.pruned.shape[1], total)
                key_drop[:, :n] = ctl.pruned[:, :n]
                dropped = key_drop[:, past_len:]
            active = ~frozen & ~dropped  # (B, T): positions that get Q / attention / O / MLP
            kv_mask = ~dropped  # (B, T): positions that write K, V
            memo["act_idx"] = _positions(active, "active (not frozen) positions")  # (B, Ta)
            memo["kv_idx"] = None if bool(kv_mask.all()) else _positions(kv_mask, "kept positions")
            memo["keep_idx"] = None if key_drop is None else _positions(~key_drop, "kept keys")  # (B, Tkeep)
            memo["cos_a"], memo["sin_a"] = _gather_rows(cos, memo["act_idx"]), _gather_rows(sin, memo["act_idx"])
        act_idx, kv_idx, keep_idx = memo["act_idx"], memo["kv_idx"], memo["keep_idx"]

        normed = layer.input_layernorm(h)  # (B, T, D)
        # K, V at kept positions (all positions in a ShortV-only layer); dropped ones stay zero in the cache
        if kv_idx is None:
            k = attn.k_proj(normed).view(B, T, -1, hd).transpose(1, 2)  # (B, Hkv, T, hd)
            v = attn.v_proj(normed).view(B, T, -1, hd).transpose(1, 2)
            q_dummy = k.new_zeros(B, 1, T, hd)
            _, k = self._rope(q_dummy, k, cos, sin)
        else:
            x = _gather_rows(normed, kv_idx)
            kk = attn.k_proj(x).view(B, x.shape[1], -1, hd)
            vv = attn.v_proj(x).view(B, x.shape[1], -1, hd)
            hkv = kk.shape[2]
            k = kk.new_zeros(B, T, hkv, hd).scatter(1, kv_idx[:, :, None, None].expand(-1, -1, hkv, hd), kk).transpose(1, 2)
            v = vv.new_zeros(B, T, hkv, hd).scatter(1, kv_idx[:, :, None, None].expand(-1, -1, hkv, hd), vv).transpose(1, 2)
            _, k = self._rope(k.new_zeros(B, 1, T, hd), k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        Tk = k.shape[2]
        past = Tk - T
        if act_idx.shape[1] == 0:  # every position frozen (a prompt of image tokens only): K, V written, nothing else
            return h
        # Q only at active positions (Sec. 3.2: frozen visual tokens are not queries)
        xa = _gather_rows(normed, act_idx)  # (B, Ta, D)
        Ta = xa.shape[1]
        q = attn.q_proj(xa).view(B, Ta, -1, hd).transpose(1, 2)  # (B, Hq, Ta, hd)
        q, _ = self._rope(q, q.new_zeros(B, 1, Ta, hd), memo["cos_a"], memo["sin_a"])
        if "allowed" not in memo:
            # mask rows of the active queries: the model's own mask where it gave one, else causal
            allowed = self._allowed(attention_mask, act_idx, past, Tk, B, dev)  # (B, 1, Ta, Tk) bool
            if keep_idx is not None:  # FastV: dropped tokens are gone from the sequence for this layer
                allowed = torch.gather(allowed, 3, keep_idx[:, None, None, :].expand(-1, 1, Ta, -1))
            memo["allowed"] = allowed
        allowed = memo["allowed"]
        if keep_idx is not None:
            k = torch.gather(k, 2, keep_idx[:, None, :, None].expand(-1, k.shape[1], -1, hd))
            v = torch.gather(v, 2, keep_idx[:, None, :, None].expand(-1, v.shape[1], -1, hd))
        groups = q.shape[1] // k.shape[1]
        if groups > 1:
            k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
        if scoring:  # FastV: attention of the last prompt token over the keys, mean over heads
            self._fastv_select(q[:, :, -1:], k, allowed[:, :, -1:], B, T)
        if getattr(attn.config, "_attn_implementation", "eager") == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=attn.scaling)
        else:
            s = torch.matmul(q, k.transpose(2, 3)) * attn.scaling
            s = s.masked_fill(~allowed, torch.finfo(s.dtype).min)
            out = torch.matmul(torch.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype), v)
        out = attn.o_proj(out.transpose(1, 2).reshape(B, Ta, -1))  # (B, Ta, D)
        idx = act_idx[:, :, None].expand(-1, -1, D)
        h = h.scatter_add(1, idx, out)  # residual + attention output, active positions only
        x = _gather_rows(h, act_idx)
        h = h.scatter_add(1, idx, layer.mlp(layer.post_attention_layernorm(x)))  # + MLP, active positions only
        return h

    def _allowed(self, attention_mask, act_idx, past, Tk, B, dev) -> torch.Tensor:
        if isinstance(attention_mask, dict):
            attention_mask = attention_mask.get("full_attention")
        if attention_mask is None:
            qpos = past + act_idx  # (B, Ta) absolute positions
            return (torch.arange(Tk, device=dev)[None, None, None, :] <= qpos[:, None, :, None])
        m = attention_mask
        if m.dim() != 4:
            raise ShapeError("attention mask", tuple(m.shape), "a 4-D (batch, 1, query, key) mask as transformers' decoder layers receive")
        m = m.expand(B, -1, -1, -1)[:, :, :, :Tk]
        rows = torch.gather(m, 2, act_idx[:, None, :, None].expand(-1, m.shape[1], -1, m.shape[3]))
        if rows.dtype == torch.bool:
            return rows[:, :1]
        return (rows > torch.finfo(rows.dtype).min / 2)[:, :1]

    def _fastv_select(self, q_last, k, allowed_last, B, T) -> None:
        ctl = self.controller
        s = torch.matmul(q_last, k.transpose(2, 3)) * self.layer.self_attn.scaling  # (B, H, 1, Tk)
        s = s.masked_fill(~allowed_last, torch.finfo(s.dtype).min)
        att = torch.softmax(s.float(), -1).mean(1)[:, 0]  # (B, Tk): mean over heads (FastV)
        vis = ctl.visual
        Tk = att.shape[1]
        vis_abs = torch.zeros(B, Tk, dtype=torch.bool, device=att.device)
        vis_abs[:, Tk - T :] = vis
        vis_idx = _positions(vis_abs, "image tokens")  # (B, V)
        n_drop = int(math.floor(ctl.fastv.ratio * vis_idx.shape[1]))
        pruned = torch.zeros(B, Tk, dtype=torch.bool, device=att.device)
        if n_drop > 0:
            scores = torch.gather(att, 1, vis_idx)
            low = torch.topk(scores, n_drop, dim=1, largest=False).indices  # the least attended
            pruned.scatter_(1, torch.gather(vis_idx, 1, low), True)
        ctl.pruned = pruned


# ----------------------------------------------------------------------------- apply / remove


def check_supported(model: nn.Module) -> None:
    """Refuse (``ConfigError`` naming the supported classes) a model class the wrapper is not tested on.

    A class counts by name anywhere in its MRO, so subclasses of a supported class pass; its decoder
    layers must be one of :data:`SUPPORTED_LAYERS` (e.g. a Llava with a Gemma language model, whose
    layers have extra norms, is refused rather than computed wrongly)."""
    names = {c.__name__ for c in type(model).__mro__}
    if not names & set(SUPPORTED_MODELS):
        raise ConfigError("model", type(model).__name__, f"one of the supported MLLM classes: {', '.join(SUPPORTED_MODELS)}")
    layer_names = {c.__name__ for layer in decoder_layers(model) for c in type(getattr(layer, "layer", layer)).__mro__}
    if not layer_names & set(SUPPORTED_LAYERS):
        kinds = sorted({type(getattr(layer, "layer", layer)).__name__ for layer in decoder_layers(model)})
        raise ConfigError("decoder layers", kinds, f"layers of a supported language model: {', '.join(SUPPORTED_LAYERS)}")


def _install(model: nn.Module, frozen: dict[int, str], fastv: FastVConfig | None) -> nn.Module:
    if _controller(model) is not None:
        raise ConfigError("model", "already wrapped", "call remove_shortv(model) before applying again")
    check_supported(model)
    layers = decoder_layers(model)
    L = len(layers)
    bad = [i for i in frozen if not (0 <= i < L)]
    if bad:
        raise ConfigError("layers", sorted(bad), f"indices in [0, {L})")
    if fastv is not None and fastv.k >= L:
        raise ConfigError("fastv.k", fastv.k, f"an integer in [1, {L}) for a {L}-layer model")
    ctl = _Controller(model, frozen, fastv)
    wrap = set(frozen) | (set(range(fastv.k - 1, L)) if fastv is not None else set())
    for i in sorted(wrap):
        layers[i] = FrozenTokenLayer(layers[i], i, ctl)
    ctl.hook = model.register_forward_pre_hook(ctl.pre_hook, with_kwargs=True)
    model._shortv_controller = ctl
    return model


def apply_shortv(model: nn.Module, layers: Iterable[int], fastv: FastVConfig | None = None) -> nn.Module:
    """Make ``layers`` ShortV layers (visual tokens frozen) in place; optionally add FastV pruning.

    ``model``: an MLLM whose config has ``image_token_id`` and whose decoder layers sit at
    ``model.language_model.layers`` (`LlavaForConditionalGeneration` with a Llama or Qwen2 language
    model, `Qwen2VLForConditionalGeneration`, `Qwen2_5_VLForConditionalGeneration`; see :data:`SUPPORTED_MODELS`: any other
    class raises `ConfigError` naming them). Returns the same model; undo with :func:`remove_shortv`.
    Save the model unwrapped: the wrapper changes ``state_dict`` keys (``layers.i.layer.*``).
    """
    layers = sorted({int(i) for i in layers})
    return _install(model, {i: "visual" for i in layers}, fastv)


def apply_fastv(model: nn.Module, config: FastVConfig | None = None) -> nn.Module:
    """FastV alone: :func:`apply_shortv` with no ShortV layer."""
    return _install(model, {}, config or FastVConfig())


def remove_shortv(model: nn.Module) -> nn.Module:
    """Put the original decoder layers back and remove the hook (no-op on an unwrapped model)."""
    ctl = _controller(model)
    if ctl is None:
        return model
    layers = decoder_layers(model)
    for i, layer in enumerate(layers):
        if isinstance(layer, FrozenTokenLayer):
            layers[i] = layer.layer
    ctl.hook.remove()
    del model._shortv_controller
    return model


class visual_positions:
    """Context manager: give the visual-position mask (B, T) explicitly (e.g. when calling with
    ``inputs_embeds``, or the language model directly)."""

    def __init__(self, model: nn.Module, mask: torch.Tensor):
        self.ctl = _controller(model)
        if self.ctl is None:
            raise ConfigError("model", "not wrapped", "call apply_shortv / apply_fastv first")
        self.mask = mask.bool()

    def __enter__(self):
        self.ctl.override = self.mask
        self.ctl.visual = self.mask
        self.ctl.pruned = None
        self.ctl.memo = {}
        return self

    def __exit__(self, *exc):
        self.ctl.override = None
        return False


# ----------------------------------------------------------------------------- layer contribution


@dataclass
class LayerContribution:
    """LC per layer (Eq. 2), averaged over the calibration samples, and per sample."""

    visual: np.ndarray  # (L,) mean KL when layer l's updates of the visual tokens are removed
    text: np.ndarray  # (L,) same for the text tokens
    per_sample_visual: np.ndarray  # (S, L)
    per_sample_text: np.ndarray  # (S, L)
    direction: str = "modified_first"  # "modified_first": KL(p_l || p) as the official code; "original_first": KL(p || p_l)
    reverse: dict | None = None  # {"visual": (L,), "text": (L,)}: the same means with the other KL direction

    def lowest(self, n: int) -> list[int]:
        """The ``n`` layers of lowest visual LC: the ShortV layers (Sec. 3.2), sorted by index."""
        if not (0 <= n <= len(self.visual)):
            raise ConfigError("n", n, f"an integer in [0, {len(self.visual)}]")
        return sorted(int(i) for i in np.argsort(self.visual, kind="stable")[:n])


def calibration_samples(samples: Sequence[Any], n: int, seed: int = 0) -> list[Any]:
    """``n`` samples drawn without replacement, seeded (the official sampling is not seeded)."""
    if not (1 <= n <= len(samples)):
        raise ConfigError("n", n, f"an integer in [1, {len(samples)}]")
    idx = np.random.default_rng(seed).choice(len(samples), size=n, replace=False)
    return [samples[int(i)] for i in sorted(idx)]


def _kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p || q) = sum p (log p - log q) per row, from log-probabilities, float64 (Eq. 2)."""
    logp, logq = logp.double(), logq.double()
    return (logp.exp() * (logp - logq)).sum(-1)


@torch.no_grad()
def _last_logprobs(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    out = model(**inputs)
    logits = out.logits[:, -1]
    if not torch.isfinite(logits).all():
        raise NonFiniteError("next-token logits", "NaN/inf", fix="check the model's weights and inputs")
    return torch.log_softmax(logits.double(), -1)


def _prepare(processor: Any, batch: Sequence[Any], device) -> dict[str, torch.Tensor]:
    if isinstance(batch, dict):
        inputs = batch
    else:
        images = [s["image"] for s in batch]
        texts = [s["text"] for s in batch]
        inputs = processor(images=images, text=texts, return_tensors="pt", padding=True)  # left padding: set the tokenizer's padding_side
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in dict(inputs).items()}


KL_DIRECTIONS = ("modified_first", "original_first")


def layer_contribution(model: nn.Module, processor: Any, samples: Sequence[Any], *, n: int | None = None, seed: int = 0, batch_size: int = 8, kinds: Sequence[str] = TOKEN_KINDS, direction: str = "modified_first", progress: bool = True) -> LayerContribution:
    """Layer Contribution (Sec. 3.1, Eq. 1-2) of every decoder layer for visual and text tokens.

    ``samples``: dicts ``{"image": ..., "text": ...}`` turned into model inputs by
    ``processor(images=[...], text=[...], return_tensors="pt")`` (a transformers ``LlavaProcessor``
    or ours); the prompt must end where the answer starts (left padding in a batch). ``n``: draw
    that many calibration samples, seeded by ``seed``; default all. For each layer ``l`` and kind,
    the model runs with that layer's attention and MLP updates removed at the positions of that kind
    and ``LC(l) = KL(p_l || p)`` at the last position (the first generated token; the official
    code's direction, ``direction="original_first"`` for ``KL(p || p_l)``; both are returned).
    """
    if direction not in KL_DIRECTIONS:
        raise ConfigError("direction", direction, f"one of {KL_DIRECTIONS}")
    for k in kinds:
        if k not in TOKEN_KINDS:
            raise ConfigError("kinds", kinds, f"a subset of {TOKEN_KINDS}")
    if _controller(model) is not None:
        raise ConfigError("model", "wrapped by apply_shortv", "measure LC on the unmodified model (remove_shortv first)")
    check_supported(model)
    if n is not None:
        samples = calibration_samples(samples, n, seed)
    if len(samples) == 0:
        raise ConfigError("samples", 0, "at least one calibration sample")
    L = len(decoder_layers(model))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    per = {k: [] for k in TOKEN_KINDS}
    rev = {k: [] for k in TOKEN_KINDS}
    batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    from ...runtime import track

    it = track(batches, "layer contribution") if progress else batches
    try:
        for batch in it:
            inputs = _prepare(processor, batch, device)
            base = _last_logprobs(model, inputs)
            for kind in TOKEN_KINDS:
                if kind not in kinds:
                    nan = torch.full((base.shape[0], L), float("nan"), dtype=torch.float64)
                    per[kind].append(nan)
                    rev[kind].append(nan)
                    continue
                fwd, bwd = [], []
                for l in range(L):
                    _install(model, {l: kind}, None)
                    try:
                        mod = _last_logprobs(model, inputs)
                    finally:
                        remove_shortv(model)
                    fwd.append(_kl(mod, base))  # KL(p_l || p): the official code's KLDivLoss(log p, p_l)
                    bwd.append(_kl(base, mod))  # KL(p || p_l)
                a, b = torch.stack(fwd, 1).cpu(), torch.stack(bwd, 1).cpu()
                if direction == "original_first":
                    a, b = b, a
                per[kind].append(a)
                rev[kind].append(b)
    finally:
        model.train(was_training)
    vis, txt = torch.cat(per["visual"]).numpy(), torch.cat(per["text"]).numpy()
    reverse = {k: torch.cat(rev[k]).numpy().mean(0) for k in TOKEN_KINDS}
    return LayerContribution(vis.mean(0), txt.mean(0), vis, txt, direction, reverse)


# ----------------------------------------------------------------------------- FLOPs


def layer_flops(cfg: Any, n_query: int, n_kv: int, n_keys: int, batch: int = 1, scoring_keys: int = 0) -> int:
    """Matmul FLOPs of one decoder layer (2 per multiply-add, as ``torch.utils.flop_counter``).

    n_query: positions with Q / attention / O / MLP; n_kv: positions whose K, V are computed;
    n_keys: keys each query attends over (past + current, after any pruning). With all three equal
    to n this is the paper's ``2n(4h + 3m)h + 4n^2 h`` for MHA (Sec. 4.1); GQA shrinks K and V.
    """
    D, I = cfg.hidden_size, cfg.intermediate_size
    Hq, Hkv = cfg.num_attention_heads, cfg.num_key_value_heads or cfg.num_attention_heads
    hd = getattr(cfg, "head_dim", None) or D // Hq
    f = 2 * n_query * D * Hq * hd  # Q projection
    f += 2 * 2 * n_kv * D * Hkv * hd  # K and V projections
    f += 2 * 2 * n_query * n_keys * Hq * hd  # scores QK^T and weighted sum AV
    f += 2 * n_query * Hq * hd * D  # O projection
    f += 3 * 2 * n_query * D * I  # gated MLP: gate, up, down
    f += 2 * scoring_keys * Hq * hd  # FastV: last-token scores in layer K-1
    return batch * f


def prefill_flops(cfg: Any, n_text: int, n_visual: int, shortv_layers: Iterable[int] = (), fastv: FastVConfig | None = None, batch: int = 1, n_layers: int | None = None) -> int:
    """Decoder FLOPs of one prompt pass (n_text + n_visual tokens per row), per Sec. 4.1's count."""
    L = n_layers or cfg.num_hidden_layers
    frozen = set(shortv_layers)
    n = n_text + n_visual
    kept_visual = n_visual - (int(math.floor(fastv.ratio * n_visual)) if fastv else 0)
    total = 0
    for l in range(L):
        vis = kept_visual if (fastv and l >= fastv.k) else n_visual
        n_l = n_text + vis
        nq = n_text if l in frozen else n_l
        score = n if (fastv and l == fastv.k - 1 and n_visual > 0) else 0
        total += layer_flops(cfg, nq, n_l, n_l, batch, scoring_keys=score)
    return total


def generation_flops(cfg: Any, n_text: int, n_visual: int, new_tokens: int, shortv_layers: Iterable[int] = (), fastv: FastVConfig | None = None, batch: int = 1) -> int:
    """Decoder FLOPs of ``generate``: the prompt pass plus ``new_tokens - 1`` cached decoding steps
    (the last generated token is never fed back). Decoding steps are text: ShortV saves nothing
    there; FastV shortens their keys."""
    L = cfg.num_hidden_layers
    total = prefill_flops(cfg, n_text, n_visual, shortv_layers, fastv, batch)
    dropped = int(math.floor(fastv.ratio * n_visual)) if fastv else 0
    n = n_text + n_visual
    for s in range(1, new_tokens):
        for l in range(L):
            keys = n + s - (dropped if (fastv and l >= fastv.k) else 0)
            total += layer_flops(cfg, 1, 1, keys, batch)
    return total


def measured_flops(fn, *args, **kwargs) -> int:
    """FLOPs of ``fn(*args, **kwargs)`` counted by ``torch.utils.flop_counter.FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())
