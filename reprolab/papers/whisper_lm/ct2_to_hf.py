"""A CTranslate2 Whisper folder (faster-whisper's format, the only offline Whisper weights here) read back into a
transformers ``WhisperForConditionalGeneration``, so the HF decoder with its KV cache can run Whisper-LM's fusion.

CTranslate2's ``model.bin`` (format version 6) is a header (version, spec name, revision), then for each variable its
name, shape, dtype and raw bytes, then aliases (``decoder/projection/weight`` -> the token embeddings). The converter
from transformers fused the self-attention q, k, v projections into ``linear_0`` (rows q, k, v; k's bias is the
zero HF Whisper omits) and the cross-attention k, v into ``linear_1``; layer norms are ``gamma`` / ``beta``. The
config comes from the weights' shapes and ``config.json``'s special tokens. The conversion is checked against
CTranslate2 itself: encoder states and next-token log-probabilities agree to float16 rounding (tested on tiny.en).

    model = load_ct2_whisper("whisper-tiny.en")        # an asset name or a CTranslate2 folder

Why: CTranslate2 keeps no decoder state between calls, so our fusion search re-runs the decoder over the prefix at
every step; HF's ``generate`` with a KV cache and :class:`~.integrations.WhisperLMLogitsProcessor` does not. Measured
on tiny.en with a 3-gram (2 threads, shared cores, 2026-12-02): 1.3-1.5 s per utterance against 2.7-4.4 s, the same
transcript on one of two utterances (HF's beam search differs in details such as length normalisation).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import MalformedFile

__all__ = ["load_ct2_whisper", "read_ct2_variables"]

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # CTranslate2's DataType enum (bfloat16 = 5 is not read)


def read_ct2_variables(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 ``model.bin`` (format version 6), aliases resolved."""
    path = Path(path)
    with open(path, "rb") as f:
        def u(fmt: str) -> Any:
            size = struct.calcsize(fmt)
            data = f.read(size)
            if len(data) != size:
                raise MalformedFile(str(path), "truncated CTranslate2 model file", fix="reinstall the model (reprolab assets install ...)")
            return struct.unpack(fmt, data)

        def string() -> str:
            (n,) = u("<H")
            return f.read(n).decode("utf-8").rstrip("\x00")

        (version,) = u("<I")
        if version != 6:
            raise MalformedFile(str(path), f"CTranslate2 model format version {version}, this reader knows 6",
                                fix="convert the model with a CTranslate2 4.x converter")
        spec = string()
        if spec != "WhisperSpec":
            raise MalformedFile(str(path), f"a {spec}, not a Whisper model", fix="pass a faster-whisper/CTranslate2 Whisper folder")
        u("<I")  # spec revision
        (count,) = u("<I")
        out: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = string()
            (rank,) = u("<B")
            dims = u("<" + "I" * rank) if rank else ()
            (dtype,) = u("<B")
            (nbytes,) = u("<I")
            raw = f.read(nbytes)
            if dtype not in _DTYPES:
                raise MalformedFile(str(path), f"variable {name} has data type {dtype}", fix="convert the model with --quantization float32 or float16")
            out[name] = np.frombuffer(raw, dtype=_DTYPES[dtype]).reshape(dims)
        (n_alias,) = u("<I")
        for _ in range(n_alias):
            alias, target = string(), string()
            out[alias] = out[target]
    return out


def _folder(model: str | os.PathLike) -> Path:
    p = Path(model)
    if (p / "model.bin").exists():
        return p
    from ... import assets

    return Path(assets.path(str(model)))


def load_ct2_whisper(model: str | os.PathLike, dtype: Any = None) -> Any:
    """A ``WhisperForConditionalGeneration`` with the weights of a CTranslate2 Whisper folder or asset (eval mode)."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    folder = _folder(model)
    v = read_ct2_variables(folder / "model.bin")
    cfg_json = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
    def n_layers(side: str) -> int:
        return 1 + max(int(k.split("/")[1][6:]) for k in v if k.startswith(f"{side}/layer_") and k.split("/")[1][6:].isdigit())

    n_enc, n_dec = n_layers("encoder"), n_layers("decoder")
    vocab, d = v["decoder/embeddings/weight"].shape
    heads = int(v["encoder/num_heads"]) if "encoder/num_heads" in v else max(1, d // 64)
    tok = json.loads((folder / "tokenizer.json").read_text()) if (folder / "tokenizer.json").exists() else {}
    added = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    eot = added.get("<|endoftext|>", 50256 if vocab == 51864 else 50257)
    sot = added.get("<|startoftranscript|>", eot + 1)
    config = WhisperConfig(vocab_size=vocab, num_mel_bins=v["encoder/conv1/weight"].shape[1], d_model=d, encoder_layers=n_enc,
                           decoder_layers=n_dec, encoder_attention_heads=heads, decoder_attention_heads=int(v.get("decoder/num_heads", heads)),
                           encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
                           decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
                           max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
                           max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
                           pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
                           suppress_tokens=cfg_json.get("suppress_ids"), begin_suppress_tokens=cfg_json.get("suppress_ids_begin"))
    model = WhisperForConditionalGeneration(config)
    sd: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/weight"]
        if f"{src}/bias" in v:
            sd[f"{dst}.bias"] = v[f"{src}/bias"]

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = v[f"{src}/gamma"], v[f"{src}/beta"]

    def qkv(dst: str, src: str) -> None:
        w, b = np.split(v[f"{src}/weight"], 3), np.split(v[f"{src}/bias"], 3)
        for name, wi, bi in zip(("q_proj", "k_proj", "v_proj"), w, b):
            sd[f"{dst}.{name}.weight"] = wi
            if name != "k_proj":  # HF Whisper's key projection has no bias (CTranslate2 stores zeros)
                sd[f"{dst}.{name}.bias"] = bi

    def self_attention_and_ffn(t: str, s: str) -> None:  # shared by encoder and decoder layers
        qkv(f"{t}.self_attn", f"{s}/self_attention/linear_0")
        linear(f"{t}.self_attn.out_proj", f"{s}/self_attention/linear_1")
        norm(f"{t}.self_attn_layer_norm", f"{s}/self_attention/layer_norm")
        linear(f"{t}.fc1", f"{s}/ffn/linear_0")
        linear(f"{t}.fc2", f"{s}/ffn/linear_1")
        norm(f"{t}.final_layer_norm", f"{s}/ffn/layer_norm")

    e, dd = "model.encoder", "model.decoder"
    for i in (1, 2):
        linear(f"{e}.conv{i}", f"encoder/conv{i}")
    sd[f"{e}.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    norm(f"{e}.layer_norm", "encoder/layer_norm")
    for i in range(n_enc):
        self_attention_and_ffn(f"{e}.layers.{i}", f"encoder/layer_{i}")
    sd[f"{dd}.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    sd[f"{dd}.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    norm(f"{dd}.layer_norm", "decoder/layer_norm")
    for i in range(n_dec):
        s, t = f"decoder/layer_{i}", f"{dd}.layers.{i}"
        self_attention_and_ffn(t, s)
        linear(f"{t}.encoder_attn.q_proj", f"{s}/attention/linear_0")
        (kw, vw), (_kb, vb) = np.split(v[f"{s}/attention/linear_1/weight"], 2), np.split(v[f"{s}/attention/linear_1/bias"], 2)
        # the cross-attention key bias (_kb) is the zero HF Whisper omits
        sd[f"{t}.encoder_attn.k_proj.weight"], sd[f"{t}.encoder_attn.v_proj.weight"], sd[f"{t}.encoder_attn.v_proj.bias"] = kw, vw, vb
        linear(f"{t}.encoder_attn.out_proj", f"{s}/attention/linear_2")
        norm(f"{t}.encoder_attn_layer_norm", f"{s}/attention/layer_norm")
    state = {k: torch.from_numpy(np.array(a, dtype=np.float32)) for k, a in sd.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]  # tied to the token embeddings
    if missing or unexpected:
        raise MalformedFile(str(folder / "model.bin"), f"unmapped weights: missing {missing[:3]}, unexpected {unexpected[:3]}",
                            fix="this reader maps CTranslate2 4.x Whisper conversions; report the model")
    model.tie_weights()
    model.eval()
    return model.to(dtype) if dtype is not None else model
