"""AGS: a closed-loop AI scientist on simulated labs with hidden laws (arXiv 2503.22444).

    from reprolab.papers.ags import Lab, catalogue, Scientist, Autonomy, Community
"""

from .analysis import AnalysisConfig, Hypothesis, analyse, canonical, disagreement, is_discovery, parametrise, refit, skeleton
from .lab import COSTS, ExperimentFailed, Lab, LabCosts, Law, Ledger, Variable, catalogue, catalogue_subset

__all__ = ["AnalysisConfig", "COSTS", "ExperimentFailed", "Hypothesis", "Lab", "LabCosts", "Law", "Ledger", "Variable", "analyse",
           "canonical", "catalogue", "catalogue_subset", "disagreement", "is_discovery", "parametrise", "refit", "skeleton"]
from .scientist import Autonomy, Community, Investigation, KnowledgeBase, Outcome, Scientist, outcome, write_report  # noqa: E402

__all__ += ["Autonomy", "Community", "Investigation", "KnowledgeBase", "Outcome", "Scientist", "outcome", "write_report"]
