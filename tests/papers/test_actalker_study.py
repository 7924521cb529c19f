"""The actalker study: each rule on controls that must not reproduce and planted effects that must; the study model's
gates, masks and dropped conditions; the measures on rendered faces; the smoke run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.errors import ConfigError, ShapeError
from reprolab.papers.actalker.faces import random_identity, region_masks, render_face
from reprolab.papers.actalker.measure import read_mouth_opening, region_errors
from reprolab.papers.actalker.model import TalkerConfig, TalkingDiT, token_masks
from reprolab.papers.actalker.study import SAMPLINGS, judge_conflict, judge_fusion, judge_gates, judge_single, judge_sync
from reprolab.study import Verdict

N, SEEDS = 24, 3
BASE = {"pcm": 0.020, "pcm_audio": 0.022, "pcm_motion": 0.060, "released": 0.030, "shuffled": 0.060, "pcm_ones": 0.035, "xattn": 0.035,
        "audio_only": 0.021, "pcm_guided": 0.05}


def _metrics(mouth: dict[str, float] | None = None, upper: dict[str, float] | None = None, in_sync: dict[str, float] | None = None,
             sync=(0.95, 0.95), seed: int = 0, noise: float = 0.002):
    rng = np.random.default_rng(seed)
    mouth = {**BASE, **(mouth or {})}
    upper = {**{k: 0.01 for k in SAMPLINGS}, "pcm_audio": 0.03, **(upper or {})}
    in_sync = {**{k: 0.9 for k in SAMPLINGS}, "pcm_motion": 0.1, **(in_sync or {})}
    clip = rng.normal(0, 0.003, N)  # per-clip difficulty shared by every arm
    out = {}
    for k in SAMPLINGS:
        out[k] = {"mouth": np.concatenate([np.clip(mouth[k] + clip + rng.normal(0, noise, N), 0, None) for _ in range(SEEDS)]).tolist(),
                  "upper": np.concatenate([np.clip(upper[k] + clip + rng.normal(0, 0.002, N), 0, None) for _ in range(SEEDS)]).tolist(),
                  "in_sync": np.concatenate([(rng.random(N) < in_sync[k]).astype(float) for _ in range(SEEDS)]).tolist()}
    return {"n_test": N, "seeds": SEEDS, "samplings": out, "leakage": {"pcm": 0.1, "pcm_ones": 0.6, "xattn": 0.5, "released": 0.4},
            "sync": {"true_in_sync": sync[0], "late_detected": sync[1]}}


def test_conflict_rule():
    assert judge_conflict(_metrics()).verdict == Verdict.REPRODUCED  # planted: all-ones masks 0.035 vs Mask-Drop 0.020
    assert judge_conflict(_metrics({"pcm_ones": 0.020})).verdict == Verdict.INCONCLUSIVE  # control: the same arm twice
    assert judge_conflict(_metrics({"pcm_ones": 0.010})).verdict == Verdict.NOT_REPRODUCED
    assert judge_conflict(_metrics({"shuffled": 0.020})).verdict == Verdict.NOT_TESTABLE  # another clip's audio does as well


def test_fusion_rule():
    assert judge_fusion(_metrics()).verdict == Verdict.REPRODUCED
    assert judge_fusion(_metrics({"xattn": 0.020})).verdict == Verdict.INCONCLUSIVE
    assert judge_fusion(_metrics({"xattn": 0.010})).verdict == Verdict.NOT_REPRODUCED
    assert judge_fusion(_metrics({"shuffled": 0.020})).verdict == Verdict.NOT_TESTABLE


def test_gates_rule():
    assert judge_gates(_metrics()).verdict == Verdict.REPRODUCED  # planted: no motion -> upper face 0.03 vs 0.01
    assert judge_gates(_metrics(upper={"pcm_audio": 0.01})).verdict == Verdict.INCONCLUSIVE  # control: the motion gate changes nothing
    assert judge_gates(_metrics(upper={"pcm_audio": 0.0, "pcm": 0.01})).verdict == Verdict.NOT_REPRODUCED


def test_single_signal_rule_is_within_15_percent():
    assert judge_single(_metrics()).verdict == Verdict.REPRODUCED  # 0.022 vs 0.021: within 15%
    assert judge_single(_metrics({"pcm_audio": 0.030, "audio_only": 0.020})).verdict == Verdict.NOT_REPRODUCED  # 50% worse
    assert judge_single(_metrics({"pcm_audio": 0.021, "audio_only": 0.020})).verdict == Verdict.REPRODUCED  # 5% worse
    edge = _metrics()
    ao = np.asarray(edge["samplings"]["audio_only"]["mouth"])
    wobble = 0.002 * (-1.0) ** np.arange(len(ao))  # zero-mean differences around the edge (N is even: each clip keeps its sign)
    edge["samplings"]["pcm_audio"]["mouth"] = (1.15 * ao + wobble).tolist()
    assert judge_single(edge).verdict == Verdict.INCONCLUSIVE  # 15% worse on average: on the edge


def test_sync_rule_and_its_judge_preconditions():
    assert judge_sync(_metrics()).verdict == Verdict.REPRODUCED
    assert judge_sync(_metrics(in_sync={"pcm_motion": 0.9})).verdict == Verdict.INCONCLUSIVE  # control: the gate changes nothing
    assert judge_sync(_metrics(sync=(0.5, 0.95))).verdict == Verdict.NOT_TESTABLE  # the judge misreads true clips
    assert judge_sync(_metrics(sync=(0.95, 0.2))).verdict == Verdict.NOT_TESTABLE  # a constant judge: reads everything in sync


# ----------------------------------------------------------------------------- the study model
def _conds(B=2, T=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    masks = [region_masks(random_identity(rng)) for _ in range(B)]
    return {"reference": torch.randn(B, 3, 32, 32, generator=g), "audio": torch.randn(B, T, 10, 24, generator=g),
            "motion": torch.randn(B, T, 5, generator=g), "gates": torch.ones(B, 2),
            "face": torch.as_tensor(np.stack([f for f, _ in masks])), "mouth": torch.as_tensor(np.stack([m for _, m in masks]))}


def _talker(fusion="pcm"):
    torch.manual_seed(0)
    return TalkingDiT(TalkerConfig(fusion=fusion, dim=64, depth=1, d_state=2, audio_dim=24))


def test_token_masks_cover_every_mouth_pixel_and_keep_the_mouth_inside_the_face():
    face = torch.zeros(1, 8, 8, dtype=torch.bool)
    face[0, 0:4, 0:4] = True
    face[0, 4, 0] = True  # a quarter of a 2x2 patch: not face
    mouth = torch.zeros(1, 8, 8, dtype=torch.bool)
    mouth[0, 5, 5] = True  # one pixel: its whole patch is mouth
    f, m = token_masks(face, mouth, 2)
    assert m[0].nonzero().flatten().tolist() == [2 * 4 + 2]
    assert sorted(f[0].nonzero().flatten().tolist()) == [0, 1, 4, 5, 10]
    with pytest.raises(ShapeError):
        token_masks(face, mouth[:, :4], 2)


def test_a_dropped_signal_is_a_closed_gate_and_a_closed_gate_ignores_its_signal():
    model = _talker().eval()
    c = _conds()
    x, t = torch.randn(2, 3, 3, 32, 32), torch.full((2,), 0.5)
    no = torch.zeros(2, dtype=torch.bool)
    dropped = model(x, t, c, {"audio": torch.ones(2, dtype=torch.bool), "motion": no, "reference": no})
    closed = model(x, t, {**c, "gates": torch.tensor([[0.0, 1.0]] * 2)})
    torch.testing.assert_close(dropped, closed)
    moved = model(x, t, {**c, "gates": torch.tensor([[0.0, 1.0]] * 2), "audio": c["audio"] * 5 + 1})
    torch.testing.assert_close(moved, closed)
    assert not torch.allclose(model(x, t, c), model(x, t, {**c, "audio": c["audio"] * 5 + 1}))  # an open gate listens


def test_released_masks_equal_the_no_mask_drop_layer_and_differ_from_the_papers_masks():
    pcm, ones = _talker("pcm").eval(), _talker("pcm_ones").eval()
    ones.load_state_dict(pcm.state_dict())
    c = _conds()
    x, t = torch.randn(2, 3, 3, 32, 32), torch.full((2,), 0.5)
    paper = pcm(x, t, c)
    pcm.released = True
    torch.testing.assert_close(pcm(x, t, c), ones(x, t, c))
    assert not torch.allclose(paper, ones(x, t, c))
    with pytest.raises(ConfigError):
        TalkerConfig(fusion="concat")
    with pytest.raises(ConfigError):
        pcm(x, t, {k: v for k, v in c.items() if k != "mouth"})
    with pytest.raises(ShapeError):
        pcm(x, t, {**c, "motion": c["motion"][:, :2]})


# ----------------------------------------------------------------------------- the measures
def test_the_mouth_reader_recovers_rendered_openings_and_region_errors_split_mouth_from_upper_face():
    ident = random_identity(np.random.default_rng(4))
    face, mouth = region_masks(ident)
    truth = np.array([0.0, 0.2, 0.45, 0.7, 1.0])
    frames = np.stack([render_face(ident, mouth=float(o), blink=0.5, brow=0.3) for o in truth])  # the upper face moves too
    np.testing.assert_allclose(read_mouth_opening(frames, ident, mouth), truth, atol=0.05)
    other = np.stack([render_face(ident, mouth=float(o), blink=0.5, brow=0.3) for o in truth[::-1]])
    m_err, u_err = region_errors(other, frames, face, mouth)
    assert m_err > 0.001 and u_err == 0.0  # only the mouth differs
    blink = np.stack([render_face(ident, mouth=float(o), blink=0.0, brow=0.3) for o in truth])
    m_err, u_err = region_errors(blink, frames, face, mouth)
    assert m_err == 0.0 and u_err > 0.005  # only the eyes differ: the mouth mask never holds an eye
    with pytest.raises(ShapeError):
        region_errors(frames[:2], frames, face, mouth)


def test_smoke_run_writes_every_claim_and_figure(smoke_run):
    result, out = smoke_run("actalker")
    assert [c.key for c in result.claims] == ["conflict", "fusion", "gates", "single", "sync"]
    assert {f.file.rsplit("/", 1)[-1].split(".")[0] for f in result.figures} >= {"faces", "mouth_over_time", "errors"}
    m = result.metrics
    assert set(m["samplings"]) == set(SAMPLINGS)
    assert all(len(v["mouth"]) == m["seeds"] * m["n_test"] for v in m["samplings"].values())


def test_the_bench_times_both_layers_per_grid():
    from reprolab.papers.actalker.bench import BASELINE, layer_timings

    times = layer_timings((4,), repeats=1, d_state=2)
    assert set(times) == {16} and set(times[16]) == {"PCM (Mask-Drop)", BASELINE}
    assert all(t > 0 for ts in times[16].values() for t in ts)


@pytest.mark.slow
def test_the_bench_scores_both_arms_on_the_same_clips():
    from reprolab.papers.actalker.bench import BASELINE, mouth_errors

    errs = mouth_errors(steps=1, n_train=3, n_test=2, features="mel", sample_steps=1, depth=1, d_state=2)
    assert set(errs) == {"PCM (Mask-Drop)", BASELINE}
    assert all(len(e["mouth"]) == 2 and all(np.isfinite(e["mouth"])) for e in errs.values())


@pytest.mark.slow
def test_arms_give_the_same_numbers_in_worker_processes_as_inline():
    # the study trains and samples each arm x seed in a one-thread worker process; the numbers must not depend on it
    from reprolab.papers.actalker import study as S
    from reprolab.runtime import process_map, torch_threads
    from reprolab.study import Scale

    c = S.ACTalkerStudy.scales[Scale.SMOKE]
    _, _, data, tdata = S.prepare_clips(c, 0, None)
    jobs = [(arm, c, data, tdata, 0, None) for arm in ("pcm", "xattn")]
    with torch_threads(1):
        inline = [S._arm_job(j) for j in jobs]
    with torch_threads(2):
        workers = process_map(S._arm_job, jobs, "arms")
    for a, b in zip(inline, workers):
        assert a["arm"] == b["arm"] and a["losses"] == pytest.approx(b["losses"], rel=1e-5)
        assert set(a["videos"]) == set(b["videos"])
        for name in a["videos"]:
            np.testing.assert_allclose(a["videos"][name], b["videos"][name], atol=1e-5)
