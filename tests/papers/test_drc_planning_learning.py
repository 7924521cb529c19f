"""drc_planning's learner learns: the env pairs each reward with its own step across an auto-reset, the recurrent state
is cut exactly where an episode ended, every parameter receives gradient, and A2C / V-trace with the official loss terms
takes a small DRC from chance to solving rooms whose box is one push from its target (new levels, one step per episode).
These guard the training loop against a silent no-learning bug (study v1's agent stayed at chance; no bug was found)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from reprolab.data.sokoban import BOXOBAN_ACTIONS, BatchedSokoban, Level, frame_level, solve
from reprolab.nn.convlstm import DRC, DRCState
from reprolab.papers.drc_planning import TrainConfig, play, train_agent

pytestmark = pytest.mark.usefixtures("one_thread")

DIRS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def push_rooms(n: int, extra: int = 0, seed: int = 0, room: int = 6) -> list[Level]:
    """``n`` distinct open rooms (border walls only) with one box one push from its target, the push's direction drawn per
    level; the player starts ``extra`` random steps away from the square it pushes from; framed in 10x10 walls."""
    rng = random.Random(seed)
    walls = frozenset((i, j) for i in range(room) for j in range(room) if i in (0, room - 1) or j in (0, room - 1))
    out: list[Level] = []
    seen: set[str] = set()
    while len(out) < n:
        di, dj = rng.choice(DIRS)
        target = (rng.randrange(1, room - 1), rng.randrange(1, room - 1))
        box = (target[0] - di, target[1] - dj)
        player = (box[0] - di, box[1] - dj)
        if box in walls or not (0 < player[0] < room - 1 and 0 < player[1] < room - 1):
            continue
        for _ in range(extra):
            ei, ej = rng.choice(DIRS)
            step = (player[0] + ei, player[1] + ej)
            if step not in walls and step != box:
                player = step
        lv = Level(walls, frozenset([target]), frozenset([box]), player, room, room)
        sol = solve(lv)
        if not sol:
            continue
        lv = frame_level(Level(walls, lv.targets, lv.boxes, player, room, room, sol), 10,
                         (rng.randrange(10 - room + 1), rng.randrange(10 - room + 1)))
        if lv.text not in seen:  # 32 one-push layouts of a 6x6 room x 25 places in the frame: 800 distinct levels
            seen.add(lv.text)
            out.append(lv)
    return out


def draw_from(levels: list[Level], seed: int = 0):
    rng = random.Random(seed)
    return lambda k: [rng.choice(levels) for _ in range(k)]


def greedy_solve_rate(model: DRC, levels: list[Level], step_limit: int = 120) -> float:
    return float(np.mean([e.solved for e in play(model, levels, record=False, step_limit=step_limit)]))


def test_auto_reset_pairs_the_final_reward_with_its_step_and_starts_the_new_level():
    first, second = push_rooms(2, seed=5)
    env = BatchedSokoban([first, first], next_levels=lambda k: [second] * k)
    solving = BOXOBAN_ACTIONS.index(first.solution[0])
    obs, reward, done, info = env.step(np.array([solving, 0]))
    assert done.tolist() == [True, False] and info["solved"].tolist() == [True, False] and info["reset"].tolist() == [True, False]
    assert reward[0] == pytest.approx(-0.01 + 1 + 10) and reward[1] == pytest.approx(-0.01)  # the solve is paid on its own step
    assert np.array_equal(obs[0], BatchedSokoban([second]).observation()[0])  # the next observation is the new level's
    assert np.array_equal(obs[1], BatchedSokoban([first]).observation()[0])
    assert env.steps.tolist() == [0, 1] and not env.done.any()


def test_reset_where_zeroes_exactly_the_finished_envs():
    g = torch.Generator().manual_seed(0)
    state = DRCState(torch.randn(3, 2, 4, 8, 8, generator=g), torch.randn(3, 2, 4, 8, 8, generator=g))
    new = DRC.reset_where(state, torch.tensor([False, True, False]))
    assert (new.h[1] == 0).all() and (new.c[1] == 0).all()
    assert torch.equal(new.h[0], state.h[0]) and torch.equal(new.c[2], state.c[2])


def test_one_update_reaches_every_parameter():
    cfg = TrainConfig(transitions=320, envs=16, channels=4, depth=2, ticks=2)
    trained = train_agent(cfg, level_source=draw_from(push_rooms(20, extra=2, seed=3))).model
    torch.manual_seed(cfg.seed)
    init = DRC(cfg.drc())  # train_agent seeds the same way before building its model
    for (name, p), q in zip(trained.named_parameters(), init.parameters()):
        assert not torch.equal(p, q), f"{name} did not move"


@pytest.mark.slow  # ~15 s alone on one thread: over this paper's share of `make test`
def test_the_learner_goes_from_chance_to_solving_one_push_rooms():
    """The contextual bandit: the box one push from its target, the push's direction varying by level, one step per
    episode (step_limit=1: the first move is the whole episode). The training loop (auto-reset, V-trace, the official loss
    terms) must take a DRC(1,1) from chance (a state-independent policy solves 1 in 4) to solving new levels greedily;
    300 updates suffice (0.91 measured), a loop that pairs rewards or observations with the wrong step cannot pass."""
    rooms = push_rooms(380, 0, seed=1)
    train, test = rooms[:300], rooms[300:]  # distinct levels: the test ones are new to the agent
    cfg = TrainConfig(transitions=48_000, envs=8, channels=8, depth=1, ticks=1, lr=2e-3, step_limit=1)
    torch.manual_seed(cfg.seed)
    untrained = greedy_solve_rate(DRC(cfg.drc()).eval(), test, step_limit=1)
    res = train_agent(cfg, level_source=draw_from(train))
    trained = greedy_solve_rate(res.model, test, step_limit=1)
    assert untrained < 0.5
    assert trained >= 0.8, (untrained, trained, res.curve[-1])
