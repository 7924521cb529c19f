"""Playing levels with a DRC agent while recording its cell states, and the paper's plan concepts C_A and C_B.

"Interpreting Emergent Planning in Model-Free RL" (arXiv 2504.01871), Sec. 4: a concept assigns each of the 64
interior squares a class at each step of an episode, from what *will* happen in the rest of the episode:

- C_A, "agent approach direction" (official ``agent_onto_after``): the direction (1 up, 2 down, 3 left, 4 right: the
  action indices) of the agent's next move onto the square at or after this step; 0 if it never moves onto it again;
- C_B, "box push direction" (official ``tracked_box_next_push_onto_with``, read as the spec sheet defines it): the
  direction in which a box is next pushed off the square at or after this step; 0 if none is.

:func:`play` runs a batch of levels greedily (the paper's probing data comes from the greedy agent), optionally with
``thinking`` no-op steps first (Sec. 6: they count against the step limit) and an intervention hook, and keeps per
step the observation, the agent and box positions, the action, and the cell state c of every layer at the last tick
(the paper's probe input), plus every tick's c for the first ``record_ticks_steps`` steps (for F1 over ticks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ...data.sokoban import BOXOBAN_STEP_LIMIT, BatchedSokoban, Level
from ...errors import ConfigError, ShapeError
from ...nn.convlstm import DRC

N_CLASSES = 5  # 0 never, 1 up, 2 down, 3 left, 4 right
CONCEPTS = ("C_A", "C_B")
# A hook that, at step ``t`` of a batch, returns ``{layer: delta (B, C, 8, 8)}`` to add to c' (or None); it sees the
# env (positions, done) so it can stop steering an env once the agent reaches a square.
DeltaFn = Callable[[int, BatchedSokoban], "dict[int, torch.Tensor] | None"]


@dataclass
class Episode:
    level: Level
    actions: np.ndarray  # (T,) the actions taken (0 noop .. 4 right)
    agent: np.ndarray  # (T + 1, 2) agent square (10x10 coordinates) before each step and after the last
    boxes: list[np.ndarray]  # T + 1 arrays (k, 2): box squares before each step and after the last
    moved: np.ndarray  # (T,) bool
    pushed: np.ndarray  # (T,) bool
    obs: np.ndarray  # (T, 7, 8, 8) float32: the observation each action was chosen on
    cells: np.ndarray | None  # (T, D, C, 8, 8) float16: c of each layer at the last tick of each step
    tick_cells: np.ndarray | None  # (S, N, D, C, 8, 8) float16: c at every tick, first S steps
    solved: bool
    steps: int  # environment steps taken (thinking no-ops included)
    thinking: int = 0
    visited: set[tuple[int, int]] = field(default_factory=set)  # 10x10 squares the agent stood on


def _to_int(actions: np.ndarray) -> np.ndarray:
    return np.asarray(actions, dtype=np.int64)


@torch.no_grad()
def play(model: DRC, levels: Sequence[Level], *, thinking: int = 0, greedy: bool = True, step_limit: int = BOXOBAN_STEP_LIMIT,
         record: bool = True, record_ticks_steps: int = 0, delta_fn: DeltaFn | None = None, seed: int = 0,
         batch: int = 256) -> list[Episode]:
    """One episode per level (see the module docstring). ``thinking`` no-op steps are forced first; the agent's
    states during them are kept like any other step's."""
    if thinking < 0 or thinking >= step_limit:
        raise ConfigError("thinking", thinking, f"0 <= thinking < step_limit ({step_limit})")
    out: list[Episode] = []
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    for lo in range(0, len(levels), batch):
        chunk = list(levels[lo:lo + batch])
        out += _play_batch(model, chunk, thinking, greedy, step_limit, record, record_ticks_steps, delta_fn, gen, device)
    return out


def _play_batch(model: DRC, levels: list[Level], thinking: int, greedy: bool, step_limit: int, record: bool,
                record_ticks_steps: int, delta_fn: DeltaFn | None, gen: torch.Generator, device: torch.device) -> list[Episode]:
    env = BatchedSokoban(levels, step_limit=step_limit)
    b = len(levels)
    state = model.initial_state(b, device)
    obs = env.observation()
    rec: list[dict] = [dict(actions=[], agent=[env.player[i].copy()], boxes=[np.argwhere(env.boxes[i])], moved=[], pushed=[],
                            obs=[], cells=[], ticks=[]) for i in range(b)]
    t = 0
    while not env.done.all():
        live = ~env.done
        deltas = delta_fn(t, env) if delta_fn is not None else None
        o = model(torch.as_tensor(obs, device=device), state, record=t < record_ticks_steps, cell_delta=deltas)
        if t < thinking:
            action = np.zeros(b, np.int64)
        elif greedy:
            action = o.logits.argmax(-1).cpu().numpy()
        else:
            action = torch.multinomial(torch.softmax(o.logits, -1).cpu(), 1, generator=gen).squeeze(1).numpy()
        c_last = o.state.c.cpu().numpy().astype(np.float16) if record else None  # (B, D, C, H, W)
        c_ticks = o.c.cpu().numpy().astype(np.float16) if o.c is not None else None
        new_obs, _, _, info = env.step(_to_int(action))
        for i in np.nonzero(live)[0]:
            r = rec[i]
            r["actions"].append(int(action[i]))
            r["agent"].append(env.player[i].copy())
            r["boxes"].append(np.argwhere(env.boxes[i]))
            r["moved"].append(bool(info["moved"][i]))
            r["pushed"].append(bool(info["pushed"][i]))
            r["obs"].append(obs[i])
            if c_last is not None:
                r["cells"].append(c_last[i])
            if c_ticks is not None:
                r["ticks"].append(c_ticks[i])
        state = o.state
        obs = new_obs
        t += 1
    eps = []
    for i, lv in enumerate(levels):
        r = rec[i]
        agent = np.array(r["agent"])
        eps.append(Episode(lv, np.array(r["actions"], np.int64), agent, r["boxes"], np.array(r["moved"], bool),
                           np.array(r["pushed"], bool), np.stack(r["obs"]), np.stack(r["cells"]) if r["cells"] else None,
                           np.stack(r["ticks"]) if r["ticks"] else None, bool(env.solved[i]), int(env.steps[i]), thinking,
                           {tuple(p) for p in agent.tolist()}))
    return eps


def concept_labels(ep: Episode, concept: str) -> np.ndarray:
    """(T, 8, 8) int64 labels of ``concept`` ("C_A" or "C_B") at each step of ``ep`` (see the module docstring)."""
    if concept not in CONCEPTS:
        raise ConfigError("concept", concept, f"one of {CONCEPTS}")
    return labels_from_moves(ep.actions, ep.agent, ep.moved, ep.pushed, concept)


def labels_from_moves(actions: np.ndarray, agent: np.ndarray, moved: np.ndarray, pushed: np.ndarray, concept: str) -> np.ndarray:
    """The labels from an episode's record alone: ``agent`` (T + 1, 2) squares in 10x10 coordinates; a move at step t
    takes the agent onto ``agent[t + 1]`` in direction ``actions[t]``; a push at step t moves a box off that same
    square. Scanning backwards keeps, for each square, the first qualifying event at or after each step."""
    T = len(actions)
    if agent.shape != (T + 1, 2) or moved.shape != (T,) or pushed.shape != (T,):
        raise ShapeError("episode record", (agent.shape, moved.shape, pushed.shape), f"agent ({T + 1}, 2), moved and pushed ({T},)")
    event = moved if concept == "C_A" else pushed
    labels = np.zeros((T, 8, 8), np.int64)
    cur = np.zeros((8, 8), np.int64)
    for t in range(T - 1, -1, -1):
        if event[t]:
            i, j = agent[t + 1] - 1  # interior coordinates
            if 0 <= i < 8 and 0 <= j < 8:
                cur[i, j] = actions[t]
        labels[t] = cur
    return labels


def probe_dataset(episodes: Sequence[Episode], concept: str, layer: int | None, *, skip_thinking: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features, labels, episode_index)``: features (N, C, 8, 8) float32 are the cell state of ``layer`` at the last
    tick (or the observation when ``layer`` is None: the paper's baseline), labels (N, 8, 8), one row per step."""
    xs, ys, idx = [], [], []
    for k, ep in enumerate(episodes):
        lab = concept_labels(ep, concept)
        start = ep.thinking if skip_thinking else 0
        if layer is None:
            feats = ep.obs
        else:
            if ep.cells is None:
                raise ConfigError("episodes", "played with record=False", "episodes played with record=True")
            feats = ep.cells[:, layer]
        xs.append(feats[start:].astype(np.float32))
        ys.append(lab[start:])
        idx.append(np.full(len(lab) - start, k))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(idx)
