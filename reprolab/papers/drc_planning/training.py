"""Training a DRC agent on Sokoban: actor-critic with V-trace targets and the official loss terms, on a curriculum.

The paper's agent (arXiv 2504.01871, Sec. 3 and App. A; official code on stephen-chung-mh/thinker) is DRC(3,3)
trained with IMPALA / V-trace for 250M transitions on Boxoban's 900k unfiltered 4-box levels: gamma 0.99, unroll 20,
batch 16, Adam lr 4e-4 decayed linearly to 0, entropy cost 1e-2, an L2 cost of 1e-3 on the policy logits and 1e-5 on
the policy and value weights. A CPU budget of minutes allows ~1e6 transitions, so (spec sheet, "Our reproduction"):

- synchronous A2C: ``envs`` environments step together, each update is one unroll of 20 steps through the recurrent
  net with gradients on (no actor/learner lag), so the V-trace importance ratios are exactly 1 and the targets are
  V-trace's with rho-bar = c-bar = 1 (:func:`vtrace`, computed in the official form anyway);
- a curriculum of generated rooms (:mod:`reprolab.data.sokoban`'s reverse-play generator, BFS-verified) inside the
  10x10 Boxoban frame (:class:`Curriculum`, ``CURRICULA``). "graded" (study v2): 10% of the updates on 1-box 6x6 rooms
  solved in 1-4 moves, 20% on 1-box 7x7 / 8x8 rooms of 2-10 / 3-12 moves, then the test kinds (1-box and 2-box 8x8
  rooms, >= 5 / 6 moves) with easy 1-box 8x8 rooms mixed in. Why: what limits learning here is the number of updates
  and the density of the reward signal per update, not a bug (README, "Does the learner learn?"): on rooms whose box
  is one push from its target, with one step per episode, the loop takes a DRC(1,1) from chance (0.25) to 0.91 greedy
  in 300 updates (tests/papers/test_drc_planning_learning.py); the same rooms with the official 120-step episodes stay
  at chance after 300 updates (entropy ~1.5 of 1.61), also in an independently written minimal loop with and without
  recurrence, most likely because a random policy's long episodes bury the few informative steps. v1's curriculum
  ("v1": 1-box 7x7 rooms of >= 3 moves, then the test kinds) got 375 updates and learned nothing;
- loss = policy gradient + 0.5 * baseline loss (0.5 * squared error; torchbeast's baseline cost) - 1e-2 * entropy +
  the official regulariser, averaged over the unroll (the official sums; Adam is nearly invariant to the scale);
  gradients clipped at norm 40 (torchbeast's default). These are choices where the paper names no value.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ... import runtime
from ...data.sokoban import BOXOBAN_STEP_LIMIT, BatchedSokoban, Level, generate_framed_levels
from ...errors import ConfigError, NonFiniteError
from ...nn.convlstm import DRC, DRCConfig


@dataclass(frozen=True)
class TrainConfig:
    transitions: int = 100_000  # environment steps in total (paper: 250M)
    envs: int = 32  # environments stepped together (paper: batch 16 of IMPALA actors' unrolls)
    unroll: int = 20  # official 20
    gamma: float = 0.99  # official
    lr: float = 4e-4  # official, decayed linearly to 0
    entropy_cost: float = 1e-2  # official
    logit_l2: float = 1e-3  # official
    weight_l2: float = 1e-5  # official
    baseline_cost: float = 0.5  # torchbeast default (the paper names none)
    grad_clip: float = 40.0  # torchbeast default
    channels: int = 32  # DRC channels (official 32)
    depth: int = 3
    ticks: int = 3
    curriculum: str = "graded"  # a key of CURRICULA: the stages of generated rooms
    pool: int = 2000  # levels generated per curriculum kind
    seed: int = 0
    step_limit: int = BOXOBAN_STEP_LIMIT  # episode cut (official 120)

    def __post_init__(self) -> None:
        if self.transitions < self.envs * self.unroll:
            raise ConfigError("transitions", self.transitions, f"at least envs * unroll = {self.envs * self.unroll}")
        if self.curriculum not in CURRICULA:
            raise ConfigError("curriculum", self.curriculum, f"one of {sorted(CURRICULA)}")

    def drc(self) -> DRCConfig:
        return DRCConfig(channels=self.channels, depth=self.depth, ticks=self.ticks)


# A kind of generated room: (room size incl. its wall border, boxes, min and max optimal moves, reverse-play pulls);
# a stage: (share of the updates, the kinds it draws evenly). Levels are BFS-verified and framed into 10x10 walls.
Kind = tuple[int, int, int, int, int]
Stage = tuple[float, tuple[Kind, ...]]
EVAL_KINDS: tuple[Kind, ...] = ((8, 1, 5, 40, 60), (8, 2, 6, 40, 60))  # the test distribution (and the last stage's)
CURRICULA: dict[str, tuple[Stage, ...]] = {
    # study v1: 30% of the updates on 1-box 7x7 rooms (>= 3 moves), then the test kinds
    "v1": ((0.3, ((7, 1, 3, 40, 40),)), (0.7, EVAL_KINDS)),
    # study v2 (see the module docstring): graded by box count and solution length
    "graded": ((0.1, ((6, 1, 1, 4, 20),)),
               (0.2, ((7, 1, 2, 10, 40), (8, 1, 3, 12, 60))),
               (0.7, EVAL_KINDS + ((8, 1, 2, 10, 60),))),
}


class Curriculum:
    """Level sources for training: the stages of ``CURRICULA[name]`` in turn (:meth:`advance` by training progress),
    each drawing its kinds evenly. Pools are generated once (seeded, 10_000 + ...) so that the evaluation levels, drawn
    with other seeds, are new to the agent."""

    def __init__(self, pool: int, seed: int, name: str = "graded"):
        if name not in CURRICULA:
            raise ConfigError("curriculum", name, f"one of {sorted(CURRICULA)}")
        self.rng = random.Random(seed)
        self.stages = CURRICULA[name]
        kinds = list(dict.fromkeys(k for _, ks in self.stages for k in ks))
        self.pools = {k: generate_framed_levels(pool, room=k[0], boxes=k[1], min_moves=k[2], max_moves=k[3], pulls=k[4],
                                                seed=10_000 + 97 * seed + i)
                      for i, k in enumerate(kinds)}
        self.stage = 0

    def advance(self, progress: float) -> None:
        """Enter the stage that covers ``progress`` (share of the updates done, 0..1)."""
        acc = 0.0
        for i, (share, _) in enumerate(self.stages):
            acc += share
            if progress < acc:
                self.stage = i
                return
        self.stage = len(self.stages) - 1

    def draw(self, n: int) -> list[Level]:
        kinds = self.stages[self.stage][1]
        return [self.rng.choice(self.pools[self.rng.choice(kinds)]) for _ in range(n)]


def evaluation_levels(n: int, seed: int) -> list[Level]:
    """``n`` held-out levels of the final curriculum's kinds (half 1-box, half 2-box 8x8 rooms), seeds disjoint from
    training's (training uses 10_000 + ...)."""
    (r1, b1, lo1, hi1, p1), (r2, b2, lo2, hi2, p2) = EVAL_KINDS
    a = generate_framed_levels((n + 1) // 2, room=r1, boxes=b1, min_moves=lo1, max_moves=hi1, pulls=p1, seed=500 + seed)
    b = generate_framed_levels(n // 2, room=r2, boxes=b2, min_moves=lo2, max_moves=hi2, pulls=p2, seed=900 + seed)
    out = [x for pair in zip(a, b) for x in pair] + a[len(b):]
    return out[:n]


def vtrace(behaviour_logp: torch.Tensor, target_logp: torch.Tensor, rewards: torch.Tensor, values: torch.Tensor,
           bootstrap: torch.Tensor, discounts: torch.Tensor, rho_bar: float = 1.0, c_bar: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """V-trace targets ``vs`` and policy-gradient advantages (Espeholt et al. 2018, Eq. 1 and Sec. 4.2); all (T, B).

    ``vs_t = V(x_t) + sum_{s>=t} gamma^{s-t} (prod_{i<s} c_i) rho_s (r_s + gamma V(x_{s+1}) - V(x_s))``, with
    ``rho = min(rho_bar, pi/mu)`` and ``c = min(c_bar, pi/mu)``; advantage ``rho_t (r_t + gamma vs_{t+1} - V(x_t))``."""
    with torch.no_grad():
        ratio = torch.exp(target_logp - behaviour_logp)
        rho, cs = ratio.clamp(max=rho_bar), ratio.clamp(max=c_bar)
        next_values = torch.cat([values[1:], bootstrap[None]], 0)
        deltas = rho * (rewards + discounts * next_values - values)
        acc = torch.zeros_like(bootstrap)
        out = []
        for t in range(len(rewards) - 1, -1, -1):
            acc = deltas[t] + discounts[t] * cs[t] * acc
            out.append(acc)
        vs = values + torch.stack(out[::-1], 0)
        next_vs = torch.cat([vs[1:], bootstrap[None]], 0)
        return vs, rho * (rewards + discounts * next_vs - values)


@dataclass
class TrainResult:
    model: DRC
    curve: list[dict[str, float]] = field(default_factory=list)  # per logging window: transitions, solve rate, return, loss
    seconds: float = 0.0
    cached: bool = False


def train_agent(config: TrainConfig, checkpoint: str | Path | None = None, *, device: torch.device | str = "cpu",
                log_every: int = 10, on_update: Callable[[dict[str, float]], None] | None = None,
                level_source: Callable[[int], list[Level]] | None = None) -> TrainResult:
    """Train a DRC on the curriculum (see the module docstring). With ``checkpoint``, a finished model saved there under the
    same config is loaded instead of retrained, and a new one is saved there (atomically). ``level_source`` (a function
    ``k -> k levels``) replaces the curriculum, e.g. to train on one kind of room (no checkpoint then: the cache is keyed
    by the config alone)."""
    if level_source is not None and checkpoint is not None:
        raise ConfigError("checkpoint", str(checkpoint), "None when level_source is given (the cache key is the config alone)")
    if checkpoint is not None:
        try:
            saved = runtime.load_checkpoint(checkpoint)
        except Exception:  # noqa: BLE001 - a corrupt cache is retrained and overwritten
            saved = None
        if isinstance(saved, dict) and saved.get("config") == asdict(config):
            model = DRC(config.drc())
            model.load_state_dict(saved["model"])
            return TrainResult(model.to(device), saved["curve"], saved["seconds"], cached=True)
    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    model = DRC(config.drc()).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    updates = config.transitions // (config.envs * config.unroll)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda u: max(0.0, 1.0 - u / updates))  # linearly to 0
    cur = Curriculum(config.pool, config.seed, config.curriculum) if level_source is None else None
    draw = cur.draw if cur is not None else level_source
    env = BatchedSokoban(draw(config.envs), next_levels=draw, step_limit=config.step_limit)
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    obs = torch.as_tensor(env.observation(), device=device)
    state = model.initial_state(config.envs, device)
    curve: list[dict[str, float]] = []
    window = {"episodes": 0, "solved": 0, "return": 0.0, "loss": 0.0, "entropy": 0.0, "updates": 0}
    ep_return = np.zeros(config.envs)
    for u in runtime.track(range(updates), "DRC training (A2C / V-trace)"):
        if cur is not None:
            cur.advance(u / updates)
        logps, values, rewards, discounts, entropies, regs = [], [], [], [], [], []
        state = state.detach()
        for _ in range(config.unroll):
            out = model(obs, state)
            logp_all = F.log_softmax(out.logits, -1)
            action = torch.multinomial(logp_all.detach().exp().cpu(), 1, generator=gen).squeeze(1)
            obs_np, reward, done, info = env.step(action.numpy())
            logps.append(logp_all.gather(1, action.to(device)[:, None]).squeeze(1))
            entropies.append(-(logp_all.exp() * logp_all).sum(-1))
            regs.append(model.regulariser(out.logits, config.logit_l2, config.weight_l2))
            values.append(out.value)
            rewards.append(torch.as_tensor(reward, device=device))
            discounts.append(torch.as_tensor(config.gamma * (1.0 - done), dtype=torch.float32, device=device))
            ep_return += reward
            window["episodes"] += int(done.sum())
            window["solved"] += int(info["solved"].sum())
            window["return"] += float(ep_return[done].sum())
            ep_return[done] = 0.0
            state = DRC.reset_where(out.state, torch.as_tensor(done, device=device))
            obs = torch.as_tensor(obs_np, device=device)
        with torch.no_grad():
            bootstrap = model(obs, state).value
        logp, value = torch.stack(logps), torch.stack(values)
        vs, adv = vtrace(logp.detach(), logp.detach(), torch.stack(rewards), value.detach(), bootstrap, torch.stack(discounts))
        pg_loss = -(logp * adv).mean()
        baseline_loss = 0.5 * (vs - value).square().mean()
        entropy = torch.stack(entropies).mean()
        loss = pg_loss + config.baseline_cost * baseline_loss - config.entropy_cost * entropy + torch.stack(regs).mean()
        if not torch.isfinite(loss):
            raise NonFiniteError(f"training loss at update {u}", float(loss), fix="lower lr or check the rewards")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        sched.step()
        window["loss"] += float(loss.detach())
        window["entropy"] += float(entropy.detach())
        window["updates"] += 1
        if (u + 1) % log_every == 0 or u + 1 == updates:
            n_ep = max(1, window["episodes"])
            row = {"transitions": float((u + 1) * config.envs * config.unroll), "episodes": float(window["episodes"]),
                   "solve_rate": window["solved"] / n_ep if window["episodes"] else math.nan,
                   "return": window["return"] / n_ep, "loss": window["loss"] / window["updates"],
                   "entropy": window["entropy"] / window["updates"], "stage": float(cur.stage + 1 if cur is not None else 0),
                   "seconds": time.perf_counter() - t0}
            if not window["episodes"]:
                row["solve_rate"] = 0.0
            curve.append(row)
            if on_update is not None:
                on_update(row)
            window = {k: 0 if isinstance(v, int) else 0.0 for k, v in window.items()}
    model.eval()
    res = TrainResult(model, curve, time.perf_counter() - t0)
    if checkpoint is not None:
        runtime.save_checkpoint(checkpoint, {"config": asdict(config), "model": model.state_dict(), "curve": curve,
                                             "seconds": res.seconds})
    return res


def load_agent(path: str | Path, device: torch.device | str = "cpu") -> tuple[DRC, dict[str, Any]]:
    """A DRC saved by :func:`train_agent` and its training config (dict). Raises MalformedFile on anything else."""
    from ...errors import MalformedFile

    p = runtime.readable_file(path, "DRC checkpoint", "pass a .pt written by train_agent(checkpoint=...)")
    try:
        saved = runtime.load_checkpoint(p)
    except Exception as e:  # noqa: BLE001 - torch.load raises many types on a corrupt file
        raise MalformedFile(str(p), f"cannot be read as a torch checkpoint ({type(e).__name__})",
                            fix="pass a file written by train_agent(checkpoint=...), or retrain") from None
    if not isinstance(saved, dict) or "model" not in saved or "config" not in saved:
        raise MalformedFile(str(p), "not a DRC checkpoint (no 'model'/'config')", fix="pass a file written by train_agent(checkpoint=...)")
    cfg = TrainConfig(**saved["config"])
    model = DRC(cfg.drc())
    model.load_state_dict(saved["model"])
    return model.to(device).eval(), saved["config"]
