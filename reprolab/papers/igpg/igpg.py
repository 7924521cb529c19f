"""IGPG: Instruction-Guided autoregressive neural network Parameter Generation (arXiv 2504.02012).

A Gumbel VQ-VAE turns chunks of a network's flattened weights into discrete codes (Sec. 3.2); a GPT-2
prior, prefixed by the instruction (a data-set embedding and an architecture embedding, Sec. 3.3),
models the code sequence of whole networks; generation samples codes, decodes the chunks, undoes the
chunking and loads the tensors into the architecture (Sec. 3.4).

    gen = IGPG(IGPGConfig(...), image_encoder=EfficientNetImageEncoder(), text_embedder=MiniLMEmbedder())
    gen.fit(examples)                          # [TrainingNetwork(state, template, data_embedding), ...]
    state = gen.generate(instruction, architecture=cnn_a())      # {name: tensor}, loadable
    save_generated("net.safetensors", state, gen.manifest_for(cnn_a()))

Everything is device-agnostic: the VQ-VAE and prior live where ``device=`` puts them.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError, MalformedFile, ShapeError
from ...nn.vqvae import ChunkVQVAE, VQVAEConfig, codebook_usage, perplexity, train_vqvae
from .instructions import describe_architecture
from .prior import ConditionalPrior, PriorConfig, mix_positions, train_prior
from .weights import Manifest, Order, chunks_to_state_dict, load_into, named_tensors, state_dict_to_chunks


@dataclass(frozen=True)
class IGPGConfig:
    """IGPG's hyper-parameters; where the official config gives one, it is the default."""

    vqvae: VQVAEConfig = VQVAEConfig()
    order: str = "layer"  # "layer" (layer-wise chunks, paper default) or "architecture"
    scale: float = 10.0  # official loader multiplies weights by `scale` (configs: 1-10) before the VQ-VAE
    standardize: bool = False  # ours (spec-sheet risk "per-layer normalisation if needed"): each tensor divided by the
    #                            training zoo's std of that tensor of that architecture, then times `scale`
    vq_steps: int = 2000
    vq_lr: float = 1e-4  # paper: Adam 1e-4 (official config 2.5e-5)
    vq_batch: int = 100  # official batch size
    prior_steps: int = 2000
    prior_lr: float = 1e-4  # paper: AdamW 1e-4, linear schedule
    prior_batch: int = 16
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    temperature: float = 1.0  # sampling temperature of the prior

    def __post_init__(self) -> None:
        if self.order not in ("layer", "architecture"):
            raise ConfigError("order", self.order, "'layer' or 'architecture'")
        if not self.scale > 0:
            raise ConfigError("scale", self.scale, "a positive weight scale")


@dataclass
class TrainingNetwork:
    """One zoo member for :meth:`IGPG.fit`: its tensors, an instance of its architecture, its instruction."""

    state: Mapping[str, torch.Tensor]
    template: nn.Module | Mapping[str, torch.Tensor]
    data_embedding: torch.Tensor  # (K, Dd)


@dataclass
class FitReport:
    vq_loss: dict[str, list[float]]
    vq_steps: list[int]
    temperatures: list[float]
    prior_loss: list[float]
    prior_steps: list[int]
    codebook_usage: float
    perplexity: float
    reconstruction_mse: float
    seconds: dict[str, float] = field(default_factory=dict)


class IGPG:
    """The generator: VQ-VAE + conditional prior, with the instruction encoders."""

    def __init__(self, config: IGPGConfig = IGPGConfig(), *, text_embedder: Any = None, device: torch.device | str | None = None):
        self.config = config
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.text_embedder = text_embedder
        self.vqvae = ChunkVQVAE(config.vqvae).to(self.device)
        self.prior: ConditionalPrior | None = None
        self._arch_cache: dict[str, torch.Tensor] = {}
        self.tensor_scales: dict[str, dict[str, float]] = {}  # architecture description -> {tensor: 1 / zoo std}

    # ------------------------------------------------------------------ instructions

    def architecture_embedding(self, architecture: nn.Module | Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(Da,) embedding of :func:`describe_architecture` by the text embedder (MiniLM by default)."""
        text = describe_architecture(architecture)
        if text not in self._arch_cache:
            if self.text_embedder is None:
                from ...nn.encoders import MiniLMEmbedder

                self.text_embedder = MiniLMEmbedder()
            self._arch_cache[text] = torch.as_tensor(np.asarray(self.text_embedder([text]))[0], dtype=torch.float32)
        return self._arch_cache[text]

    # ------------------------------------------------------------------ tokens

    def _scales(self, architecture: nn.Module | Mapping[str, torch.Tensor] | None) -> dict[str, float] | None:
        return self.tensor_scales.get(describe_architecture(architecture)) if architecture is not None else None

    def manifest_for(self, architecture: nn.Module | Mapping[str, torch.Tensor]) -> Manifest:
        return self.chunks(architecture, architecture)[1]

    def chunks(self, state: nn.Module | Mapping[str, torch.Tensor],
               architecture: nn.Module | Mapping[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, Manifest]:
        """``state``'s chunks (scaled as the generator scales ``architecture``'s tensors; default: ``state`` itself)."""
        return state_dict_to_chunks(state, self.config.vqvae.chunk_size, self.config.order, self.config.scale,  # type: ignore[arg-type]
                                    tensor_scales=self._scales(architecture if architecture is not None else state))

    def tokenize(self, state: nn.Module | Mapping[str, torch.Tensor],
                 architecture: nn.Module | Mapping[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, Manifest]:
        """A network -> its code sequence (n_chunks * tokens_per_chunk,) and manifest."""
        ch, man = self.chunks(state, architecture)
        return self.vqvae.encode(ch.to(self.device)).reshape(-1).cpu(), man

    def detokenize(self, codes: torch.Tensor, manifest: Manifest) -> dict[str, torch.Tensor]:
        """Codes -> tensors (decode each chunk, undo the chunking and the scale)."""
        tpc = self.config.vqvae.tokens_per_chunk
        if codes.dim() != 1 or codes.numel() != manifest.n_chunks * tpc:
            raise ShapeError("codes", tuple(codes.shape), f"({manifest.n_chunks * tpc},) for this architecture")
        chunks = self.vqvae.decode(codes.view(manifest.n_chunks, tpc).to(self.device)).cpu()
        return chunks_to_state_dict(chunks, manifest)

    def reconstruct(self, state: nn.Module | Mapping[str, torch.Tensor],
                    architecture: nn.Module | Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """encode -> decode through the VQ-VAE (the ceiling of what generation can reach)."""
        codes, man = self.tokenize(state, architecture)
        return self.detokenize(codes, man)

    # ------------------------------------------------------------------ training

    def fit(self, networks: Sequence[TrainingNetwork], *, seed: int = 0, progress: bool = False) -> FitReport:
        """Train the VQ-VAE on all chunks of ``networks``, tokenize them, then train the prior."""
        import time

        if not networks:
            raise ConfigError("networks", "an empty list", "at least one training network")
        c = self.config
        g = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        if c.standardize:
            groups: dict[str, list[Mapping[str, torch.Tensor]]] = {}
            for n in networks:
                groups.setdefault(describe_architecture(n.template), []).append(named_tensors(n.state))  # type: ignore[arg-type]
            self.tensor_scales = {arch: {k: 1.0 / max(float(torch.cat([s[k].reshape(-1).float() for s in states]).std()), 1e-8)
                                         for k in states[0]} for arch, states in groups.items()}
        all_chunks = torch.cat([self.chunks(n.state, n.template)[0] for n in networks]).to(self.device)

        def batches():
            while True:
                yield all_chunks[torch.randint(len(all_chunks), (c.vq_batch,), generator=g).to(self.device)]

        torch.manual_seed(seed)
        hist = train_vqvae(self.vqvae, batches(), c.vq_steps, lr=c.vq_lr, log_every=max(1, c.vq_steps // 40))
        t1 = time.perf_counter()
        codes = [self.tokenize(n.state, n.template)[0] for n in networks]
        every = self.vqvae.encode(all_chunks)
        rec = self.vqvae.decode(every)
        mse = float(((rec - all_chunks) ** 2).mean())
        data = torch.stack([torch.as_tensor(n.data_embedding, dtype=torch.float32) for n in networks])
        if data.dim() != 3:
            raise ShapeError("data_embedding", tuple(data.shape[1:]), "(K, D) per network")
        arch = torch.stack([self.architecture_embedding(n.template) for n in networks])
        pcfg = PriorConfig(n_codes=c.vqvae.n_embed, max_tokens=max(len(x) for x in codes), data_dim=data.shape[2],
                           arch_dim=arch.shape[1], n_data_tokens=data.shape[1], n_layer=c.n_layer, n_head=c.n_head,
                           n_embd=c.n_embd, lr=c.prior_lr)
        torch.manual_seed(seed)
        self.prior = ConditionalPrior(pcfg).to(self.device)
        ph = train_prior(self.prior, codes, data, arch, c.prior_steps, batch=c.prior_batch, seed=seed,
                         log_every=max(1, c.prior_steps // 40))
        t2 = time.perf_counter()
        return FitReport(hist.losses, hist.steps, hist.temperatures, ph.loss, ph.steps, codebook_usage(every, c.vqvae.n_embed),
                         perplexity(every, c.vqvae.n_embed), mse, {"vqvae": t1 - t0, "prior": t2 - t1})

    # ------------------------------------------------------------------ generation

    def _instruction(self, data_embedding: torch.Tensor, architecture: nn.Module | Mapping[str, torch.Tensor]):
        if self.prior is None:
            raise ConfigError("IGPG", "an unfitted generator", "call fit() or IGPG.load() first")
        d = torch.as_tensor(data_embedding, dtype=torch.float32)
        if d.dim() == 2:
            d = d.unsqueeze(0)
        if d.dim() != 3:
            raise ShapeError("instruction", tuple(d.shape), "(K, D) or (B, K, D) data-set embeddings")
        man = self.manifest_for(architecture)
        T = man.n_chunks * self.config.vqvae.tokens_per_chunk
        if T > self.prior.config.max_tokens:
            raise ConfigError("architecture", f"{T} tokens", f"an architecture of at most {self.prior.config.max_tokens} tokens (the zoo's largest)")
        a = self.architecture_embedding(architecture).unsqueeze(0).expand(d.shape[0], -1)
        return d.to(self.device), a.to(self.device), man, T

    def sample_codes(self, instruction: torch.Tensor, architecture: nn.Module | Mapping[str, torch.Tensor], n: int = 1, *,
                     seed: int = 0) -> torch.Tensor:
        """(B, n, T) autoregressive code sequences: ``n`` per instruction of ``instruction`` (K, D) or (B, K, D)."""
        d, a, man, T = self._instruction(instruction, architecture)
        g = torch.Generator().manual_seed(seed)
        codes = self.prior.sample(d.repeat_interleave(n, 0), a.repeat_interleave(n, 0), T,  # type: ignore[union-attr]
                                  temperature=self.config.temperature, generator=g)
        return codes.view(d.shape[0], n, T).cpu()

    def decode_codes(self, codes: torch.Tensor, architecture: nn.Module | Mapping[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """(..., T) codes -> one state dict per sequence, in order."""
        man = self.manifest_for(architecture)
        return [self.detokenize(c, man) for c in codes.reshape(-1, codes.shape[-1])]

    def generate(self, instruction: torch.Tensor, architecture: nn.Module | Mapping[str, torch.Tensor], n: int = 1, *,
                 seed: int = 0, independent: bool = False, n_draws: int = 8) -> list[dict[str, torch.Tensor]]:
        """``n`` state dicts for ``architecture`` per data-set embedding of ``instruction`` ((K, D) or (B, K, D)),
        instruction-major.

        ``independent=True`` is the ablation without autoregression: ``max(n, n_draws)`` AR draws per
        instruction are mixed position by position (:func:`~.prior.mix_positions`).
        """
        if n < 1:
            raise ConfigError("n", n, "at least one network")
        if independent:
            draws = self.sample_codes(instruction, architecture, max(n, n_draws), seed=seed)
            codes = mix_positions(draws, torch.Generator().manual_seed(seed + 1))[:, :n]
        else:
            codes = self.sample_codes(instruction, architecture, n, seed=seed)
        return self.decode_codes(codes, architecture)

    def generate_model(self, instruction: torch.Tensor, architecture: nn.Module, seed: int = 0) -> nn.Module:
        """A copy of ``architecture`` holding generated weights (ready at epoch 0)."""
        import copy

        return load_into(copy.deepcopy(architecture), self.generate(instruction, architecture, 1, seed=seed)[0])

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> Path:
        from ...runtime import save_checkpoint

        if self.prior is None:
            raise ConfigError("IGPG", "an unfitted generator", "call fit() before save()")
        return save_checkpoint(path, {"config": asdict(self.config), "vqvae": self.vqvae.state_dict(), "prior_config": asdict(self.prior.config),
                                      "prior": self.prior.state_dict(), "arch_cache": self._arch_cache,
                                      "tensor_scales": self.tensor_scales})

    @classmethod
    def load(cls, path: str | os.PathLike, *, text_embedder: Any = None, device: torch.device | str | None = None) -> IGPG:
        from ...runtime import load_checkpoint, readable_file

        readable_file(path, "IGPG checkpoint", "pass the file written by IGPG.save()")
        try:
            ck = load_checkpoint(path)
            cfg = dict(ck["config"])
            cfg["vqvae"] = VQVAEConfig(**cfg["vqvae"])
            gen = cls(IGPGConfig(**cfg), text_embedder=text_embedder, device=device)
            gen.vqvae.load_state_dict(ck["vqvae"])
            gen.prior = ConditionalPrior(PriorConfig(**ck["prior_config"])).to(gen.device)
            gen.prior.load_state_dict(ck["prior"])
        except (KeyError, TypeError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
            raise MalformedFile(str(path), f"not an IGPG checkpoint ({type(e).__name__}: {e})", fix="pass the file written by IGPG.save()") from None
        gen._arch_cache = dict(ck.get("arch_cache", {}))
        gen.tensor_scales = dict(ck.get("tensor_scales", {}))
        gen.vqvae.eval()
        gen.prior.eval()
        return gen


# ----------------------------------------------------------------------------- safetensors


MANIFEST_KEY = "igpg_manifest"


def save_generated(path: str | os.PathLike, state: Mapping[str, torch.Tensor], manifest: Manifest | None = None) -> Path:
    """Write generated tensors as safetensors (atomic), with the manifest in the metadata."""
    from safetensors.torch import save

    from ...runtime import atomic_write_bytes

    tensors = {k: v.detach().contiguous().cpu() for k, v in named_tensors(state).items()}  # type: ignore[arg-type]
    meta = {MANIFEST_KEY: manifest.to_json()} if manifest is not None else None
    return atomic_write_bytes(path, save(tensors, metadata=meta))


def load_generated(path: str | os.PathLike, model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file written by :func:`save_generated` (checked against its manifest, if any)
    and, with ``model``, load it into the model."""
    import json
    import struct

    from safetensors import SafetensorError
    from safetensors.torch import load

    from ...runtime import readable_file

    p = readable_file(path, "generated weights", "pass a .safetensors file written by save_generated")
    raw = p.read_bytes()
    try:
        state = load(raw)
        n = struct.unpack("<Q", raw[:8])[0]
        meta = json.loads(raw[8:8 + n]).get("__metadata__") or {}
    except (SafetensorError, ValueError, struct.error) as e:
        raise MalformedFile(str(p), f"not a readable safetensors file ({type(e).__name__}: {e})",
                            fix="regenerate it with save_generated") from None
    if MANIFEST_KEY in meta:
        man = Manifest.from_json(meta[MANIFEST_KEY])
        for e in man.entries:
            if e.name not in state or tuple(state[e.name].shape) != e.shape:
                raise MalformedFile(str(p), f"tensor {e.name!r} missing or of the wrong shape for its manifest",
                                    fix="regenerate it with save_generated")
    if model is not None:
        load_into(model, state)
    return state
