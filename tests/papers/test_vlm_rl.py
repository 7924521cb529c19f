"""MAYE's formulas, rewards and evaluation scheme against hand computations (issue 28, items 1-3)."""

from __future__ import annotations

import math

import pytest
import torch

from reprolab.errors import ConfigError, ShapeError
from reprolab.papers.vlm_rl import (
    OFFICIAL_PRESET,
    PAPER,
    MayeConfig,
    advantages,
    discounted_returns,
    epoch_table,
    has_reflection,
    judge,
    k3,
    last_boxed_sentence,
    masked_mean,
    pass_at_k,
    penalty_mask,
    ppo_loss,
    reflection_ratios,
    response_padding,
    rule_judge,
    scores,
    token_rewards,
    whiten,
)
from reprolab.papers.vlm_rl import rewards as R
from reprolab.papers.vlm_rl.evaluation import REFLECTION_WORDS, SETTINGS


# ----------------------------------------------------------------------------- formulas


def test_discounted_returns_by_hand():
    r = torch.tensor([[0.0, 0.0, 1.0], [0.5, 1.0, 0.0]])
    g = discounted_returns(r, 0.5)
    assert torch.allclose(g, torch.tensor([[0.25, 0.5, 1.0], [1.0, 1.0, 0.0]]))
    assert torch.allclose(discounted_returns(r, 1.0), torch.tensor([[1.0, 1.0, 1.0], [1.5, 1.0, 0.0]]))


def test_whiten_keeps_the_mean_and_uses_bessel():
    x = torch.tensor([[1.0, 2.0, 99.0], [3.0, 4.0, -7.0]])
    mask = torch.tensor([[True, True, False], [True, True, False]])
    mean, var = 2.5, 5.0 / 3.0  # over 1, 2, 3, 4 with n - 1 = 3
    w = whiten(x, mask)
    want = (torch.tensor([1.0, 2.0, 3.0, 4.0]) - mean) / math.sqrt(var + 1e-8) + mean
    assert torch.allclose(w[mask], want, atol=1e-5)
    assert torch.allclose(whiten(x, mask, shift_mean=False)[mask], want - mean, atol=1e-5)


def test_k3_by_hand_and_nonnegative():
    logp, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
    assert float(k3(logp, ref)) == pytest.approx(0.5 - math.log(0.5) - 1, abs=1e-6)
    a, b = torch.randn(100), torch.randn(100)
    assert (k3(a, b) >= -1e-7).all() and float(k3(a, a).abs().max()) == 0.0


def test_token_rewards_score_at_last_valid_token_and_kl_clamped():
    logp = torch.zeros(2, 4)
    ref = torch.tensor([[0.0, 20.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # exp(20) - 21: clamped to 10
    rew, kl = token_rewards(torch.tensor([1.0, -0.1]), logp, ref, 0.5, torch.tensor([2, 3]))
    assert float(kl[0, 1]) == 10.0
    assert torch.allclose(rew, torch.tensor([[0.0, -5.0, 1.0, 0.0], [0.0, 0.0, 0.0, -0.1]]))


def test_response_padding_after_first_eos():
    eos = 9
    resp = torch.tensor([[1, 2, eos, 3, eos], [1, 2, 3, 4, 5], [eos, 1, 1, 1, 1]])
    pad, has_stop, last = response_padding(resp, [eos])
    assert pad.tolist() == [[False, False, False, True, True], [False] * 5, [False, True, True, True, True]]
    assert has_stop.tolist() == [True, False, True] and last.tolist() == [2, 4, 0]


def test_clipped_loss_by_hand():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.5, 0.5]]))  # ratios 1.5, 0.5, 1.5, 0.5
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    valid = torch.ones(1, 4, dtype=torch.bool)
    loss, st = ppo_loss(logp, old, None, adv, valid, epsilon=0.2, beta_loss=0.0)
    # max(-A r, -A clip(r)): A=1,r=1.5 -> -1.2; A=1,r=.5 -> -0.5; A=-1,r=1.5 -> 1.5; A=-1,r=.5 -> 0.8
    assert float(loss) == pytest.approx((-1.2 - 0.5 + 1.5 + 0.8) / 4, abs=1e-6)
    assert st["clipfrac"] == pytest.approx(0.5)


def test_kl_loss_is_clamped_masked_mean_times_beta():
    logp = torch.zeros(1, 3)
    ref = torch.tensor([[math.log(2.0), 0.0, 50.0]])  # the third token is padding
    valid = torch.tensor([[True, True, False]])
    loss, st = ppo_loss(logp, logp.detach(), ref, torch.zeros(1, 3), valid, beta_loss=0.1)
    want = (2.0 - math.log(2.0) - 1) / 2
    assert st["kl_loss"] == pytest.approx(want, abs=1e-6) and float(loss) == pytest.approx(0.1 * want, abs=1e-6)


def test_padding_after_eos_never_contributes():
    torch.manual_seed(0)
    valid = torch.tensor([[True, True, True, False, False], [True, True, True, True, True]])
    rew = torch.zeros(2, 5)
    rew[0, 2], rew[1, 4] = 1.0, -0.1
    adv, _ = advantages(rew, 0.9, valid)
    assert (adv[~valid] == 0).all()
    rew2 = rew.clone()
    rew2[0, 3:] = 123.0  # garbage rewards at padding
    assert torch.equal(advantages(rew2, 0.9, valid)[0], adv)
    w = torch.randn(2, 5, requires_grad=True)
    old = w.detach().clone()
    garbage = old.clone()
    garbage[0, 3:] = 1e3
    g1 = torch.autograd.grad(ppo_loss(w, old, old, adv, valid, beta_loss=0.1)[0], w)[0]
    g2 = torch.autograd.grad(ppo_loss(w, garbage, garbage, adv, valid, beta_loss=0.1)[0], w)[0]
    assert torch.equal(g1, g2) and (g1[~valid] == 0).all()


def test_one_update_equals_reinforce_on_whitened_returns():
    """With pi_old = pi (one update per batch) the clipped loss's gradient is REINFORCE's: -mean_t A_t grad log pi."""
    torch.manual_seed(1)
    logits = torch.randn(3, 6, 11, requires_grad=True)
    acts = torch.randint(0, 11, (3, 6))
    logp = torch.log_softmax(logits, -1).gather(2, acts[..., None])[..., 0]
    valid = torch.rand(3, 6) > 0.2
    rew = torch.zeros(3, 6)
    rew[:, -1] = torch.tensor([1.0, 0.0, -0.1])
    adv, _ = advantages(rew, 1.0, valid)
    g_ppo = torch.autograd.grad(ppo_loss(logp, logp.detach(), None, adv, valid, beta_loss=0.0)[0], logits, retain_graph=True)[0]
    g_rf = torch.autograd.grad(-masked_mean(adv * logp, valid), logits)[0]
    assert torch.allclose(g_ppo, g_rf, atol=1e-6)


def test_config_defaults_paper_and_official_preset():
    assert (PAPER.ppo_batch_size, PAPER.gamma, PAPER.beta_loss, PAPER.beta_rew, PAPER.lr, PAPER.clip_grad_norm) == (4, 1.0, 0.001, 0.0, 5e-6, 1.0)
    assert (PAPER.train_vit, PAPER.train_connector, PAPER.train_llm) == (False, False, True)
    o = OFFICIAL_PRESET
    assert (o.lr, o.gamma, o.beta_loss, o.beta_rew, o.ppo_batch_size, o.clip_grad_norm, o.train_connector, o.betas, o.adam_eps) == (3e-6, 0.999, 0.01, 0.01, 128, None, True, (0.9, 0.95), 1e-5)
    assert not MayeConfig(beta_loss=0.0, beta_rew=0.0).uses_reference
    with pytest.raises(ConfigError, match="ppo_batch_size"):
        MayeConfig(batch_size=10, ppo_batch_size=4)
    with pytest.raises(ConfigError, match="train_llm"):
        MayeConfig(train_llm=False)


# ----------------------------------------------------------------------------- rewards


def test_last_boxed_sentence_and_judge_on_hand_written_responses():
    text = "First 3.5 apples. So the answer is \\boxed{7}. Hmm, or \\boxed{8} maybe. Done"
    assert last_boxed_sentence(text) == "Hmm, or \\boxed{8} maybe"
    assert judge(text, "8", use_math_verify=False) and not judge(text, "7", use_math_verify=False)
    assert judge("so \\boxed{ \\frac{1}{2} }", "0.5", use_math_verify=False)  # numerically equal
    assert judge("the angle is \\boxed{30^\\circ}.", "30", use_math_verify=False)  # leading integer
    assert not judge("no box here 8", "8", use_math_verify=False)
    assert not judge("\\boxed{}", "8", use_math_verify=False)
    assert rule_judge("the answer is \\boxed{ 3 } .", "\\boxed{3}")


def test_language_format_and_penalty_scores():
    texts = ["abcd", "ab中文", "<think>x</think> \\boxed{3}", "<think>a</think><think>b</think>"]
    assert R.language_rewards(texts).tolist() == pytest.approx([0.0, -0.1 * 2 / 4, 0.0, 0.0])
    assert R.format_rewards(texts).tolist() == [0.0, 0.0, 1.0, 0.0]
    has_stop = torch.tensor([True, True, False, True])
    last = torch.tensor([30, 30, 30, 17])
    assert penalty_mask(has_stop, last, True, 18).tolist() == [False, False, True, True]
    sc = scores(["\\boxed{3}", "中 \\boxed{3}", "\\boxed{3}", "\\boxed{3}"], ["3"] * 4, has_stop, last, judge_fn=lambda p, s: "3" in p)
    assert sc["accuracy"].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert sc["score"].tolist() == pytest.approx([1.0, 1.0 - 0.1 / 11, -0.1, -0.1])
    assert scores(["<think>x</think>\\boxed{3}"], ["3"], torch.tensor([True]), torch.tensor([20]), use_format=True)["score"].tolist() == [2.0]
    with pytest.raises(ShapeError):
        R.accuracy_rewards(["a"], ["a", "b"])


# ----------------------------------------------------------------------------- evaluation scheme


def test_reflection_words_and_five_ratios_on_a_hand_made_batch():
    assert len(REFLECTION_WORDS) == 15 and has_reflection("WAIT, let me") and not has_reflection("the answer is 3")
    texts = ["wait , check again", "plain", "let me verify", "plain", "plain", "rethink it"]
    correct = [True, True, False, False, True, True]
    # N=6, N_ref=3 (0, 2, 5), N+=4 (0, 1, 4, 5), N_ref+=2 (0, 5)
    r = reflection_ratios(texts, correct)
    assert r == pytest.approx({"reflection_ratio": 3 / 6, "reflection_ratio_in_correct": 2 / 4, "reflection_ratio_in_incorrect": 1 / 2,
                               "correct_ratio_in_reflection": 2 / 3, "correct_ratio_in_no_reflection": 2 / 3})
    assert reflection_ratios(["plain"], [False])["correct_ratio_in_reflection"] == 0.0  # empty denominator -> 0, as the official code


def test_settings_pass_at_k_and_epoch_table():
    assert [(s.k, s.temperature, s.top_p) for s in SETTINGS] == [(8, 1.0, 1.0), (1, 0.6, 1.0), (1, 0.01, 0.001)]
    assert pass_at_k([[False, True], [False, False]]).tolist() == [True, False]
    t = epoch_table([[0.2, 0.4, 0.3], [0.1, 0.1, 0.4]])
    assert t["mean"] == pytest.approx((0.3 + 0.2) / 2) and t["max"] == pytest.approx((0.4 + 0.4) / 2)
    with pytest.raises(ConfigError):
        epoch_table([[0.1, float("nan")]])
