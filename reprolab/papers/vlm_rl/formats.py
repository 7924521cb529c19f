"""Step 1 of MAYE (data flow): samples -> model inputs, for the model formats the trainer runs on.

- :func:`chat_collate`: a real HF processor (``LlavaProcessor``, ``Qwen2VLProcessor``, ``Qwen2_5_VLProcessor``)
  with its chat template, the image first and the question followed by ``CHAT_COT_PROMPT``
  (``maye/datasets/math.py``), left-padded, as the official collator;
- :func:`text_collate`: a plain causal LM (a tokenizer with or without a chat template; no image);
- :func:`shapes_collate`: our tiny shapes Llava (:mod:`reprolab.nn.mllm`), whose word-level vocabulary has no
  room for the English instruction: its prompt is the question alone (SFT taught it to box the answer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ...errors import ConfigError

CHAT_COT_PROMPT = ("\nSolve the above mathematics problem, write out the solution process according to the question, and use the same LaTeX format "
                   "as the question in the solution process. Please display the final answer in the format \\boxed{}.")


def _check(samples: Sequence[dict], keys: tuple[str, ...]) -> None:
    for i, s in enumerate(samples):
        missing = [k for k in keys if k not in s]
        if missing:
            raise ConfigError(f"samples[{i}]", sorted(s), f"a dict with keys {', '.join(keys)}")


def chat_collate(processor, prompt: str = CHAT_COT_PROMPT):
    """A collator for an HF multimodal processor: one image and one question per sample."""
    processor.tokenizer.padding_side = "left"

    def collate(samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        _check(samples, ("image", "question"))
        texts = []
        for s in samples:
            msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": s["question"] + prompt}]}]
            texts.append(processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False))
        images = [s["image"] for s in samples]
        return dict(processor(images=images, text=texts, return_tensors="pt", padding=True))

    return collate


def text_collate(tokenizer, prompt: str = CHAT_COT_PROMPT, chat: bool | None = None):
    """A collator for a plain causal LM: the question (+ ``prompt``), through the chat template when the tokenizer has one."""
    tokenizer.padding_side = "left"
    use_chat = bool(getattr(tokenizer, "chat_template", None)) if chat is None else chat

    def collate(samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        _check(samples, ("question",))
        texts = [s["question"] + prompt for s in samples]
        if use_chat:
            texts = [tokenizer.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True, tokenize=False) for t in texts]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not use_chat)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    return collate


def shapes_collate(processor):
    """A collator for :class:`reprolab.nn.mllm.ShapesVQAProcessor` (image first, then the question)."""

    def collate(samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        _check(samples, ("image", "question"))
        return processor(images=[np.asarray(s["image"]) for s in samples], text=[s["question"] for s in samples])

    return collate
