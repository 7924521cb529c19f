"""Study ``vlm_rl``: MAYE's Reinforce++ on a tiny VLM against its vanilla model and against SFT on golden CoT.

No VLM weights fit offline on CPU, so the *vanilla* model is our tiny shapes Llava
(:mod:`reprolab.nn.mllm`, a real ``LlavaForConditionalGeneration``) taught by SFT to write chains of thought
(:mod:`reprolab.data.visual_math`) on a set disjoint from the RL questions, stopped at modest accuracy. A
self-check segment (``wait , check again : <term> : <n> .``) is **planted in 20% of its SFT traces** so that the
reflection metrics have something to count (the paper's Qwen2.5-VL reflects on its own; ours only imitates).
From the vanilla model, per seed:

- RL: :class:`.MayeTrainer` with the paper's settings (1 PPO epoch, eps 0.2, gamma 1, beta_loss 0.001, beta_rew 0,
  warmup + cosine, grad-norm clip 1, T = top_p = 1, only the LLM trained); batch and mini-batch scaled to the model;
  the lr is chosen once per run, before any arm runs, from ``LR_GRID`` on a *tuning split* (in distribution, disjoint
  from validation and test: :func:`select_lr`), instead of a separate tuning run at quick scale; ``min_response_length``
  8 instead of 18 (our shortest golden CoT is 18 tokens with its EOS, the paper's are hundreds);
- SFT: the golden CoTs of the same RL questions (no planted reflection), the same number of epochs, twice the RL lr
  (paper: 1e-5 vs 5e-6), batch 16, warmup + cosine.

Evaluation (the paper's scheme, :mod:`.evaluation`): after each epoch, validation (in distribution: 1-3 objects, the
training operations) and test (out of distribution: 4-object scenes, ``vision:x`` -- an operation never seen with two
counted terms -- plus ``vision:+`` and ``text:x``) in three settings: pass@8 T=1.0, pass@1 T=0.6, pass@1 T=0.01
(top_p 0.001); the vanilla model is evaluated the same way once per seed. RL logs train accuracy, response length
and the five reflection ratios per generation step.

Rules (fixed in code before the first quick or full run; unit = questions, paired, a BCa bootstrap of the per-question
differences of accuracies averaged over epochs and seeds, :mod:`reprolab.stats`, 95%):

- rl_beats_vanilla: headline test pass@1 T=0.6 (the paper's Table 3 setting), RL (mean over epochs) - vanilla > 0;
  supporting: the point difference > 0 in the five other (split, setting) cells (else ``partly``).
- rl_beats_sft: headline test pass@1 T=0.6, RL - SFT > 0 (both means over epochs); supporting: > 0 at the other two
  test settings.
- reflection_tracks_length: per seed, Pearson r over the RL generation steps between the reflection ratio (share of
  responses with one of the 15 words) and the mean response length; headline the mean r over seeds > 0 (t interval
  over seeds); supporting: r > 0 in every seed. Planted: reflective responses are 8 tokens longer by construction,
  so this checks that the scheme measures what is there, not that RL discovers reflection.

Preconditions (``not testable`` when they fail): the vanilla model learned the task without saturating it
(validation pass@1 T=0.6 in [5%, 95%]); every RL / SFT run finished with finite losses; for the reflection claim, the
reflection ratio is above 1% on average and varies over steps in every seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ... import stats
from ...data.visual_math import VisualMathConfig, make_visual_math, vocabulary
from ...nn.mllm import MLLMConfig, ShapesVQAProcessor, TrainConfig, build_mllm, build_tokenizer, train_mllm_responses
from ...runtime import load_checkpoint, process_map, save_checkpoint, torch_threads, track
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .evaluation import SETTINGS, SchemeLog, epoch_table, reflection_ratios
from .formats import shapes_collate
from .maye import MayeConfig, MayeTrainer, decode_responses, response_padding, sample_responses, stop_token_ids, vision_placeholder_ids
from .rewards import judge

UNIT_Q = "questions"
SPLITS = ("val", "test")
HEADLINE_SETTING = "pass@1 T=0.6"
VANILLA_RANGE = (0.05, 0.95)
REFLECTION_FLOOR = 0.01
TRAIN_DATA = VisualMathConfig(objects=(1, 3))
VAL_DATA = VisualMathConfig(objects=(1, 3))
TEST_DATA = VisualMathConfig(objects=(4, 4), kinds=("vision:x", "vision:+", "text:x"))
LR_GRID = (3e-5, 1e-4, 3e-4)  # RL learning rates tried on the tuning split (the paper's 5e-6 is for a pretrained 7B model)
PAPER_NUMBERS = {"vanilla": 28.0, "rl_mean": 29.0, "rl_max": 35.2, "sft_mean": 13.3, "sft_max": 20.0}  # Table 3, mm_math5k test pass@1 T=0.6


@dataclass(frozen=True)
class VlmRlConfig:
    model: MLLMConfig
    vanilla: TrainConfig  # SFT of the vanilla model (golden CoT with planted reflection)
    vanilla_questions: int  # its training set (disjoint seeds from everything else)
    rl_questions: int  # the RL training set; an epoch is rl_questions / batch generation steps
    val_questions: int
    test_questions: int
    epochs: int
    batch: int  # queries per generation step
    ppo_batch: int
    lr: float | None  # set by the run from lr_grid (None in the scale configs)
    lr_grid: tuple[float, ...]  # RL learning rates tried on the tuning split; the best is used (SFT arm: 2x)
    tune_steps: int  # RL generation steps per candidate lr
    seeds: int
    sft_batch: int = 16
    reflect: float = 0.2  # fraction of the vanilla model's SFT traces with the planted self-check
    max_new_tokens: int = 48
    min_response_length: int = 8
    eval_k: int = 8  # pass@k of the high-temperature setting
    parallel: bool = True  # run the (arm, seed) jobs in worker processes, one thread each
    tune_questions: int = 256  # the tuning split (in distribution, disjoint from validation and test)


# ----------------------------------------------------------------------------- evaluation of one model


@torch.no_grad()
def evaluate_model(model, tok, proc, data, k: int, max_new_tokens: int, seed: int) -> dict[str, Any]:
    """Per setting, per question pass@k (0/1), and the pass@1 T=0.6 responses' lengths and reflection ratios."""
    stop, suppress = stop_token_ids(model, tok), vision_placeholder_ids(model)
    inputs = shapes_collate(proc)(data.samples())
    out: dict[str, Any] = {}
    for i, s in enumerate(SETTINGS):
        kk = k if s.k > 1 else 1
        torch.manual_seed(seed * 7919 + i)
        resp = sample_responses(model, inputs, stop_ids=stop, pad_id=tok.pad_token_id, temperature=s.temperature, top_p=s.top_p, max_new_tokens=max_new_tokens,
                                num_return_sequences=kk, suppress=suppress)
        pad, _, _ = response_padding(resp, stop)
        texts = decode_responses(tok, resp, pad, tok.pad_token_id)
        sols = [a for a in data.answers for _ in range(kk)]
        ok = np.array([judge(t, a, use_math_verify=False) for t, a in zip(texts, sols)]).reshape(len(data), kk)
        out[s.name] = bits(ok.any(1))
        if s.name == HEADLINE_SETTING:
            out["length"] = float((~pad).sum(1).float().mean())
            out["reflection"] = reflection_ratios(texts, ok[:, 0].tolist())
    return out


def bits(flags) -> str:
    """Per-question 0/1 outcomes as one string ("0110..."): a record holds thousands of them (one JSON line each as lists)."""
    return "".join("1" if f else "0" for f in np.asarray(flags, dtype=bool).ravel())


def outcomes(x) -> np.ndarray:
    """Per-question outcomes from :func:`bits`' string, or from a list of numbers (the v1 record's encoding)."""
    return np.array([c == "1" for c in x], dtype=float) if isinstance(x, str) else np.asarray(x, dtype=float)


def _datasets(cfg: VlmRlConfig, seed: int):
    val = make_visual_math(cfg.val_questions, VAL_DATA, seed=10_000 + seed)
    test = make_visual_math(cfg.test_questions, TEST_DATA, seed=20_000 + seed)
    rl = make_visual_math(cfg.rl_questions, TRAIN_DATA, seed=30_000 + seed)
    return val, test, rl


def _build(cfg: VlmRlConfig):
    tok = build_tokenizer(vocabulary())
    model = build_mllm(cfg.model, tok, seed=0)
    return tok, model, ShapesVQAProcessor(tok, model.config)


def train_vanilla(cfg: VlmRlConfig, ckpt: str, seed: int) -> dict[str, Any]:
    """The vanilla model: SFT on golden CoTs with planted reflection (cached in ``ckpt``)."""
    saved = load_checkpoint(ckpt)
    if saved is not None:
        return saved
    tok, model, proc = _build(cfg)
    data = make_visual_math(cfg.vanilla_questions, VisualMathConfig(objects=TRAIN_DATA.objects, kinds=TRAIN_DATA.kinds, reflect=cfg.reflect), seed=40_000 + seed)
    out = train_mllm_responses(model, proc, data.images, data.questions, data.cots, cfg.vanilla, seed=seed, description="vlm_rl: vanilla SFT")
    saved = {"model": model.state_dict(), "losses": out.losses, "seconds": out.seconds}
    save_checkpoint(ckpt, saved)
    return saved


def select_lr(cfg: VlmRlConfig, state: dict, seed: int) -> dict[str, Any]:
    """The RL learning rate, chosen once per run on a tuning split (in distribution, disjoint from validation and
    test): from the vanilla weights, ``tune_steps`` RL steps per candidate of ``lr_grid``, then pass@1 T=0.6 on the
    tuning split; the best wins (ties: the smaller lr). Neither validation nor test is looked at."""
    tune = make_visual_math(cfg.tune_questions, VAL_DATA, seed=50_000 + seed)
    pool = make_visual_math(cfg.tune_steps * cfg.batch, TRAIN_DATA, seed=60_000 + seed).samples()
    scores = {}
    with torch_threads(1):
        for lr in cfg.lr_grid:
            tok, model, proc = _build(cfg)
            model.load_state_dict(state)
            mcfg = MayeConfig(batch_size=cfg.batch, ppo_batch_size=cfg.ppo_batch, lr=lr, max_new_tokens=cfg.max_new_tokens, min_response_length=cfg.min_response_length)
            trainer = MayeTrainer(model, tok, shapes_collate(proc), mcfg, total_steps=cfg.tune_steps, seed=seed)
            for b in track(range(cfg.tune_steps), f"vlm_rl: lr {lr:g} on the tuning split"):
                torch.manual_seed(seed * 100_000 + b)
                trainer.step(pool[b * cfg.batch : (b + 1) * cfg.batch])
            e = evaluate_model(model, tok, proc, tune, 1, cfg.max_new_tokens, seed=seed)
            scores[lr] = float(np.mean(outcomes(e[HEADLINE_SETTING])))
    best = max(sorted(scores), key=lambda lr: scores[lr])  # sorted ascending: max keeps the first (smallest) of ties
    return {"lr": best, "tuning_accuracy": {f"{lr:g}": v for lr, v in scores.items()}}


# ----------------------------------------------------------------------------- one (arm, seed) job


def _job(job: tuple[VlmRlConfig, str, int, int, dict]) -> dict[str, Any]:
    cfg, arm, seed, data_seed, state = job
    with torch_threads(1):
        return run_arm(cfg, arm, seed, data_seed, state)


def run_arm(cfg: VlmRlConfig, arm: str, seed: int, data_seed: int, state: dict) -> dict[str, Any]:
    """``arm`` in ("vanilla", "rl", "sft") from the vanilla weights ``state``: per-epoch evaluations and the scheme's log."""
    tok, model, proc = _build(cfg)
    model.load_state_dict(state)
    model.eval()
    val, test, rl = _datasets(cfg, data_seed)
    log = SchemeLog()
    evals: list[dict[str, Any]] = []

    def evaluate(epoch: int, train_acc: float | None) -> None:
        e = {sp: evaluate_model(model, tok, proc, d, cfg.eval_k, cfg.max_new_tokens, seed=seed * 1000 + epoch * 10 + j) for j, (sp, d) in enumerate((("val", val), ("test", test)))}
        evals.append(e)
        log.log_epoch(epoch, train_acc, {f"{sp}/{s.name}": float(np.mean(outcomes(e[sp][s.name]))) for sp in SPLITS for s in SETTINGS})

    steps_per_epoch = cfg.rl_questions // cfg.batch
    losses: list[float] = []
    if arm == "vanilla":
        evaluate(0, None)
    elif arm == "rl":
        mcfg = MayeConfig(batch_size=cfg.batch, ppo_batch_size=cfg.ppo_batch, lr=cfg.lr, max_new_tokens=cfg.max_new_tokens, min_response_length=cfg.min_response_length)
        trainer = MayeTrainer(model, tok, shapes_collate(proc), mcfg, total_steps=cfg.epochs * steps_per_epoch, seed=seed)
        samples = rl.samples()
        g = np.random.default_rng(seed)
        for epoch in range(1, cfg.epochs + 1):
            order = g.permutation(len(samples))
            hits = []
            for b in track(range(steps_per_epoch), f"vlm_rl: RL seed {seed} epoch {epoch}"):
                torch.manual_seed(seed * 100_000 + epoch * 1000 + b)
                st = trainer.step([samples[i] for i in order[b * cfg.batch : (b + 1) * cfg.batch]])
                hits += st.correct
                lengths = [len(t.split()) + 1 for t in st.texts]  # words + EOS
                log.log_step(trainer.steps, st.texts, st.correct, [st.response_length], policy_loss=st.policy_loss, kl=st.kl, entropy=st.entropy,
                             seconds=st.seconds_generate + st.seconds_update, words_plus_eos=float(np.mean(lengths)))
                losses.append(st.policy_loss)
            evaluate(epoch, float(np.mean(hits)))
    elif arm == "sft":
        steps = cfg.epochs * max(1, cfg.rl_questions // cfg.sft_batch)
        per_epoch = steps // cfg.epochs

        def after(step: int) -> None:
            if step % per_epoch == 0:
                evaluate(step // per_epoch, None)

        out = train_mllm_responses(model, proc, rl.images, rl.questions, rl.cots, TrainConfig(steps=steps, batch=cfg.sft_batch, lr=2 * cfg.lr, warmup=max(1, steps // 30)),
                                   seed=seed, betas=(0.9, 0.95), description=f"vlm_rl: SFT seed {seed}", callback=after)
        losses = out.losses
    else:  # pragma: no cover
        raise ValueError(arm)
    return {"arm": arm, "seed": seed, "evals": evals, "log": log.to_json(), "losses_finite": bool(np.all(np.isfinite(losses))), "steps": len(losses)}


# ----------------------------------------------------------------------------- rules


def summarise(parts: list[dict[str, Any]]) -> Metrics:
    """The metrics the rules read, from the (arm, seed) jobs' outputs: the runs per arm, the scheme's tables (mean and
    max over epochs, averaged over seeds, per split and setting) and r(reflection, length) per RL seed."""
    runs = {arm: [p for p in parts if p["arm"] == arm] for arm in ("vanilla", "rl", "sft")}
    tables = {arm: {sp: {s.name: epoch_table([[float(np.mean(outcomes(e[sp][s.name]))) for e in r["evals"]] for r in rs]) for s in SETTINGS} for sp in SPLITS}
              for arm, rs in runs.items()}
    return {"runs": runs, "tables": tables, "reflection_r": [reflection_length_r(r["log"]["steps"]) for r in runs["rl"]]}


def per_question(m: Metrics, arm: str, split: str, setting: str) -> np.ndarray:
    """Per question: accuracy averaged over the arm's epochs and seeds."""
    runs = m["runs"][arm]
    return np.mean([np.mean([outcomes(e[split][setting]) for e in r["evals"]], axis=0) for r in runs], axis=0)


def _vanilla_ok(m: Metrics) -> bool:
    v = float(np.mean(per_question(m, "vanilla", "val", HEADLINE_SETTING)))
    return VANILLA_RANGE[0] <= v <= VANILLA_RANGE[1]


def _ran(m: Metrics, arm: str) -> bool:
    return all(r["losses_finite"] and r["steps"] > 0 for r in m["runs"][arm])


def judge_rl_vanilla(m: Metrics) -> Judgement:
    pre = {f"vanilla validation pass@1 T=0.6 within {VANILLA_RANGE}": _vanilla_ok(m), "every RL run finished with finite losses": _ran(m, "rl")}
    if not all(pre.values()):
        return Judgement.not_testable("preconditions failed", pre)
    rl, va = per_question(m, "rl", "test", HEADLINE_SETTING), per_question(m, "vanilla", "test", HEADLINE_SETTING)
    c = stats.compare_paired(rl, va, unit=UNIT_Q, direction="greater", margin=0.0, unit_range=1.0, label="RL (mean over epochs) - vanilla, test pass@1 T=0.6")
    cells = {f"{sp} {s.name}": float(np.mean(per_question(m, "rl", sp, s.name)) - np.mean(per_question(m, "vanilla", sp, s.name))) for sp in SPLITS for s in SETTINGS}
    supporting = {f"RL > vanilla on {k}": v > 0 for k, v in cells.items() if k != f"test {HEADLINE_SETTING}"}
    t = m["tables"]
    ours = (f"test pass@1 T=0.6: vanilla {t['vanilla']['test'][HEADLINE_SETTING]['mean'] * 100:.1f}, RL mean {t['rl']['test'][HEADLINE_SETTING]['mean'] * 100:.1f} / "
            f"max {t['rl']['test'][HEADLINE_SETTING]['max'] * 100:.1f} (over epochs, averaged over {len(m['runs']['rl'])} seeds); RL - vanilla per cell: "
            + ", ".join(f"{k} {v * 100:+.1f}" for k, v in cells.items()))
    return Judgement.from_headline(ours, c, supporting=supporting, preconditions=pre)


def judge_rl_sft(m: Metrics) -> Judgement:
    pre = {f"vanilla validation pass@1 T=0.6 within {VANILLA_RANGE}": _vanilla_ok(m), "every RL run finished with finite losses": _ran(m, "rl"),
           "every SFT run finished with finite losses": _ran(m, "sft")}
    if not all(pre.values()):
        return Judgement.not_testable("preconditions failed", pre)
    rl, sft = per_question(m, "rl", "test", HEADLINE_SETTING), per_question(m, "sft", "test", HEADLINE_SETTING)
    c = stats.compare_paired(rl, sft, unit=UNIT_Q, direction="greater", margin=0.0, unit_range=1.0, label="RL - SFT (means over epochs), test pass@1 T=0.6")
    others = {s.name: float(np.mean(per_question(m, "rl", "test", s.name)) - np.mean(per_question(m, "sft", "test", s.name))) for s in SETTINGS}
    supporting = {f"RL > SFT on test {k}": v > 0 for k, v in others.items() if k != HEADLINE_SETTING}
    t = m["tables"]
    ours = (f"test pass@1 T=0.6: RL {t['rl']['test'][HEADLINE_SETTING]['mean'] * 100:.1f} / {t['rl']['test'][HEADLINE_SETTING]['max'] * 100:.1f}, SFT "
            f"{t['sft']['test'][HEADLINE_SETTING]['mean'] * 100:.1f} / {t['sft']['test'][HEADLINE_SETTING]['max'] * 100:.1f} (mean / max over epochs); vanilla "
            f"{t['vanilla']['test'][HEADLINE_SETTING]['mean'] * 100:.1f}; RL - SFT: " + ", ".join(f"{k} {v * 100:+.1f}" for k, v in others.items()))
    return Judgement.from_headline(ours, c, supporting=supporting, preconditions=pre)


def reflection_length_r(steps: list[dict[str, float]]) -> float:
    """Pearson r over generation steps between the reflection ratio and the mean response length (0 if either is constant)."""
    x = np.array([s["reflection_ratio"] for s in steps], dtype=float)
    y = np.array([s["response_length"] for s in steps], dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def judge_reflection(m: Metrics) -> Judgement:
    logs = [r["log"]["steps"] for r in m["runs"]["rl"]]
    pre = {f"reflection ratio > {REFLECTION_FLOOR:.0%} on average in every seed": all(np.mean([s["reflection_ratio"] for s in st]) > REFLECTION_FLOOR for st in logs),
           "the reflection ratio varies over steps in every seed": all(len(st) >= 3 and np.ptp([s["reflection_ratio"] for s in st]) > 0 for st in logs)}
    if not all(pre.values()):
        return Judgement.not_testable("preconditions failed", pre)
    rs = [reflection_length_r(st) for st in logs]
    c = stats.compare_to_value(rs, 0.0, unit="seeds", direction="greater", margin=0.0, label="Pearson r(reflection ratio, response length) over generation steps")
    ours = f"r per seed {', '.join(f'{r:+.2f}' for r in rs)} over {len(logs[0])} generation steps (reflection planted in the vanilla model's SFT data)"
    return Judgement.from_headline(ours, c, supporting={"r > 0 in every seed": all(r > 0 for r in rs)}, preconditions=pre)


# ----------------------------------------------------------------------------- the study


@register
class VlmRlStudy(Study):
    name = "vlm_rl"
    paper = Paper("Rethinking RL Scaling for Vision Language Models: A Transparent, From-Scratch Framework and Comprehensive Evaluation Scheme",
                  arxiv="2504.02587", code="https://github.com/GAIR-NLP/MAYE")
    version = 1
    changelog = {1: "first version: tiny shapes Llava, visual math with golden CoT (20% planted reflection in the vanilla SFT data); RL (MAYE) "
                    "and SFT arms from the vanilla model, 3 seeds, the RL lr chosen per run on a tuning split; rules fixed before the first quick run."}
    claims = [
        Claim("rl_beats_vanilla", "RL from the vanilla model raises validation and test accuracy in all three generation settings",
              paper="Table 3: Qwen2.5-VL-7B, mm_math5k test pass@1 T=0.6: vanilla 28.0 -> RL 29.0 mean / 35.2 max over epochs",
              rule="headline: per test question, RL accuracy (mean over epochs and seeds) - vanilla (mean over seeds), pass@1 T=0.6, paired "
                   "bootstrap over questions > 0; supporting: RL > vanilla (point) in the other five (split, setting) cells; preconditions: "
                   "vanilla validation pass@1 T=0.6 in [5%, 95%], RL runs finite",
              judge=judge_rl_vanilla),
        Claim("rl_beats_sft", "RL beats SFT on golden CoT on the out-of-distribution test",
              paper="Table 3: mm_math5k test pass@1 T=0.6: SFT 13.3 mean / 20.0 max vs RL 29.0 / 35.2 (vanilla 28.0)",
              rule="headline: per test question, RL - SFT accuracy (means over epochs and seeds), pass@1 T=0.6, paired bootstrap over "
                   "questions > 0; supporting: > 0 at pass@8 T=1.0 and pass@1 T=0.01; preconditions as rl_beats_vanilla and SFT runs finite",
              judge=judge_rl_sft),
        Claim("reflection_tracks_length", "The reflection ratio tracks the response length over generation steps",
              paper="Figs. 4-5: the share of responses with reflection words rises and falls with the response length",
              rule="headline: per seed, Pearson r over RL generation steps between the reflection ratio and the mean response length; mean "
                   "over seeds > 0 (t interval over seeds); supporting: r > 0 in every seed; preconditions: reflection ratio > 1% on average "
                   "and not constant in every seed (reflection planted in the vanilla data)",
              judge=judge_reflection),
    ]
    scales = {
        Scale.SMOKE: VlmRlConfig(model=MLLMConfig(hidden=32, intermediate=64, layers=1, vision_layers=1, vision_hidden=32, vision_feature_layer=0),
                                 vanilla=TrainConfig(steps=4, batch=8, lr=3e-3, warmup=2), vanilla_questions=16, rl_questions=8, val_questions=4,
                                 test_questions=4, epochs=1, batch=4, ppo_batch=2, lr=None, lr_grid=(1e-4,), tune_steps=1, seeds=1, eval_k=2,
                                 max_new_tokens=8, sft_batch=4, parallel=False, tune_questions=4),
        Scale.QUICK: VlmRlConfig(model=MLLMConfig(hidden=64, intermediate=128, layers=4, vision_layers=1, vision_feature_layer=0),
                                 vanilla=TrainConfig(steps=400, batch=32, lr=3e-3, warmup=40), vanilla_questions=3000, rl_questions=128, val_questions=64,
                                 test_questions=64, epochs=2, batch=32, ppo_batch=8, lr=None, lr_grid=LR_GRID, tune_steps=8, seeds=1, tune_questions=128),
        Scale.FULL: VlmRlConfig(model=MLLMConfig(hidden=64, intermediate=128, layers=4, vision_layers=1, vision_feature_layer=0),
                                vanilla=TrainConfig(steps=400, batch=32, lr=3e-3, warmup=40), vanilla_questions=3000, rl_questions=640, val_questions=256,
                                test_questions=256, epochs=6, batch=32, ppo_batch=8, lr=None, lr_grid=LR_GRID, tune_steps=24, seeds=3),
    }

    def run(self, config: VlmRlConfig, run: RunDir) -> Metrics:
        cfg = config
        van = train_vanilla(cfg, str(run.checkpoints / f"{run.key_with('vanilla')}-vanilla.pt"), seed=run.seed)
        chosen = select_lr(cfg, van["model"], seed=run.seed)
        cfg = dataclasses.replace(cfg, lr=chosen["lr"])
        seeds = [run.seed * 100 + i for i in range(cfg.seeds)]
        jobs = [(cfg, arm, s, run.seed, van["model"]) for arm in ("vanilla", "rl", "sft") for s in seeds]
        parts = process_map(_job, jobs, "vlm_rl: arms x seeds", parallel=cfg.parallel)
        m = summarise(parts)
        m.update({"lr_selection": chosen, "vanilla_sft_loss": [float(np.mean(van["losses"][:20])), float(np.mean(van["losses"][-20:]))], "vanilla_sft_seconds": float(van["seconds"]),
                  "paper": PAPER_NUMBERS})
        self._figures(run, m, cfg)
        return m

    def _figures(self, run: RunDir, m: Metrics, cfg: VlmRlConfig) -> None:
        from ...runtime import pyplot

        plt = pyplot()
        fig, axes = plt.subplots(2, 3, figsize=(12, 6.4), sharex=True)
        for i, sp in enumerate(SPLITS):
            for j, s in enumerate(SETTINGS):
                ax = axes[i, j]
                v = np.mean([outcomes(r["evals"][0][sp][s.name]) for r in m["runs"]["vanilla"]])
                ax.axhline(v * 100, color="gray", ls=":", label="vanilla")
                for arm, col in (("rl", "C0"), ("sft", "C1")):
                    for k, r in enumerate(m["runs"][arm]):
                        acc = [np.mean(outcomes(e[sp][s.name])) * 100 for e in r["evals"]]
                        ax.plot(range(1, len(acc) + 1), acc, "o-", color=col, alpha=0.7, label=arm.upper() if k == 0 else None)
                ax.set_title(f"{sp} {s.name}", fontsize=9)
                if j == 0:
                    ax.set_ylabel("accuracy (%)")
                if i == 1:
                    ax.set_xlabel("epoch")
        axes[0, 0].legend(fontsize=7)
        fig.tight_layout()
        run.save_figure(fig, "accuracy_per_epoch", "The scheme's accuracy curves: validation (top, in distribution) and test (bottom, 4-object scenes and unseen "
                        "operation combinations) per epoch in the three generation settings; RL (blue) and SFT on golden CoT (orange), one line per "
                        "seed; dotted: the vanilla model")
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
        for r in m["runs"]["rl"]:
            st = r["log"]["steps"]
            x = [s["step"] for s in st]
            axes[0].plot(x, [s["accuracy"] * 100 for s in st], alpha=0.8, label=f"seed {r['seed']}")
            axes[1].plot(x, [s["response_length"] for s in st], alpha=0.8)
            for key, ls in (("reflection_ratio", "-"), ("reflection_ratio_in_correct", "--"), ("reflection_ratio_in_incorrect", ":")):
                axes[2].plot(x, [s[key] for s in st], ls, alpha=0.8, color="C0", label=key if r is m["runs"]["rl"][0] else None)
        axes[0].set_ylabel("train accuracy (%)")
        axes[1].set_ylabel("mean response length (tokens)")
        axes[2].set_ylabel("ratio")
        for ax in axes:
            ax.set_xlabel("generation step")
        axes[0].legend(fontsize=7)
        axes[2].legend(fontsize=7)
        fig.tight_layout()
        run.save_figure(fig, "scheme_per_step", "RL per generation step: train accuracy, mean response length, and reflection ratios (all responses, "
                        "correct ones, incorrect ones); reflection was planted in 20% of the vanilla model's SFT traces")
        fig, ax = plt.subplots(figsize=(6, 3.6))
        labels, xs = [], 0
        for sp in SPLITS:
            for arm, col in (("vanilla", "gray"), ("sft", "C1"), ("rl", "C0")):
                t = m["tables"][arm][sp][HEADLINE_SETTING]
                ax.bar(xs, t["mean"] * 100, color=col)
                ax.plot([xs], [t["max"] * 100], "k_", ms=14)
                labels.append(f"{sp}\n{arm}")
                xs += 1
            xs += 0.5
        ax.set_xticks([0, 1, 2, 3.5, 4.5, 5.5], labels, fontsize=8)
        ax.set_ylabel("pass@1 T=0.6 (%)")
        fig.tight_layout()
        run.save_figure(fig, "rl_vs_sft", "RL vs SFT vs vanilla on validation and test, pass@1 T=0.6: bars the mean over epochs, ticks the max "
                        "(each averaged over seeds), as the paper's Table 3")


__all__ = ["VlmRlConfig", "VlmRlStudy", "bits", "evaluate_model", "outcomes", "summarise", "judge_reflection", "judge_rl_sft", "judge_rl_vanilla", "per_question", "reflection_length_r", "run_arm"]
