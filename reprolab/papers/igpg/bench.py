"""Benchmark ``igpg``: seconds to a usable model, by generation vs by training from random init, side by side.

For each held-out task and architecture of the study's run (``full`` if its checkpoints exist, else
``quick``, run first when missing):

- ``generate``: the instruction (EfficientNet-Lite0 class means of ``per_class`` images per class, MiniLM
  architecture embedding, cached after the first call as a user's session would), sampling, decoding and
  loading the weights: the seconds to a model at epoch 0;
- ``train``: training the same architecture from PyTorch's default init with the zoo's recipe (Adam,
  lr 1e-2, batch 64), evaluating every 5 steps, until it reaches the generated model's test accuracy
  (capped at 400 steps; a capped run is noted), timed after the generation (it needs its accuracy):
  the seconds a user spends to get as far without IGPG.

Epoch-0 accuracy of the generated model, of retrieval (the zoo members of the nearest training task by
data-set embedding) and of random init go in ``extra``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ...study import Benchmark, BenchResult, BenchRow, RunDir, Scale, register_bench
from ...runtime import library_versions, machine_info, median_iqr

CAP = 400


@register_bench
class IGPGBench(Benchmark):
    name = "igpg"
    description = "seconds to a usable model: IGPG generation (instruction embedding + sampling + decoding) vs training from random init to the same accuracy"

    def run(self, quick: bool) -> BenchResult:
        from ...runtime import load_checkpoint
        from ...study import run_study
        from .igpg import IGPG
        from .instructions import EfficientNetImageEncoder, dataset_embedding
        from .study import IGPGStudy, _text_embedder
        from .weights import load_into
        from .zoo import accuracy, build, load_sources, make_tasks, task_data, train

        scale = Scale.FULL
        cfg = IGPGStudy.config_for(scale)
        rd = RunDir(Path("runs") / "igpg" / scale.value, scale, 0, config=cfg, study="igpg", version=IGPGStudy.version)
        if not (rd.checkpoints / f"igpg-{rd.key}.pt").exists():
            scale = Scale.QUICK
            cfg = IGPGStudy.config_for(scale)
            rd = RunDir(Path("runs") / "igpg" / scale.value, scale, 0, config=cfg, study="igpg", version=IGPGStudy.version)
            if not (rd.checkpoints / f"igpg-{rd.key}.pt").exists():
                run_study("igpg", scale)
        text = _text_embedder(cfg.text_embedder)
        gen = IGPG.load(rd.checkpoints / f"igpg-{rd.key}.pt", text_embedder=text)
        members = load_checkpoint(rd.checkpoints / f"zoo-{rd.key}.pt")["members"]
        class_means = load_checkpoint(rd.checkpoints / f"embeddings-{rd.key}.pt")["class_means"]
        pools = load_sources(tuple(dict(cfg.tasks)), shapes_n=cfg.shapes_n, seed=0)
        tasks = make_tasks(dict(cfg.tasks), seed=0)
        held = set(np.random.default_rng(0).choice(len(tasks), size=cfg.held_out, replace=False).tolist())
        test_tasks = [t for i, t in enumerate(tasks) if i in held][: (2 if quick else len(held))]
        train_tasks = [t for i, t in enumerate(tasks) if i not in held]
        enc = EfficientNetImageEncoder()
        times: dict[str, list[float]] = {"generate": [], "train": []}
        accs: dict[str, list[float]] = {"generated": [], "retrieval": [], "random": [], "trained_to_match": []}
        capped = 0
        for j, t in enumerate(test_tasks):
            d = task_data(t, pools, cfg.n_train, cfg.n_test, seed=0)
            for arch in cfg.archs:
                t0 = time.perf_counter()
                inst = dataset_embedding(d.x_train, d.y_train, 4, enc, per_class=cfg.per_class)
                net = gen.generate_model(inst, build(arch))
                times["generate"].append(time.perf_counter() - t0)
                acc_gen = accuracy(net, d.x_test, d.y_test)
                # then train from random init until it matches the generated model (timed on its own)
                t0 = time.perf_counter()
                rnd = build(arch, init_seed=70_000 + j)
                acc_rand = accuracy(rnd, d.x_test, d.y_test)
                log = train(rnd, d, CAP, lr=cfg.zoo_lr, seed=j, eval_every=5, stop_at=acc_gen)
                times["train"].append(time.perf_counter() - t0)
                capped += int(log.accuracy[-1] < acc_gen)
                near = max(train_tasks, key=lambda s: float(torch.nn.functional.cosine_similarity(
                    torch.stack([class_means[t.source][c] for c in t.classes]).flatten(),
                    torch.stack([class_means[s.source][c] for c in s.classes]).flatten(), 0)))
                ret = [m for m in members if m.task == near and m.arch == arch]
                accs["generated"].append(acc_gen)
                accs["random"].append(acc_rand)
                accs["trained_to_match"].append(log.accuracy[-1])
                accs["retrieval"].append(float(np.mean([accuracy(load_into(build(arch), m.state), d.x_test, d.y_test) for m in ret])))
        gm, gi = median_iqr(times["generate"])
        tm, ti = median_iqr(times["train"])
        rows = [BenchRow("train from random init to the generated accuracy (s per model)", tm, ti, 1.0,
                         f"{capped} of {len(times['train'])} runs hit the {CAP}-step cap"),
                BenchRow("IGPG generate: instruction + sampling + decoding (s per model)", gm, gi, gm / tm if tm > 0 else float("inf"),
                         f"epoch-0 accuracy {100 * np.mean(accs['generated']):.1f}%")]
        extra = {k: float(np.mean(v)) for k, v in accs.items()}
        extra["per_model"] = {k: [float(x) for x in v] for k, v in {**times, **accs}.items()}
        extra["scale_of_generator"] = scale.value
        return BenchResult(bench=self.name, baseline="train from random init (s per model)", rows=rows,
                           config={"held_out_tasks": [t.name for t in test_tasks], "archs": list(cfg.archs), "cap_steps": CAP,
                                   "generator": scale.value},
                           extra=extra, versions=library_versions(), machine=machine_info())
