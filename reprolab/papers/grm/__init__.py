"""DeepSeek-GRM (arXiv 2504.02495): pointwise generative reward model, voting and meta-RM-guided voting, SPCT data."""

from .grm import (BestOfN, GenerativeRewardModel, GRMConfig, GRMSample, LLMJudgeMetaRM, MetaRM, RewardResult, judge_preferences,
                  load_prompt, meta_select, parse_judgement, parse_scores, vote)

__all__ = ["BestOfN", "GRMConfig", "GRMSample", "GenerativeRewardModel", "LLMJudgeMetaRM", "MetaRM", "RewardResult",
           "judge_preferences", "load_prompt", "meta_select", "parse_judgement", "parse_scores", "vote"]
