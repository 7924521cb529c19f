"""GenPRM: generative process reward model with code verification (arXiv 2504.00891). See README.md."""

from .genprm import (
    GenerativePRM,
    GenPRMConfig,
    StepScores,
    VerificationPath,
    hard_labels,
    majority_vote,
    processbench_f1,
    rpe_labels,
)

__all__ = ["GenerativePRM", "GenPRMConfig", "StepScores", "VerificationPath", "hard_labels", "majority_vote",
           "processbench_f1", "rpe_labels"]
