"""Study ``zclip``: does ZClip remove the loss spikes that fixed-threshold clipping lets through?

The paper (Sec. 4, Table 2) pre-trains a 1B LLaMA on 50B tokens at learning rates up to 3e-3
and compares fixed clipping at max-norm 1.0 with ZClip. We pre-train the shared tiny GPT
(``reprolab.nn.gpt``) on bytes of the Python standard library's sources (the only real text
corpus every machine has) with AdamW at a baseline and an aggressive learning rate, in the
paper's two arms: ``clip_grad_norm_(max_norm=1.0)`` and ZClip alone (``max_grad_norm=None``, the
official defaults otherwise). Both arms run with the same seeds, data order and init, so every
seed is one paired unit. (Version 1 also ran a no-clipping arm; no claim of the paper compares
with it, so version 2 spends its time on more seeds instead.)

Spike (fixed in code before the first run): a step whose training loss exceeds the median
of the previous ``SPIKE_WINDOW`` = 50 losses by more than ``SPIKE_K`` = 6 robust standard
deviations (1.4826 x MAD of that window). Consecutive flagged steps are one spike event; the
first 50 steps (no full window) are never flagged. Final loss: validation loss on held-out
bytes after the last step; a diverged run (non-finite loss) counts as ``UNIFORM_LOSS`` = ln 256,
the loss of predicting every byte uniformly (a model that learned nothing).

Rules (version 2, issue 14): every claim compares ZClip with fixed clipping per seed, paired by
seed (unit: seeds; Student-t interval of the mean paired difference, ``reprolab.stats``):

- ``spikes``: spike events per run, fixed - ZClip > 0 (margin 0). Precondition: fixed clipping
  spikes at all at the aggressive lr (at least one event over the seeds); without spikes in the
  arm ZClip is meant to improve on, "fewer spikes" cannot be tested.
- ``final_loss_aggressive``: final validation loss, fixed - ZClip > 0 (margin 0): the paper's
  ZClip ends far lower (2.14 vs 5.14), so a strict improvement is asked.
- ``baseline_not_worse``: at the baseline lr, fixed - ZClip > -``NOT_WORSE_MARGIN`` = -0.01
  nats/byte (non-inferiority: ZClip may be at most 0.01 nats/byte worse, about 0.6% of the loss;
  the paper's ZClip is 0.16 nats/token *better* at that lr).

Precondition of both loss claims: the models learned (fixed clipping's mean validation loss
below ln 256). That ZClip clips few steps is no precondition: deciding that a step is not a spike
is ZClip working as described, and the arms still differ in every step fixed clipping clips.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ...data.text_corpus import ByteCorpus
from ...nn.gpt import GPT, GPTConfig
from ...runtime import atomic_write_json, track
from ... import stats
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .zclip import ZClip

SPIKE_WINDOW = 50
SPIKE_K = 6.0
ARMS = ("fixed", "zclip")
ARM_LABEL = {"none": "no clipping", "fixed": "fixed clip (max_norm 1.0)", "zclip": "ZClip (z_thresh 2.5, alpha 0.97)"}
UNIFORM_LOSS = math.log(256)  # nats/byte of predicting bytes uniformly; a diverged run counts as this
NOT_WORSE_MARGIN = 0.01  # nats/byte: how much worse ZClip may be at the baseline lr and still be "not worse"


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
    baseline_lr: float
    aggressive_lr: float
    warmup_frac: float = 0.05  # linear lr warm-up, then cosine decay to 10% (the paper's schedule shape)
    beta2: float = 0.95  # AdamW beta2
    eval_batches: int = 8  # validation batches for the final loss


def count_spikes(losses: np.ndarray, window: int = SPIKE_WINDOW, k: float = SPIKE_K) -> tuple[int, list[int]]:
    """Spike events in a loss curve (see module docstring); returns (count, flagged step indices)."""
    flagged = []
    for t in range(window, len(losses)):
        past = losses[t - window : t]
        med = np.median(past)
        mad = 1.4826 * np.median(np.abs(past - med))
        if losses[t] > med + k * max(mad, 1e-8):
            flagged.append(t)
    events = sum(1 for i, t in enumerate(flagged) if i == 0 or flagged[i - 1] != t - 1)
    return events, flagged


def lr_at(step: int, total: int, peak: float, warmup_frac: float) -> float:
    warm = max(1, int(total * warmup_frac))
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(cfg: ZClipStudyConfig, corpus: ByteCorpus, arm: str, lr: float, seed: int, description: str) -> dict:
    """Pre-train one tiny GPT; return per-step losses, gradient norms, ZClip thresholds, final val loss."""
    train, val = corpus.split(0.05)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(block_size=cfg.block_size, n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, cfg.beta2))
    zclip = ZClip(max_grad_norm=None) if arm == "zclip" else None
    data_gen = torch.Generator().manual_seed(seed)  # same batches in every arm
    started = time.perf_counter()
    losses, norms, thresholds = [], [], []
    for step in track(range(cfg.steps), description):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, lr, cfg.warmup_frac)
        x, y = ByteCorpus.batch(train, cfg.batch_size, cfg.block_size, data_gen)
        _, loss = model(x, y)
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
    model.eval()
    eval_gen = torch.Generator().manual_seed(10_000)  # the same validation windows for every run
    with torch.no_grad():
        val_losses = [float(model(*ByteCorpus.batch(val, cfg.batch_size, cfg.block_size, eval_gen))[1]) for _ in range(cfg.eval_batches)]
    spikes, flagged = count_spikes(np.asarray(losses))
    final = float(np.mean(val_losses))
    return {  # JSON has no NaN: non-finite values (no threshold yet, a diverged loss) are None
        "losses": _none_if_nonfinite(losses),
        "grad_norms": _none_if_nonfinite(norms),
        "thresholds": _none_if_nonfinite(thresholds),
        "spikes": spikes,
        "spike_steps": flagged,
        "final_val_loss": final if math.isfinite(final) else None,
        "diverged": not all(math.isfinite(v) for v in losses),
        "wall_s": round(time.perf_counter() - started, 2),
    }


def _none_if_nonfinite(xs: list[float]) -> list[float | None]:
    return [x if math.isfinite(x) else None for x in xs]


def _as_array(xs: list[float | None]) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in xs], dtype=float)


def _clipped(trace: dict) -> np.ndarray:
    """Steps whose gradient norm exceeded the arm's threshold (before any threshold exists: none)."""
    return _as_array(trace["grad_norms"]) > np.nan_to_num(_as_array(trace["thresholds"]), nan=np.inf)


def _mean(xs: list[float | None]) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def final_losses(m: Metrics, regime: str, arm: str) -> list[float]:
    """Per-seed final validation losses of one arm; a diverged run (None) counts as ln 256."""
    return [UNIFORM_LOSS if x is None else float(x) for x in m[regime][arm]["final_val_loss"]]


def _loss_preconditions(m: Metrics, regime: str) -> dict[str, bool]:
    fixed = final_losses(m, regime, "fixed")
    return {f"the models learned (fixed clipping's mean val loss {np.mean(fixed):.3f} < ln 256 = {UNIFORM_LOSS:.3f})": float(np.mean(fixed)) < UNIFORM_LOSS}


def _loss_judgement(m: Metrics, regime: str, margin: float) -> Judgement:
    z, f = final_losses(m, regime, "zclip"), final_losses(m, regime, "fixed")
    c = stats.compare_paired(z, f, unit="seeds", direction="less", margin=margin, label=f"final val loss at lr {m[f'{regime}_lr']:g}, fixed - ZClip (nats/byte)")
    ours = (f"final val loss at lr {m[f'{regime}_lr']:g}: fixed {np.mean(f):.3f}, ZClip {np.mean(z):.3f} (mean of {len(z)} seeds); "
            f"fixed - ZClip per seed {c.effect:+.4f} [{c.low:+.4f}, {c.high:+.4f}]")
    return Judgement.from_headline(ours, c, preconditions=_loss_preconditions(m, regime))


def _judge_spikes(m: Metrics) -> Judgement:
    s = m["aggressive"]
    fixed, zc = s["fixed"]["spikes"], s["zclip"]["spikes"]
    c = stats.compare_paired(zc, fixed, unit="seeds", direction="less", margin=0.0, label=f"spike events per run at lr {m['aggressive_lr']:g}, fixed - ZClip")
    ours = f"spike events per run at lr {m['aggressive_lr']:g} over {len(fixed)} seeds: fixed {fixed}, ZClip {zc}; fixed - ZClip {c.effect:+.2f} [{c.low:+.2f}, {c.high:+.2f}]"
    return Judgement.from_headline(ours, c, preconditions={f"training spikes in the fixed-clipping arm (spike events per seed {fixed}: at least one over all seeds)": sum(fixed) > 0})


def _judge_loss_aggressive(m: Metrics) -> Judgement:
    return _loss_judgement(m, "aggressive", 0.0)


def _judge_baseline(m: Metrics) -> Judgement:
    return _loss_judgement(m, "baseline", -NOT_WORSE_MARGIN)


@register
class ZClipStudy(Study):
    name = "zclip"
    paper = Paper("ZClip: Adaptive Spike Mitigation for LLM Pre-Training", arxiv="2504.02507", code="https://github.com/bluorion-com/ZClip")
    version = 2
    changelog = {
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
    }
    claims = [
        Claim(
            "spikes",
            "At an aggressive learning rate, ZClip has fewer loss spikes than fixed-threshold clipping",
            paper="1B LLaMA at lr 3e-3: fixed clipping (max-norm 1.0) shows repeated loss spikes, ZClip none that derail training (Fig. 1, Sec. 4)",
            rule=f"spike events per run (loss > rolling median of {SPIKE_WINDOW} + {SPIKE_K:g} x 1.4826 MAD) at the aggressive lr, "
                 "paired by seed (unit: seeds, t interval): fixed - ZClip > 0 (margin 0); precondition: the fixed-clipping arm spikes "
                 "at least once over the seeds, else not testable",
            judge=_judge_spikes,
        ),
        Claim(
            "final_loss_aggressive",
            "At the aggressive learning rate, ZClip ends at a lower loss than fixed clipping",
            paper="Table 2, lr 3e-3: final train loss 5.14 (fixed) vs 2.14 (ZClip); HellaSwag 25.60 vs 50.82",
            rule="final validation loss (nats/byte; a diverged run counts as ln 256) paired by seed (unit: seeds, t interval): "
                 "fixed - ZClip > 0 (margin 0); precondition: fixed clipping's mean loss below ln 256 (the models learned)",
            judge=_judge_loss_aggressive,
        ),
        Claim(
            "baseline_not_worse",
            "At the baseline learning rate, ZClip is not worse than fixed clipping",
            paper="Table 2, lr 1e-3: final train loss 2.34 (fixed) vs 2.18 (ZClip); HellaSwag 43.01 vs 49.30",
            rule=f"final validation loss at the baseline lr paired by seed (unit: seeds, t interval): fixed - ZClip > -{NOT_WORSE_MARGIN:g} "
                 f"nats/byte (non-inferiority margin {NOT_WORSE_MARGIN:g}, about 0.6% of the loss); same precondition as final_loss_aggressive",
            judge=_judge_baseline,
        ),
    ]
    scales = {
        Scale.SMOKE: ZClipStudyConfig(seeds=2, steps=60, batch_size=4, block_size=32, n_layer=1, n_embd=32, n_head=2, corpus_bytes=200_000, baseline_lr=1e-3, aggressive_lr=1e-2, eval_batches=2),
        Scale.QUICK: ZClipStudyConfig(seeds=3, steps=300, batch_size=16, block_size=64, n_layer=2, n_embd=128, n_head=4, corpus_bytes=2_000_000, baseline_lr=1e-3, aggressive_lr=1e-2),
        Scale.FULL: ZClipStudyConfig(seeds=5, steps=700, batch_size=16, block_size=128, n_layer=3, n_embd=128, n_head=4, corpus_bytes=6_000_000, baseline_lr=1e-3, aggressive_lr=1e-2),
    }

    def run(self, config: ZClipStudyConfig, run: RunDir) -> Metrics:
        corpus = ByteCorpus.python_stdlib(config.corpus_bytes)
        key = run.key_with(corpus.sha256)
        traces: dict[tuple[str, str, int], dict] = {}
        jobs = [(regime, arm, s) for regime in ("baseline", "aggressive") for s in range(config.seeds) for arm in ARMS]
        for regime, arm, s in jobs:
            lr = config.baseline_lr if regime == "baseline" else config.aggressive_lr
            ckpt = run.checkpoints / f"{key}-{regime}-{arm}-{s}.json"  # finished runs are reused on resume
            if ckpt.exists():
                traces[(regime, arm, s)] = json.loads(ckpt.read_text())
                continue
            trace = pretrain(config, corpus, arm, lr, seed=run.seed * 1000 + s, description=f"{regime} lr {lr:g} {arm} seed {s}")
            atomic_write_json(ckpt, trace)
            traces[(regime, arm, s)] = trace

        metrics: Metrics = {
            "baseline_lr": config.baseline_lr,
            "aggressive_lr": config.aggressive_lr,
            "corpus_sha256": corpus.sha256,
            "corpus_bytes": len(corpus.tokens),
            "run_wall_s": {f"{r}/{a}/{s}": t.get("wall_s") for (r, a, s), t in traces.items()},
            "model_parameters": GPT(GPTConfig(block_size=config.block_size, n_layer=config.n_layer, n_embd=config.n_embd, n_head=config.n_head)).num_parameters(),
        }
        for regime in ("baseline", "aggressive"):
            metrics[regime] = {}
            for arm in ARMS:
                runs = [traces[(regime, arm, s)] for s in range(config.seeds)]
                spikes = [r["spikes"] for r in runs]
                finals = [r["final_val_loss"] for r in runs]
                metrics[regime][arm] = {
                    "spikes": spikes,
                    "spikes_mean": float(np.mean(spikes)),
                    "spikes_std": float(np.std(spikes)),
                    "final_val_loss": finals,
                    "final_val_loss_mean": _mean(finals),
                    "diverged_runs": sum(r["diverged"] for r in runs),
                    "clipped_steps": [int(np.sum(_clipped(r))) for r in runs],
                    "clipped_fraction": float(np.mean([np.mean(_clipped(r)) for r in runs])),
                }
        self._figures(config, traces, metrics, run)
        return metrics

    # -- figures --------------------------------------------------------------------------
    def _figures(self, config: ZClipStudyConfig, traces: dict, metrics: Metrics, run: RunDir) -> None:
        from ...runtime import pyplot

        plt = pyplot()

        colors = {"fixed": "tab:red", "zclip": "tab:blue"}
        fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
        for ax, regime in zip(axes, ("baseline", "aggressive")):
            for arm in ARMS:
                tr = traces[(regime, arm, 0)]
                ax.plot(_as_array(tr["losses"]), color=colors[arm], lw=0.8, label=f"{ARM_LABEL[arm]} ({tr['spikes']} spikes)")
                if tr["spike_steps"]:
                    ax.scatter(tr["spike_steps"], [tr["losses"][t] for t in tr["spike_steps"]], color=colors[arm], marker="x", s=30, zorder=3)
            lr = metrics[f"{regime}_lr"]
            ax.set(title=f"{regime} lr {lr:g} (seed 0); x = spike", xlabel="optimizer step", ylabel="training loss (nats / byte)")
            ax.legend(fontsize=8)
        run.save_figure(fig, "loss_curves", "Training loss per step, spikes (loss > rolling median + 6 robust sd) marked with x; seed 0 of each arm.")

        tr = traces[("aggressive", "zclip", 0)]
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(_as_array(tr["grad_norms"]), color="tab:blue", lw=0.8, label="gradient norm before clipping")
        ax.plot(_as_array(tr["thresholds"]), color="black", lw=1.0, ls="--", label="ZClip spike boundary mu + 2.5 sigma")
        ax.axhline(1.0, color="tab:red", lw=0.8, ls=":", label="fixed clipping threshold 1.0")
        ax.set_yscale("log")
        ax.set(title=f"ZClip at lr {metrics['aggressive_lr']:g} (seed 0)", xlabel="optimizer step", ylabel="L2 norm of all gradients")
        ax.legend(fontsize=8)
        run.save_figure(fig, "grad_norm_threshold", "Gradient norm and ZClip's adaptive spike boundary over steps (aggressive lr); the fixed threshold 1.0 for reference.")

        fig, ax = plt.subplots(figsize=(7, 4))
        width = 0.25
        for i, arm in enumerate(ARMS):
            means = [metrics[r][arm]["spikes_mean"] for r in ("baseline", "aggressive")]
            stds = [metrics[r][arm]["spikes_std"] for r in ("baseline", "aggressive")]
            ax.bar(np.arange(2) + (i - 0.5) * width, means, width, yerr=stds, color=colors[arm], label=ARM_LABEL[arm])
        ax.set_xticks(range(2), [f"baseline lr {config.baseline_lr:g}", f"aggressive lr {config.aggressive_lr:g}"])
        ax.set(ylabel=f"spike events per run (mean +- sd, {config.seeds} seeds)", title="Loss spikes per arm")
        ax.legend(fontsize=8)
        run.save_figure(fig, "spike_counts", "Spike events per run, mean and standard deviation over seeds.")

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
        for ax, regime in zip(axes, ("baseline", "aggressive")):
            f, z = final_losses(metrics, regime, "fixed"), final_losses(metrics, regime, "zclip")
            for s, (a, b) in enumerate(zip(f, z)):
                ax.plot([0, 1], [a, b], "o-", color="tab:gray", lw=0.8, ms=4)
                ax.annotate(f"seed {s}", (1, b), textcoords="offset points", xytext=(5, 0), fontsize=7, va="center")
            ax.set_xticks([0, 1], ["fixed clip 1.0", "ZClip"])
            ax.set_xlim(-0.3, 1.5)
            ax.set(title=f"{regime} lr {metrics[f'{regime}_lr']:g}", ylabel="final validation loss (nats / byte)")
        run.save_figure(fig, "final_loss_per_seed", "Final validation loss per seed, the two arms of each seed joined (same init and data order): the paired unit the loss claims are judged on.")
