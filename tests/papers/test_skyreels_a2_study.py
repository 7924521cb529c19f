"""Each rule of the skyreels_a2 study on controls that must not reproduce and planted effects that must; the arms'
conditioning; the judges' helpers on true clips; the smoke run."""

from __future__ import annotations

import numpy as np
import torch

from reprolab.papers.skyreels_a2.elements import ElementsConfig, generate_element_clips
from reprolab.papers.skyreels_a2.study import (SLOTS, A2StudyConfig, PixelA2Denoiser, clip_tensors, consistency, direction_hits,
                                               judge_background, judge_joint, judge_vs_vace, make_transformer, semantic_tokens, text_states)
from reprolab.study import Verdict

N, SEEDS = 24, 3


def _metrics(element: dict[str, float], background: float = 0.9, spread: float = 0.05, presence: float = 0.95, bg_acc: float = 0.95,
             seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.normal(0, spread, N)  # per-prompt difficulty shared by the arms
    arms = {}
    for arm, mean in element.items():
        vals = np.concatenate([np.clip(mean + base + rng.normal(0, 0.02, N), 0, 1) for _ in range(SEEDS)])
        bg = np.concatenate([np.clip(background + rng.normal(0, 0.02, N), 0, 1) for _ in range(SEEDS)])
        arms[arm] = {"element": vals.tolist(), "background": bg.tolist()}
    return {"n_test": N, "seeds": SEEDS, "arms": arms,
            "classifier": {"presence_top2_recall": presence, "background_accuracy": bg_acc}}


def _arms(a2=0.7, spatial=0.6, semantic=0.5, vace=0.6, shuffled=0.2):
    return {"a2": a2, "spatial": spatial, "semantic": semantic, "vace": vace, "shuffled": shuffled}


# ----------------------------------------------------------------------------- (a) joint
def test_joint_planted_gain_reproduces_and_ties_or_losses_do_not():
    assert judge_joint(_metrics(_arms(a2=0.7, spatial=0.6))).verdict == Verdict.REPRODUCED
    assert judge_joint(_metrics(_arms(a2=0.6, spatial=0.6))).verdict == Verdict.INCONCLUSIVE  # control: identical to the best path
    assert judge_joint(_metrics(_arms(a2=0.5, spatial=0.6))).verdict == Verdict.NOT_REPRODUCED
    # the better single path is the one to beat, whichever it is
    assert judge_joint(_metrics(_arms(a2=0.7, spatial=0.3, semantic=0.7))).verdict != Verdict.REPRODUCED


def test_joint_needs_a_model_that_uses_its_references_and_classifiers_that_read_true_frames():
    assert judge_joint(_metrics(_arms(a2=0.7, shuffled=0.7))).verdict == Verdict.NOT_TESTABLE  # shuffled references do as well
    assert judge_joint(_metrics(_arms(), presence=0.5)).verdict == Verdict.NOT_TESTABLE
    assert judge_joint(_metrics(_arms(), bg_acc=0.5)).verdict == Verdict.NOT_TESTABLE


# ----------------------------------------------------------------------------- (b) vs VACE
def test_vs_vace_non_inferiority():
    assert judge_vs_vace(_metrics(_arms(a2=0.6, vace=0.6))).verdict == Verdict.REPRODUCED  # a tie is inside the margin
    assert judge_vs_vace(_metrics(_arms(a2=0.5, vace=0.6))).verdict == Verdict.NOT_REPRODUCED
    assert judge_vs_vace(_metrics(_arms(a2=0.6, vace=0.6, shuffled=0.6))).verdict == Verdict.NOT_TESTABLE


def test_vs_vace_noisy_arms_are_inconclusive():
    rng_vals = _metrics(_arms(a2=0.6, vace=0.6))
    rng = np.random.default_rng(1)
    for arm in ("a2", "vace"):  # independent per-prompt noise of 0.3: the interval straddles the margin
        rng_vals["arms"][arm]["element"] = np.clip(0.6 + rng.normal(0, 0.3, N * SEEDS), 0, 1).tolist()
    assert judge_vs_vace(rng_vals).verdict == Verdict.INCONCLUSIVE


# ----------------------------------------------------------------------------- (c) background
def test_background_weak_spot_planted_and_control():
    assert judge_background(_metrics(_arms(a2=0.8), background=0.3)).verdict == Verdict.REPRODUCED
    assert judge_background(_metrics(_arms(a2=0.3), background=0.95)).verdict == Verdict.NOT_REPRODUCED
    assert judge_background(_metrics(_arms(a2=0.8), background=0.3, bg_acc=0.4)).verdict == Verdict.NOT_TESTABLE


# ----------------------------------------------------------------------------- the arms and the helpers
def test_arms_condition_the_transformer_as_described():
    c = A2StudyConfig(n_train=2, n_test=2, steps=1, seeds=1, classifier_steps=1, dim_head=8, heads=2, layers=1, patch=8, frames=4)
    clips = generate_element_clips(2, ElementsConfig(frames=4, caption="roles"), seed=0)
    d = clip_tensors(clips)
    assert d["slots"].shape == (2, 3, SLOTS, 32, 32) and d["cond"].shape == (2, 4, SLOTS + 4, 32, 32)
    assert d["cond"][:, 0, :SLOTS].eq(1).all() and d["cond"][:, 0, SLOTS:].eq(0).all() and d["cond"][:, 1:, SLOTS:].eq(0).all()
    sem = semantic_tokens(clips, "pixels")
    assert sem.shape == (2, 3 * 16, 192)
    conds = {"text": text_states([x.caption for x in clips], 32), "cond": d["cond"], "image": sem, "refs": d["slots"]}
    x = {"slots": torch.randn(2, 3, SLOTS, 32, 32), "video": torch.randn(2, 3, 4, 32, 32)}
    t = torch.tensor([0.5, 0.5])
    keep = {"text": torch.zeros(2, dtype=torch.bool)}
    torch.manual_seed(0)
    wan = make_transformer(c, 192, seed=0)
    for p in wan.parameters():
        p.data.normal_(0, 0.2)
    outs = {}
    for arm in ("a2", "spatial", "semantic", "vace"):
        m = PixelA2Denoiser(arm, wan, sem.shape[1]).eval()
        with torch.no_grad():
            outs[arm] = m(x, t, conds, keep)["video"]
            if arm == "vace":  # the noisy slots are replaced by the clean references
                x2 = {**x, "slots": torch.randn_like(x["slots"])}
                assert torch.equal(m(x2, t, conds, keep)["video"], outs[arm])
            if arm in ("spatial", "vace"):  # no image tokens
                assert torch.equal(m(x, t, {**conds, "image": torch.randn_like(sem)}, keep)["video"], outs[arm])
            if arm in ("semantic", "vace"):  # no channel condition
                assert torch.equal(m(x, t, {**conds, "cond": torch.randn_like(d["cond"])}, keep)["video"], outs[arm])
            if arm == "a2":  # both paths matter
                assert not torch.equal(m(x, t, {**conds, "image": torch.randn_like(sem)}, keep)["video"], outs[arm])
                assert not torch.equal(m(x, t, {**conds, "cond": torch.randn_like(d["cond"])}, keep)["video"], outs[arm])
                dropped = m(x, t, conds, {"text": torch.ones(2, dtype=torch.bool)})["video"]
                zeroed = m(x, t, {**conds, "text": torch.zeros_like(conds["text"])}, keep)["video"]
                assert torch.equal(dropped, zeroed)  # a dropped caption is the zero (null) text
    assert len({float(v.sum()) for v in outs.values()}) == 4


class _Oracle(torch.nn.Module):
    """A 'classifier' that reads the truth of the clip it was built for (to test the consistency bookkeeping)."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def forward(self, x):
        return self.scores


def test_consistency_counts_identities_in_the_top_two_and_backgrounds():
    clips = generate_element_clips(2, ElementsConfig(frames=4, caption="roles"), seed=1)
    video = torch.as_tensor(np.stack([x.video for x in clips]))
    from reprolab.papers.skyreels_a2.elements import BACKGROUNDS

    pres = torch.zeros(8, 16)
    back = torch.zeros(8, len(BACKGROUNDS))
    for k, c in enumerate(clips):
        pres[4 * k: 4 * k + 4, c.identities] = 1.0
        back[4 * k: 4 * k + 4, list(BACKGROUNDS).index(c.background)] = 1.0
    back[0] = 0
    back[0, (list(BACKGROUNDS).index(clips[0].background) + 1) % len(BACKGROUNDS)] = 1.0  # one frame's background wrong
    el, bg = consistency(video, clips, _Oracle(pres), _Oracle(back))
    assert el.tolist() == [1.0, 1.0] and bg.tolist() == [0.75, 1.0]
    pres2 = pres.clone()
    pres2[:4] = 0
    pres2[:4, [i for i in range(16) if i not in clips[0].identities][:2]] = 1.0  # the wrong two identities for clip 0
    el2, _ = consistency(video, clips, _Oracle(pres2), _Oracle(back))
    assert el2.tolist() == [0.0, 1.0]


def test_direction_hits_read_true_clips_right_and_reversed_clips_wrong():
    clips = generate_element_clips(6, ElementsConfig(caption="roles"), seed=2)
    hits = [h for x in clips for h in direction_hits(x.video, x)]
    back = [h for x in clips for h in direction_hits(x.video[::-1], x)]
    assert len(hits) >= 6 and np.mean(hits) == 1.0 and np.mean(back) == 0.0


def test_smoke_run(smoke_run):
    result, out = smoke_run("skyreels_a2")
    assert result.status == "ok"
    assert {c.key for c in result.claims} == {"joint", "vs_vace", "background"}
    assert {f.file for f in result.figures} == {"figures/samples.png", "figures/consistency.png", "figures/tracks.png"}
    assert set(result.metrics["arms"]) == {"a2", "spatial", "semantic", "vace", "shuffled"}


def test_bench_code_path_trains_and_times_both_arms():
    from reprolab.papers.skyreels_a2.bench import BASELINE, compare

    res = compare(steps=2, n_prompts=2, n_train=6, semantic="pixels", classifier_steps=2, dim_head=8, heads=2, layers=1, patch=8, frames=4,
                  sample_steps=2)
    assert set(res["arms"]) == {"A2", BASELINE}
    assert all(len(r["element"]) == 2 and len(res["times"][a]) == 5 for a, r in res["arms"].items())


def test_presence_detector_is_location_free_and_slots_are_learned_except_by_vace():
    from reprolab.papers.skyreels_a2.study import PresenceDetector, slot_weights

    torch.manual_seed(0)
    det = PresenceDetector(16).eval()
    clip = generate_element_clips(1, ElementsConfig(frames=4, caption="roles"), seed=3)[0]
    ref = torch.as_tensor(clip.references[0])[None]  # one element alone on white (a uniform surround)
    with torch.no_grad():
        a, b = det(ref), det(torch.roll(ref, shifts=(2, -2), dims=(2, 3)))  # moved by the pooling stride
        blank = det(torch.ones_like(ref))
    assert torch.allclose(a, b, atol=1e-5) and not torch.allclose(a, blank, atol=1e-3)
    assert slot_weights("a2") == slot_weights("spatial") == slot_weights("semantic") == {"slots": 1.0}
    assert slot_weights("vace") == {"slots": 0.0}
