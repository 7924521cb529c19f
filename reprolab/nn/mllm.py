"""A small MLLM that answers questions about shapes scenes: a tiny ``LlavaForConditionalGeneration``
(CLIP-style vision tower, two-layer projector, Llama or Qwen2 language model) trained from scratch.

Why from scratch (option A of the spec sheet) and not EfficientNet-Lite0 features into a small
pretrained LM (option B): no pretrained VLM or small chat LM fits the CPU budget as a *trainable*
language model with LLaVA's real classes, while a tiny Llava trained on exact-answer questions
reaches well-above-chance accuracy in about a minute of one CPU thread, uses the very classes the
method wraps (``LlavaForConditionalGeneration``, ``LlamaDecoderLayer``), and keeps the visual-token
/ text-token split of LLaVA (image placeholder tokens expanded in ``input_ids``). Departure: our
model is trained end to end on one task family, so its layers may be used differently than in
LLaVA-1.5-7B; the study says so. Since study v4 the study reads the CLIP patch embeddings
(``vision_feature_layer=0``): no layer mixes patches before the language model, which then has to relate them
(issue 20: with a CLIP layer in front, the language model barely worked on the visual tokens).

    tok = build_tokenizer()
    model = build_mllm(MLLMConfig(), tok)
    proc = ShapesVQAProcessor(tok, model.config)
    inputs = proc(images=[img], text=["what colour is the circle ?"], return_tensors="pt")
    answer = tok.decode(model(**inputs).logits[:, -1].argmax(-1))

Prompt: ``<bos> <image> x N question-words`` (left-padded in a batch); the answer is the next
token, one word of :func:`reprolab.data.vqa_shapes.answer_vocabulary`, so "first generated token"
accuracy is exact-match accuracy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..data.vqa_shapes import VQADataset, answer_vocabulary, question_vocabulary
from ..errors import ConfigError, NonFiniteError, ShapeError
from ..runtime import track

SPECIALS = ("<pad>", "<unk>", "<bos>", "<image>")
EOS = "<eos>"  # only in tokenizers built with extra words (multi-token answers)


@dataclass(frozen=True)
class MLLMConfig:
    language_model: str = "llama"  # "llama" or "qwen2"
    image_size: int = 32  # input pixels per side
    patch_size: int = 8  # CLIP patch: (image_size / patch_size)^2 visual tokens
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_feature_layer: int = -1  # which hidden state of the vision tower feeds the projector (0 = patch embeddings only)
    hidden: int = 64  # language model width
    layers: int = 8  # language model depth (enough for a per-layer LC curve)
    heads: int = 4
    kv_heads: int = 2  # grouped-query attention as in Qwen2 / Llama-3
    intermediate: int = 128
    attn_implementation: str = "eager"  # eager: every matmul visible to torch's FLOP counter

    def __post_init__(self) -> None:
        if self.language_model not in ("llama", "qwen2"):
            raise ConfigError("language_model", self.language_model, "'llama' or 'qwen2'")
        if self.image_size % self.patch_size:
            raise ConfigError("patch_size", self.patch_size, f"a divisor of image_size={self.image_size}")
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise ConfigError("heads", (self.hidden, self.heads, self.kv_heads), "hidden divisible by heads, heads divisible by kv_heads")

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def build_tokenizer(extra_words: Sequence[str] = ()):
    """A word-level ``PreTrainedTokenizerFast`` over the VQA words (built offline, no files).

    ``extra_words`` (e.g. :func:`reprolab.data.visual_math.vocabulary`) extends the vocabulary after the VQA
    words and adds an ``<eos>`` token for multi-token answers; without them the tokenizer is the one-word-answer
    tokenizer of old (same ids, no EOS: the model then uses ``<pad>`` as its end token)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = list(SPECIALS) + sorted(set(question_vocabulary()) | set(answer_vocabulary()))
    if extra_words:
        words += [EOS] + sorted(set(extra_words) - set(words))
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if not extra_words:
        return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", padding_side="left")
    tk.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with one space
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token=EOS, padding_side="left")


def _feature_layer(cfg: MLLMConfig) -> int:
    """The LlavaConfig index of the vision hidden state fed to the projector. Index 0 (the patch embeddings) is
    written as -(vision_layers + 1), the same hidden state: transformers 5.24 passes the index on as
    ``output_hidden_states``, where 0 reads as False and no hidden state is kept."""
    return -(cfg.vision_layers + 1) if cfg.vision_feature_layer == 0 else cfg.vision_feature_layer


def build_mllm(cfg: MLLMConfig, tokenizer, seed: int = 0):
    """A randomly initialised ``LlavaForConditionalGeneration`` of ``cfg`` (seeded)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, Qwen2Config

    vision = CLIPVisionConfig(hidden_size=cfg.vision_hidden, intermediate_size=2 * cfg.vision_hidden, num_hidden_layers=cfg.vision_layers, num_attention_heads=4, image_size=cfg.image_size, patch_size=cfg.patch_size, projection_dim=cfg.vision_hidden)
    common = dict(vocab_size=len(tokenizer), hidden_size=cfg.hidden, intermediate_size=cfg.intermediate, num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, num_key_value_heads=cfg.kv_heads, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=_eos_id(tokenizer))
    text = LlamaConfig(**common) if cfg.language_model == "llama" else Qwen2Config(**common, use_sliding_window=False)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids("<image>"), image_seq_length=cfg.image_tokens, vision_feature_select_strategy="default", vision_feature_layer=_feature_layer(cfg), projector_hidden_act="gelu")
    config._attn_implementation = cfg.attn_implementation
    config.text_config._attn_implementation = cfg.attn_implementation
    config.vision_config._attn_implementation = cfg.attn_implementation
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if tokenizer.eos_token_id is not None:  # multi-token answers stop at <eos>
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def _eos_id(tokenizer) -> int:
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id


class ShapesVQAProcessor:
    """Turns images and questions into Llava inputs, like a ``LlavaProcessor``: the image
    placeholder is expanded to ``image_seq_length`` tokens; batches are left-padded.

    ``question_first=False`` (default): ``<bos> <image>... question`` (LLaVA-1.5's evaluation order). ``True``:
    ``<bos> question <image>... last-word``: the question before the image (an order LLaVA's training data also uses,
    "...\n<image>"), then the question's last word again as the cue where the answer is read (the word vocabulary has
    no "ASSISTANT:" token). Then the visual tokens can attend to the question and only one text position follows them."""

    def __init__(self, tokenizer, config, question_first: bool = False):
        self.tokenizer = tokenizer
        self.image_tokens = int(config.image_seq_length)
        self.image_size = int(config.vision_config.image_size)
        self.question_first = bool(question_first)

    def __call__(self, images, text, return_tensors: str = "pt", padding: bool = True) -> dict[str, torch.Tensor]:
        """``padding`` is accepted for ``LlavaProcessor`` compatibility; batches are always left-padded."""
        if isinstance(text, str):
            text, images = [text], [images]
        if len(images) != len(text):
            raise ShapeError("images", len(images), f"one image per question ({len(text)} questions)")
        pix = torch.as_tensor(np.stack([np.asarray(im, dtype=np.float32) for im in images]))
        if pix.dim() != 4 or tuple(pix.shape[1:]) != (3, self.image_size, self.image_size):
            raise ShapeError("images", tuple(pix.shape), f"(N, 3, {self.image_size}, {self.image_size}) floats in [0, 1]")
        if self.question_first:
            prompts = ["<bos> " + q + " " + "<image> " * self.image_tokens + (q.split() or [""])[-1] for q in text]
        else:
            prompts = ["<bos> " + "<image> " * self.image_tokens + q for q in text]
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        if (enc["input_ids"] == self.tokenizer.unk_token_id).any():
            raise ConfigError("text", [t for t in text], "questions made of the VQA vocabulary (reprolab.data.vqa_shapes)")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "pixel_values": (pix - 0.5) / 0.5}


def answer_ids(tokenizer, answers: list[str]) -> torch.Tensor:
    return torch.tensor(tokenizer.convert_tokens_to_ids(list(answers)), dtype=torch.long)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 600
    batch: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup: int = 30


@dataclass
class TrainOutput:
    losses: list[float]  # "train/loss": cross-entropy of the answer token (lower is better)
    seconds: float


def train_mllm(model, processor: ShapesVQAProcessor, data: VQADataset, cfg: TrainConfig, seed: int = 0) -> TrainOutput:
    """Train every weight on the answer token's cross-entropy (AdamW, warmup + cosine)."""
    import time

    tok = processor.tokenizer
    enc = processor(images=list(data.images), text=data.questions)
    targets = answer_ids(tok, data.answers)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
    g = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    t0 = time.perf_counter()
    for _ in track(range(cfg.steps), "train MLLM"):
        idx = torch.randint(0, len(targets), (cfg.batch,), generator=g)
        out = model(input_ids=enc["input_ids"][idx], attention_mask=enc["attention_mask"][idx], pixel_values=enc["pixel_values"][idx], logits_to_keep=1)
        loss = torch.nn.functional.cross_entropy(out.logits[:, -1], targets[idx])
        if not torch.isfinite(loss):
            raise NonFiniteError("MLLM training loss", float(loss), fix="lower the learning rate")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return TrainOutput(losses, time.perf_counter() - t0)


@torch.no_grad()
def answer_correct(model, processor: ShapesVQAProcessor, data: VQADataset, batch: int = 64) -> np.ndarray:
    """Per question: does the first generated token (greedy) equal the one-word answer? (N,) bool."""
    model.eval()
    tok = processor.tokenizer
    targets = answer_ids(tok, data.answers)
    preds = []
    for i in range(0, len(data), batch):
        enc = processor(images=list(data.images[i : i + batch]), text=data.questions[i : i + batch])
        enc = {k: v.to(next(model.parameters()).device) for k, v in enc.items()}
        preds.append(model(**enc, logits_to_keep=1).logits[:, -1].argmax(-1).cpu())
    return (torch.cat(preds) == targets).numpy()


def answer_accuracy(model, processor: ShapesVQAProcessor, data: VQADataset, batch: int = 64) -> dict[str, float]:
    """Exact-match accuracy of the first generated token (greedy), overall and per question kind."""
    return accuracy_by_kind(answer_correct(model, processor, data, batch), data.kinds)


def accuracy_by_kind(hit: np.ndarray, kinds: list[str]) -> dict[str, float]:
    """``{"all": mean, kind: mean over that kind's questions}`` of a per-question correctness array."""
    hit = np.asarray(hit, dtype=bool)
    out = {"all": float(hit.mean())}
    k_arr = np.array(kinds)
    for k in sorted(set(kinds)):
        out[k] = float(hit[k_arr == k].mean())
    return out


def config_dict(cfg: MLLMConfig) -> dict[str, Any]:
    return asdict(cfg)


def response_batch(processor: ShapesVQAProcessor, images, prompts: Sequence[str], responses: Sequence[str]) -> dict[str, torch.Tensor]:
    """Teacher-forcing inputs for multi-token answers: ``<bos> <image>.. prompt`` (left-padded) followed by the
    response words and ``<eos>`` (right-padded); ``labels`` is -100 except on the response and its ``<eos>``."""
    tok = processor.tokenizer
    if tok.eos_token_id is None:
        raise ConfigError("tokenizer", "no eos_token", "a tokenizer built with build_tokenizer(extra_words) (multi-token answers need <eos>)")
    if len(responses) != len(prompts):
        raise ShapeError("responses", len(responses), f"one response per prompt ({len(prompts)})")
    enc = processor(images=list(images), text=list(prompts))
    resp = tok([r + " " + EOS for r in responses], add_special_tokens=False, padding="longest", padding_side="right", return_tensors="pt")
    if (resp["input_ids"] == tok.unk_token_id).any():
        raise ConfigError("responses", list(responses)[:3], "responses made of the tokenizer's vocabulary")
    ids = torch.cat([enc["input_ids"], resp["input_ids"]], dim=1)
    mask = torch.cat([enc["attention_mask"], resp["attention_mask"]], dim=1)
    labels = torch.cat([torch.full_like(enc["input_ids"], -100), resp["input_ids"].masked_fill(resp["attention_mask"] == 0, -100)], dim=1)
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": enc["pixel_values"], "labels": labels}


def train_mllm_responses(model, processor: ShapesVQAProcessor, images, prompts: Sequence[str], responses: Sequence[str], cfg: TrainConfig, seed: int = 0,
                         betas: tuple[float, float] = (0.9, 0.98), description: str = "train MLLM (responses)", callback=None) -> TrainOutput:
    """Supervised fine-tuning on multi-token responses: mean cross-entropy of the response tokens and ``<eos>``
    (AdamW, warmup + cosine, gradient norm clipped at 1), every trainable weight (``requires_grad``).
    ``callback(step)`` (1-based) runs after each optimiser step (e.g. a per-epoch evaluation)."""
    import time

    batch = response_batch(processor, images, prompts, responses)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=betas)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
    g = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    model.train()
    losses = []
    t0 = time.perf_counter()
    n = batch["input_ids"].shape[0]
    for _ in track(range(cfg.steps), description):
        idx = torch.randint(0, n, (min(cfg.batch, n),), generator=g)
        mb = {k: v[idx].to(dev) for k, v in batch.items()}
        keep = mb["attention_mask"].any(0)  # drop columns that are padding in every row
        mb = {k: (v if k == "pixel_values" else v[:, keep]) for k, v in mb.items()}
        mb["position_ids"] = (mb["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # as generate() numbers left-padded prompts
        loss = model(**mb).loss
        if not torch.isfinite(loss):
            raise NonFiniteError("MLLM response loss", float(loss), fix="lower the learning rate")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if callback is not None:
            callback(len(losses))
            model.train()
    model.eval()
    return TrainOutput(losses, time.perf_counter() - t0)
