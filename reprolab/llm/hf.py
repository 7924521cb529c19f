"""transformers backend on a local model folder (``save_pretrained`` output; never a hub id at run time).

    llm = TransformersLLM("path/to/folder")           # AutoModelForCausalLM + AutoTokenizer, local files only

Sampling uses ``model.generate`` with a seeded ``torch.Generator``-free path: ``torch.manual_seed``
is set from the sample's seed right before generating (transformers has no per-call generator),
so sample i is reproducible on its own. Log-probabilities come from a teacher-forced forward
over prompt + generated tokens (the model's distribution before temperature, as OpenAI reports).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from .base import LLM, Completion, LLMError, Message, Sampling, TokenLogprob, apply_stops, continuation_positions
from .chat_template import PLAIN_TEMPLATE, render_chat


class TransformersLLM(LLM):
    def __init__(self, model_dir: str | os.PathLike, *, device: str | None = None, dtype: str = "float32",
                 name: str | None = None, model=None, tokenizer=None):
        super().__init__()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model_dir)
        if model is None:
            if not path.is_dir():
                raise ConfigError("model_dir", str(path), "a local folder written by save_pretrained (no hub downloads)")
            try:
                tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=getattr(torch, dtype))
            except (OSError, ValueError) as exc:
                raise LLMError(f"transformers could not load {path}: {exc}", fix="pass a folder with config.json, weights and tokenizer files") from exc
        self.model = model.eval()
        if device is not None:
            self.model.to(device)
        self.tok = tokenizer
        self.device = next(self.model.parameters()).device
        self.name = name or f"hf:{path.name}"

    def format_chat(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        tmpl = getattr(self.tok, "chat_template", None)
        if tmpl:
            return self.tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
        return render_chat(PLAIN_TEMPLATE, messages, add_generation_prompt=add_generation_prompt)

    def _ids(self, text: str):
        import torch

        ids = self.tok(text, add_special_tokens=True, return_tensors="pt")["input_ids"]
        return ids.to(self.device) if ids.numel() else torch.zeros((1, 0), dtype=torch.long, device=self.device)

    def _complete_one(self, prompt: str, s: Sampling) -> Completion:
        import torch

        ids = self._ids(prompt)
        t0 = time.perf_counter()
        torch.manual_seed(s.seed)
        kw = dict(max_new_tokens=s.max_tokens, do_sample=s.temperature > 0, pad_token_id=self.tok.pad_token_id or self.tok.eos_token_id)
        if s.temperature > 0:
            kw |= dict(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k or None)
        if s.stop:
            kw["stop_strings"] = list(s.stop)
            kw["tokenizer"] = self.tok
        with torch.no_grad():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), **kw)
        new = out[0, ids.shape[1]:]
        raw = self.tok.decode(new, skip_special_tokens=True)
        text, stopped = apply_stops(raw, s.stop)
        finish = "stop" if stopped or (len(new) < s.max_tokens) else "length"
        seconds = time.perf_counter() - t0
        tokens = self._token_logprobs(ids[0], new, s.logprobs) if s.logprobs is not None else None
        return Completion(text=text, finish_reason=finish, tokens=tokens, prompt_tokens=int(ids.shape[1]),
                          completion_tokens=int(len(new)), seconds=seconds)

    def _logprob_rows(self, ids):
        import torch

        with torch.no_grad():
            logits = self.model(ids[None]).logits[0].float()
        return torch.log_softmax(logits, dim=-1)

    def _token_logprobs(self, prompt_ids, new_ids, k: int) -> list[TokenLogprob]:
        import torch

        full = torch.cat([prompt_ids, new_ids])
        rows = self._logprob_rows(full)
        out = []
        for j, tok in enumerate(new_ids.tolist()):
            r = rows[len(prompt_ids) + j - 1]
            top = {}
            if k:
                vals, idx = r.topk(k)
                for v, i in zip(vals.tolist(), idx.tolist()):
                    top.setdefault(self.tok.decode([i]), v)
            out.append(TokenLogprob(self.tok.decode([tok]), float(r[tok]), top))
        return out

    def next_token_logprobs(self, prompt: str, top_k: int = 20) -> dict[str, float]:
        ids = self._ids(prompt)[0]
        if ids.numel() == 0:
            raise ConfigError("prompt", prompt, "a non-empty prompt")
        r = self._logprob_rows(ids)[-1]
        vals, idx = r.topk(min(top_k, r.numel()))
        out: dict[str, float] = {}
        for v, i in zip(vals.tolist(), idx.tolist()):
            out.setdefault(self.tok.decode([i]), v)
        return out

    def choice_logprobs(self, prompt: str, choices: Sequence[str]) -> dict[str, float]:
        ids = self._ids(prompt)[0]
        r = self._logprob_rows(ids)[-1]
        out = {}
        for c in choices:
            full = self._ids(prompt + c)[0]
            if len(full) <= len(ids) or not bool((full[: len(ids)] == ids).all()):
                out[c] = float("nan")  # the choice merges with the prompt's last token
                continue
            out[c] = float(r[int(full[len(ids)])])
        return out

    def score(self, text: str, prefix: str = "") -> float:
        full = self._ids(prefix + text)[0]
        ids = full.tolist()
        positions = continuation_positions(self._ids(prefix)[0].tolist(), ids)
        if not positions:
            return 0.0
        rows = self._logprob_rows(full)
        return float(sum(float(rows[i, ids[i + 1]]) for i in positions))
