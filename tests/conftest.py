from __future__ import annotations

import os

os.environ.setdefault("REPROLAB_PROGRESS", "0")  # no live progress bars inside pytest's capture
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # `make test` runs pytest-xdist workers side by side: share the cores
    _workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ["REPROLAB_THREADS"] = str(max(1, int(os.environ.get("REPROLAB_THREADS", os.cpu_count() or 1)) // _workers))

import dataclasses

import pytest
import torch

from reprolab import stats
from reprolab import study as study_mod
from reprolab.study import Claim, Judgement, Scale, Study

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(int(os.environ["REPROLAB_THREADS"]))


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    value: float


def make_toy_study(name: str = "toy", behaviour=None):
    """A tiny registered study: x = three draws around config.value; the claim holds when their
    mean is above 1 with its t interval (smoke 0.5: contradicted; quick 2: holds)."""

    class Toy(Study):
        paper = study_mod.Paper("A toy paper", arxiv="0000.00000")
        claims = [
            Claim("big", "x is larger than one", paper="x = 2", rule="mean x over 3 draws > 1 (t interval)",
                  judge=lambda m: Judgement.from_headline(
                      f"x = {sum(m['x']) / len(m['x']):g}", stats.compare_to_value(m["x"], 1.0, unit="draws"))),
        ]
        scales = {Scale.SMOKE: ToyConfig(0.5), Scale.QUICK: ToyConfig(2.0), Scale.FULL: ToyConfig(3.0)}
        calls = 0

        def run(self, config, run):
            type(self).calls += 1
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots()
            ax.plot([0, 1], [0, config.value])
            run.save_figure(fig, "line", "a line")
            if behaviour is not None:
                behaviour(config, run)
            return {"x": [config.value - 0.1, config.value, config.value + 0.1]}

    Toy.name = name
    return Toy


@pytest.fixture
def toy_study():
    """Register a toy study for the duration of one test."""
    study_mod.discover()
    cls = study_mod.register(make_toy_study())
    yield cls
    study_mod._STUDIES.pop(cls.name, None)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """``smoke_run(name) -> (result, out)``: each study's smoke run done once per test session and shared.

    Several tests need a study's smoke result (the every-study check in test_studies_smoke.py, each
    paper's rejudge round trip); running it once keeps `make test` within its 10 minutes. Under
    pytest-xdist the workers share it too: the first to ask runs it under a file lock in the
    session's common temporary folder, the others load its result.json. ``out`` is the run's output
    root (the result lies in ``out / name / "smoke"``). Treat it as read-only: a test that reruns or
    changes files there copies it to its own ``tmp_path`` first.
    """
    import fcntl

    from reprolab.study import Result, run_study

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by every worker of this session
    done: dict[str, tuple] = {}

    def run(name: str):
        if name not in done:
            out = root / f"smoke-{name}"
            out.mkdir(parents=True, exist_ok=True)
            with open(root / f"smoke-{name}.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                saved = out / name / "smoke" / "result.json"
                if saved.exists():
                    result = Result.load(saved)
                else:
                    result, reused = run_study(name, "smoke", out=out)
                    assert not reused, f"{name}: a fresh output folder gave a reused result"
            done[name] = (result, out)
        return done[name]

    return run
