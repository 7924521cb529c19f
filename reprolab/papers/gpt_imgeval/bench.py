"""Benchmark ``gpt_imgeval``: the GenEval-style harness against a CLIPScore-style alignment check, side by side.

What a user falls back to without a detector harness is a global image-text alignment score
(CLIPScore, Hessel et al. 2021: ``w * max(cos(image, text), 0)``, w = 2.5) with a cut-off. No CLIP
weights are offline, so the peer is **a tiny ``transformers.CLIPModel`` trained here on shapes
captions** (contrastive loss on (render, prompt) pairs, cached under ``runs/gpt_imgeval/bench/``);
its cut-off is the one that maximises agreement on a calibration half of the images (the peer's
best case), and both methods are scored on the other half.

Both judge the same images: renders of GenEval-style prompts on the shapes vocabulary, half exact
and half with a planted error of the prompt's kind, whose exact verdict is known
(:func:`.prompts.exact_verdict`). Reported: per-image agreement with the exact verdict (per tag
too) and images per second (interleaved timings of one batch each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...imageeval import DetectorConfig, MaskedCropColour, ShapesDetector
from ...runtime import interleaved_timings, load_checkpoint, save_checkpoint, track
from ...study import Benchmark, BenchResult, bench_rows, register_bench
from .geneval import TAGS, evaluate_image
from .prompts import SIZES_USED, exact_verdict, make_prompt, make_prompts, render_prompt

CLIP_MEAN = torch.tensor((0.48145466, 0.4578275, 0.40821073))[:, None, None]
CLIP_STD = torch.tensor((0.26862954, 0.26130258, 0.27577711))[:, None, None]


class TinyClipScorer:
    """A small ``CLIPModel`` trained contrastively on shapes (render, caption) pairs; CLIPScore = 2.5 max(cos, 0)."""

    def __init__(self, model: Any, tokenizer: Any):
        self.model, self.tok = model.eval(), tokenizer

    @staticmethod
    def _config(vocab: int, max_len: int, image_size: int):
        from transformers import CLIPConfig

        return CLIPConfig(text_config=dict(vocab_size=vocab + 1, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                           max_position_embeddings=max_len + 1, bos_token_id=vocab, eos_token_id=vocab, pad_token_id=0),
                          vision_config=dict(image_size=image_size, patch_size=4, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                             num_attention_heads=4), projection_dim=64)

    def ids(self, texts: list[str]) -> torch.Tensor:
        """Caption ids with an end-of-text id (= vocabulary size) after the last word, then padding."""
        x = self.tok.encode(texts)
        eos = len(self.tok)
        out = torch.zeros(len(texts), x.shape[1] + 1, dtype=torch.long)
        for i, row in enumerate(x):
            n = int((row != 0).sum())
            out[i, :n] = row[:n]
            out[i, n] = eos
        return out

    @staticmethod
    def pixels(images_u8: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(images_u8)).permute(0, 3, 1, 2).float() / 255.0
        return (x - CLIP_MEAN) / CLIP_STD

    @classmethod
    def train(cls, n_pairs: int = 4000, steps: int = 400, batch: int = 64, image_size: int = 32, seed: int = 0,
              checkpoint: str | Path | None = None) -> TinyClipScorer:
        from transformers import CLIPModel

        from ...nn.text_diffusion import CaptionTokenizer

        rng = np.random.default_rng(seed)
        images, caps = [], []
        for _ in range(n_pairs):
            m = make_prompt(TAGS[int(rng.integers(len(TAGS)))], rng)
            images.append(render_prompt(m, rng, image_size)[0])
            caps.append(m["prompt"])
        tok = CaptionTokenizer.from_texts(caps + [p["prompt"] for p in make_prompts(per_tag=50, seed=seed + 1)], max_len=12)
        torch.manual_seed(seed)
        model = CLIPModel(cls._config(len(tok), tok.max_len, image_size))
        scorer = cls(model, tok)
        state = load_checkpoint(checkpoint) if checkpoint is not None else None
        if state is not None and state.get("words") == list(tok.words) and state.get("steps") == steps:
            model.load_state_dict(state["model"])
            return cls(model, tok)
        x, ids = cls.pixels(np.stack(images)), scorer.ids(caps)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        g = torch.Generator().manual_seed(seed)
        model.train()
        for step in track(range(steps), "training the tiny CLIP on shapes captions", total=steps):
            idx = torch.randint(0, len(x), (batch,), generator=g)
            loss = model(input_ids=ids[idx], pixel_values=x[idx], return_loss=True).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        if checkpoint is not None:
            save_checkpoint(checkpoint, {"model": model.state_dict(), "words": list(tok.words), "steps": steps})
        return cls(model, tok)

    @torch.no_grad()
    def scores(self, images_u8: np.ndarray, prompts: list[str]) -> np.ndarray:
        """CLIPScore = 2.5 max(cos(image, prompt), 0) per (image, prompt) pair."""
        img = self.model.get_image_features(pixel_values=self.pixels(images_u8)).pooler_output
        txt = self.model.get_text_features(input_ids=self.ids(prompts)).pooler_output
        cos = torch.nn.functional.cosine_similarity(img, txt, dim=-1)
        return (2.5 * cos.clamp(min=0)).numpy()


def best_cutoff(scores: np.ndarray, truth: np.ndarray) -> float:
    """The cut-off (score > c means "correct") with the highest agreement on a calibration set."""
    cands = np.r_[-np.inf, np.sort(scores)]
    agree = [np.mean((scores > c) == truth) for c in cands]
    return float(cands[int(np.argmax(agree))])


@register_bench
class GPTImgEvalBench(Benchmark):
    name = "gpt_imgeval"
    description = "GenEval-style harness vs a CLIPScore-style cut-off (tiny CLIP trained on shapes captions): agreement with exact truth and images/s"

    def run(self, quick: bool) -> BenchResult:
        per_tag = 20 if quick else 50
        root = Path("runs", "gpt_imgeval", "bench")
        det = ShapesDetector.train(DetectorConfig(image_size=32, scenes=1200 if quick else 2000, steps=500 if quick else 800, sizes=SIZES_USED),
                                   checkpoint=root / f"detector-{'quick' if quick else 'full'}.pt", eval_scenes=100)
        clip = TinyClipScorer.train(n_pairs=3000 if quick else 6000, steps=300 if quick else 800, checkpoint=root / f"clip-{'quick' if quick else 'full'}.pt")
        rng = np.random.default_rng(12345)
        prompts, images, truth = [], [], []
        for p in make_prompts(per_tag=per_tag, seed=777):
            for err in (False, True):
                img, objs = render_prompt(p, rng, 32, error=err)
                prompts.append(p)
                images.append(img)
                truth.append(exact_verdict(objs, p, 32))
        images_a, truth_a = np.stack(images), np.asarray(truth)
        colour = MaskedCropColour()
        harness = np.asarray([evaluate_image(im, p, det, colour)["correct"] for im, p in zip(images, prompts)])
        texts = [p["prompt"] for p in prompts]
        s = np.concatenate([clip.scores(images_a[i:i + 256], texts[i:i + 256]) for i in range(0, len(texts), 256)])
        calib = np.arange(len(s)) % 4 < 2  # pairs (exact, error) of a prompt stay together: prompts alternate halves
        cut = best_cutoff(s[calib], truth_a[calib])
        clip_verdict = s > cut
        test = ~calib
        tags = np.asarray([p["tag"] for p in prompts])
        agreement = {"harness": float(np.mean(harness[test] == truth_a[test])), "clipscore": float(np.mean(clip_verdict[test] == truth_a[test]))}
        per_tag_agree = {m: {t: float(np.mean((v == truth_a)[test & (tags == t)])) for t in TAGS} for m, v in (("harness", harness), ("clipscore", clip_verdict))}
        batch = 32
        bi, bp = images[:batch], prompts[:batch]
        times = interleaved_timings({
            "harness": lambda: [evaluate_image(im, p, det, colour) for im, p in zip(bi, bp)],
            "clipscore": lambda: clip.scores(images_a[:batch], texts[:batch]) > cut,
        }, repeats=5 if quick else 10, warmup=1)
        per_image = {k: [t / batch for t in v] for k, v in times.items()}
        notes = {m: f"agreement with exact truth {agreement[m]:.3f} on {int(test.sum())} held-out renders; {batch / np.median(times[m]):.0f} images/s"
                 for m in times}
        return BenchResult(bench=self.name, baseline="clipscore", rows=bench_rows(per_image, "clipscore", "s per image", notes),
                           config={"prompts_per_tag": per_tag, "images": len(images), "image_size": 32, "clip": "tiny CLIPModel trained on shapes captions (2+2 layers, width 64)",
                                   "cutoff": "best agreement on a calibration half", "quick": quick},
                           extra={"agreement": agreement, "agreement_per_tag": per_tag_agree, "clip_cutoff": cut,
                                  "agreement_ratio": agreement["harness"] / max(agreement["clipscore"], 1e-9), "detector_held_out": det.held_out})
