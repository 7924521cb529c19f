"""Benchmark ``fresca``: what FreSca costs per step next to plain CFG, and its FID next to the peers.

All in one process, variants interleaved (``runtime.interleaved_timings``):

1. the guidance combination alone on Stable-Diffusion-sized latents (2 x 4 x 64 x 64 halves):
   the CFG line, FreSca (box and disc), CFG + ``guidance_rescale`` 0.7 (diffusers'
   ``rescale_noise_cfg``), and diffusers' ``FrequencyDecoupledGuidance`` (if kornia is installed);
2. one whole DDIM step of the Fashion-MNIST UNet of the study (64 images, batched CFG call +
   combination + scheduler step) for each variant: the ratio the paper calls negligible;
3. FID (on our Fashion-MNIST classifier's features, not Inception) of the same model, same
   noise and labels, at w = 4: CFG, FreSca h = 1.25 / 1.5, CFG + rescale 0.7, FDG with scales
   [1.5 w, w] (high, low: FDG's own "more guidance on high frequencies", the FreSca h = 1.5 analogue).
   diffusers' FDG returns kornia's padded size for sides that are not powers of two (28 -> 32); we crop
   its output back to 28 x 28 (recorded in the result's ``extra``).

The model is the study's trained one when ``runs/fresca/{full,quick}/checkpoints`` holds it
(run ``reprolab run fresca`` first); otherwise a quick-scale model is trained here (minutes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...data import fashion_mnist as fmnist
from ...errors import StudySkipped
from ...runtime import interleaved_timings
from ...study import Benchmark, BenchResult, bench_rows, Scale, register_bench
from .fresca import FreScaConfig, fresca_guidance


def _find(pattern: str) -> Path | None:
    for scale in ("full", "quick"):
        hits = sorted(Path("runs", "fresca", scale, "checkpoints").glob(pattern), key=lambda p: p.stat().st_mtime)  # newest last
        if hits:
            return hits[-1]
    return None


def _models():
    """(unet, classifier, where they came from)."""
    from ...nn.diffusion import load_model
    from ...runtime import load_checkpoint
    from .study import FashionClassifier, FreScaStudy, train_classifier

    unet_path = _find("*-gen-unet.pt")
    # the classifier of the same run (same RunDir.key prefix): an older version's may have another feature width
    clf_path = unet_path.with_name(unet_path.name.replace("-gen-unet.pt", "-classifier.pt")) if unet_path is not None else None
    if clf_path is not None and not clf_path.exists():
        clf_path = None
    if unet_path is not None and clf_path is not None:
        unet, _, _ = load_model(unet_path)
        clf = FashionClassifier()
        clf.load_state_dict(load_checkpoint(clf_path)["model"])
        return unet, clf.eval(), str(unet_path.parent)
    # no study run yet: train the quick-scale generator and classifier here
    import tempfile

    from ...study import RunDir

    cfg = FreScaStudy.scales[Scale.QUICK]
    with tempfile.TemporaryDirectory() as d:
        run = RunDir(Path(d), Scale.QUICK, 0)
        study = FreScaStudy()
        key = "bench"
        study._train_generator(cfg, run, key)
        unet, _, _ = load_model(run.checkpoints / f"{key}-gen-unet.pt")
    train = fmnist.load_fashion_mnist("train")
    clf = train_classifier(train.tensors(cfg.image_size), train.label_tensor(), cfg.clf_steps, seed=7)
    return unet, clf, "trained in the benchmark (quick scale)"


@register_bench
class FreScaBench(Benchmark):
    name = "fresca"
    description = "per-step cost of FreSca vs plain CFG (ratio), and FID vs guidance_rescale and FrequencyDecoupledGuidance on the same model"

    def run(self, quick: bool) -> BenchResult:
        from diffusers.guiders.guider_utils import rescale_noise_cfg

        from ...nn.diffusion import ddim_sample
        from .integrations import FreScaDenoiser
        from .study import _features_logits, _gen_cutoff, frechet_distance

        try:
            from diffusers.guiders import FrequencyDecoupledGuidance

            FrequencyDecoupledGuidance(guidance_scales=[2.0, 1.0])
        except Exception:  # noqa: BLE001 - missing guiders API or kornia
            FrequencyDecoupledGuidance = None
        if not fmnist.is_available():
            raise StudySkipped(f"Fashion-MNIST is not installed ({fmnist.INSTALL_COMMAND})")
        w = 4.0
        size = 28
        cut = _gen_cutoff(size)

        def combos(w: float, cut: int):
            c = {
                "CFG": lambda u, c: u + w * (c - u),
                "FreSca h=1.5 (box)": lambda u, c: fresca_guidance(u, c, w, FreScaConfig(scale_high=1.5, freq_cutoff=cut)),
                "FreSca h=1.5 (disc)": lambda u, c: fresca_guidance(u, c, w, FreScaConfig(scale_high=1.5, freq_cutoff=cut, mask="disc")),
                "CFG + rescale 0.7": lambda u, c: rescale_noise_cfg(u + w * (c - u), c, 0.7),
            }
            if FrequencyDecoupledGuidance is not None:
                fdg = FrequencyDecoupledGuidance(guidance_scales=[1.5 * w, w])
                # kornia reflect-pads a non-power-of-two input at the bottom/right and diffusers' FDG returns
                # that padded size (28 -> 32); we crop back to the input's size
                c["FDG [1.5w, w]"] = lambda u, cc: fdg.forward(cc, u).pred[..., : u.shape[-2], : u.shape[-1]]
            return c

        # 1. the combination alone, SD-sized latents
        g = torch.Generator().manual_seed(0)
        u, c = torch.randn(2, 4, 64, 64, generator=g), torch.randn(2, 4, 64, 64, generator=g)
        ops = {name: (lambda f=f: f(u, c)) for name, f in combos(7.5, 20).items()}
        op_times = interleaved_timings(ops, repeats=200 if quick else 1000, warmup=5)

        # 2. a whole DDIM step of the study's UNet, batch 64
        unet, clf, source = _models()
        labels = torch.arange(64) % 10
        fresca_model = FreScaDenoiser(unet, FreScaConfig(scale_high=1.5, freq_cutoff=cut))
        steps = 4

        def sampler(model, guidance=None):
            return lambda: ddim_sample(model, (64, 1, size, size), class_labels=labels, guidance_scale=w, null_class=10, num_inference_steps=steps, generator=torch.Generator().manual_seed(1), guidance=guidance)

        step_calls = {"CFG": sampler(unet), "FreSca h=1.5 (wrapper)": sampler(fresca_model)}
        cmb = combos(w, cut)
        step_calls["CFG + rescale 0.7"] = sampler(unet, cmb["CFG + rescale 0.7"])
        if "FDG [1.5w, w]" in cmb:
            step_calls["FDG [1.5w, w]"] = sampler(unet, cmb["FDG [1.5w, w]"])
        step_times = interleaved_timings(step_calls, repeats=5 if quick else 20, warmup=1)
        step_times = {k: [t / steps for t in v] for k, v in step_times.items()}

        # 3. FID of the same model per guidance method
        n = 300 if quick else 1000
        sample_steps = 10 if quick else 20
        test = fmnist.load_fashion_mnist("test").subset(2000 if quick else 5000, seed=1)
        ref, _ = _features_logits(clf, test.tensors(size))
        lab = torch.arange(n) % 10
        fid_arms = {
            "CFG": (unet, None),
            "FreSca h=1.25": (FreScaDenoiser(unet, FreScaConfig(scale_high=1.25, freq_cutoff=cut)), None),
            "FreSca h=1.5": (fresca_model, None),
            "CFG + rescale 0.7": (unet, cmb["CFG + rescale 0.7"]),
        }
        if "FDG [1.5w, w]" in cmb:
            fid_arms["FDG [1.5w, w]"] = (unet, cmb["FDG [1.5w, w]"])
        fids, accs = {}, {}
        for name, (model, guidance) in fid_arms.items():
            x = ddim_sample(model, (n, 1, size, size), class_labels=lab, guidance_scale=w, null_class=10, num_inference_steps=sample_steps, generator=torch.Generator().manual_seed(2), guidance=guidance, clip=1.0)
            feats, logits = _features_logits(clf, x)
            fids[name] = round(frechet_distance(feats, ref), 3)
            accs[name] = round(float((logits.argmax(1) == lab.numpy()).mean()), 4)

        step_notes = {
            name: f"FID {fids[key]}, class acc {accs[key]}"
            for name in step_times
            if (key := name.replace(" (wrapper)", "")) in fids
        }
        rows = bench_rows(op_times, "CFG", "guidance op, 2x4x64x64") + bench_rows(step_times, "CFG", "DDIM step, 64 images", step_notes)
        step_ratio = next(r.ratio for r in rows if r.name.startswith("FreSca h=1.5 (wrapper) (DDIM"))
        return BenchResult(
            bench=self.name,
            baseline="CFG (each group's first row)",
            rows=rows,
            config={"w": w, "freq_cutoff_28px": cut, "ddim_steps_timed": steps, "fid_samples": n, "fid_sampling_steps": sample_steps, "model": source, "unet_parameters": sum(p.numel() for p in unet.parameters())},
            extra={
                "fresca_step_ratio": round(step_ratio, 4),
                "target": "FreSca DDIM step <= 1.05x CFG's (the paper: negligible)",
                "target_met": step_ratio <= 1.05,
                "fid_classifier_features": fids,
                "class_accuracy": accs,
                "fdg_installed": FrequencyDecoupledGuidance is not None,
                "fdg_note": "diffusers 0.42 FrequencyDecoupledGuidance returns a 32x32 prediction for 28x28 inputs (kornia pads to a power of two); cropped back",
                "fid_note": "FID on the 128-d features of our Fashion-MNIST classifier, not Inception; same noise and labels for every method",
                "fid_best": min(fids, key=fids.get),
                "fid_spread": float(np.ptp(list(fids.values()))),
            },
        )
