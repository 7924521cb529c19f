from __future__ import annotations

import os

os.environ.setdefault("REPROLAB_PROGRESS", "0")  # no live progress bars inside pytest's capture
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import dataclasses

import pytest

from reprolab import stats
from reprolab import study as study_mod
from reprolab.study import Claim, Judgement, Scale, Study


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
