"""Benchmark ``drc_planning``: our batched Sokoban against gym-sokoban 0.0.6, and our conv probe against scikit-learn.

1. Environment steps per second on the same generated 10x10 levels with random actions: :class:`BatchedSokoban`
   (64 envs stepped at once, official 8x8x7 observation) vs ``gym_sokoban.envs.SokobanEnv`` (0.0.6, the env of the
   field's Sokoban papers; one env, its cheapest observation ``tiny_rgb_array``; its room loaded from our level).
   gym-sokoban imports ``pkg_resources`` (setuptools <= 80) and old ``gym``: when it cannot be imported its row is
   left out and the reason named in ``extra``.
2. Probe fitting: cell states of a DRC (the agent a study run cached under ``runs/drc_planning/``, full preferred,
   else a small one trained here; ``extra.probe.agent`` names it) on C_A; our 1x1 ``fit_probe`` (AdamW, 10 epochs, batch 16) vs scikit-learn ``LogisticRegression``
   (lbfgs, multinomial, no intercept: the same model) on the same per-square rows; seconds and test macro-F1.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ...data.sokoban import BatchedSokoban, Level
from ...errors import ReprolabError
from ...runtime import torch_threads
from ...study import Benchmark, BenchResult, BenchRow, register_bench
from .concepts import play, probe_dataset
from .probes import ProbeConfig, confusion, fit_probe, from_sklearn, macro_f1, squares_as_rows
from .training import TrainConfig, evaluation_levels, load_agent, train_agent


def _gym_env(level: Level) -> Any:
    """gym-sokoban's env holding ``level`` (room_fixed: 0 wall, 1 floor, 2 target; room_state adds 3 box on target,
    4 box, 5 player)."""
    from gym_sokoban.envs.sokoban_env import SokobanEnv

    env = SokobanEnv(dim_room=(level.height, level.width), num_boxes=len(level.boxes), max_steps=10**9, reset=False)
    fixed = np.ones((level.height, level.width), np.int64)
    for p in level.walls:
        fixed[p] = 0
    for p in level.targets:
        fixed[p] = 2
    state = fixed.copy()
    for p in level.boxes:
        state[p] = 3 if p in level.targets else 4
    state[level.player] = 5
    env.room_fixed, env.room_state = fixed, state
    env.box_mapping = {}
    env.player_position = np.array(level.player)
    env.num_env_steps, env.reward_last, env.boxes_on_target = 0, 0, int(sum(p in level.targets for p in level.boxes))
    return env


def env_rates(levels: list[Level], steps: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    env = BatchedSokoban(levels, step_limit=10**9)
    acts = rng.integers(0, 5, (steps, len(levels)))
    t0 = time.perf_counter()
    for a in acts:
        env.step(a)
    out["ours"] = steps * len(levels) / (time.perf_counter() - t0)
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            genv = [_gym_env(lv) for lv in levels[:4]]
            n = max(200, steps * len(levels) // 16)
            acts1 = rng.integers(0, 5, n)
            t0 = time.perf_counter()
            for i, a in enumerate(acts1):
                genv[i % len(genv)].step(int(a), observation_mode="tiny_rgb_array")
            out["gym-sokoban 0.0.6"] = n / (time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - an uninstallable peer is reported, not fatal
        out["_missing"] = f"gym-sokoban: {type(exc).__name__}: {exc} (pip install gym-sokoban==0.0.6 setuptools==80.10.2)"
    return out


def _agent(quick: bool, runs: str | Path = "runs") -> tuple[Any, str]:
    """The study's trained agent when a run left one (full preferred, then quick), else a small one trained here."""
    for scale in ("full", "quick"):
        found = (Path(runs) / "drc_planning" / scale / "checkpoints").glob("agent-*.pt")
        for ck in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True):  # the newest first
            try:
                return load_agent(ck)[0], str(ck)
            except ReprolabError:
                continue
    cfg = TrainConfig(transitions=3200 if quick else 24_000, envs=16, channels=16, pool=300 if quick else 600, lr=2e-3)
    return train_agent(cfg).model, f"trained here ({cfg.transitions} transitions)"


def probe_race(quick: bool) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    with torch_threads(1):
        agent, source = _agent(quick)
        eps_tr = play(agent, evaluation_levels(30 if quick else 150, seed=11))
        eps_te = play(agent, evaluation_levels(20 if quick else 100, seed=12))
        layer = agent.config.depth - 1
        xtr, ytr, _ = probe_dataset(eps_tr, "C_A", layer)
        xte, yte, _ = probe_dataset(eps_te, "C_A", layer)
        t0 = time.perf_counter()
        probe = fit_probe(xtr, ytr, ProbeConfig(kernel=1, epochs=10))
        ours_s = time.perf_counter() - t0
        ours_f1 = macro_f1(confusion(probe.predict(xte), yte))
        rows, labels = squares_as_rows(xtr, ytr)
        t0 = time.perf_counter()
        lr = LogisticRegression(fit_intercept=False, max_iter=200, C=1.0).fit(rows, labels)
        sk_s = time.perf_counter() - t0
        if list(lr.classes_) == list(range(5)):
            sk_f1 = macro_f1(confusion(from_sklearn(lr).predict(xte), yte))
        else:  # a class absent from the training rows: score sklearn's own predictions
            sk_f1 = macro_f1(confusion(lr.predict(squares_as_rows(xte)[0]).reshape(yte.shape), yte))
        return {"agent": source, "rows": int(len(rows)), "ours_s": ours_s, "ours_f1": ours_f1, "sklearn_s": sk_s, "sklearn_f1": sk_f1}


@register_bench
class DRCPlanningBench(Benchmark):
    name = "drc_planning"
    description = ("Sokoban env steps/s, our batched numpy env (64 envs) vs gym-sokoban 0.0.6; and probe fitting seconds "
                   "and macro-F1, our 1x1 conv probe vs scikit-learn LogisticRegression on the same DRC cell states")

    def run(self, quick: bool) -> BenchResult:
        levels = evaluation_levels(64, seed=7)
        rates = env_rates(levels, steps=50 if quick else 300)
        race = probe_race(quick)
        rows = [BenchRow("ours: BatchedSokoban, per 1k env steps", 1000 / rates["ours"], 0.0, 1.0)]
        if "gym-sokoban 0.0.6" in rates:
            g = rates["gym-sokoban 0.0.6"]
            rows.append(BenchRow("gym-sokoban 0.0.6, per 1k env steps", 1000 / g, 0.0, rates["ours"] / g))
        rows.append(BenchRow("ours: conv probe, per fit", race["ours_s"], 0.0, 1.0, f"test macro-F1 {race['ours_f1']:.3f}"))
        rows.append(BenchRow("scikit-learn LogisticRegression, per fit", race["sklearn_s"], 0.0, race["sklearn_s"] / race["ours_s"],
                             f"test macro-F1 {race['sklearn_f1']:.3f}"))
        extra = {"env_steps_per_s": {k: v for k, v in rates.items() if not k.startswith("_")}, "probe": race}
        if "_missing" in rates:
            extra["missing"] = rates["_missing"]
        return BenchResult(self.name, "ours", rows, {"quick": quick, "levels": len(levels)}, extra)
