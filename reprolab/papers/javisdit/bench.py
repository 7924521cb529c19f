"""Benchmark ``javisdit``: our tiny JavisDiT with the HiST-Sypo prior against a tiny diffusers LTX-2 and against itself
without prior, trained at equal steps by :func:`reprolab.nn.flow.train_flow` on the same clips, side by side in one run.

Arms (all text-conditioned by the same token states, CFG 4.0 on 20 Euler steps, the same noise per prompt):
- ``javisdit (prior)``: :class:`reprolab.nn.avdit.TinyAVDiT` + the ST-prior slot, fed by a HiST-Sypo estimator
  trained first on the same clips (its steps are not counted: a separate stage, as in the paper);
- ``javisdit (no prior)``: the same DiT without the prior slot;
- ``LTX-2``: diffusers' ``LTX2VideoTransformer3DModel`` (a joint video+audio DiT with AV cross-attention and no
  prior) at a tiny config of similar size, through :func:`reprolab.nn.avdit.diffusers_denoiser` (video patches
  4x4 = 48 values in 48-wide tokens, audio one 64-band mel frame per token in 64-wide tokens: no patch is wider
  than its token, see :class:`reprolab.nn.avdit.BottleneckWarning`).

All arms see the study's data space: each modality standardised on the training clips
(:class:`reprolab.nn.flow.Standardiser`), generated clips decoded back before scoring.

Reported per arm: onset error (s, lower is better; the study's detector), JavisScore on encoders trained on
held-out true pairs, and seconds per training step (forward + backward + AdamW step on the same batch,
measured round-robin). The baseline of the time ratios is LTX-2. ``quick``: 40 steps, 4 prompts (a code-path
check); otherwise 300 steps, 12 prompts.
"""

from __future__ import annotations

import numpy as np
import torch

from ...data.av_events import AVEventsConfig, generate_clips
from ...nn.avdit import TinyAVDiT, diffusers_denoiser
from ...nn.flow import FlowBatch, FlowTrainConfig, Standardiser, timed_step, train_flow
from ...runtime import interleaved_timings
from ...study import Benchmark, BenchResult, bench_rows, register_bench
from .metrics import javis_score
from .prior import HiSTSypoConfig, attach_st_prior
from .study import MEL_HOP, N_MELS, JavisConfig, JavisDiTStudy, _batch_indices, _tensors, dit_config, onset_error, text_states, wave_of
from .sync_encoders import SyncEncoderConfig, train_sync_encoders

BASELINE = "LTX-2"


def _ltx2(text_dim: int):
    import diffusers

    torch.manual_seed(0)
    t = diffusers.LTX2VideoTransformer3DModel(
        in_channels=3 * 16, out_channels=3 * 16, num_attention_heads=4, attention_head_dim=12, cross_attention_dim=48,
        audio_in_channels=N_MELS, audio_out_channels=N_MELS, audio_num_attention_heads=4, audio_attention_head_dim=16,
        audio_cross_attention_dim=64, audio_hop_length=MEL_HOP, audio_scale_factor=1, num_layers=3, caption_channels=text_dim)
    return diffusers_denoiser(t, text_dim=text_dim, patch=4, audio_patch_time=1, fps=4.0)


def compare(steps: int, n_prompts: int, text: str = "minilm", seed: int = 0, n_train: int = 256, n_heldout: int = 64) -> dict:
    """Train the three arms for ``steps`` each and score them on ``n_prompts`` test prompts."""
    ecfg = AVEventsConfig(frames=8, fps=4.0)  # the study's clips (its fallback from 16 frames)
    c = JavisConfig(n_train=n_train, n_heldout=n_heldout, n_test=n_prompts, steps_a=steps, steps_b=max(20, steps // 2), steps_c=0, seeds=1,
                    encoder_steps=max(20, steps), text=text, frames=8, fps=4.0)
    train, held, test = generate_clips(c.n_train, ecfg, seed=seed + 1), generate_clips(c.n_heldout, ecfg, seed=seed + 2), generate_clips(n_prompts, ecfg, seed=seed + 3)
    data = _tensors(train)
    scaler = Standardiser.fit(data)
    model_data = scaler.encode(data)
    states = text_states([x.caption for x in train + test], text)
    text_train, text_test = states[: len(train)], states[len(train):]
    study = JavisDiTStudy()
    fenc, aenc, _ = train_sync_encoders([study._round_trip(x) for x in held], SyncEncoderConfig(steps=c.encoder_steps, window=c.javis_window), seed=seed)

    pcfg = HiSTSypoConfig(text_dim=text_train.shape[-1], d_model=c.prior_d_model, n_encoder=c.prior_layers, n_decoder=c.prior_layers, heads=4,
                          n_spatial=c.n_prior_tokens, n_temporal=c.n_prior_tokens, prior_dim=c.prior_dim)
    est = _train_estimator_no_ckpt(study, pcfg, train, data, text_train, c, seed)
    with torch.no_grad():
        prior_train, prior_test = est(text_train, sample=False).prior, est(text_test, sample=False).prior

    def dit(with_prior: bool) -> TinyAVDiT:
        torch.manual_seed(seed)
        m = TinyAVDiT(dit_config(c, text_train.shape[-1]))
        if with_prior:
            attach_st_prior(m, pcfg)
        return m

    arms = {"javisdit (prior)": dit(True), "javisdit (no prior)": dit(False), BASELINE: _ltx2(text_train.shape[-1])}

    def batch(step: int, arm: str) -> FlowBatch:
        i = _batch_indices(step, len(train), c.batch, seed)
        conds = {"text": text_train[i]}
        if arm == "javisdit (prior)":
            conds["prior"] = prior_train[i]
        return FlowBatch({"video": model_data["video"][i], "audio": model_data["audio"][i]}, conds)

    out: dict = {"arms": {}}
    for arm, model in arms.items():
        drop = {"text": 0.1, "prior": 0.1} if arm == "javisdit (prior)" else {"text": 0.1}
        tr = train_flow(model, lambda s, a=arm: batch(s, a), FlowTrainConfig(steps=steps, lr=c.lr_a, cfg_dropout=drop), seed=seed,
                        description=f"bench: {arm}")
        g = study._sample(model, text_test, prior_test if arm == "javisdit (prior)" else None, c, 0, scaler)
        video = g["video"].numpy()
        errs, js = [], []
        for v, a in zip(video, g["audio"]):
            errs.append(onset_error(v, a[0], c.fps)[0])
            js.append(javis_score(v, wave_of(a[0], 32000), fps=c.fps, sample_rate=16000, frame_encoder=fenc, audio_encoder=aenc,
                                  window=c.javis_window, overlap=c.javis_overlap))
        out["arms"][arm] = {"onset_error": errs, "javis": js, "params": sum(p.numel() for p in model.parameters()),
                            "final_loss": float(np.mean(tr.losses["mse"][-10:]))}

    # seconds per training step, round-robin on one batch
    opts = {arm: torch.optim.AdamW(m.parameters(), lr=1e-5) for arm, m in arms.items()}

    for m in arms.values():
        m.train()
    out["times"] = interleaved_timings({arm: timed_step(m, batch(0, arm), opts[arm]) for arm, m in arms.items()}, repeats=5, warmup=1)
    return out


def _train_estimator_no_ckpt(study: JavisDiTStudy, pcfg, train, data, text, c, seed):
    import tempfile
    from pathlib import Path

    class _Run:
        def __init__(self, path: Path):
            self.checkpoints, self.key, self.seed = path, "bench", seed

    with tempfile.TemporaryDirectory() as d:
        est, _ = study._train_estimator(pcfg, train, data, text, c, _Run(Path(d)))  # type: ignore[arg-type]
    return est


@register_bench
class JavisDiTBench(Benchmark):
    name = "javisdit"
    description = ("onset error, JavisScore and seconds per training step at equal steps: our tiny JavisDiT with the HiST-Sypo prior "
                   "vs without it vs a tiny diffusers LTX-2 (joint AV DiT, no prior)")

    def run(self, quick: bool) -> BenchResult:
        steps, prompts = (40, 4) if quick else (300, 12)
        res = compare(steps, prompts)
        notes = {arm: (f"onset error {1000 * np.mean(r['onset_error']):.0f} ms, JavisScore {np.mean(r['javis']):.3f}, "
                       f"{r['params'] / 1e6:.2f}M params, final loss {r['final_loss']:.3f}") for arm, r in res["arms"].items()}
        return BenchResult(bench=self.name, baseline=BASELINE, rows=bench_rows(res["times"], BASELINE, "s per training step", notes),
                           config={"steps": steps, "prompts": prompts, "batch": 16, "clips": "8 frames 16x16 at 4 fps + 2 s 16 kHz audio"},
                           extra={"arms": res["arms"]})


__all__ = ["JavisDiTBench", "compare"]
