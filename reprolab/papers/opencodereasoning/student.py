"""The study's student: a tiny GPT with a byte-level BPE, pre-trained on the Python standard library,
fine-tuned on distilled samples, and scored by pass@1 in the sandbox.

The paper fine-tunes Qwen2.5 7B-32B (3 epochs, AdamW, cosine schedule with 10% warm-up, last
checkpoint); a CPU cannot, so the student is :class:`reprolab.nn.gpt.GPT` (a few million
parameters) with a ``tokenizers`` BPE trained on :mod:`reprolab.data.text_corpus`'s standard-library
source. Pre-training runs once per configuration and is cached (``pretrain_student(cache_dir=...)``);
fine-tuning (:func:`finetune`) trains on ``<|user|> question <|assistant|> response <|end|>`` with the
loss on the response tokens only (the usual SFT masking), AdamW, cosine with 10% warm-up (the paper's
schedule). :func:`generate_greedy` decodes a batch of prompts with a key/value cache (greedy: pass@1
of one deterministic sample), and :func:`pass_at_1` runs the first code block of each answer on the
problem's hidden tests in :mod:`reprolab.sandbox`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange

from ...errors import ConfigError, NonFiniteError
from ...nn.gpt import GPT, GPTConfig, apply_rotary

PAD, USER, ASSISTANT, END = "<|pad|>", "<|user|>", "<|assistant|>", "<|end|>"
SPECIALS = (PAD, USER, ASSISTANT, END)


@dataclass(frozen=True)
class StudentConfig:
    """Student size and training; defaults are the ``full`` scale's."""

    vocab_size: int = 4096  # BPE vocabulary (spec sheet: 4k)
    corpus_bytes: int = 3_000_000  # standard-library source used for the BPE and pre-training
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 640  # question + response tokens (our 4k BPE spends ~1.5x the teacher's tokens on the same text)
    pretrain_steps: int = 300
    pretrain_batch: int = 16
    pretrain_block: int = 256
    pretrain_lr: float = 1e-3
    sft_epochs: int = 8  # the same for every arm (claim b: "same epochs")
    sft_batch: int = 8
    sft_lr: float = 5e-4
    warmup: float = 0.1  # paper: warm-up ratio 0.1, cosine
    max_new_tokens: int = 384

    def __post_init__(self) -> None:
        for name in ("vocab_size", "corpus_bytes", "pretrain_steps", "pretrain_batch", "pretrain_block", "sft_epochs", "sft_batch",
                     "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "a positive integer")
        if self.pretrain_block > self.block_size:
            raise ConfigError("pretrain_block", self.pretrain_block, f"at most block_size={self.block_size}")
        if not 0 <= self.warmup < 1:
            raise ConfigError("warmup", self.warmup, "a fraction in [0, 1)")


def train_bpe(text: str, vocab_size: int) -> Any:
    """A byte-level BPE (``tokenizers``) with the chat specials, trained on ``text``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    chunk = 1 << 16
    tk.train_from_iterator((text[i: i + chunk] for i in range(0, len(text), chunk)), trainer)
    return tk


class Student:
    """A GPT and its tokenizer."""

    def __init__(self, model: GPT, tokenizer: Any):
        self.model = model
        self.tokenizer = tokenizer
        self.ids = {s: tokenizer.token_to_id(s) for s in SPECIALS}

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def prompt_ids(self, question: str) -> list[int]:
        return [self.ids[USER]] + self.encode("\n" + question + "\n") + [self.ids[ASSISTANT]] + self.encode("\n")

    def clone(self) -> Student:
        import copy

        return Student(copy.deepcopy(self.model), self.tokenizer)

    def save(self, folder: str | Path) -> None:
        from ...runtime import atomic_write_bytes, atomic_write_text, save_checkpoint

        folder = Path(folder)
        atomic_write_text(folder / "tokenizer.json", self.tokenizer.to_str())
        save_checkpoint(folder / "model.pt", {"config": asdict(self.model.cfg), "state": self.model.state_dict()})
        atomic_write_bytes(folder / "done", b"1")

    @classmethod
    def load(cls, folder: str | Path) -> Student | None:
        from tokenizers import Tokenizer

        from ...runtime import load_checkpoint

        folder = Path(folder)
        if not (folder / "done").exists():
            return None
        ck = load_checkpoint(folder / "model.pt")
        if ck is None:
            return None
        model = GPT(GPTConfig(**ck["config"]))
        model.load_state_dict(ck["state"])
        return cls(model, Tokenizer.from_str((folder / "tokenizer.json").read_text()))


def _lr(step: int, total: int, peak: float, warmup: float) -> float:
    """Linear warm-up over ``warmup * total`` steps, then cosine to 0 (paper: CosineAnnealing, warm-up 0.1)."""
    w = max(1, int(round(warmup * total)))
    if step < w:
        return peak * (step + 1) / w
    return 0.5 * peak * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))


def _step(model: GPT, opt: torch.optim.Optimizer, loss: torch.Tensor, phase: str, fix: str) -> float:
    """One AdamW step with gradient clipping at 1.0; a non-finite loss stops training with a typed error."""
    if not torch.isfinite(loss):
        raise NonFiniteError(f"the student's {phase} loss", loss.item(), fix=fix)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


def pretrain_student(config: StudentConfig, seed: int = 0, cache_dir: str | Path | None = None, device: str | torch.device = "cpu",
                     progress: Any = None) -> tuple[Student, dict[str, Any]]:
    """BPE + next-token pre-training on standard-library source; cached in ``cache_dir`` when given
    (the cache is keyed by the caller: pass a folder named by the config)."""
    if cache_dir is not None:
        got = Student.load(cache_dir)
        if got is not None:
            got.model.to(device)
            return got, {"cached": True, "params": got.model.num_parameters()}
    from ...data.text_corpus import python_stdlib_bytes

    text = python_stdlib_bytes(config.corpus_bytes).decode("utf-8", errors="replace")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    tk = train_bpe(text, config.vocab_size)
    ids = torch.tensor(tk.encode(text).ids, dtype=torch.long)
    cfg = GPTConfig(vocab_size=tk.get_vocab_size(), block_size=config.block_size, n_layer=config.n_layer, n_head=config.n_head,
                    n_embd=config.n_embd)
    model = GPT(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.pretrain_lr, weight_decay=0.1, betas=(0.9, 0.95))
    T = config.pretrain_block
    losses = []
    steps = range(config.pretrain_steps)
    for step in (progress(steps, "student pre-training") if progress else steps):
        for grp in opt.param_groups:
            grp["lr"] = _lr(step, config.pretrain_steps, config.pretrain_lr, config.warmup)
        starts = torch.randint(0, len(ids) - T - 1, (config.pretrain_batch,), generator=g)
        win = ids[starts[:, None] + torch.arange(T + 1)].to(device)
        _, loss = model(win[:, :-1], win[:, 1:])
        losses.append(_step(model, opt, loss, "pre-training", "lower pretrain_lr"))
    student = Student(model, tk)
    if cache_dir is not None:
        student.save(cache_dir)
    return student, {"cached": False, "tokens": int(len(ids)), "params": model.num_parameters(),
                     "loss_first": losses[0] if losses else None, "loss_last": float(sum(losses[-20:]) / max(1, len(losses[-20:])))}


def sft_example(student: Student, question: str, response: str, block_size: int) -> tuple[list[int], list[int]]:
    """(input ids, targets) with the prompt's targets masked (-100), cut to ``block_size``. A prompt too long to
    leave room for the response is cut from the left (as at generation) so that at least half the block, or
    the whole response, is trained on."""
    r = student.encode(response) + [student.ids[END]]
    p = student.prompt_ids(question)[-max(1, block_size - min(len(r), block_size // 2)):]
    ids = (p + r)[: block_size + 1]
    tgt = ([-100] * (len(p) - 1) + r)[: block_size]  # targets[i] = ids[i + 1] on response tokens
    return ids[:-1], tgt[: len(ids) - 1]


def finetune(student: Student, examples: Sequence[tuple[str, str]], config: StudentConfig, seed: int,
             progress: Any = None) -> tuple[Student, dict[str, Any]]:
    """SFT of a copy of ``student`` on (question, response) pairs for ``config.sft_epochs`` epochs
    (seeded order); returns the fine-tuned copy and its losses. No examples: an unchanged copy."""
    st = student.clone()
    if not examples:
        return st, {"steps": 0, "loss_first": None, "loss_last": None}
    model = st.model
    device = next(model.parameters()).device
    data = [sft_example(st, q, r, config.block_size) for q, r in examples]
    g = torch.Generator().manual_seed(seed)
    per_epoch = math.ceil(len(data) / config.sft_batch)
    total = per_epoch * config.sft_epochs
    opt = torch.optim.AdamW(model.parameters(), lr=config.sft_lr, weight_decay=0.0)
    pad = st.ids[PAD]
    losses = []
    model.train()
    step = 0
    epochs = range(config.sft_epochs)
    for _ in (progress(epochs, "student fine-tuning") if progress else epochs):
        order = torch.randperm(len(data), generator=g).tolist()
        for b in range(per_epoch):
            batch = [data[i] for i in order[b * config.sft_batch: (b + 1) * config.sft_batch]]
            L = max(len(x) for x, _ in batch)
            x = torch.full((len(batch), L), pad, dtype=torch.long)
            y = torch.full((len(batch), L), -100, dtype=torch.long)
            for i, (xi, yi) in enumerate(batch):
                x[i, : len(xi)] = torch.tensor(xi)
                y[i, : len(yi)] = torch.tensor(yi)
            for grp in opt.param_groups:
                grp["lr"] = _lr(step, total, config.sft_lr, config.warmup)
            _, loss = model(x.to(device), y.to(device))
            losses.append(_step(model, opt, loss, "fine-tuning", "lower sft_lr"))
            step += 1
    model.eval()
    return st, {"steps": step, "loss_first": losses[0], "loss_last": float(sum(losses[-per_epoch:]) / per_epoch)}


@torch.no_grad()
def generate_greedy(model: GPT, prompts: Sequence[Sequence[int]], max_new_tokens: int, stop_id: int | None = None,
                    pad_id: int = 0) -> list[list[int]]:
    """Greedy continuations of a batch of prompts (left-padded, with a key/value cache; rotary
    positions count from each prompt's first real token, so a row decodes as it would alone).
    Each continuation ends before ``stop_id`` or after ``max_new_tokens``; prompts are cut from the
    left to leave room within ``block_size``."""
    cfg = model.cfg
    if cfg.norm_position != "pre" or cfg.positions != "rotary":
        raise ConfigError("model.cfg", (cfg.norm_position, cfg.positions), "a pre-norm rotary GPT")
    was_training = model.training
    model.eval()
    device = model.tok_emb.weight.device
    keep = max(1, cfg.block_size - max_new_tokens)
    prompts = [list(p)[-keep:] for p in prompts]
    B, L = len(prompts), max(len(p) for p in prompts)
    idx = torch.full((B, L), pad_id, dtype=torch.long, device=device)
    valid = torch.zeros((B, L), dtype=torch.bool, device=device)
    for i, p in enumerate(prompts):
        idx[i, L - len(p):] = torch.tensor(p, device=device)
        valid[i, L - len(p):] = True
    hs = cfg.n_embd // cfg.n_head
    inv_freq = cfg.rope_base ** (-torch.arange(0, hs, 2, device=device, dtype=torch.float32) / hs)
    caches: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * cfg.n_layer
    out = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=device)
    pos = valid.long().cumsum(1) - 1  # (B, L) position of each token in its own sequence
    x_ids, x_pos, x_valid = idx, pos.clamp(min=0), valid
    all_valid = valid
    for t in range(max_new_tokens):
        angles = x_pos.float()[..., None] * inv_freq  # (B, T, hs/2)
        cos, sin = angles.cos()[:, None], angles.sin()[:, None]  # (B, 1, T, hs/2)
        Tq, Tk = x_ids.shape[1], all_valid.shape[1]
        causal = torch.ones(Tq, Tk, dtype=torch.bool, device=device).tril(Tk - Tq)
        mask = causal[None] & all_valid[:, None, :]
        diag = torch.zeros(Tq, Tk, dtype=torch.bool, device=device)
        diag[torch.arange(Tq, device=device), torch.arange(Tq, device=device) + Tk - Tq] = True
        mask = mask | diag[None]  # a pad query sees itself: no empty row (no NaN)
        mask = mask[:, None]  # (B, 1, Tq, Tk)
        x = model.tok_emb(x_ids)
        for li, blk in enumerate(model.blocks):
            h = blk.ln1(x)
            q, k, v = rearrange(blk.attn.qkv(h), "b t (three h d) -> three b h t d", three=3, h=cfg.n_head)
            if blk.attn.q_ln is not None:
                q, k = blk.attn.q_ln(q), blk.attn.k_ln(k)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
            if caches[li] is not None:
                k, v = torch.cat([caches[li][0], k], 2), torch.cat([caches[li][1], v], 2)
            caches[li] = (k, v)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=cfg.attn_scale)
            x = x + blk.attn.proj(rearrange(y, "b h t d -> b t (h d)"))
            x = x + blk.mlp(blk.ln2(x))
        nxt = model.head(model.ln_f(x[:, -1])).argmax(-1)  # (B,)
        for i in range(B):
            if done[i]:
                continue
            if stop_id is not None and int(nxt[i]) == stop_id:
                done[i] = True
            else:
                out[i].append(int(nxt[i]))
        if bool(done.all()) or all_valid.shape[1] >= cfg.block_size:
            break
        x_ids = nxt[:, None]
        x_pos = pos[:, -1:] + 1
        pos = torch.cat([pos, x_pos], 1)
        all_valid = torch.cat([all_valid, torch.ones(B, 1, dtype=torch.bool, device=device)], 1)
    model.train(was_training)
    return out


def answers(student: Student, questions: Sequence[str], max_new_tokens: int, batch: int = 16) -> list[str]:
    """The student's greedy answers (text) to ``questions``."""
    out: list[str] = []
    for b in range(0, len(questions), batch):
        ids = generate_greedy(student.model, [student.prompt_ids(q) for q in questions[b: b + batch]], max_new_tokens,
                              stop_id=student.ids[END], pad_id=student.ids[PAD])
        out += [student.decode(x) for x in ids]
    return out


def answer_code(text: str) -> str | None:
    """The code a student's answer submits: the first code block after ``</think>`` (or anywhere,
    when the answer has no ``</think>``), extracted as the recipe does."""
    from .distill import THINK_END, first_code_block

    end = text.find(THINK_END)
    return first_code_block(text[end + len(THINK_END):] if end != -1 else text)


def pass_at_1(texts: Sequence[str], problems: Sequence[Any], sandbox: Any = None, workers: int = 2) -> list[float]:
    """1.0 where the answer's code passes every hidden test of its problem (one greedy sample each:
    pass@1), else 0.0; the code runs only in the sandbox."""
    from ...data.code_problems import run_tests_many

    reports = run_tests_many([(answer_code(t), p.tests) for t, p in zip(texts, problems)], sandbox=sandbox, workers=workers)
    return [1.0 if r.all_passed else 0.0 for r in reports]
