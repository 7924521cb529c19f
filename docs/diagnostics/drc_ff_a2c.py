"""How many transitions does plain A2C need on the DRC study's easiest rooms? (issue 24 diagnosis, 2026-12-04)

A feed-forward baseline, not the study's agent: three 3x3 conv layers are replaced by two (32 channels, ReLU), then the
DRC's head shape (flatten -> Linear 128 -> policy over 5 actions and a value), trained by synchronous A2C with n-step
returns (16 envs x 20 steps per update, Adam, entropy 1e-2, value cost 0.25, gradient norm clip 40, gamma 0.99) on
``reprolab.data.sokoban``'s BatchedSokoban with the official 120-step episodes. Levels: a pool of generated 1-box rooms
(``generate_framed_levels``, the "graded" curriculum's first kind: 6x6 rooms, 1-4 moves, random offsets in the 10x10 frame).

    .venv/bin/python docs/diagnostics/drc_ff_a2c.py --updates 6250 --lr 1e-3          # 2M transitions, ~5 min, 1 thread
    .venv/bin/python docs/diagnostics/drc_ff_a2c.py --updates 400 --pool 1 --min-moves 3  # one level: learnt by ~130k

Measured 2026-12-04 with the two commands above (README of drc_planning, "Does the learner learn?"): one level is
learnt by 128k transitions (solve rate 1.00, 5.1 steps per episode); the pool of 1000 levels stays near the random
policy's solve rate (0.58-0.61) up to 640k transitions, then 0.70 at 960k, 0.85 at 1.28M, 0.98 at 1.6M and 1.00 at
2M (2.5 steps per episode, entropy 0.13), in 287 s.
"""

from __future__ import annotations

import argparse
import random
import time

import torch
import torch.nn.functional as F
from torch import nn

from reprolab.data.sokoban import BatchedSokoban, generate_framed_levels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--room", type=int, default=6)
    ap.add_argument("--min-moves", type=int, default=1)
    ap.add_argument("--max-moves", type=int, default=4)
    ap.add_argument("--pool", type=int, default=1000, help="distinct generated levels (1: a single level)")
    ap.add_argument("--updates", type=int, default=6250)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--envs", type=int, default=16)
    ap.add_argument("--unroll", type=int, default=20)
    ap.add_argument("--step-limit", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    pool = generate_framed_levels(a.pool, room=a.room, boxes=1, min_moves=a.min_moves, max_moves=a.max_moves, pulls=20, seed=1)
    rng = random.Random(a.seed)

    def draw(k: int):
        return [rng.choice(pool) for _ in range(k)]

    env = BatchedSokoban(draw(a.envs), next_levels=draw, step_limit=a.step_limit)
    torso = nn.Sequential(nn.Conv2d(7, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(32 * 64, 128), nn.ReLU())
    pi, v = nn.Linear(128, 5), nn.Linear(128, 1)
    params = [*torso.parameters(), *pi.parameters(), *v.parameters()]
    opt = torch.optim.Adam(params, lr=a.lr)
    obs = torch.as_tensor(env.observation())
    eps = solved = steps = 0
    t0 = time.time()
    for u in range(a.updates):
        lps, vals, rews, discs, ents = [], [], [], [], []
        for _ in range(a.unroll):
            z = torso(obs)
            lp = F.log_softmax(pi(z), -1)
            act = torch.multinomial(lp.exp().detach(), 1).squeeze(1)
            o, r, d, info = env.step(act.numpy())
            lps.append(lp.gather(1, act[:, None]).squeeze(1))
            vals.append(v(z).squeeze(-1))
            ents.append(-(lp.exp() * lp).sum(-1))
            rews.append(torch.as_tensor(r))
            discs.append(torch.as_tensor(0.99 * (1 - d), dtype=torch.float32))
            eps += int(d.sum())
            solved += int(info["solved"].sum())
            steps += int(info["steps"][d].sum())
            obs = torch.as_tensor(o)
        with torch.no_grad():
            ret = v(torso(obs)).squeeze(-1)
        rets = []
        for t in reversed(range(a.unroll)):
            ret = rews[t] + discs[t] * ret
            rets.append(ret)
        rets, values = torch.stack(rets[::-1]), torch.stack(vals)
        adv = (rets - values).detach()
        loss = -(torch.stack(lps) * adv).mean() + 0.25 * (rets - values).pow(2).mean() - 0.01 * torch.stack(ents).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 40)
        opt.step()
        if (u + 1) % 250 == 0 or u + 1 == a.updates:
            print(f"update {u + 1}: {(u + 1) * a.envs * a.unroll} transitions, {eps} episodes, solve rate "
                  f"{solved / max(eps, 1):.2f}, {steps / max(eps, 1):.1f} steps per episode, entropy "
                  f"{torch.stack(ents).mean():.2f}, {time.time() - t0:.0f} s", flush=True)
            eps = solved = steps = 0


if __name__ == "__main__":
    main()
