"""Interpreting Emergent Planning in Model-Free Reinforcement Learning (arXiv 2504.01871): plan concepts in a DRC agent's
cell state, spatial probes that decode them, probe-vector interventions that steer the agent, and thinking time.

    from reprolab.papers.drc_planning import TrainConfig, train_agent, play, probe_dataset, fit_probe, to_sklearn
    agent = train_agent(TrainConfig(transitions=20_000, channels=16)).model      # a DRC(3,3) on generated Sokoban rooms
    episodes = play(agent, evaluation_levels(50, seed=0))                        # greedy, recording the cell states
    x, y, _ = probe_dataset(episodes, "C_A", layer=2)                            # c of layer 2, C_A labels per square
    probe = fit_probe(x, y)                                                      # Conv2d(C->5, 1x1, no bias), AdamW
    sk = to_sklearn(probe)                                                       # the same probe as a LogisticRegression
"""

from .concepts import CONCEPTS, N_CLASSES, Episode, concept_labels, labels_from_moves, play, probe_dataset
from .interventions import ALPHAS, THINKING, RouteLevel, random_vectors, route_choice_levels, route_success, steer, thinking_solves
from .probes import (ConvProbe, ProbeConfig, confusion, episode_confusions, fit_probe, from_sklearn, macro_f1, pooled_f1,
                     squares_as_rows, to_sklearn)
from .training import Curriculum, TrainConfig, TrainResult, evaluation_levels, load_agent, train_agent, vtrace

__all__ = ["ALPHAS", "CONCEPTS", "ConvProbe", "Curriculum", "Episode", "N_CLASSES", "ProbeConfig", "RouteLevel", "THINKING",
           "TrainConfig", "TrainResult", "concept_labels", "confusion", "episode_confusions", "evaluation_levels", "fit_probe",
           "from_sklearn", "labels_from_moves", "load_agent", "macro_f1", "play", "pooled_f1", "probe_dataset", "random_vectors",
           "route_choice_levels", "route_success", "squares_as_rows", "steer", "thinking_solves", "to_sklearn", "train_agent",
           "vtrace"]
