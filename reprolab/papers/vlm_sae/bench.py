"""Benchmark ``vlm_sae``: our BatchTopK SAE against SAELens' on the same activations.

Activations: EfficientNet-Lite0 ``_blocks.15`` pooled over space, on synthetic shapes images
(as the study; a planted sparse data set of the same width if the EfficientNet asset is
absent). Both SAEs: BatchTopK, width 8 x 320 = 2560, K = 20, the official learning rate
2e-4 / sqrt(omega / 2^14), Adam (0.9, 0.999), gradient clip 1, the same batches in the same
order, the same number of steps. SAELens (``sae-lens`` 6.x) is driven through its public
``BatchTopKTrainingSAE.training_forward_pass`` in a plain loop (its runner needs a language
model); its own defaults otherwise (decoder-norm rescaling, aux coefficient set to ours 0.03).

Reported, all measured in this one process:
- reconstruction at equal L0: fraction of variance unexplained (FVU) on held-out vectors
  with exactly K x N latents kept by a batch top-k over the held-out set (L0 = 20 for both);
- dead-latent fraction: latents that never fire on the held-out set (batch top-k);
- training throughput: rows are median seconds per training step, interleaved, with the
  ratio to SAELens (lower is faster).
"""

from __future__ import annotations

import numpy as np
import torch

from ...runtime import interleaved_timings
from ...study import Benchmark, BenchResult, bench_rows, register_bench
from .sae import BatchTopKSAE, SAEConfig, official_lr
from .training import geometric_median

EXPANSION = 8
K = 20


def _activations(n: int, seed: int = 0) -> tuple[np.ndarray, str]:
    from .integrations import collect_activations, efficientnet_available, global_average_pool, imagenet_normalize, load_efficientnet_lite0

    if efficientnet_available():
        from ...data.shapes import ShapesDataset

        model = load_efficientnet_lite0()
        ds = ShapesDataset.generate(n, image_size=64, seed=seed + 7)
        x = collect_activations(model, "_blocks.15", imagenet_normalize(ds.as_torch()), reduce=global_average_pool, forward=model.extract_features, batch_size=32, description="EfficientNet-Lite0 activations")
        return x.numpy(), "EfficientNet-Lite0 _blocks.15 pooled, shapes 64 px"
    g = np.random.default_rng(seed)
    atoms = g.normal(size=(2000, 320)).astype(np.float32)
    idx = g.integers(0, 2000, size=(n, 8))
    return (atoms[idx] * g.random((n, 8, 1), dtype=np.float32)).sum(1), "planted sparse (EfficientNet asset absent)"


def _saelens_sae(d: int, width: int):
    try:
        from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
        from sae_lens.saes.sae import TrainStepInput
    except ImportError:
        return None, None
    cfg = BatchTopKTrainingSAEConfig(d_in=d, d_sae=width, k=K, aux_loss_coefficient=0.03, dtype="float32", device="cpu")
    return BatchTopKTrainingSAE(cfg), TrainStepInput


@register_bench
class VLMSAEBench(Benchmark):
    name = "vlm_sae"
    description = "BatchTopK SAE training: reprolab vs SAELens on the same activations (FVU at equal L0, dead latents, s/step)"

    def run(self, quick: bool) -> BenchResult:
        n_train, n_eval = (1024, 512) if quick else (4096, 1024)
        steps, batch = (200, 256) if quick else (1500, 256)
        data, source = _activations(n_train + n_eval)
        train, held = torch.from_numpy(data[:n_train]), torch.from_numpy(data[n_train:])
        d = train.shape[1]
        width = d * EXPANSION
        lr = official_lr(width)
        torch.manual_seed(0)
        ours = BatchTopKSAE(SAEConfig(d_in=d, expansion_factor=EXPANSION, k=K, threshold_start_step=steps // 10, dead_tokens_threshold=n_train))
        theirs, TrainStepInput = _saelens_sae(d, width)
        g = torch.Generator().manual_seed(0)
        order = [torch.randint(0, n_train, (batch,), generator=g) for _ in range(steps + 20)]
        with torch.no_grad():
            ours.b_dec.copy_(geometric_median(train[order[0]]))
            if theirs is not None:
                theirs.b_dec.copy_(ours.b_dec)
        opt_ours = torch.optim.Adam(ours.parameters(), lr=lr, betas=(0.9, 0.999))
        since = {"ours": torch.zeros(width, dtype=torch.long), "theirs": torch.zeros(width, dtype=torch.long)}
        state = {"ours": 0, "theirs": 0}

        def step_ours() -> None:
            i = state["ours"]
            x = train[order[i % len(order)]]
            out = ours.training_forward(x, since["ours"] >= n_train)
            opt_ours.zero_grad(set_to_none=True)
            out.loss.backward()
            ours.remove_parallel_decoder_grad()
            torch.nn.utils.clip_grad_norm_(ours.parameters(), 1.0)
            opt_ours.step()
            ours.normalize_decoder()
            if i > ours.config.threshold_start_step:
                ours.update_threshold(out.z.detach())
            with torch.no_grad():
                since["ours"] += len(x)
                since["ours"][(out.z > 0).any(0)] = 0
            state["ours"] += 1

        calls = {"reprolab BatchTopKSAE": step_ours}
        if theirs is not None:
            opt_theirs = torch.optim.Adam(theirs.parameters(), lr=lr, betas=(0.9, 0.999))

            def step_theirs() -> None:
                i = state["theirs"]
                x = train[order[i % len(order)]]
                out = theirs.training_forward_pass(TrainStepInput(sae_in=x, coefficients={}, dead_neuron_mask=since["theirs"] >= n_train, n_training_steps=i, is_logging_step=False))
                opt_theirs.zero_grad(set_to_none=True)
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
                opt_theirs.step()
                with torch.no_grad():
                    since["theirs"] += len(x)
                    since["theirs"][(out.feature_acts > 0).any(0)] = 0
                state["theirs"] += 1

            calls = {"SAELens BatchTopKTrainingSAE": step_theirs, **calls}
        times = interleaved_timings(calls, repeats=steps, warmup=0)
        base_name = next(iter(calls))
        rows = bench_rows(times, base_name, f"train step, batch {batch}")

        def fvu(x_hat: torch.Tensor) -> float:
            return float((held - x_hat).pow(2).sum() / (held - held.mean(0)).pow(2).sum())

        extra: dict = {"activations": source, "n_train": n_train, "n_eval": n_eval, "steps": steps, "lr": lr}
        with torch.no_grad():
            z = ours.encode_batch_topk(held)
            extra["reprolab"] = {"fvu_equal_l0": fvu(ours.decode(z)), "l0": float((z > 0).float().sum(1).mean()), "dead_fraction_eval": float(((z > 0).sum(0) == 0).float().mean()),
                                 "fvu_inference_threshold": fvu(ours(held)), "l0_inference_threshold": float((ours.encode(held) > 0).float().sum(1).mean())}
            if theirs is not None:
                feats, _ = theirs.encode_with_hidden_pre(held)  # BatchTopK over the whole held-out set: L0 = K
                extra["saelens"] = {"fvu_equal_l0": fvu(theirs.decode(feats)), "l0": float((feats > 0).float().sum(1).mean()), "dead_fraction_eval": float(((feats > 0).sum(0) == 0).float().mean())}
                extra["fvu_ratio_reprolab_over_saelens"] = extra["reprolab"]["fvu_equal_l0"] / max(extra["saelens"]["fvu_equal_l0"], 1e-12)
        extra["saelens_installed"] = theirs is not None
        extra["step_time_ratio_reprolab_over_saelens"] = rows[-1].ratio if theirs is not None else None
        return BenchResult(bench=self.name, baseline=f"{base_name} (train step)", rows=rows,
                           config={"width": width, "k": K, "batch": batch, "steps": steps, "d_in": d}, extra=extra)

