"""ConvLSTM cells and the Deep Repeating ConvLSTM (DRC) agent, with hooks to read and write its cell states.

DRC(D, N) is the recurrent agent of Guez et al. (2019, "An investigation of model-free planning", arXiv 1901.03559) in the
form the planning-interpretability paper trains and probes ("Interpreting Emergent Planning in Model-Free Reinforcement
Learning", arXiv 2504.01871; official code tuphs28/emergent-planning on stephen-chung-mh/thinker, ``actor_net.DRCNet``
and ``core/rnn.py``). Per environment step:

1. encoder: two 3x3 convolutions (padding 1, no nonlinearity between them, as the official ``nn.Sequential``) keep
   the 8x8 grid: ``x = E(obs)``;
2. N ticks; in each tick the D ConvLSTM layers run in order, layer d taking ``[x, h_{d-1}]`` (layer 0 takes the top
   layer's h of the previous tick: the top-down skip), its own ``h_d, c_d`` and, with pool-and-inject, a depthwise
   (2, 1) convolution over ``[spatial mean; spatial max]`` of its own ``h_d``, broadcast over the grid;
3. a ConvLSTM cell: ``[i, f, o, g] = conv([input, h, pool(h)])``; ``c' = sigmoid(f) * c + sigmoid(i) * tanh(g)``;
   ``h' = sigmoid(o) * tanh(c')``;
4. head: ``[x, h_top]`` flattened -> Linear(256) -> ReLU -> policy logits (5 actions) and a value.

Departures, flagged: the official cell's convolution emits 5C channels and ignores the fifth split when attention is
off; we emit the 4C that are used (the function and its gradients are the same). The official DRC multiplies the
recurrent state by ``notdone`` at an episode's start; :meth:`DRC.reset_where` does the same.

Hooks (what the probing and intervention experiments need):
- ``record=True`` returns every (h, c) per tick and layer: ``trace.h`` / ``trace.c`` of shape (B, N, D, C, H, W);
- ``cell_delta={layer: delta}`` adds ``delta`` (B, C, H, W) to that layer's new cell state ``c'`` (before ``h'`` is
  computed from it), at the ticks in ``delta_ticks`` (all by default): the paper's intervention "add alpha * probe
  vector to c at chosen squares", with the squares chosen by where ``delta`` is non-zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ShapeError


@dataclass(frozen=True)
class DRCConfig:
    in_channels: int = 7  # one-hot observation channels (Boxoban: 7)
    channels: int = 32  # encoder and ConvLSTM channels (official: 32)
    depth: int = 3  # D, ConvLSTM layers (official DRC(3,3))
    ticks: int = 3  # N, repeats of the layer stack per environment step (official 3)
    kernel: int = 3  # ConvLSTM kernel (official 3, padding 1)
    height: int = 8  # grid height (Boxoban's 8x8 interior)
    width: int = 8
    hidden: int = 256  # head's hidden units (official 256)
    actions: int = 5  # noop, up, down, left, right
    pool_inject: bool = True  # official: on

    def __post_init__(self) -> None:
        for name in ("in_channels", "channels", "depth", "ticks", "height", "width", "hidden", "actions"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "a positive integer")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError("kernel", self.kernel, "an odd positive integer (padding kernel//2 keeps the grid)")


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer with optional pool-and-inject (official ``ConvAttnLSTMCell`` with ``attn=False``)."""

    def __init__(self, in_channels: int, channels: int, kernel: int = 3, pool_inject: bool = True):
        super().__init__()
        self.channels = channels
        self.pool_inject = pool_inject
        extra = channels if pool_inject else 0
        self.gates = nn.Conv2d(in_channels + channels + extra, 4 * channels, kernel, padding=kernel // 2)
        # depthwise (2, 1) conv over the stacked [mean; max] of h: one weight pair and bias per channel
        self.pool = nn.Conv2d(channels, channels, (2, 1), groups=channels) if pool_inject else None

    def pooled(self, h: torch.Tensor) -> torch.Tensor:
        """Pool-and-inject: (B, C, H, W) -> conv over [mean_hw; max_hw] (B, C, 2, 1) -> broadcast to (B, C, H, W)."""
        stacked = torch.cat([h.mean(dim=(-2, -1), keepdim=True), h.amax(dim=(-2, -1), keepdim=True)], dim=-2)
        return self.pool(stacked).expand_as(h)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                delta: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [x, h] + ([self.pooled(h)] if self.pool_inject else [])
        i, f, o, g = torch.split(self.gates(torch.cat(parts, dim=1)), self.channels, dim=1)
        c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # c' = f*c + i*g
        if delta is not None:
            c_next = c_next + delta  # the intervention hook: a vector added to c' before h' reads it
        h_next = torch.sigmoid(o) * torch.tanh(c_next)  # h' = o * tanh(c')
        return h_next, c_next


@dataclass
class DRCState:
    """Recurrent state: h and c of each layer, each (B, D, C, H, W)."""

    h: torch.Tensor
    c: torch.Tensor

    def detach(self) -> DRCState:
        return DRCState(self.h.detach(), self.c.detach())


@dataclass
class DRCOutput:
    logits: torch.Tensor  # (B, actions)
    value: torch.Tensor  # (B,)
    state: DRCState
    h: torch.Tensor | None = None  # with record=True: (B, N, D, C, H, W), every tick and layer
    c: torch.Tensor | None = None


class DRC(nn.Module):
    """DRC(D, N) on one-hot grid observations (B, in_channels, H, W); see the module docstring."""

    def __init__(self, config: DRCConfig = DRCConfig()):
        super().__init__()
        self.config = cfg = config
        self.encoder = nn.Sequential(nn.Conv2d(cfg.in_channels, cfg.channels, 3, padding=1),
                                     nn.Conv2d(cfg.channels, cfg.channels, 3, padding=1))
        self.cells = nn.ModuleList(ConvLSTMCell(2 * cfg.channels, cfg.channels, cfg.kernel, cfg.pool_inject) for _ in range(cfg.depth))
        self.final = nn.Linear(2 * cfg.channels * cfg.height * cfg.width, cfg.hidden)
        self.policy = nn.Linear(cfg.hidden, cfg.actions)
        self.baseline = nn.Linear(cfg.hidden, 1)

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> DRCState:
        cfg = self.config
        device = device if device is not None else self.policy.weight.device
        z = torch.zeros(batch, cfg.depth, cfg.channels, cfg.height, cfg.width, device=device)
        return DRCState(z, z.clone())

    @staticmethod
    def reset_where(state: DRCState, done: torch.Tensor) -> DRCState:
        """Zero the state of the envs whose episode just ended (official: multiply by notdone)."""
        keep = (~done.bool()).float().view(-1, 1, 1, 1, 1)
        return DRCState(state.h * keep, state.c * keep)

    def forward(self, obs: torch.Tensor, state: DRCState, *, record: bool = False,
                cell_delta: dict[int, torch.Tensor] | None = None, delta_ticks: Sequence[int] | None = None) -> DRCOutput:
        cfg = self.config
        if obs.dim() != 4 or tuple(obs.shape[1:]) != (cfg.in_channels, cfg.height, cfg.width):
            raise ShapeError("obs", tuple(obs.shape), f"(B, {cfg.in_channels}, {cfg.height}, {cfg.width})")
        if state.h.shape[0] != obs.shape[0]:
            raise ShapeError("state.h", tuple(state.h.shape), f"batch {obs.shape[0]} like obs (use initial_state(B))")
        for layer, delta in (cell_delta or {}).items():
            if not 0 <= layer < cfg.depth or tuple(delta.shape) != (obs.shape[0], cfg.channels, cfg.height, cfg.width):
                raise ShapeError(f"cell_delta[{layer}]", tuple(delta.shape),
                                 f"(B, {cfg.channels}, {cfg.height}, {cfg.width}) for a layer in 0..{cfg.depth - 1}")
        ticks = set(range(cfg.ticks) if delta_ticks is None else delta_ticks)
        x = self.encoder(obs)  # (B, C, H, W)
        hs, cs = list(state.h.unbind(1)), list(state.c.unbind(1))
        rec_h, rec_c = [], []
        for t in range(cfg.ticks):
            below = hs[-1]  # layer 0 reads the top layer's h of the previous tick (top-down skip)
            for d, cell in enumerate(self.cells):
                delta = cell_delta.get(d) if cell_delta is not None and t in ticks else None
                hs[d], cs[d] = cell(torch.cat([x, below], dim=1), hs[d], cs[d], delta)
                below = hs[d]
            if record:
                rec_h.append(torch.stack(hs, 1))
                rec_c.append(torch.stack(cs, 1))
        top = hs[-1]
        z = F.relu(self.final(torch.cat([x, top], dim=1).flatten(1)))  # head on [encoded obs, top h]
        new = DRCState(torch.stack(hs, 1), torch.stack(cs, 1))
        out = DRCOutput(self.policy(z), self.baseline(z).squeeze(-1), new)
        if record:
            out.h, out.c = torch.stack(rec_h, 1), torch.stack(rec_c, 1)
        return out

    def regulariser(self, logits: torch.Tensor, logit_l2: float = 1e-3, weight_l2: float = 1e-5) -> torch.Tensor:
        """Official ``reg_loss`` per sample: 1e-3 * sum(logits^2) + 1e-5 * (||W_value||^2 + ||W_policy||^2)."""
        return (logit_l2 * logits.square().sum(-1)
                + weight_l2 * (self.baseline.weight.square().sum() + self.policy.weight.square().sum()))
