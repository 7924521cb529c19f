"""alpha/beta tuning with Optuna on a dev set (paper Sec. 3.3; official ``lm_optimizer.py``).

The official code searches ``alpha, beta`` uniformly in ``[0, 5]`` (its ``--lm_alpha_max/--lm_beta_max``
defaults) with Optuna's default TPE sampler for 100 trials, minimising dev WER. Our study is resumable: the
Optuna study lives in a SQLite file, and a second call runs only the trials still missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError, MissingExtra, NonFiniteError


@dataclass(frozen=True)
class TuneResult:
    alpha: float
    beta: float
    dev_wer: float
    trials: list[tuple[float, float, float]]  # (alpha, beta, dev WER) of every finished trial


def tune(objective: Callable[[float, float], float], n_trials: int = 100, storage: str | Path | None = None,
         study_name: str = "whisper_lm", alpha_range: tuple[float, float] = (0.0, 5.0),
         beta_range: tuple[float, float] = (0.0, 5.0), seed: int = 0) -> TuneResult:
    """Minimise ``objective(alpha, beta)`` (dev WER) with Optuna's TPE sampler over ``n_trials`` trials.

    ``storage``: a ``.db`` file path for a resumable study (trials already finished there count toward
    ``n_trials``); ``None`` keeps it in memory. Trial 0 is always ``alpha = beta = 0`` (no LM), so the result
    is never worse on dev than Whisper alone - a departure from the official script, which samples all trials.

    Ties: among trials with the best dev WER the one with the smallest ``alpha + beta`` wins (the choice closest
    to Whisper alone). On a few dev utterances WER is flat over wide regions and Optuna's ``best_trial`` is
    merely the first of them (in our v1 full run: its first random draw, alpha 2.74, beta 3.58, whose word
    bonus made fusion hallucinate)."""
    try:
        import optuna
    except ImportError:
        raise MissingExtra("optuna", "whisper_lm") from None
    if n_trials < 1:
        raise ConfigError("n_trials", n_trials, "an integer >= 1 (the paper uses 100)")
    for name, (lo, hi) in (("alpha_range", alpha_range), ("beta_range", beta_range)):
        if not lo <= hi:
            raise ConfigError(name, (lo, hi), "(low, high) with low <= high")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = None
    if storage is not None:
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{Path(storage).resolve()}"
    study = optuna.create_study(study_name=study_name, storage=url, load_if_exists=True, direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        study.enqueue_trial({"alpha": 0.0, "beta": 0.0})

    def _objective(trial) -> float:
        a = trial.suggest_float("alpha", *alpha_range)
        b = trial.suggest_float("beta", *beta_range)
        v = float(objective(a, b))
        if v != v or v in (float("inf"), float("-inf")):
            raise NonFiniteError("dev WER", v, fix="check the decoder outputs")
        return v

    remaining = n_trials - len(done)
    if remaining > 0:
        study.optimize(_objective, n_trials=remaining)
    trials = [(t.params["alpha"], t.params["beta"], t.value) for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    a, b, v = min(trials, key=lambda t: (t[2], t[0] + t[1]))
    return TuneResult(a, b, v, trials)
