"""BatchTopK and Matryoshka BatchTopK sparse autoencoders (Pach et al., arXiv 2504.02821, Sec. 3.1).

An SAE rewrites an activation x in R^d as a sparse, non-negative code z in R^omega
(omega = eps * d, eps the expansion factor) and reconstructs it from unit-norm dictionary
atoms. The paper trains two kinds on CLIP's image-level token:

    z     = ReLU(W_enc (x - b_dec) + b_enc)                  (pre-activations, Eq. 1)
    train: keep the K * B largest entries of z over the whole batch of B  (BatchTopK)
    infer: keep entries of z above a threshold theta learned during training
    x_hat = W_dec z + b_dec,   ||W_dec[:, j]||_2 = 1 for every latent j
    L     = ||x - x_hat||^2 + alpha_aux * L_aux                 (alpha_aux = 0.03, official script)

Matryoshka BatchTopK (Bussmann et al. / Nabeshima, the paper's Sec. 3.1): the dictionary
is split into nested prefixes M = {omega/16, 3 omega/16, 7 omega/16, omega} (group
fractions 0.0625, 0.125, 0.25, 0.5625 of the official script) and every prefix must
reconstruct x on its own: L = sum_m ||x - (W_dec[:, :m] z[:m] + b_dec)||^2 + alpha_aux L_aux.

Facts taken from the official code (ExplainableML/sae-for-vlm, dictionary_learning/trainers),
re-implemented here:
- init: W_dec ~ Kaiming-uniform, columns normalised to 1; W_enc = W_dec^T; b_enc = 0;
  b_dec = geometric median of the first batch (set by the trainer);
- theta: from step ``threshold_start_step`` on, an EMA (beta 0.999) of the smallest
  non-zero activation kept by the batch top-k; at inference z is kept where z > theta
  (a run shorter than 10 x ``threshold_start_step`` starts tracking at 10% of its steps, so
  every trained SAE can ``encode``; ``training.effective_threshold_start``);
- L_aux (Gao et al. 2024): the ``top_k_aux = d // 2`` largest pre-activations among *dead*
  latents (no firing in the last ``dead_tokens_threshold`` training vectors, official 10M)
  reconstruct the residual x - x_hat (decoder without bias), normalised by the residual's
  variance; it is 0 when no latent is dead;
- decoder gradient: its component parallel to each atom is removed before the step, and
  the atoms are re-normalised after it; gradients are clipped to norm 1; Adam (0.9, 0.999);
- learning rate: lr = 2e-4 / sqrt(omega / 2^14) when not given.

Choices where the paper is vague (also in the README):
- Matryoshka prefix losses are *summed* with weight 1 each (the paper's equation); the
  official code takes the mean of per-group losses each pre-multiplied by 1/G. Pass
  ``group_weights`` to reproduce that exactly.
- The threshold is stored per latent (a vector filled with the one learned scalar), so a
  JumpReLU-style SAE with per-latent thresholds (SAELens' inference format) loads into the
  same class. The official code stores one scalar.
- Variable names map to the paper: W_enc (d x omega) = W_enc^T of Eq. 1 (we multiply
  row vectors), W_dec (omega x d), K = ``k``, omega = ``width``, eps = ``expansion_factor``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ...errors import ConfigError, MalformedFile, NonFiniteError, ShapeError

CONFIG_FILE = "cfg.json"  # the same file names SAELens uses
WEIGHTS_FILE = "sae_weights.safetensors"
OFFICIAL_GROUP_FRACTIONS = (0.0625, 0.125, 0.25, 0.5625)  # official script; cumulative 1/16, 3/16, 7/16, 1


def official_lr(width: int) -> float:
    """The official learning-rate rule: 2e-4 / sqrt(omega / 2^14) (dictionary_learning, Gao et al. Fig. 3)."""
    return 2e-4 / math.sqrt(width / 2**14)


@dataclass(frozen=True)
class SAEConfig:
    """What defines an SAE; the defaults are the paper's / official script's."""

    d_in: int  # d: width of the activations the SAE reads
    expansion_factor: int = 1  # eps = omega / d (paper: 1 ... 64)
    k: int = 20  # K: mean number of active latents per sample (official script --k 20)
    auxk_alpha: float = 0.03  # weight of the dead-latent auxiliary loss (official script --auxk_alpha 0.03)
    top_k_aux: int | None = None  # latents used by L_aux; None -> d // 2 (official, Gao et al. B.1)
    dead_tokens_threshold: int = 10_000_000  # a latent is dead after this many training vectors without firing (official)
    threshold_beta: float = 0.999  # EMA factor of the inference threshold (official)
    threshold_start_step: int = 1000  # step after which the threshold is tracked (official)
    group_fractions: tuple[float, ...] | None = None  # Matryoshka prefix groups; None = plain BatchTopK
    group_weights: tuple[float, ...] | None = None  # Matryoshka per-prefix loss weights; None -> 1 each (paper: sum)
    architecture: str = "batchtopk"  # "batchtopk" or "matryoshka_batchtopk" (set by the class)

    def __post_init__(self) -> None:
        if int(self.d_in) < 1:
            raise ConfigError("d_in", self.d_in, "a positive integer (the activation width)")
        if int(self.expansion_factor) < 1:
            raise ConfigError("expansion_factor", self.expansion_factor, "an integer >= 1")
        if not (1 <= int(self.k) <= self.width):
            raise ConfigError("k", self.k, f"an integer in [1, width={self.width}]")
        if not (0.0 <= self.auxk_alpha and math.isfinite(self.auxk_alpha)):
            raise ConfigError("auxk_alpha", self.auxk_alpha, "a finite number >= 0")
        if not (0.0 < self.threshold_beta < 1.0):
            raise ConfigError("threshold_beta", self.threshold_beta, "a number in (0, 1)")
        if self.architecture not in ("batchtopk", "matryoshka_batchtopk"):
            raise ConfigError("architecture", self.architecture, "'batchtopk' or 'matryoshka_batchtopk'")
        if self.group_fractions is not None:
            fr = tuple(float(f) for f in self.group_fractions)
            if any(f <= 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
                raise ConfigError("group_fractions", self.group_fractions, "positive fractions that sum to 1 (official: 0.0625, 0.125, 0.25, 0.5625)")
            if min(self.group_sizes) < 1:
                raise ConfigError("group_fractions", self.group_fractions, f"fractions whose groups hold >= 1 latent at width {self.width}")
            if self.group_weights is not None and len(self.group_weights) != len(fr):
                raise ConfigError("group_weights", self.group_weights, f"{len(fr)} weights, one per group")

    @property
    def width(self) -> int:
        """omega, the number of latents."""
        return int(self.d_in) * int(self.expansion_factor)

    @property
    def aux_k(self) -> int:
        return int(self.top_k_aux) if self.top_k_aux is not None else max(1, int(self.d_in) // 2)

    @property
    def group_sizes(self) -> list[int]:
        """Latents per Matryoshka group: int(f * omega) for all but the last, the rest in the last (official)."""
        if self.group_fractions is None:
            return [self.width]
        sizes = [int(f * self.width) for f in self.group_fractions[:-1]]
        return sizes + [self.width - sum(sizes)]

    @property
    def prefix_ends(self) -> list[int]:
        """Cumulative group ends: the nested prefix sizes m of the Matryoshka loss."""
        out, acc = [], 0
        for s in self.group_sizes:
            acc += s
            out.append(acc)
        return out

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["width"] = self.width  # for readers; ignored on load
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SAEConfig:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        for key in ("group_fractions", "group_weights"):
            if kw.get(key) is not None:
                kw[key] = tuple(kw[key])
        return cls(**kw)


@dataclass
class SAEOutput:
    """One training forward: the reconstruction, the kept code, and named losses (scalars)."""

    x_hat: torch.Tensor  # (B, d)
    z: torch.Tensor  # (B, omega): after the batch top-k
    pre_acts: torch.Tensor  # (B, omega): ReLU(W_enc (x - b_dec) + b_enc)
    loss: torch.Tensor  # the total loss to backpropagate
    losses: dict[str, float] = field(default_factory=dict)  # "mse" (per-sample squared error), "aux", "total"


class BatchTopKSAE(nn.Module):
    """BatchTopK SAE (Bussmann et al. 2024) as used by the paper; see the module docstring.

    ``forward(x)`` is inference (threshold), ``training_forward(x, dead)`` is the training
    objective (batch top-k + auxiliary loss). ``encode``/``decode`` work on any leading shape
    ``(..., d)``.
    """

    architecture: ClassVar[str] = "batchtopk"

    def __init__(self, config: SAEConfig):
        super().__init__()
        if config.architecture != self.architecture:
            config = SAEConfig(**{**asdict(config), "architecture": self.architecture})
        self.config = config
        d, w = config.d_in, config.width
        w_dec = nn.init.kaiming_uniform_(torch.empty(w, d))
        w_dec = w_dec / w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)  # (omega, d), unit-norm rows = dictionary atoms
        self.W_enc = nn.Parameter(w_dec.T.clone())  # (d, omega)
        self.b_enc = nn.Parameter(torch.zeros(w))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.register_buffer("threshold", torch.full((w,), -1.0))  # theta; < 0 = not learned yet

    # -- the forward pass --------------------------------------------------------------
    @property
    def width(self) -> int:
        return self.config.width

    def _check_input(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.config.d_in:
            raise ShapeError("SAE input", tuple(x.shape), f"(..., {self.config.d_in}) (the SAE's d_in)")

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(W_enc (x - b_dec) + b_enc), shape (..., omega)."""
        self._check_input(x)
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Inference code: pre-activations above the learned threshold theta (JumpReLU form)."""
        if bool((self.threshold < 0).any()):
            raise ConfigError("threshold", "not learned", "an SAE trained by train_sae (any number of steps learns it), or encode_batch_topk for an untrained one")
        pre = self.pre_activations(x)
        return pre * (pre > self.threshold)

    def encode_batch_topk(self, x: torch.Tensor) -> torch.Tensor:
        """Training code: keep the K * B largest pre-activations over the whole batch (B, d)."""
        pre = self.pre_activations(x)
        return self._batch_topk(pre)

    def _batch_topk(self, pre: torch.Tensor) -> torch.Tensor:
        flat = pre.reshape(-1)
        n_keep = min(flat.numel(), self.config.k * pre.reshape(-1, self.width).shape[0])
        top = flat.topk(n_keep, sorted=False)
        return torch.zeros_like(flat).scatter_(0, top.indices, top.values).reshape(pre.shape)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x_hat = W_dec z + b_dec, shape (..., d)."""
        return z @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    # -- the training objective --------------------------------------------------------
    def reconstruction_loss(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, x_hat): mean over the batch of ||x - x_hat||^2."""
        x_hat = self.decode(z)
        return (x - x_hat).pow(2).sum(-1).mean(), x_hat

    def auxiliary_loss(self, residual: torch.Tensor, pre: torch.Tensor, dead: torch.Tensor | None) -> torch.Tensor:
        """L_aux: the top ``aux_k`` dead latents reconstruct the residual, normalised by its variance."""
        if dead is None or not bool(dead.any()):
            return residual.new_zeros(())
        dead_idx = torch.nonzero(dead).squeeze(1)
        k_aux = min(self.config.aux_k, len(dead_idx))
        pre_dead = pre[:, dead_idx]  # (B, n_dead): only dead latents compete (same result as masking the rest to -inf)
        vals, idx = pre_dead.topk(k_aux, dim=-1, sorted=False)
        z_aux = torch.zeros_like(pre_dead).scatter_(-1, idx, vals.clamp_min(0))
        recon = z_aux @ self.W_dec[dead_idx]  # no bias: the residual has none
        l2 = (residual - recon).pow(2).sum(-1).mean()
        denom = (residual - residual.mean(0, keepdim=True)).pow(2).sum(-1).mean()
        return torch.nan_to_num(l2 / denom, nan=0.0, posinf=0.0)

    def training_forward(self, x: torch.Tensor, dead: torch.Tensor | None = None) -> SAEOutput:
        """The training loss on a batch x (B, d); ``dead`` (omega,) bool marks dead latents."""
        if x.dim() != 2:
            raise ShapeError("SAE training batch", tuple(x.shape), f"(batch, {self.config.d_in})")
        pre = self.pre_activations(x)
        z = self._batch_topk(pre)
        recon, x_hat = self.reconstruction_loss(x, z)
        aux = self.auxiliary_loss((x - x_hat).detach(), pre, dead)
        loss = recon + self.config.auxk_alpha * aux
        return SAEOutput(x_hat, z, pre, loss, {"mse": float(recon.detach()), "aux": float(aux.detach()), "total": float(loss.detach())})

    @torch.no_grad()
    def update_threshold(self, z: torch.Tensor) -> None:
        """theta <- beta theta + (1 - beta) min{z > 0} (first call: theta = min{z > 0})."""
        active = z[z > 0]
        m = active.min().float() if active.numel() else torch.zeros((), device=z.device)
        if bool((self.threshold < 0).all()):
            self.threshold.fill_(float(m))
        else:
            beta = self.config.threshold_beta
            self.threshold.mul_(beta).add_((1 - beta) * m)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Project every atom back to unit norm (after each optimizer step)."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Drop the gradient component along each atom, so the step does not change its norm to first order."""
        if self.W_dec.grad is None:
            return
        g, w = self.W_dec.grad, self.W_dec
        g.sub_((g * w).sum(1, keepdim=True) * w)

    # -- persistence -------------------------------------------------------------------
    def save(self, folder: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
        """Write ``cfg.json`` + ``sae_weights.safetensors`` into ``folder`` atomically (all or nothing)."""
        return save_sae(self, folder, extra)

    @classmethod
    def load(cls, folder: str | os.PathLike, device: torch.device | str | None = None) -> BatchTopKSAE:
        sae = load_sae(folder, device)
        if not isinstance(sae, cls):
            raise MalformedFile(str(folder), f"holds a {type(sae).__name__}, not a {cls.__name__}", fix=f"load it with load_sae() or {type(sae).__name__}.load()")
        return sae


class MatryoshkaBatchTopKSAE(BatchTopKSAE):
    """Matryoshka BatchTopK: every nested prefix of the dictionary reconstructs x on its own.

    Only the reconstruction loss differs from :class:`BatchTopKSAE`:
    L_rec = sum_m w_m ||x - (z[:, :m] W_dec[:m] + b_dec)||^2 over prefix ends m
    (w_m = 1, the paper's sum; ``group_weights`` to change). The auxiliary loss uses the
    residual of the full dictionary, as the official code does.
    """

    architecture: ClassVar[str] = "matryoshka_batchtopk"

    def __init__(self, config: SAEConfig):
        if config.group_fractions is None:
            config = SAEConfig(**{**asdict(config), "group_fractions": OFFICIAL_GROUP_FRACTIONS})
        super().__init__(config)

    def reconstruction_loss(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.config.group_weights or (1.0,) * len(self.config.group_sizes)
        x_hat = self.b_dec.expand_as(x)
        loss = x.new_zeros(())
        start = 0
        for end, w in zip(self.config.prefix_ends, weights):
            x_hat = x_hat + z[:, start:end] @ self.W_dec[start:end]  # the prefix [0, end) reconstruction
            loss = loss + w * (x - x_hat).pow(2).sum(-1).mean()
            start = end
        return loss, x_hat

    def prefix_reconstruction(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """Reconstruct x from the first ``m`` latents only (inference code)."""
        z = self.encode(x)
        return z[..., :m] @ self.W_dec[:m] + self.b_dec


ARCHITECTURES: dict[str, type[BatchTopKSAE]] = {"batchtopk": BatchTopKSAE, "matryoshka_batchtopk": MatryoshkaBatchTopKSAE}


def build_sae(config: SAEConfig) -> BatchTopKSAE:
    """The SAE class that ``config.architecture`` names."""
    return ARCHITECTURES[config.architecture](config)


def save_sae(sae: BatchTopKSAE, folder: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Save as safetensors + JSON config; the folder appears complete or not at all.

    ``extra`` (JSON-able) is stored under ``"extra"`` in the config, e.g. which model and
    module the SAE reads (``{"hook_name": "_blocks.15", "reduce": "mean over H, W"}``).
    """
    from safetensors.torch import save_file

    for name, p in sae.state_dict().items():
        if not torch.isfinite(p).all():
            raise NonFiniteError(f"SAE parameter {name}", "NaN/inf", fix="do not save a diverged SAE; lower the learning rate or resume from an earlier checkpoint")
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in sae.state_dict().items()}
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"architecture": sae.config.architecture})
        cfg = {"architecture": sae.config.architecture, "config": sae.config.to_json(), "format": "reprolab.vlm_sae/1", "extra": extra or {}}
        (tmp / CONFIG_FILE).write_text(json.dumps(cfg, indent=2))
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            if old.exists():
                shutil.rmtree(old)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def load_sae(folder: str | os.PathLike, device: torch.device | str | None = None) -> BatchTopKSAE:
    """Load an SAE written by :func:`save_sae`; a missing or corrupt file raises MalformedFile."""
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, w_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for p in (cfg_path, w_path):
        if not p.exists():
            raise MalformedFile(str(folder), f"has no {p.name}", fix="pass the folder written by save_sae() (cfg.json + sae_weights.safetensors)")
    try:
        cfg = json.loads(cfg_path.read_text())
        config = SAEConfig.from_json(cfg["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise MalformedFile(str(cfg_path), f"is not a reprolab SAE config ({type(e).__name__}: {e})") from None
    try:
        state = load_file(str(w_path))
    except Exception as e:  # safetensors raises several types (SafetensorError, OSError, ...) on corrupt files
        raise MalformedFile(str(w_path), f"is not a readable safetensors file ({type(e).__name__}: {e})") from None
    sae = build_sae(config)
    expected = {k: tuple(v.shape) for k, v in sae.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        raise MalformedFile(str(w_path), f"tensors {got} do not match the config's {expected}")
    sae.load_state_dict(state)
    sae.extra = cfg.get("extra", {})  # type: ignore[attr-defined]
    return sae.to(device) if device is not None else sae
