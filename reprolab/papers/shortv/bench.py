"""Benchmark ``shortv``: generation wall time and FLOPs with ShortV, FastV and both, side by side.

One process, variants interleaved (``runtime.interleaved_timings``), same model and inputs:

1. the study's trained tiny Llava (``runs/shortv/{full,quick}/checkpoints``; trained here at quick
   scale when no study run exists), ShortV layers chosen by LC on a seeded calibration draw (N = L//2);
2. a LLaVA-1.5-shaped untrained Llava: 576 visual tokens and 64 text tokens per prompt (the paper's
   geometry), a 512-wide 8-layer (quick) / 1024-wide 16-layer (full) Llama language model, eager
   attention; ShortV layers are the upper 19/32 of the stack (LC on random weights means nothing:
   this model is for cost only, the layer choice does not change the cost).

Per model and variant (unmodified, ShortV, FastV K=2 R=50%, ShortV + FastV): seconds of the prompt pass
(first token: where ShortV acts) and of ``generate`` with 8 new tokens, as ratios to the unmodified
model; FLOPs counted by ``torch.utils.flop_counter`` and by the analytic count (``extra``).
Timings on a shared 2-core machine are noisy; read the ratios, not the seconds.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...runtime import interleaved_timings
from ...study import Benchmark, BenchResult, RunDir, Scale, bench_rows, register_bench
from .shortv import FastVConfig, apply_shortv, generation_flops, layer_contribution, measured_flops, prefill_flops, remove_shortv

NEW_TOKENS = 8


def _trained():
    """(model, processor, inputs, source) of the study's model; trained here if no run exists."""
    from ...data.vqa_shapes import make_vqa
    from .study import ShortVStudy, _key, trained_model

    for scale in (Scale.FULL, Scale.QUICK):
        cfg = ShortVStudy.scales[scale]
        folder = Path("runs", "shortv", scale.value, "checkpoints")
        if (folder / f"{_key(cfg, 0, ShortVStudy.version)}-mllm.pt").exists():
            model, proc, _ = trained_model(cfg, RunDir(folder.parent, scale, 0), ShortVStudy.version)
            source = f"runs/shortv/{scale.value} checkpoint"
            break
    else:
        import tempfile

        cfg = ShortVStudy.scales[Scale.QUICK]
        with tempfile.TemporaryDirectory() as d:
            model, proc, _ = trained_model(cfg, RunDir(Path(d), Scale.QUICK, 0), ShortVStudy.version)
        source = "trained in the benchmark (quick scale)"
    pool = make_vqa(200, cfg.vqa, seed=1000)
    samples = [{"image": pool.images[i], "text": pool.questions[i]} for i in range(len(pool))]
    lc = layer_contribution(model, proc, samples, n=cfg.calib, seed=0)
    test = make_vqa(16, cfg.vqa, seed=50_000)
    inputs = proc(images=list(test.images[:16]), text=[test.questions[0]] * 16)  # one question: no padding
    return model, inputs, lc.lowest(cfg.model.layers // 2), source


def _llava_shaped(quick: bool):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    hidden, layers = (512, 8) if quick else (1024, 16)
    vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4, image_size=96, patch_size=4, projection_dim=64)
    text = LlamaConfig(vocab_size=1000, hidden_size=hidden, intermediate_size=int(hidden * 11008 / 4096), num_hidden_layers=layers, num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64, max_position_embeddings=1024, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_id=3, image_seq_length=576, vision_feature_select_strategy="default", vision_feature_layer=-1)
    for c in (cfg, cfg.text_config, cfg.vision_config):
        c._attn_implementation = "eager"
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(cfg).eval()
    model.generation_config.pad_token_id = 0
    g = torch.Generator().manual_seed(0)
    ids = torch.cat([torch.randint(10, 1000, (1, 8), generator=g), torch.full((1, 576), 3), torch.randint(10, 1000, (1, 56), generator=g)], 1)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": torch.randn(1, 3, 96, 96, generator=g)}
    frozen = list(range(layers - round(layers * 19 / 32), layers))
    return model, inputs, frozen


@register_bench
class ShortVBench(Benchmark):
    name = "shortv"
    description = "prompt-pass and generate wall time and FLOPs with ShortV, FastV and both vs the unmodified model (ratios), tiny trained and LLaVA-1.5-shaped models"

    def run(self, quick: bool) -> BenchResult:
        fastv = FastVConfig()
        rows, extra, config = [], {}, {"new_tokens": NEW_TOKENS, "fastv": {"k": fastv.k, "ratio": fastv.ratio}}
        tiny, tiny_in, tiny_layers, source = _trained()
        big, big_in, big_layers = _llava_shaped(quick)
        config["tiny_model"] = source
        config["llava_shaped"] = {"hidden": big.config.text_config.hidden_size, "layers": big.config.text_config.num_hidden_layers, "visual_tokens": 576, "text_tokens": 64}
        for label, model, inputs, layers, repeats in (("tiny trained", tiny, tiny_in, tiny_layers, 20 if quick else 50), ("LLaVA-1.5-shaped", big, big_in, big_layers, 3 if quick else 5)):
            variants = {"unmodified": ([], None), "ShortV": (layers, None), "FastV": ([], fastv), "ShortV + FastV": (layers, fastv)}
            tc = model.config.text_config
            ids = inputs["input_ids"]
            n_vis = int((ids[0] == model.config.image_token_id).sum())
            n_text = ids.shape[1] - n_vis
            B = ids.shape[0]

            def call(layers, fv, what):
                def fn():
                    apply_shortv(model, layers, fastv=fv)
                    try:
                        with torch.no_grad():
                            if what == "prefill":
                                return model(**inputs, logits_to_keep=1)
                            return model.generate(**inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
                    finally:
                        remove_shortv(model)

                return fn

            for what in ("prefill", "generate"):
                calls = {name: call(ly, fv, what) for name, (ly, fv) in variants.items()}
                flops = {name: measured_flops(fn) for name, fn in calls.items()}
                if what == "prefill":
                    analytic = {name: prefill_flops(tc, n_text, n_vis, ly, fv, batch=B) for name, (ly, fv) in variants.items()}
                else:
                    analytic = {name: generation_flops(tc, n_text, n_vis, NEW_TOKENS, ly, fv, batch=B) for name, (ly, fv) in variants.items()}
                times = interleaved_timings(calls, repeats=repeats, warmup=1)
                notes = {name: f"FLOPs ratio {flops[name] / flops['unmodified']:.3f} (decoder analytic {analytic[name] / analytic['unmodified']:.3f})" for name in variants}
                rows += bench_rows(times, "unmodified", f"{label}, {what}", notes)
                extra[f"{label} / {what}"] = {
                    "measured_flops": flops,
                    "analytic_decoder_flops": analytic,
                    "measured_saving_equals_analytic": {n: flops["unmodified"] - flops[n] == analytic["unmodified"] - analytic[n] for n in variants},
                    "layers_frozen": layers,
                    "batch": B,
                    "visual_tokens": n_vis,
                    "text_tokens": n_text,
                }
        extra["note"] = "wall times on a shared 2-core CPU are noisy; ShortV acts on the prompt pass (visual tokens), decoding steps are text and unchanged"
        return BenchResult(bench=self.name, baseline="unmodified (each group's first row)", rows=rows, config=config, extra=extra)
