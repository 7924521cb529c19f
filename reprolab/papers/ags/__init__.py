"""AGS: a closed-loop AI scientist on simulated labs with hidden laws (arXiv 2503.22444).

    from reprolab.papers.ags import Lab, catalogue, Scientist, Autonomy, Community
"""

from .analysis import (AnalysisConfig, Hypothesis, analyse, canonical, disagreement, is_discovery, parametrise, prune_terms, refit,
                       skeleton)
from .lab import COSTS, ExperimentFailed, Lab, LabCosts, Law, Ledger, Variable, catalogue, catalogue_subset
from .scientist import Autonomy, Community, Investigation, KnowledgeBase, Outcome, Scientist, outcome, write_report

__all__ = ["AnalysisConfig", "Autonomy", "COSTS", "Community", "ExperimentFailed", "Hypothesis", "Investigation", "KnowledgeBase",
           "Lab", "LabCosts", "Law", "Ledger", "Outcome", "Scientist", "Variable", "analyse", "canonical", "catalogue",
           "catalogue_subset", "disagreement", "is_discovery", "outcome", "parametrise", "prune_terms", "refit", "skeleton",
           "write_report"]
