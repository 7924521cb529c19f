"""MAYE (arXiv 2504.02587): Reinforce++ with KL for vision-language models, from scratch in plain PyTorch.

One *generation step* (paper Fig. 2) is four steps:

1. data flow: samples -> model inputs by a collator (an HF processor with the chat template, image first);
2. response collection: ``model.generate`` (vLLM in the official code), T = top_p = 1.0;
3. trajectory: policy (pi_old) and reference log-probs of the response tokens (from ``logits / T``),
   responses cut at the first stop token, scores (:mod:`.rewards`), response lengths;
4. policy update: per-token rewards ``-beta_rew * k3`` plus the score at the last valid token,
   discounted returns by a reverse cumulative sum, whitened over the batch's valid tokens *with the
   mean added back* (torchtune's ``whiten(shift_mean=True)``, as the official ``estimate_advantages``:
   the advantage is the return normalised to unit variance but not centred), then ``ppo_epochs``
   passes over shuffled mini-batches of ``ppo_batch_size``, one optimiser step each, on

       loss = masked_mean(max(-A r, -A clip(r, 1-eps, 1+eps))) + beta_loss * clamp(masked_mean(k3), -10, 10)

   with ``r = exp(logp - logp_old)`` and ``k3 = exp(ref - logp) - (ref - logp) - 1``.

Where the paper's Eq. 1 and the official code differ we follow the code and say so:
- Eq. 1 averages per sequence ``(1/|o|) sum_t``; the code takes a masked mean over *all* valid tokens of
  the mini-batch (token-level). We do the same (:func:`ppo_loss`).
- Eq. 1's advantage is a raw return; the code whitens it with the mean added back (above).
- The KL reward term is clamped per token to [-10, 10]; the KL loss is clamped *after* the masked mean.
- Tokens after the first stop token are padding: their log-probs are set to 1.0 (official trick),
  their rewards, returns and advantages do not count (advantage 0) and they are masked in both losses.
- ``last valid token`` is the stop token itself (or the last token when there is none).

Defaults are the paper's settings (App. A, Table 5); :data:`OFFICIAL_PRESET` is the official yaml
(``recipes/configs/full_ppo_vllm_distributed.yaml``). Component switches ``train_vit``,
``train_connector``, ``train_llm`` freeze the vision tower, the projector and the language model
(names as in Llava / Qwen2-VL / Qwen2.5-VL; a text-only model has only an LLM).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ...errors import ConfigError, NonFiniteError, ShapeError
from . import rewards as R

KL_CLAMP = 10.0


@dataclass(frozen=True)
class MayeConfig:
    """Paper settings (Sec. 4.1 / App. A) as defaults; per-GPU batch 128 in the paper (896 on 7 GPUs)."""

    batch_size: int = 128  # queries per generation step
    ppo_epochs: int = 1
    ppo_batch_size: int = 4  # 32 optimiser steps per generation step in the paper
    epsilon: float = 0.2  # PPO clip (epsilon_low = epsilon_high)
    gamma: float = 1.0
    beta_loss: float = 0.001  # KL loss coefficient
    beta_rew: float = 0.0  # KL reward coefficient
    lr: float = 5e-6
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    adam_eps: float = 1e-5
    warmup_ratio: float = 0.03  # warmup + cosine over ``total_steps`` optimiser steps (paper); 0 + "constant" = official
    schedule: str = "cosine"  # "cosine" | "constant"
    clip_grad_norm: float | None = 1.0
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 2048
    train_vit: bool = False
    train_connector: bool = False
    train_llm: bool = True
    use_format_reward: bool = False
    language_weight: float = 0.1
    penalise_no_eos: bool = True
    min_response_length: int | None = 18
    reward_penalty: float = -0.1
    whiten_shift_mean: bool = True  # torchtune's whiten(shift_mean=True), as the official code

    def __post_init__(self) -> None:
        for name in ("batch_size", "ppo_epochs", "ppo_batch_size", "max_new_tokens"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(name, getattr(self, name), "a positive integer")
        if self.batch_size % self.ppo_batch_size:
            raise ConfigError("ppo_batch_size", self.ppo_batch_size, f"a divisor of batch_size={self.batch_size}")
        if not (0 < self.epsilon < 1):
            raise ConfigError("epsilon", self.epsilon, "a number in (0, 1)")
        if not (0 < self.gamma <= 1):
            raise ConfigError("gamma", self.gamma, "a number in (0, 1]")
        if self.beta_loss < 0 or self.beta_rew < 0:
            raise ConfigError("beta_loss/beta_rew", (self.beta_loss, self.beta_rew), "non-negative numbers")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError("lr", self.lr, "a positive finite number")
        if self.temperature <= 0:
            raise ConfigError("temperature", self.temperature, "a positive number")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError("schedule", self.schedule, "'cosine' or 'constant'")
        if not (self.train_vit or self.train_connector or self.train_llm):
            raise ConfigError("train_llm", False, "at least one of train_vit / train_connector / train_llm True")

    def replace(self, **kw: Any) -> MayeConfig:
        return dataclasses.replace(self, **kw)

    @property
    def uses_reference(self) -> bool:
        return self.beta_loss > 0 or self.beta_rew > 0


PAPER = MayeConfig()
# The official yaml: lr 3e-6 without scheduler, gamma 0.999, both KL coefficients 0.01, one update per
# batch (ppo_batch_size = batch_size = 128), no gradient clipping, the connector trained too.
OFFICIAL_PRESET = MayeConfig(lr=3e-6, schedule="constant", warmup_ratio=0.0, gamma=0.999, beta_loss=0.01, beta_rew=0.01, ppo_batch_size=128, clip_grad_norm=None, train_connector=True)
PRESETS = {"paper": PAPER, "official": OFFICIAL_PRESET}


# ----------------------------------------------------------------------------- formulas


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean over ``mask``; masked entries are selected away (an inf or NaN there never leaks in)."""
    return torch.where(mask.bool(), x, torch.zeros_like(x)).sum(dim=dim) / (mask.to(x.dtype).sum(dim=dim) + 1e-8)


def masked_var(centered: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked variance with Bessel's correction n / (n - 1) (official ``masked_var(unbiased=True)``)."""
    var = masked_mean(centered.pow(2), mask)
    n = mask.to(centered.dtype).sum() + 1e-8
    return var * n / (n - 1)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """``(x - mean) / sqrt(var + 1e-8)`` over the valid entries, plus ``mean`` again when ``shift_mean``."""
    mean = masked_mean(x, mask)
    out = (x - mean) * torch.rsqrt(masked_var(x - mean, mask) + 1e-8)
    return out + mean if shift_mean else out


def k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL[pi || pi_ref] per token: ``exp(ref - logp) - (ref - logp) - 1`` (>= 0)."""
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1


def response_padding(responses: torch.Tensor, stop_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(padding, has_stop, last_index)`` of generated responses: ``padding`` marks every token after the
    first stop token (the stop token itself stays valid); ``last_index`` is the 0-based index of the last
    valid token (the first stop token, or the last position when there is none)."""
    if responses.dim() != 2:
        raise ShapeError("responses", tuple(responses.shape), "(batch, response_tokens)")
    stop = torch.isin(responses, torch.as_tensor(list(stop_ids), device=responses.device))
    seen = torch.cumsum(stop.long(), dim=1)
    padding = (seen > 1) | ((seen == 1) & ~stop)
    has_stop = stop.any(dim=1)
    last_index = (~padding).long().sum(dim=1) - 1
    return padding, has_stop, last_index


def token_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor | None, beta_rew: float, last_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards ``-beta_rew * clamp(k3, -10, 10)`` with the score added at ``last_index``;
    returns ``(rewards, kl)`` (kl is zeros without a reference)."""
    kl = torch.zeros_like(logprobs) if ref_logprobs is None else k3(logprobs, ref_logprobs).clamp(-KL_CLAMP, KL_CLAMP)
    rew = (-beta_rew * kl).float()
    rew.scatter_add_(1, last_index.long().unsqueeze(-1), scores.float().unsqueeze(-1))
    return rew, kl


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """``G_t = sum_{k >= t} gamma^(k-t) r_k`` per row (reverse cumulative sum)."""
    out = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], dtype=rewards.dtype, device=rewards.device)
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        out[:, t] = running
    return out


def advantages(rewards: torch.Tensor, gamma: float, valid: torch.Tensor, shift_mean: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(advantages, returns)``: returns whitened over the valid tokens of the batch, 0 at padding."""
    ret = discounted_returns(rewards * valid, gamma)
    adv = whiten(ret, valid, shift_mean=shift_mean)
    return adv.masked_fill(~valid.bool(), 0.0), ret


def ppo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, ref_logprobs: torch.Tensor | None, adv: torch.Tensor, valid: torch.Tensor,
             epsilon: float = 0.2, beta_loss: float = 0.001) -> tuple[torch.Tensor, dict[str, float]]:
    """The token-level clipped objective plus ``beta_loss`` x the clamped masked-mean k3 (official ``PPOLoss``).

    Old and reference log-probs at padding are replaced by the current ones (ratio 1, k3 0) before any
    arithmetic, so whatever sits there (the official 1.0, garbage) gives no value and no gradient."""
    valid = valid.bool()
    old_logprobs = torch.where(valid, old_logprobs, logprobs.detach())
    if ref_logprobs is not None:
        ref_logprobs = torch.where(valid, ref_logprobs, logprobs.detach())
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1 - epsilon, 1 + epsilon)
    policy = masked_mean(torch.maximum(clipped, unclipped), valid)
    kl = masked_mean(k3(logprobs, ref_logprobs), valid).clamp(-KL_CLAMP, KL_CLAMP) if ref_logprobs is not None else logprobs.new_zeros(())
    loss = policy + beta_loss * kl
    stats = {"policy_loss": float(policy.detach()), "kl_loss": float(kl.detach()), "ratio": float(masked_mean(ratio.detach(), valid)),
             "clipfrac": float(masked_mean((clipped > unclipped).float(), valid))}
    return loss, stats


def response_logprobs(logits: torch.Tensor, responses: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probs of ``responses`` under ``logits / temperature`` (logits already aligned to the responses)."""
    return torch.gather(F.log_softmax(logits.float() / temperature, dim=-1), 2, responses.unsqueeze(-1)).squeeze(-1)


# ----------------------------------------------------------------------------- models

# (module-name prefixes) per component, for Llava, Qwen2-VL / Qwen2.5-VL (transformers 5.x) and causal LMs
_COMPONENTS = {
    "vit": ("model.vision_tower.", "model.visual.", "vision_tower.", "visual."),
    "connector": ("model.multi_modal_projector.", "multi_modal_projector.", "model.visual.merger.", "visual.merger."),
}


def component_of(param_name: str) -> str:
    """``"vit"``, ``"connector"`` or ``"llm"`` for a parameter name (the connector wins over the vision tower
    for Qwen2-VL's ``visual.merger``, which is its projector)."""
    if param_name.startswith(_COMPONENTS["connector"]):
        return "connector"
    if param_name.startswith(_COMPONENTS["vit"]):
        return "vit"
    return "llm"


def set_trainable(model: torch.nn.Module, train_vit: bool, train_connector: bool, train_llm: bool) -> dict[str, int]:
    """Freeze / unfreeze the three components; returns trainable parameter counts per component."""
    want = {"vit": train_vit, "connector": train_connector, "llm": train_llm}
    counts = {"vit": 0, "connector": 0, "llm": 0}
    for name, p in model.named_parameters():
        c = component_of(name)
        p.requires_grad_(want[c])
        counts[c] += p.numel() if want[c] else 0
    if not any(counts.values()):
        raise ConfigError("train_llm", train_llm, "a component switch that leaves some parameter trainable")
    return counts


def stop_token_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ConfigError("eos_token_id", None, "a tokenizer or generation_config with an end-of-sequence token")
    return ids


def vision_placeholder_ids(model) -> list[int]:
    """Token ids a response must never contain (image / video placeholders and vision delimiters): a sampled
    placeholder would make the next forward pass ask for image features that do not exist."""
    ids = []
    for cfg in (model.config, getattr(model.config, "text_config", None)):
        for name in ("image_token_id", "image_token_index", "video_token_id", "vision_start_token_id", "vision_end_token_id", "vision_token_id"):
            v = getattr(cfg, name, None) if cfg is not None else None
            if isinstance(v, int) and v >= 0 and v not in ids:
                ids.append(v)
    return ids


def select_rows(inputs: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """Rows ``idx`` of a batch of model inputs. Qwen2-VL's flattened ``pixel_values`` are split per image
    by ``image_grid_thw`` (one image per sample, as in MAYE's datasets)."""
    out = {}
    idx = idx.to("cpu").long()
    for k, v in inputs.items():
        if not torch.is_tensor(v):
            out[k] = v
        elif k == "pixel_values" and "image_grid_thw" in inputs:
            sizes = inputs["image_grid_thw"].prod(-1).tolist()
            parts = torch.split(v, sizes)
            out[k] = torch.cat([parts[i] for i in idx.tolist()])
        else:
            out[k] = v[idx.to(v.device)]
    return out


def _forward_logprobs(model, inputs: dict[str, torch.Tensor], responses: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log-probs of ``responses`` given the prompt ``inputs`` in one forward pass (no KV cache)."""
    prompt = inputs["input_ids"]
    ids = torch.cat([prompt, responses], dim=1)
    mask = torch.cat([inputs["attention_mask"], torch.ones_like(responses)], dim=1)
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    for k, v in extra.items():  # per-token inputs (Qwen2-VL's mm_token_type_ids): response tokens are text, type 0
        if torch.is_tensor(v) and k.endswith("token_type_ids") and v.shape == prompt.shape:
            extra[k] = torch.cat([v, torch.zeros_like(responses, dtype=v.dtype)], dim=1)
    if getattr(model.config, "vision_start_token_id", None) is None:  # not Qwen2-VL's M-RoPE: number left-padded rows as generate() does
        extra.setdefault("position_ids", (mask.cumsum(-1) - 1).clamp(min=0))
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False, **extra).logits
    logits = logits[:, prompt.shape[1] - 1 : -1]
    return response_logprobs(logits, responses, temperature)


@torch.no_grad()
def sample_responses(model, inputs: dict[str, torch.Tensor], *, stop_ids: Sequence[int], pad_id: int, temperature: float = 1.0, top_p: float = 1.0,
                     max_new_tokens: int = 2048, num_return_sequences: int = 1, suppress: Sequence[int] | None = None) -> torch.Tensor:
    """Step 2, response collection with ``model.generate`` (sampling, top_k off; the paper's near-greedy setting
    T = 0.01, top_p = 0.001 is run as sampling too): the new tokens only, ``(batch * num_return_sequences, T)``."""
    was_training = model.training
    model.eval()
    try:
        out = model.generate(**inputs, do_sample=True, temperature=temperature, top_p=top_p, top_k=0, max_new_tokens=max_new_tokens,
                             num_return_sequences=num_return_sequences, pad_token_id=pad_id, eos_token_id=list(stop_ids), suppress_tokens=list(suppress or []) or None)
    except RuntimeError as e:  # torch.multinomial on NaN / inf probabilities
        if "probability tensor" in str(e):
            raise NonFiniteError("the model's next-token distribution during generate", "nan/inf", fix="check the weights for NaN (a diverged update?) or lower the learning rate") from None
        raise
    finally:
        model.train(was_training)
    return out[:, inputs["input_ids"].shape[1]:]


def decode_responses(tokenizer, responses: torch.Tensor, padding: torch.Tensor, pad_id: int) -> list[str]:
    """Response texts up to and with the first stop token (special tokens skipped)."""
    return tokenizer.batch_decode(responses.masked_fill(padding, pad_id), skip_special_tokens=True)


# ----------------------------------------------------------------------------- the trainer


@dataclass
class Trajectory:
    """Step 3's output for one batch (response tokens only; ``padding`` True after the first stop token)."""

    inputs: dict[str, torch.Tensor]
    responses: torch.Tensor
    logprobs: torch.Tensor  # pi_old
    ref_logprobs: torch.Tensor | None
    padding: torch.Tensor
    has_stop: torch.Tensor
    last_index: torch.Tensor
    texts: list[str]
    scores: dict[str, torch.Tensor]

    @property
    def valid(self) -> torch.Tensor:
        return ~self.padding

    @property
    def lengths(self) -> torch.Tensor:
        return self.valid.long().sum(1)


@dataclass
class StepStats:
    """What one generation step logged (the evaluation scheme reads these)."""

    step: int
    accuracy: float  # mean accuracy reward of the batch (train accuracy)
    score: float
    response_length: float  # mean valid tokens per response
    texts: list[str]
    correct: list[bool]
    policy_loss: float
    kl_loss: float
    kl: float  # mean clamped per-token k3 of the batch (0 without a reference)
    ratio: float
    clipfrac: float
    entropy: float  # mean -logp of the sampled tokens (an entropy estimate)
    lr: float
    grad_norm: float
    seconds_generate: float
    seconds_update: float
    extra: dict[str, float] = field(default_factory=dict)


Collator = Callable[[Sequence[dict]], dict[str, torch.Tensor]]


class MayeTrainer:
    """The four-step loop on any ``generate``-capable model (Llava, Qwen2-VL, Qwen2.5-VL, a causal LM).

        trainer = MayeTrainer(model, tokenizer, collate, MayeConfig(batch_size=16, ppo_batch_size=4))
        stats = trainer.step(samples)   # samples: dicts with "solution" and whatever ``collate`` reads

    ``collate(samples) -> inputs`` is step 1 (data flow): left-padded ``input_ids``, ``attention_mask`` and
    the vision inputs the model takes. ``judge(prediction, solution) -> bool`` scores answers (default
    :func:`.rewards.judge`). The reference model is a frozen copy of the initial policy, built only when a
    KL coefficient is positive. ``total_steps`` (generation steps) sizes the warmup + cosine schedule.
    """

    def __init__(self, model, tokenizer, collate: Collator, config: MayeConfig = PAPER, *, judge: Callable[[str, str], bool] = R.judge,
                 ref_model=None, total_steps: int = 100, seed: int = 0):
        self.model, self.tokenizer, self.collate, self.cfg, self.judge = model, tokenizer, collate, config, judge
        self.trainable = set_trainable(model, config.train_vit, config.train_connector, config.train_llm)
        self.ref = None
        if config.uses_reference:
            self.ref = ref_model if ref_model is not None else copy.deepcopy(model)
            self.ref.eval().requires_grad_(False)
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.suppress = vision_placeholder_ids(model)
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, betas=config.betas, eps=config.adam_eps)
        updates = max(1, int(total_steps) * config.ppo_epochs * (config.batch_size // config.ppo_batch_size))
        warm = max(1, int(round(config.warmup_ratio * updates)))

        def factor(s: int) -> float:
            if config.schedule == "constant":
                return 1.0
            if s < warm:
                return (s + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, updates - warm))))

        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, factor)
        self.gen = torch.Generator().manual_seed(seed)
        self.seed = seed
        self.steps = 0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # step 2
    def generate(self, inputs: dict[str, torch.Tensor], temperature: float | None = None, top_p: float | None = None, max_new_tokens: int | None = None,
                 num_return_sequences: int = 1) -> torch.Tensor:
        """Sampled responses (prompt removed), ``(batch * num_return_sequences, T)``, at the config's T / top_p unless given."""
        cfg = self.cfg
        return sample_responses(self.model, inputs, stop_ids=self.stop_ids, pad_id=self.pad_id, temperature=cfg.temperature if temperature is None else temperature,
                                top_p=cfg.top_p if top_p is None else top_p, max_new_tokens=max_new_tokens or cfg.max_new_tokens,
                                num_return_sequences=num_return_sequences, suppress=self.suppress)

    def decode(self, responses: torch.Tensor, padding: torch.Tensor) -> list[str]:
        return decode_responses(self.tokenizer, responses, padding, self.pad_id)

    # step 3
    @torch.no_grad()
    def trajectory(self, samples: Sequence[dict], inputs: dict[str, torch.Tensor] | None = None) -> Trajectory:
        cfg = self.cfg
        inputs = inputs if inputs is not None else self._to_device(self.collate(samples))
        responses = self.generate(inputs)
        padding, has_stop, last_index = response_padding(responses, self.stop_ids)
        responses = responses.masked_fill(padding, self.pad_id)
        was_training = self.model.training
        self.model.eval()
        logp = _forward_logprobs(self.model, inputs, responses, cfg.temperature)
        ref = _forward_logprobs(self.ref, inputs, responses, cfg.temperature) if self.ref is not None else None
        self.model.train(was_training)
        if not torch.isfinite(logp[~padding]).all():
            raise NonFiniteError("policy log-probs of the sampled responses", "nan/inf", fix="check the weights for NaN or lower the learning rate")
        logp = logp.masked_fill(padding, 1.0)  # official trick: padding log-probs are 1.0 (never counted)
        if ref is not None:
            ref = ref.masked_fill(padding, 1.0)
        texts = self.decode(responses, padding)
        sols = [str(s["solution"]) for s in samples]
        sc = R.scores(texts, sols, has_stop.cpu(), last_index.cpu(), judge_fn=self.judge, use_format=cfg.use_format_reward, language_weight=cfg.language_weight,
                      penalise_no_eos=cfg.penalise_no_eos, min_response_length=cfg.min_response_length, reward_penalty=cfg.reward_penalty)
        return Trajectory(inputs, responses, logp, ref, padding, has_stop, last_index, texts, {k: v.to(responses.device) for k, v in sc.items()})

    def _to_device(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in inputs.items()}

    # step 4
    def update(self, traj: Trajectory) -> dict[str, float]:
        cfg = self.cfg
        valid = traj.valid
        with torch.no_grad():
            rew, kl = token_rewards(traj.scores["score"], traj.logprobs, traj.ref_logprobs, cfg.beta_rew, traj.last_index)
            adv, _ = advantages(rew, cfg.gamma, valid, cfg.whiten_shift_mean)
        n = traj.responses.shape[0]
        if n % cfg.ppo_batch_size:
            raise ShapeError("batch", n, f"a multiple of ppo_batch_size={cfg.ppo_batch_size}")
        self.model.train()
        agg: dict[str, list[float]] = {"policy_loss": [], "kl_loss": [], "ratio": [], "clipfrac": [], "grad_norm": []}
        for _ in range(cfg.ppo_epochs):
            perm = torch.randperm(n, generator=self.gen)
            for i in range(0, n, cfg.ppo_batch_size):
                idx = perm[i : i + cfg.ppo_batch_size].to(traj.responses.device)
                mb_inputs = select_rows(traj.inputs, idx)
                logp = _forward_logprobs(self.model, mb_inputs, traj.responses[idx], cfg.temperature)
                ref = traj.ref_logprobs[idx] if traj.ref_logprobs is not None and cfg.beta_loss > 0 else None
                loss, st = ppo_loss(logp, traj.logprobs[idx], ref, adv[idx], valid[idx], cfg.epsilon, cfg.beta_loss)
                if not torch.isfinite(loss):
                    raise NonFiniteError("MAYE policy loss", float(loss), fix="lower the learning rate or check the model's logits")
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                params = [p for p in self.model.parameters() if p.requires_grad]
                if cfg.clip_grad_norm is not None:
                    gn = torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
                else:
                    gn = torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
                self.opt.step()
                self.sched.step()
                for k, v in st.items():
                    agg[k].append(v)
                agg["grad_norm"].append(float(gn))
        self.model.eval()
        out = {k: sum(v) / max(1, len(v)) for k, v in agg.items()}
        out["kl"] = float(masked_mean(kl, valid))
        out["entropy"] = float(masked_mean(-traj.logprobs, valid))
        return out

    def step(self, samples: Sequence[dict]) -> StepStats:
        """One generation step on ``samples`` (``len(samples)`` must be ``config.batch_size``)."""
        if len(samples) != self.cfg.batch_size:
            raise ShapeError("samples", len(samples), f"batch_size={self.cfg.batch_size} samples")
        t0 = time.perf_counter()
        traj = self.trajectory(samples)
        t1 = time.perf_counter()
        up = self.update(traj)
        t2 = time.perf_counter()
        self.steps += 1
        acc = traj.scores["accuracy"]
        return StepStats(self.steps, float(acc.mean()), float(traj.scores["score"].mean()), float(traj.lengths.float().mean()), traj.texts,
                         [bool(a == 1) for a in acc.tolist()], up["policy_loss"], up["kl_loss"], up["kl"], up["ratio"], up["clipfrac"], up["entropy"],
                         float(self.sched.get_last_lr()[0]), up["grad_norm"], t1 - t0, t2 - t1)
