"""MAYE (arXiv 2504.02587): a transparent from-scratch Reinforce++ trainer for VLMs, and its evaluation scheme.

    from reprolab.papers.vlm_rl import MayeTrainer, MayeConfig, OFFICIAL_PRESET, chat_collate
    trainer = MayeTrainer(model, processor.tokenizer, chat_collate(processor), MayeConfig(batch_size=8, ppo_batch_size=4))
    stats = trainer.step(samples)          # samples: [{"image", "question", "solution"}]
    stats.accuracy, stats.response_length, reflection_ratios(stats.texts, stats.correct)
"""

from .evaluation import REFLECTION_WORDS, SETTINGS, GenerationSetting, SchemeLog, epoch_table, evaluate, has_reflection, pass_at_k, reflection_ratios
from .formats import CHAT_COT_PROMPT, chat_collate, shapes_collate, text_collate
from .maye import (
    OFFICIAL_PRESET,
    PAPER,
    PRESETS,
    MayeConfig,
    MayeTrainer,
    StepStats,
    Trajectory,
    advantages,
    discounted_returns,
    k3,
    masked_mean,
    masked_var,
    ppo_loss,
    response_padding,
    select_rows,
    set_trainable,
    token_rewards,
    whiten,
)
from .rewards import accuracy_rewards, format_rewards, judge, language_rewards, last_boxed_sentence, penalty_mask, rule_judge, scores

__all__ = [
    "CHAT_COT_PROMPT", "OFFICIAL_PRESET", "PAPER", "PRESETS", "REFLECTION_WORDS", "SETTINGS", "GenerationSetting", "MayeConfig", "MayeTrainer",
    "SchemeLog", "StepStats", "Trajectory", "accuracy_rewards", "advantages", "chat_collate", "discounted_returns", "epoch_table", "evaluate",
    "format_rewards", "has_reflection", "judge", "k3", "language_rewards", "last_boxed_sentence", "masked_mean", "masked_var", "pass_at_k",
    "penalty_mask", "ppo_loss", "reflection_ratios", "response_padding", "rule_judge", "scores", "select_rows", "set_trainable", "shapes_collate",
    "text_collate", "token_rewards", "whiten",
]
