"""Study ``zclip``: does ZClip remove loss spikes and make training less sensitive to the learning rate?

The paper (Sec. 4, Table 2) pre-trains a 1B LLaMA on 50B tokens at learning rates up to 3e-3
and compares fixed clipping at max-norm 1.0 with ZClip. We pre-train the shared tiny GPT
(``reprolab.nn.gpt``) on bytes of the Python standard library's sources (the only real text
corpus every machine has) with AdamW over a sweep of five learning rates, in three arms with the
same seeds, init and data order: no clipping, ``clip_grad_norm_(max_norm=1.0)``, and ZClip alone
(``max_grad_norm=None``, official defaults otherwise). Every seed is one paired unit.

Regime (version 6, issue 16; v4's with a 3 kB text and rare corrupted batches): memorisation at a constant rate. The GPT (2 x 96 at full) trains on
3 kB of stdlib source (about 400 passes over it at full) at a constant rate after no warm-up, AdamW
beta2 = 0.999 and no weight decay, qk-layernorm off, over five rates 3e-3 to 3e-2. The README's
calibration (four rounds, ``calibrate.py``) explains the choice: v3's regime (Wortsman et al.'s
small-scale-instability recipe, arXiv 2309.14322: no warm-up, high rates, 2-4 MB of text) never
spiked by the rule below; memorising a small text at 1e-2 did (in the descent from about 1.5 to
0.5 nats/byte), 4 kB in half the seeds without clipping, 3 kB in three of four (round 3), and
nowhere else we looked. Version 6 (round 4): over eight seeds that regime spiked in three, so v6 adds rare corrupted
batches (probability 0.01 per step: one byte of 128-255 repeated, the same steps in every arm, left out of the spike
rule): after one, the clean steps' loss jumps (robust z up to 54) in 7 of 8 seeds at 3e-3 and at 6e-3 without
clipping. Final loss
is measured on fixed windows of the training bytes (the task is memorisation).

Spike (unchanged since version 1, fixed before the first run): a step whose training loss exceeds
the median of the previous ``SPIKE_WINDOW`` = 50 losses by more than ``SPIKE_K`` = 6 robust
standard deviations (1.4826 x MAD of that window); consecutive flagged steps are one event; the
first 50 steps are never flagged; a non-finite loss (divergence) is flagged and ends the run. On
Student-t noise with 5 degrees of freedom the rule flags at most ``FP_PER_1000_STEPS`` = 1 event
per 1000 steps on average (tested). Final loss: the loss on fixed evaluation windows after the last
step (v4: of the training bytes; v1-v3: of held-out bytes); a diverged run counts as
``UNIFORM_LOSS`` = ln 256 (a model that learned nothing).

Rules (version 5 = version 4's; version 3's but for the supporting check's rate), every claim paired by seed (unit: seeds; Student-t interval of the mean
paired difference, ``reprolab.stats.compare_paired``):

- ``spikes``: spike events per seed summed over the rates where fixed clipping spikes (>= 1 event
  in at least half the seeds; chosen from the fixed arm alone, so the choice cannot favour
  ZClip): fixed - ZClip > 0 (margin 0; unit_range 1 event so that all-equal differences do not
  give a zero-width interval). Precondition: such a rate exists, else not testable. Supporting:
  the no-clip arm spikes in most seeds at its spikiest rate (the regime spikes at all).
- ``lr_sensitivity``: Wortsman's learning-rate sensitivity per seed, the mean over the sweep of
  min(L(lr), L0) - min_lr L(lr), with L0 = ln 256 (our initial loss): fixed - ZClip > 0 (margin 0).
  Preconditions: >= 5 rates; fixed clipping's best mean loss below ln 256 - 1 (the models learned).
- ``best_rate_not_worse``: final loss of each arm at its own best rate (lowest mean over seeds):
  fixed - ZClip > -``NOT_WORSE_MARGIN`` = -0.02 nats/byte (non-inferiority, about 1% of v3's losses near 2 and 10% of v4's near 0.2;
  the paper's ZClip is at or below fixed clipping everywhere). Same learned-precondition.

Choices where the paper is vague: the paper names no spike rule (ours is above); "higher learning
rates" is measured as Wortsman's sensitivity over our sweep; the best rate is picked per arm on
the same seeds it is judged on (an optimistic pick that favours both arms alike).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...data.text_corpus import ByteCorpus
from ...errors import ConfigError
from ...nn.gpt import GPT, GPTConfig
from ...runtime import atomic_write_json, torch_threads, track
from ... import stats
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .zclip import ZClip

SPIKE_WINDOW = 50
SPIKE_K = 6.0
SPIKE_MIN_JUMP = 0.0  # nats/byte: a floor under k x MAD (0: v1's rule unchanged)
FP_PER_1000_STEPS = 1.0  # the detector's stated false-positive rate on Student-t (5 dof) noise (tested)
ARM_LABEL = {"none": "no clipping", "fixed": "fixed clip (max_norm 1.0)", "zclip": "ZClip (z_thresh 2.5, alpha 0.97)"}
UNIFORM_LOSS = math.log(256)  # nats/byte of predicting bytes uniformly; a diverged run counts as this
NOT_WORSE_MARGIN = 0.02  # nats/byte: how much worse ZClip may be at its best rate and still be "not worse" (v3: ~1% of its losses near 2; v4: ~10% of its memorisation losses near 0.2)


@dataclass(frozen=True)
class ZClipStudyConfig:
    seeds: int  # independent seeds per (lr, arm)
    steps: int  # optimizer steps per run
    batch_size: int
    block_size: int  # context length in bytes
    n_layer: int
    n_embd: int
    n_head: int
    corpus_bytes: int  # bytes of stdlib source read (5% held out for validation)
    lrs: tuple[float, ...]  # the learning-rate sweep (peak rates)
    warmup_frac: float = 0.0  # linear lr warm-up fraction, then cosine decay to 10%
    beta2: float = 0.95  # AdamW beta2
    tie_weights: bool = True  # GPT input/output embedding tying
    qk_layernorm: bool = False  # Wortsman et al.'s fix; off = attention logits may grow
    attn_scale: float | None = None  # attention softmax temperature; None = 1/sqrt(head size)
    norm_position: str = "pre"  # "post": LayerNorm after the residual add (unstable without warm-up)
    adam_eps: float = 1e-8
    weight_decay: float = 0.1  # AdamW's decoupled decay on matrices (0: Adam's slingshot regime, Thilak et al. 2022)
    lr_schedule: str = "cosine"  # after warm-up: "cosine" to 10% of the peak, or "constant"
    eval_split: str = "val"  # final loss on held-out bytes ("val") or on fixed windows of the training bytes ("train": memorisation)
    outlier_prob: float = 0.0  # chance per step that the batch is replaced by an outlier batch (long-tailed data)
    outlier_kind: str = "random"  # "random": uniformly random bytes; "repeat": one rare byte (128-255) repeated
    eval_batches: int = 8  # validation batches for the final loss
    arms: tuple[str, ...] = ("none", "fixed", "zclip")
    workers: int = 1  # runs in parallel, one process and one thread each (tiny models use threads poorly)

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError("lr_schedule", self.lr_schedule, '"cosine" or "constant"')
        if self.eval_split not in ("val", "train"):
            raise ConfigError("eval_split", self.eval_split, '"val" (held-out bytes) or "train" (the training bytes)')
        if self.outlier_kind not in ("random", "repeat"):
            raise ConfigError("outlier_kind", self.outlier_kind, '"random" (uniform bytes) or "repeat" (one rare byte repeated)')
        if not 0.0 <= self.outlier_prob < 1.0:
            raise ConfigError("outlier_prob", self.outlier_prob, "a probability per step in [0, 1)")


def _rolling_excess(losses: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each step t >= window: loss - median of the previous window, 1.4826 x MAD of that window,
    and how many finite losses the window held (NaN losses are left out of the window)."""
    n = len(losses) - window
    if n <= 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=int)
    past = np.lib.stride_tricks.sliding_window_view(losses[:-1], window)[:n]  # row t - window: losses[t - window : t]
    finite = np.isfinite(past).sum(axis=1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        med = np.nanmedian(past, axis=1)
        mad = 1.4826 * np.nanmedian(np.abs(past - med[:, None]), axis=1)
    return losses[window:] - med, mad, finite


def count_spikes(losses: np.ndarray, window: int = SPIKE_WINDOW, k: float = SPIKE_K, min_jump: float = SPIKE_MIN_JUMP,
                 ignore: np.ndarray | None = None) -> tuple[int, list[int]]:
    """Spike events in a loss curve (see module docstring); returns (count, flagged step indices).

    A step t >= ``window`` is flagged when its loss exceeds the median of the previous ``window``
    losses by more than ``k`` robust standard deviations (1.4826 x MAD) and by at least
    ``min_jump`` nats; consecutive flagged steps are one event. A non-finite loss is flagged
    (a divergence is the largest spike), and non-finite losses in the window are left out.
    ``ignore``: steps neither judged nor in any window (a divergence there still counts).
    """
    losses = np.asarray(losses, dtype=float)
    skip = np.zeros(len(losses), dtype=bool)
    if ignore is not None:
        skip = np.asarray(ignore, dtype=bool)[: len(losses)] & np.isfinite(losses)
        losses = np.where(skip, np.nan, losses)
    excess, mad, finite = _rolling_excess(losses, window)
    at = losses[window:]
    with np.errstate(invalid="ignore"):
        spike = (excess > np.maximum(k * np.maximum(mad, 1e-8), min_jump)) & (finite >= window // 2)
    spike = (spike | ~np.isfinite(at)) & ~skip[window:]
    flagged = [int(t) + window for t in np.flatnonzero(spike)]
    events = sum(1 for i, t in enumerate(flagged) if i == 0 or flagged[i - 1] != t - 1)
    return events, flagged


def robust_z_max(losses: np.ndarray, window: int = SPIKE_WINDOW) -> float:
    """The largest (loss - rolling median) / (1.4826 MAD) over a curve: how close it came to a spike."""
    losses = np.asarray(losses, dtype=float)
    excess, mad, finite = _rolling_excess(losses, window)
    ok = np.isfinite(excess) & (finite >= window // 2)
    if not ok.any():
        return 0.0
    return max(0.0, float(np.max(excess[ok] / np.maximum(mad[ok], 1e-8))))


def lr_at(step: int, total: int, peak: float, warmup_frac: float, schedule: str = "cosine") -> float:
    """Linear warm-up over ``warmup_frac`` of the steps, then cosine decay to 10% of ``peak`` (``"cosine"``) or
    ``peak`` held to the end (``"constant"``)."""
    warm = int(total * warmup_frac)
    if step < warm:
        return peak * (step + 1) / warm
    if schedule == "constant":
        return peak
    progress = (step - warm) / max(1, total - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def make_model(cfg: ZClipStudyConfig) -> GPT:
    return GPT(GPTConfig(block_size=cfg.block_size, n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head,
                         tie_weights=cfg.tie_weights, qk_layernorm=cfg.qk_layernorm, attn_scale=cfg.attn_scale,
                         norm_position=cfg.norm_position))


def pretrain(cfg: ZClipStudyConfig, corpus: ByteCorpus, arm: str, lr: float, seed: int, description: str) -> dict:
    """Pre-train one tiny GPT; return per-step losses, gradient norms, ZClip thresholds, final val loss.

    A run whose loss turns non-finite stops there (it diverged); its final loss is None.
    """
    train, val = corpus.split(0.05)
    torch.manual_seed(seed)
    model = make_model(cfg)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, cfg.beta2), eps=cfg.adam_eps)
    zclip = ZClip(max_grad_norm=None) if arm == "zclip" else None
    data_gen = torch.Generator().manual_seed(seed)  # same batches in every arm
    started = time.perf_counter()
    losses, norms, thresholds, outliers = [], [], [], []
    outlier_gen = torch.Generator().manual_seed(seed + 7919)  # the same outlier steps in every arm
    diverged = False
    for step in track(range(cfg.steps), description):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, lr, cfg.warmup_frac, cfg.lr_schedule)
        x, y = ByteCorpus.batch(train, cfg.batch_size, cfg.block_size, data_gen)
        if cfg.outlier_prob and float(torch.rand((), generator=outlier_gen)) < cfg.outlier_prob:
            if cfg.outlier_kind == "repeat":  # one rare byte repeated (a broken-crawl page of mojibake)
                window = torch.full((cfg.batch_size, cfg.block_size + 1), int(torch.randint(128, 256, (), generator=outlier_gen)))
            else:
                window = torch.randint(0, 256, (cfg.batch_size, cfg.block_size + 1), generator=outlier_gen)
            x, y = window[:, :-1], window[:, 1:]
            outliers.append(step)
        _, loss = model(x, y)
        if not torch.isfinite(loss):
            losses.append(float("nan"))
            norms.append(float("nan"))
            thresholds.append(float("nan"))
            diverged = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if arm == "fixed":
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            thr = 1.0
        elif arm == "zclip":
            info = zclip.step(model)
            norm, thr = info.grad_norm, float(info.threshold)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
            thr = float("nan")
        opt.step()
        losses.append(float(loss.detach()))
        norms.append(float(norm))
        thresholds.append(thr)
    final = float("nan")
    if not diverged:
        model.eval()
        eval_gen = torch.Generator().manual_seed(10_000)  # the same validation windows for every run
        with torch.no_grad():
            source = train if cfg.eval_split == "train" else val
            val_losses = [float(model(*ByteCorpus.batch(source, cfg.batch_size, cfg.block_size, eval_gen))[1]) for _ in range(cfg.eval_batches)]
        final = float(np.mean(val_losses))
    clean = np.ones(len(losses), dtype=bool)
    clean[outliers] = False
    spikes, flagged = count_spikes(np.asarray(losses), ignore=~clean)
    return {  # JSON has no NaN: non-finite values (no threshold yet, a diverged loss) are None
        "losses": _none_if_nonfinite(losses),
        "grad_norms": _none_if_nonfinite(norms),
        "thresholds": _none_if_nonfinite(thresholds),
        "spikes": spikes,
        "spike_steps": flagged,
        "robust_z_max": round(robust_z_max(np.where(clean, losses, np.nan)), 3),
        "outlier_steps": outliers,
        "final_val_loss": final if math.isfinite(final) else None,
        "diverged": diverged or not math.isfinite(final),
        "wall_s": round(time.perf_counter() - started, 2),
    }



CHANGELOG = {
    1: "first version: tiny GPT on stdlib bytes, arms none / fixed 1.0 / ZClip alone, spike = loss > rolling median + 6 robust sd",
    2: "issue 14: every claim judged per seed, paired by seed (unit: seeds, t interval, reprolab.stats) in the paper's direction "
       "(ZClip below fixed clipping) with a stated margin, instead of comparing means with a 1% tolerance (v1 called ZClip 'not "
       "worse' while it was worse, 1.827 vs 1.816, inside a 1.75-1.90 seed spread); spikes: precondition 'fixed clipping spikes' "
       "(not testable without it); loss claims: precondition 'the models learned'; final_loss_aggressive margin 0, "
       "baseline_not_worse non-inferiority margin 0.01 nats/byte; the no-clipping arm dropped (no claim of the paper needs it) "
       "for more seeds: quick 3 seeds (was 2), full 5 seeds of a 3-layer model for 700 steps (was 3 seeds, 4 layers, 800 steps) to fit "
       "~20 min on 2 cores. A draft precondition 'ZClip clipped in every seed' was dropped after the first quick run (ZClip deciding "
       "that no step is a spike is ZClip as described). "
       "These rules were written after seeing version 1's full result (no spikes anywhere; lr 1e-2 fixed 1.816 vs ZClip 1.827; "
       "lr 1e-3 1.681 vs 1.675)",
    3: "issue 16: v2 never saw a spike (largest robust z 2.5-3.8) so its headline was untestable, and its loss claims compared ZClip "
       "with itself (nothing to clip). v3 runs a calibrated regime (README table; written before these rules): Wortsman et al.'s "
       "small-scale-instability recipe (qk-layernorm off, no warm-up, high rates) with AdamW beta2 0.999, the closest to spiking we "
       "found; the no-clip arm is back (the figure and the regime's supporting check need it); a sweep of 5 rates 3e-3..3e-1. Claims "
       "restated: spikes summed over the rates where fixed clipping spikes (chosen from the fixed arm alone; not testable if none), "
       "Wortsman's lr sensitivity (fixed - ZClip > 0), final loss at each arm's best rate (non-inferiority margin 0.02). The spike "
       "rule is v1's, unchanged; a divergence now counts as a spike and ends the run. Runs go to 2 single-thread worker processes "
       "(tiny models use threads poorly) so that full (2 x 64 GPT, 4 seeds, 800 steps, 60 runs) fits ~25 minutes on 2 cores.",
    4: "issue 16: v3's full run saw no spike in any arm (largest robust z 5.3), as its calibration predicted. A second calibration "
       "round (README, run before these rules; the no-clip and fixed arms, and ZClip once, in a 2 kB regime not chosen) found spikes in one place: a "
       "2 x 96 GPT memorising 4 kB of stdlib source at a constant rate of 1e-2 with no weight decay and AdamW beta2 0.999 (no clipping: "
       "3, 5 and 0 events in seeds 0-2; fixed clipping: 1 and 0 in seeds 0-1; z up to 16), and nowhere else we tried (2 MB to 8 kB "
       "corpora, 2 x 64 and 2 x 128 models, rates 1e-3 to 3e-2). v4 runs that regime: corpus 4 kB, constant rate after no warm-up, "
       "weight decay 0, rates 3e-3, 6e-3, 1e-2, 1.5e-2, 3e-2, full 4 seeds of 1200 steps (60 runs, ~27 min on 2 cores; the calibrated spikes came at steps 712-1110 except two later ones, and with 3 seeds fixed clipping's 1 spiking seed of 3 could never make half). Final loss is "
       "now measured on fixed windows of the training bytes (the regime is memorisation; 5% of 4 kB held out is 200 bytes). The "
       "spikes claim's supporting check and the loss-curve figure use the no-clip arm's spikiest rate instead of the highest (v4's "
       "highest rate does not spike). Rules otherwise unchanged.",
    5: "issue 16: v4's full run spiked without clipping in 2 of 4 seeds (half, not most: the regime's supporting check failed). "
       "A third calibration round (README; the no-clip arm only, 2 x 96 at lr 1e-2 unless stated, seeds 0-3, run before this "
       "version): 4 kB for 2400 steps (seeds 2-3 still 0 events), 3 kB (events 4, 1, 0, 3), 6 kB (0, 0, 0, 1), 4 kB at 1.2e-2 "
       "(2, 3, 0, 0) and at 8e-3 (0, 0, 0, 0); only 3 kB spiked in most seeds. v5 is v4 on 3 kB of text (the same rates, seeds, "
       "model, steps and rules; quick and smoke too). The record's seeds 0-3 are the calibration's (CPU runs are deterministic), "
       "so its no-clip spike counts repeat the calibration's; seeds 4-7 were run on 3 kB after this version was fixed, as an "
       "out-of-sample check of how often the regime spikes (README).",
    6: "issue 16: over eight seeds v5's regime spiked without clipping in three (seeds 4-7, run after v5 was fixed: none), so "
       "the spikes of rounds 2-3 depended on each seed's path through the memorisation. A fourth calibration round (README; the "
       "no-clip arm only) added rare corrupted batches to v5's regime: with probability 0.01 per step the batch is replaced by one "
       "byte of 128-255 repeated (a broken page of mojibake), the same steps and bytes in every arm; those steps are left out of "
       "the spike rule as before (round 1), so a spike is a clean step's loss jumping after one. Probes on seeds 0 and 2: at lr "
       "3e-3 2 and 1 events (a 10-step event with robust z 52 on seed 2, which spiked in no earlier row), at 1e-2 0 and 0; random-"
       "byte batches at 1e-2 1 and 0. The criterion, written before seeds 1 and 3-7 ran: adopt the regime if the no-clip arm "
       "spikes in >= 6 of 8 seeds at 3e-3. It did in 7 of 8 (events 2, 9, 1, 0, 2, 5, 4, 2; robust z up to 54). v6 is v5 plus "
       "these batches at every scale (rates, seeds, model, steps and rules unchanged). The loss-curve figure leaves the corrupted "
       "steps' own losses out and marks them.",
}

MEMORISE = dict(beta2=0.999, warmup_frac=0.0, weight_decay=0.0, lr_schedule="constant", eval_split="train")  # many passes, constant rate
_V4 = dict(MEMORISE, corpus_bytes=4_000, lrs=(3e-3, 6e-3, 1e-2, 1.5e-2, 3e-2))  # the v4 regime (README calibration, round 2): memorising 4 kB
_V5 = dict(_V4, corpus_bytes=3_000)  # the v5 regime (README calibration, round 3): the same on 3 kB
_V6 = dict(_V5, outlier_prob=0.01, outlier_kind="repeat")  # the v6 regime (README calibration, round 4): plus 1% corrupted batches
SCALES = {
    Scale.SMOKE: ZClipStudyConfig(seeds=2, steps=25, batch_size=2, block_size=16, n_layer=1, n_embd=16, n_head=2, eval_batches=2, **_V6),
    Scale.QUICK: ZClipStudyConfig(seeds=2, steps=300, batch_size=16, block_size=64, n_layer=2, n_embd=64, n_head=4, eval_batches=4, workers=2, **_V6),
    Scale.FULL: ZClipStudyConfig(seeds=4, steps=1200, batch_size=16, block_size=64, n_layer=2, n_embd=96, n_head=4, workers=2, **_V6),
}


def _none_if_nonfinite(xs: list[float]) -> list[float | None]:
    return [x if math.isfinite(x) else None for x in xs]


def _as_array(xs: list[float | None]) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in xs], dtype=float)


def _clipped(trace: dict) -> np.ndarray:
    """Steps whose gradient norm exceeded the arm's threshold (before any threshold exists: none)."""
    return _as_array(trace["grad_norms"]) > np.nan_to_num(_as_array(trace["thresholds"]), nan=np.inf)


def lr_key(lr: float) -> str:
    return f"{lr:g}"


# -- the rules ------------------------------------------------------------------------------
def final_losses(m: Metrics, arm: str, lr: float | str) -> list[float]:
    """Per-seed final losses (the metric keeps v1-v3's name final_val_loss) of one arm at one rate; a diverged run (None) counts as ln 256."""
    key = lr if isinstance(lr, str) else lr_key(lr)
    return [UNIFORM_LOSS if x is None else min(float(x), UNIFORM_LOSS) for x in m["runs"][arm][key]["final_val_loss"]]


def spiking_rates(m: Metrics) -> list[str]:
    """The rates at which fixed clipping spikes: at least one spike event in at least half the seeds.

    Chosen from the fixed-clipping arm alone, so the choice cannot favour ZClip."""
    out = []
    for key in m["lrs"]:
        spikes = m["runs"]["fixed"][key]["spikes"]
        if sum(s > 0 for s in spikes) * 2 >= len(spikes):
            out.append(key)
    return out


def shown_rate(m: Metrics) -> str:
    """The no-clip arm's spikiest rate (most seeds with a spike event, then most events; ties to the higher rate):
    the rate of the regime's supporting check and of the loss-curve figure. v3 used the highest rate, where the
    v4 regime (memorisation at a constant rate) does not spike: its spikes sit at 1e-2 (README calibration)."""
    if "none" not in m["runs"]:
        return m["lrs"][-1]
    def score(i_key):
        i, key = i_key
        sp = m["runs"]["none"][key]["spikes"]
        return (sum(x > 0 for x in sp), sum(sp), i)
    return max(enumerate(m["lrs"]), key=score)[1]


def lr_sensitivity(m: Metrics, arm: str) -> list[float]:
    """Wortsman et al.'s learning-rate sensitivity per seed: mean over the sweep of min(L(lr), L0) - min_lr L(lr).

    (arXiv 2309.14322, Sec. 2.3: E_lr[min(l(A(lr)), l0) - l*], l0 the loss at initialisation, l* the
    best loss over the sweep.) l0 = ln 256, the loss of a model that predicts bytes uniformly, which
    is where our freshly initialised GPT starts (0.02-std weights); a diverged run counts as l0."""
    per_lr = np.array([final_losses(m, arm, key) for key in m["lrs"]])  # (rates, seeds)
    return list(np.mean(np.minimum(per_lr, UNIFORM_LOSS), axis=0) - per_lr.min(axis=0))


def best_rate(m: Metrics, arm: str) -> str:
    """The rate with the lowest mean final loss over seeds (each arm its own)."""
    return min(m["lrs"], key=lambda key: float(np.mean(final_losses(m, arm, key))))


def _v3_metrics(judge):
    """A v1/v2 result (two regimes, no sweep) cannot be judged by v3's rules: say so, do not crash."""
    def wrapped(m: Metrics) -> Judgement:
        if "runs" not in m or "lrs" not in m:
            return Judgement.not_run("these are version 1-2 metrics (two rates, no sweep); v3's rules need a rerun: reprolab run zclip")
        return judge(m)
    wrapped.__name__ = judge.__name__
    return wrapped


@_v3_metrics
def _judge_spikes(m: Metrics) -> Judgement:
    rates = spiking_rates(m)
    fixed = [sum(m["runs"]["fixed"][k]["spikes"][s] for k in rates) for s in range(m["seeds"])]
    zc = [sum(m["runs"]["zclip"][k]["spikes"][s] for k in rates) for s in range(m["seeds"])]
    c = stats.compare_paired(zc, fixed, unit="seeds", direction="less", margin=0.0, unit_range=1.0,
                             label=f"spike events per seed summed over the rates where fixed clipping spikes ({', '.join(rates) or 'none'}), fixed - ZClip")
    top = shown_rate(m)
    none_top = m["runs"]["none"][top]["spikes"] if "none" in m["runs"] else []
    ours = (f"spike events per seed at the rates where fixed clipping spikes ({', '.join(rates) or 'none'}): fixed {fixed}, ZClip {zc}; "
            f"fixed - ZClip {c.effect:+.2f} [{c.low:+.2f}, {c.high:+.2f}]; no clipping at lr {top}: {none_top}")
    return Judgement.from_headline(
        ours, c,
        preconditions={f"fixed clipping spikes (>= 1 event in at least half the seeds) at one rate or more (rates: {', '.join(rates) or 'none'})": bool(rates)},
        supporting={f"the regime spikes: no clipping has >= 1 spike event in most seeds at lr {top}, its spikiest rate ({none_top})": sum(s > 0 for s in none_top) * 2 > len(none_top)} if none_top else None,
    )


@_v3_metrics
def _judge_sensitivity(m: Metrics) -> Judgement:
    f, z = lr_sensitivity(m, "fixed"), lr_sensitivity(m, "zclip")
    c = stats.compare_paired(z, f, unit="seeds", direction="less", margin=0.0, label="learning-rate sensitivity (nats/byte), fixed - ZClip")
    ours = (f"lr sensitivity over {len(m['lrs'])} rates ({', '.join(m['lrs'])}): fixed {np.mean(f):.3f}, ZClip {np.mean(z):.3f} "
            f"(mean of {len(f)} seeds); fixed - ZClip {c.effect:+.4f} [{c.low:+.4f}, {c.high:+.4f}]")
    best = min(float(np.mean(final_losses(m, "fixed", k))) for k in m["lrs"])
    return Judgement.from_headline(ours, c, preconditions={
        f"a sweep of at least 5 rates ({len(m['lrs'])})": len(m["lrs"]) >= 5,
        f"the models learned (fixed clipping's best mean loss {best:.3f} < ln 256 - 1 = {UNIFORM_LOSS - 1:.3f})": best < UNIFORM_LOSS - 1,
    })


@_v3_metrics
def _judge_best_rate(m: Metrics) -> Judgement:
    bf, bz = best_rate(m, "fixed"), best_rate(m, "zclip")
    f, z = final_losses(m, "fixed", bf), final_losses(m, "zclip", bz)
    c = stats.compare_paired(z, f, unit="seeds", direction="less", margin=-NOT_WORSE_MARGIN,
                             label=f"final loss at each arm's best rate (fixed {bf}, ZClip {bz}), fixed - ZClip (nats/byte)")
    ours = (f"final loss at the best rate: fixed {np.mean(f):.3f} (lr {bf}), ZClip {np.mean(z):.3f} (lr {bz}), mean of {len(f)} seeds; "
            f"fixed - ZClip {c.effect:+.4f} [{c.low:+.4f}, {c.high:+.4f}]")
    return Judgement.from_headline(ours, c, preconditions={
        f"the models learned (fixed clipping's best mean loss {np.mean(f):.3f} < ln 256 - 1 = {UNIFORM_LOSS - 1:.3f})": float(np.mean(f)) < UNIFORM_LOSS - 1})


# -- the runs -------------------------------------------------------------------------------
def _job(args: tuple) -> tuple[tuple, dict]:
    """One pre-training run (in a worker process when the config asks for several)."""
    cfg, arm, lr, seed, ckpt, description = args
    if ckpt is not None and Path(ckpt).exists():
        return (arm, lr, seed), json.loads(Path(ckpt).read_text())
    corpus = _corpus(cfg.corpus_bytes)
    trace = pretrain(cfg, corpus, arm, lr, seed=seed, description=description)
    if ckpt is not None:
        atomic_write_json(Path(ckpt), trace)
    return (arm, lr, seed), trace


_CORPUS: dict[int, ByteCorpus] = {}


def _corpus(n: int) -> ByteCorpus:
    if n not in _CORPUS:
        _CORPUS[n] = ByteCorpus.python_stdlib(n)
    return _CORPUS[n]


def _worker_init() -> None:
    import os

    os.environ["REPROLAB_PROGRESS"] = "0"
    torch.set_num_threads(1)


@register
class ZClipStudy(Study):
    name = "zclip"
    paper = Paper("ZClip: Adaptive Spike Mitigation for LLM Pre-Training", arxiv="2504.02507", code="https://github.com/bluorion-com/ZClip")
    version = 6
    changelog = CHANGELOG
    claims = [
        Claim(
            "spikes",
            "Where fixed-threshold clipping spikes, ZClip has fewer loss spikes",
            paper="1B LLaMA at lr 3e-3: fixed clipping (max-norm 1.0) shows repeated loss spikes, ZClip none that derail training (Fig. 1, Sec. 4)",
            rule=f"spike events per seed (loss > rolling median of {SPIKE_WINDOW} + max({SPIKE_K:g} x 1.4826 MAD, {SPIKE_MIN_JUMP:g} nats)), summed over the "
                 "rates where fixed clipping has >= 1 event in at least half the seeds (chosen from the fixed arm alone), paired by seed "
                 "(unit: seeds, t interval; all-equal differences get the exact bound with unit_range 1 event): fixed - ZClip > 0 (margin 0); "
                 "precondition: such a rate exists, else not testable; supporting: no clipping spikes in most seeds at its spikiest rate",
            judge=_judge_spikes,
        ),
        Claim(
            "lr_sensitivity",
            "ZClip makes the final loss less sensitive to the learning rate than fixed clipping",
            paper="ZClip enables higher learning rates: at lr 3e-3 fixed clipping ends at 5.14 vs ZClip 2.14, at 1e-3 2.34 vs 2.18 (Table 2); "
                  "measure: Wortsman et al.'s lr sensitivity (arXiv 2309.14322)",
            rule="Wortsman's lr sensitivity per seed, mean over the sweep of min(L(lr), ln 256) - min_lr L(lr) (final loss on the evaluation windows, v4: of the training bytes, nats/byte; "
                 "a diverged run counts as ln 256), paired by seed (unit: seeds, t interval): fixed - ZClip > 0 (margin 0); "
                 "preconditions: a sweep of >= 5 rates, fixed clipping's best mean loss < ln 256 - 1",
            judge=_judge_sensitivity,
        ),
        Claim(
            "best_rate_not_worse",
            "At its best learning rate, ZClip ends at a loss no worse than fixed clipping at its best",
            paper="Table 2: ZClip's final loss is at or below fixed clipping's at every rate (2.18 vs 2.34 at 1e-3)",
            rule=f"final loss (v4: on windows of the training bytes) of each arm at its own best rate (lowest mean over seeds), paired by seed (unit: seeds, t interval): "
                 f"fixed - ZClip > -{NOT_WORSE_MARGIN:g} nats/byte (non-inferiority margin {NOT_WORSE_MARGIN:g}, kept from v3: about 10% of v4's memorisation losses near 0.2); "
                 "precondition: fixed clipping's best mean loss < ln 256 - 1",
            judge=_judge_best_rate,
        ),
    ]
    scales = SCALES

    def run(self, config: ZClipStudyConfig, run: RunDir) -> Metrics:
        corpus = _corpus(config.corpus_bytes)
        key = run.key_with(corpus.sha256)
        jobs = [(config, arm, lr, run.seed * 1000 + s, str(run.checkpoints / f"{key}-{arm}-{lr_key(lr)}-{s}.json"), f"lr {lr:g} {arm} seed {s}")
                for s in range(config.seeds) for lr in config.lrs for arm in config.arms]
        traces: dict[tuple, dict] = {}
        if config.workers > 1:
            import concurrent.futures as cf
            import multiprocessing as mp

            with cf.ProcessPoolExecutor(config.workers, mp_context=mp.get_context("spawn"), initializer=_worker_init) as pool:
                for (arm, lr, seed), trace in track(pool.map(_job, jobs), f"{len(jobs)} runs on {config.workers} workers", total=len(jobs)):
                    traces[(arm, lr, seed - run.seed * 1000)] = trace
        else:  # one thread: a tiny model gains nothing from a second, and loses much when the cores are shared
            with torch_threads(1):
                for job in jobs:
                    (arm, lr, seed), trace = _job(job)
                    traces[(arm, lr, seed - run.seed * 1000)] = trace

        metrics: Metrics = {
            "lrs": [lr_key(lr) for lr in config.lrs],
            "seeds": config.seeds,
            "corpus_sha256": corpus.sha256,
            "corpus_bytes": len(corpus.tokens),
            "model_parameters": make_model(config).num_parameters(),
            "run_wall_s": {f"{a}/{lr_key(lr)}/{s}": t.get("wall_s") for (a, lr, s), t in traces.items()},
            "runs": {},
        }
        for arm in config.arms:
            metrics["runs"][arm] = {}
            for lr in config.lrs:
                runs = [traces[(arm, lr, s)] for s in range(config.seeds)]
                metrics["runs"][arm][lr_key(lr)] = {
                    "spikes": [r["spikes"] for r in runs],
                    "final_val_loss": [r["final_val_loss"] for r in runs],
                    "diverged": [bool(r["diverged"]) for r in runs],
                    "robust_z_max": [r["robust_z_max"] for r in runs],
                    "clipped_steps": [int(np.sum(_clipped(r))) for r in runs],
                    "outlier_batches": [len(r["outlier_steps"]) for r in runs],
                }
        metrics["spiking_rates"] = spiking_rates(metrics)
        metrics["shown_rate"] = shown_rate(metrics)
        metrics["best_rate"] = {arm: best_rate(metrics, arm) for arm in config.arms}
        metrics["lr_sensitivity"] = {arm: [round(x, 6) for x in lr_sensitivity(metrics, arm)] for arm in config.arms}
        self._figures(config, traces, metrics, run)
        return metrics

    # -- figures --------------------------------------------------------------------------
    def _figures(self, config: ZClipStudyConfig, traces: dict, metrics: Metrics, run: RunDir) -> None:
        from ...runtime import pyplot

        plt = pyplot()
        top = next(lr for lr in config.lrs if lr_key(lr) == metrics["shown_rate"])  # the no-clip arm's spikiest rate
        fig, axes = plt.subplots(1, len(config.arms), figsize=(4.2 * len(config.arms), 3.8), sharey=True)
        for ax, arm in zip(np.atleast_1d(axes), config.arms):
            for s in range(config.seeds):
                tr = traces[(arm, top, s)]
                losses = _as_array(tr["losses"])
                bad = tr["outlier_steps"]  # every one is a step that ran (a divergence stops after its step)
                losses[bad] = np.nan  # a corrupted batch's own loss (10+ nats) is not the curve
                line, = ax.plot(losses, lw=0.7, alpha=0.85, label=f"seed {s}: {tr['spikes']} spikes" + (" (diverged)" if tr["diverged"] else ""))
                steps = [t for t in tr["spike_steps"] if t < len(losses) and np.isfinite(losses[t])]
                if steps:
                    ax.scatter(steps, losses[steps], color=line.get_color(), marker="x", s=28, zorder=3)
                if bad:
                    ax.scatter(bad, np.full(len(bad), -0.15 - 0.12 * s), color=line.get_color(), marker="|", s=30, lw=0.8)
            ax.set(title=f"{ARM_LABEL[arm]}, lr {top:g}", xlabel="optimizer step")
            ax.legend(fontsize=7)
        np.atleast_1d(axes)[0].set_ylabel("training loss (nats / byte)")
        run.save_figure(fig, "loss_curves", f"Training loss per step of every seed at lr {top:g} (the no-clip arm's spikiest rate) in each arm; "
                                            f"x = a step flagged by the spike rule (loss > rolling median of {SPIKE_WINDOW} + max({SPIKE_K:g} robust sd, {SPIKE_MIN_JUMP:g})); "
                                            "| below the curves = a corrupted batch (v6: one rare byte repeated, probability 0.01 per step; its own loss is left out).")

        colors = {"none": "tab:gray", "fixed": "tab:red", "zclip": "tab:blue"}
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for arm in config.arms:
            per = np.array([final_losses(metrics, arm, lr) for lr in metrics["lrs"]])  # (rates, seeds)
            mean, sd = per.mean(axis=1), per.std(axis=1)
            ax.errorbar(config.lrs, mean, yerr=sd, marker="o", capsize=3, color=colors.get(arm), label=f"{ARM_LABEL[arm]} (sensitivity {np.mean(lr_sensitivity(metrics, arm)):.3f})")
        ax.axhline(UNIFORM_LOSS, color="black", lw=0.6, ls=":", label="ln 256 (diverged / untrained)")
        ax.set_xscale("log")
        ax.set(xlabel="peak learning rate", ylabel="final loss on the evaluation windows (nats / byte)", title=f"Learning-rate sensitivity ({config.seeds} seeds, mean +- sd)")
        ax.legend(fontsize=8)
        run.save_figure(fig, "lr_sensitivity", "Final loss (on fixed windows of the training bytes since v4) against the learning rate for each arm (mean +- sd over seeds; a diverged run counts as ln 256): "
                                               "the flatter the curve, the lower Wortsman's lr sensitivity.")

        fig, ax = plt.subplots(figsize=(7, 4))
        width = 0.8 / len(config.arms)
        for i, arm in enumerate(config.arms):
            means = [np.mean(metrics["runs"][arm][k]["spikes"]) for k in metrics["lrs"]]
            ax.bar(np.arange(len(config.lrs)) + (i - (len(config.arms) - 1) / 2) * width, means, width, color=colors.get(arm), label=ARM_LABEL[arm])
        ax.set_xticks(range(len(config.lrs)), metrics["lrs"])
        ax.set(xlabel="peak learning rate", ylabel=f"spike events per run (mean of {config.seeds} seeds)", title="Loss spikes per arm and rate")
        ax.legend(fontsize=8)
        run.save_figure(fig, "spike_counts", "Spike events per run by arm and learning rate (mean over seeds).")

        tr = traces[("zclip", top, 0)]
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(_as_array(tr["grad_norms"]), color="tab:blue", lw=0.8, label="gradient norm before clipping")
        ax.plot(_as_array(tr["thresholds"]), color="black", lw=1.0, ls="--", label="ZClip spike boundary mu + 2.5 sigma")
        ax.axhline(1.0, color="tab:red", lw=0.8, ls=":", label="fixed clipping threshold 1.0")
        ax.set_yscale("log")
        ax.set(title=f"ZClip at lr {top:g} (seed 0)", xlabel="optimizer step", ylabel="L2 norm of all gradients")
        ax.legend(fontsize=8)
        run.save_figure(fig, "grad_norm_threshold", f"Gradient norm and ZClip's adaptive spike boundary over steps at lr {top:g} (the no-clip arm's spikiest rate); the fixed threshold 1.0 for reference.")
