"""GenPRM: reward formula, Maj@N, first-error protocol, code run in the sandbox, RPE labels, data labels."""

from __future__ import annotations

import math
import random
import re
from fractions import Fraction

import pytest

from reprolab.data.math_steps import KINDS, corrupt, make_problems, sample_candidates, solve
from reprolab.errors import ConfigError
from reprolab.llm.fake import ScriptedLLM
from reprolab.papers.genprm.genprm import (
    OUTPUT_START, VERIFY_START, GenerativePRM, GenPRMConfig, hard_labels, majority_vote, processbench_f1, rpe_labels,
)

EQ = re.compile(r"(-?\d+(?:/\d+)?) ([-+*/]) (-?\d+(?:/\d+)?) = (-?\d+(?:/\d+)?)")


def _planted_judge(prompt: str) -> dict[str, float]:
    """A judge that checks the equation of the step under review exactly (a perfect verifier)."""
    seg = prompt.split("Answer: <analyze>\nLet's analyze")[0]  # the conversation up to the review being written
    eqs = EQ.findall(seg.rsplit("Question: ", 1)[-1])  # the step under review is the last user turn
    if not eqs:
        return {"Yes": math.log(0.5), "No": math.log(0.5)}
    a, op, b, r = eqs[-1]
    val = {"+": Fraction(a) + Fraction(b), "-": Fraction(a) - Fraction(b), "*": Fraction(a) * Fraction(b),
           "/": Fraction(a) / Fraction(b)}[op]
    ok = val == Fraction(r)
    return {"Yes": math.log(0.9 if ok else 0.1), "No": math.log(0.1 if ok else 0.9)}


def test_reward_is_p_yes_over_p_yes_plus_p_no():
    llm = ScriptedLLM(lambda p, s: "fine", choices=lambda p: {"Yes": -0.2, "No": -1.8})
    prm = GenerativePRM(llm, GenPRMConfig(verify=False, execute=False))
    s = prm.score_steps("Q?", ["1 + 1 = 2"])
    py, pn = math.exp(-0.2), math.exp(-1.8)
    assert s.rewards[0] == pytest.approx(py / (py + pn)) and s.reward_source == "logprobs"


def test_maj_at_n_averages_the_paths_rewards():
    # path i of the step gets P(Yes) = 0.9, 0.3, 0.6, ... by the seed the analysis was sampled with
    table = {}

    def respond(prompt, s):
        table[prompt] = s.seed
        return f"analysis {s.seed}"

    def choices(prompt):
        seed = int(re.search(r"analysis (\d+)", prompt).group(1))
        p = [0.9, 0.3, 0.6, 0.8][seed % 4]
        return {"Yes": math.log(p), "No": math.log(1 - p)}

    prm = GenerativePRM(ScriptedLLM(respond, choices=choices), GenPRMConfig(verify=False, execute=False))
    assert prm.score_steps("Q", ["x"], n=1).rewards[0] == pytest.approx(0.9)
    assert prm.score_steps("Q", ["x"], n=4).rewards[0] == pytest.approx((0.9 + 0.3 + 0.6 + 0.8) / 4)


def test_first_error_protocol_with_a_perfect_judge_recovers_the_labels():
    llm = ScriptedLLM(lambda p, s: "checked", choices=_planted_judge)
    prm = GenerativePRM(llm, GenPRMConfig(verify=False, execute=False))
    for p in make_problems(3, seed=4):
        assert prm.first_error(p.question, p.steps) == -1
        bad = corrupt(p, 2, "arithmetic")  # (operation/carry errors keep the equation true: they need the analysis)
        s = prm.score_steps(p.question, bad.steps)
        assert s.first_error == 2 == bad.first_error
        assert s.judged_steps == 3 and math.isnan(s.rewards[3])  # steps after the first error are not judged


def test_code_runs_in_the_sandbox_and_its_output_is_fed_back(tmp_path):
    marker = tmp_path / "escaped.txt"
    codes = {"P1": "print(12 * 7)", "P2": f"open({str(marker)!r}, 'w').write('x')"}

    def respond(prompt, s):
        if prompt.endswith(VERIFY_START):
            return codes["P2" if "Paragraph 2" in prompt.rsplit("<analyze>", 1)[-1] else "P1"]
        return "the step multiplies"

    seen = []

    def choices(prompt):
        seen.append(prompt)
        return {"Yes": -0.1, "No": -2.5}

    prm = GenerativePRM(ScriptedLLM(respond, choices=choices), GenPRMConfig())
    s = prm.score_steps("Q", ["12 * 7 = 84", "so nothing is written"])
    first, second = s.paths[0][0], s.paths[1][0]
    assert first.code == "print(12 * 7)" and first.execution == "84" and first.execution_status == "ok"
    assert "[Code Output]\n\n```\n84\n```" in seen[0]
    # writing outside its temp dir failed: refused by Landlock (PermissionError) or the path is absent from the
    # box's private filesystem view (FileNotFoundError), depending on which sandbox layers this machine has
    refused = ("PermissionError", "FileNotFoundError")
    assert second.execution_status == "error" and any(e in second.execution for e in refused)
    assert any(e in seen[1].split("[Code Output]")[-1] for e in refused)
    assert not marker.exists()


def test_analysis_only_arm_writes_no_code():
    llm = ScriptedLLM(lambda p, s: "ok", choices=lambda p: {"Yes": -0.1, "No": -3.0})
    prm = GenerativePRM(llm, GenPRMConfig(verify=False, execute=False))
    prm.score_steps("Q", ["a", "b"])
    assert not any("<verify>" in p for p in llm.prompts)


def test_no_logprobs_falls_back_to_votes_and_counts_malformed():
    llm = ScriptedLLM(lambda p, s: "Yes}$ fine" if p.endswith(OUTPUT_START) else "hmm")
    s = GenerativePRM(llm, GenPRMConfig(verify=False, execute=False)).score_steps("Q", ["x"])
    assert s.rewards == [1.0] and s.reward_source == "vote" and s.malformed == 0
    bad = ScriptedLLM(lambda p, s: "maybe}" if p.endswith(OUTPUT_START) else "hmm")
    s = GenerativePRM(bad, GenPRMConfig(verify=False, execute=False)).score_steps("Q", ["x"], n=2)
    assert s.malformed == 2 and math.isnan(s.rewards[0])  # never scored as 0
    assert s.paths[0][0].malformed


def test_an_endpoint_top_k_without_yes_or_no_is_malformed_not_a_tie():
    """An HTTP endpoint's top-20 that holds neither token: both would get the floor and p = 0.5 would
    judge the step right; it is counted malformed instead (the base rule of reprolab.llm)."""
    from reprolab.llm.base import LLM

    class TopKOnly(ScriptedLLM):  # an endpoint: only next_token_logprobs, the base class's choice rule
        choice_logprobs = LLM.choice_logprobs

    llm = TopKOnly(lambda p, s: "ok", choices=lambda p: {"Maybe": -0.3, "The": -1.2})
    s = GenerativePRM(llm, GenPRMConfig(verify=False, execute=False)).score_steps("Q", ["x"], n=2)
    assert s.malformed == 2 and math.isnan(s.rewards[0]) and "neither Yes nor No" in s.paths[0][0].malformed
    ok = TopKOnly(lambda p, s: "ok", choices=lambda p: {"Yes": -0.3, "The": -1.2})
    s = GenerativePRM(ok, GenPRMConfig(verify=False, execute=False)).score_steps("Q", ["x"])
    assert s.malformed == 0 and s.rewards[0] == pytest.approx(1 / (1 + math.exp(-1.2 + 0.3)))  # No floored at -1.2


def test_best_of_n_and_majority_vote():
    llm = ScriptedLLM(lambda p, s: "checked", choices=_planted_judge)
    prm = GenerativePRM(llm, GenPRMConfig(verify=False, execute=False))
    p = make_problems(1, seed=2)[0]
    sols = [corrupt(p, 1, "arithmetic").steps, solve(p).steps, corrupt(p, 3, "arithmetic").steps]
    best, scores = prm.best_of_n(p.question, sols)
    assert best == 1 and scores[1] > max(scores[0], scores[2])
    assert majority_vote(["7", "5", "5", "7"]) == 0 and majority_vote(["1", "2", "2"]) == 1


def test_processbench_f1_by_hand():
    gold = [-1, -1, 2, 0, 1]
    pred = [-1, 1, 2, 0, 3]
    f1, ae, ac = processbench_f1(pred, gold)
    assert (ae, ac) == (pytest.approx(2 / 3), pytest.approx(1 / 2))
    assert f1 == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    with pytest.raises(ConfigError):
        processbench_f1([1], [1, 2])


def test_rpe_labels_by_hand():
    # Pass@1 of the problem 0.95; MC after each step 0.9 (P = .947), 0.85 (.944), 0.5 (.588: wrong), 0.45 (.9)
    assert rpe_labels([0.9, 0.85, 0.5, 0.45], pass_at_1=0.95) == [True, True, False, True]
    # the first step is judged against the problem's Pass@1 (Eq. 10), not against itself
    assert rpe_labels([0.7, 0.7], pass_at_1=0.7) == [True, True]
    assert rpe_labels([0.7, 0.7], pass_at_1=1.0) == [False, True]  # 0.7 / 1.0 < 0.8
    assert rpe_labels([0.0, 0.0], pass_at_1=0.0) == [False, False]  # dead state: no progress
    assert hard_labels([0.9, 0.5, 0.0]) == [True, True, False]  # Math-Shepherd's hard label keeps the 0.5 step
    with pytest.raises(ConfigError):
        rpe_labels([1.2], pass_at_1=0.5)
    with pytest.raises(ConfigError):
        rpe_labels([0.5], pass_at_1=1.5)


def test_rpe_on_a_toy_policy_matches_labels_from_the_papers_definition():
    """A policy whose step t is right with probability q_t; a wrong step loses the answer. The labels
    are computed here from Eq. 5/10 by hand (P_t = value after the step / value before it; the bare
    problem's value is Pass@1 = prod q), never by calling rpe_labels; the function, fed rollout
    estimates, must agree."""
    q = [0.95, 0.6, 0.97, 0.9]
    rng = random.Random(0)
    # exact values: before any step the problem is worth prod(q); after a right step t, prod(q[t+1:])
    pass1 = math.prod(q)
    after = [math.prod(q[t + 1:]) for t in range(len(q))]
    # by hand: P_1 = after[0] / pass1 = 1 / q_0 ... P_t = after[t] / after[t-1] = 1 / q_t: every right step is
    # progress >= 0.8 (P >= 1); a step that is wrong makes the value 0: P = 0 < 0.8
    by_hand_right = [True, True, True, True]

    def rollouts(prefix_len: int, n: int) -> float:
        return sum(all(rng.random() < q[j] for j in range(prefix_len, len(q))) for _ in range(n)) / n

    pass1_est = rollouts(0, 4000)
    est = [rollouts(t + 1, 4000) for t in range(len(q))]
    assert abs(pass1_est - pass1) < 0.03
    assert rpe_labels(est, pass_at_1=pass1_est) == by_hand_right
    # a wrong step 2 (index 1): its value and every later one is 0; by hand P = [1/q0, 0, 0 (0/0), 0]
    wrong = [after[0], 0.0, 0.0, 0.0]
    assert rpe_labels(wrong, pass_at_1=pass1) == [True, False, False, False]
    # the v1 reading (P_1 = MC of the first step itself) labels a correct first step of a hard problem wrong:
    hard = [0.5, 0.5]  # Pass@1 0.4: the first step made progress (0.5 / 0.4 > 0.8)
    assert rpe_labels(hard, pass_at_1=0.4)[0] and not (hard[0] >= 0.8)


def test_critique_refine_rewrites_from_the_first_wrong_step():
    p = make_problems(1, seed=5)[0]
    bad = corrupt(p, 1, "arithmetic")
    good = solve(p)
    judge = ScriptedLLM(lambda pr, s: "the sum is wrong", choices=_planted_judge)
    policy = ScriptedLLM(lambda pr, s: " " + good.steps[1] + "\n" + "\n".join(f"Step {i + 1}: {st}" for i, st in enumerate(good.steps[2:], 2)))
    prm = GenerativePRM(judge, GenPRMConfig(verify=False, execute=False))
    new, scores = prm.critique_refine(policy, p.question, bad.steps)
    assert scores.first_error == 1 and new == good.steps
    assert "error in step 2" in policy.prompts[0] and "the sum is wrong" in policy.prompts[0]


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError):
        GenPRMConfig(n=0)
    with pytest.raises(ConfigError):
        GenPRMConfig(verify=False, execute=True)
    with pytest.raises(ConfigError):
        GenPRMConfig(parallel=0)
    with pytest.raises(ConfigError):
        GenerativePRM(ScriptedLLM(lambda p, s: "")).score_steps("Q", [])


# -- the data generator's labels are exact -------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_corruptions_are_first_errors_at_the_known_step(kind):
    for p in make_problems(9, seed=1):
        good = solve(p)
        for step in range(len(p.plan)):
            bad = corrupt(p, step, kind)
            assert bad.first_error == step and bad.steps[:step] == good.steps[:step]
            assert bad.values[step] != good.values[step]


def test_every_correct_step_equation_holds_and_the_answer_is_the_last_value():
    for p in make_problems(12, seed=3):
        sol = solve(p)
        assert sol.answer == sol.values[-1] and sol.correct
        for text in sol.steps:
            a, op, b, r = EQ.findall(text)[-1]
            assert {"+": Fraction(a) + Fraction(b), "-": Fraction(a) - Fraction(b), "*": Fraction(a) * Fraction(b),
                    "/": Fraction(a) / Fraction(b)}[op] == Fraction(r)


def test_toy_policy_is_seeded_and_mixes_right_and_wrong():
    p = make_problems(1, seed=0)[0]
    a = sample_candidates(p, 40, p_correct=0.35, seed=1)
    assert [c.steps for c in a] == [c.steps for c in sample_candidates(p, 40, p_correct=0.35, seed=1)]
    n_ok = sum(c.correct for c in a)
    assert 5 <= n_ok <= 25 and len({c.answer_text for c in a if not c.correct}) <= 2  # systematic mistakes repeat


def test_parallel_paths_are_sent_concurrently_to_an_http_server_and_match_the_serial_ones():
    """Parallel sequences (issue 19, item 2): with ``parallel`` the n paths of a step go to the server at once
    (a server with parallel slots decodes them together); the paths, seeded per path, are those of the serial run."""
    import sys
    import time
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from openai_stub import openai_stub

    from reprolab.llm.chat_template import PLAIN_TEMPLATE
    from reprolab.llm.openai_http import OpenAICompatLLM

    def reply(body):
        time.sleep(0.25)  # a slow model: concurrency is what saves the wall time
        if body.get("logprobs") is not None:
            yes = -0.2 - 0.1 * (body["prompt"].count("seed 1") + 2 * body["prompt"].count("seed 3"))
            lp = {"tokens": ["Yes"], "token_logprobs": [yes], "top_logprobs": [{"Yes": yes, "No": -1.5}]}
            return {"choices": [{"text": "Yes", "logprobs": lp, "finish_reason": "length"}]}
        return {"choices": [{"text": f"checked with seed {body['seed'] % 1009}", "finish_reason": "stop"}]}

    p = make_problems(1, seed=0)[0]
    steps = solve(p).steps[:1]
    out, wall = {}, {}
    with openai_stub(reply) as (url, seen):
        for par in (1, 4):
            llm = OpenAICompatLLM(url, model="m", chat_template=PLAIN_TEMPLATE)
            prm = GenerativePRM(llm, GenPRMConfig(n=4, verify=False, execute=False, parallel=par))
            t0 = time.perf_counter()
            out[par] = prm.score_steps(p.question, steps)
            wall[par] = time.perf_counter() - t0
    from dataclasses import asdict

    assert [asdict(q) for q in out[4].paths[0]] == [asdict(q) for q in out[1].paths[0]]
    assert len({q.p_yes for q in out[1].paths[0]}) > 1  # the paths differ, so order is checked
    assert wall[4] < 0.6 * wall[1]  # 8 requests of 0.25 s: ~2 s one by one, ~0.5 s four at a time


def test_bench_throughput_replays_the_same_requests_to_the_raw_loop():
    """Issue 19, item 2: the raw arm gets exactly the completion requests GenPRM made (prompt, cap, stops,
    seed), in order; the ratio is ours / raw tokens per second."""
    from reprolab.papers.genprm.bench import throughput

    llm = ScriptedLLM(lambda p, s: "looks fine", choices=lambda p: {"Yes": -0.2, "No": -1.8})
    prm = GenerativePRM(llm, GenPRMConfig(verify=False, execute=False, max_tokens_analyze=32))
    p = make_problems(1, seed=0)[0]
    sols = [(p, solve(p))]
    assert throughput(prm, sols) == {}  # no llama.cpp: nothing to compare

    class RawLoop:  # stands in for llama_cpp.Llama
        def __init__(self):
            self.calls = []

        def create_completion(self, prompt, **kw):
            self.calls.append((prompt, kw))
            return {"usage": {"completion_tokens": 5}}

    llm._llm = raw = RawLoop()
    n_before = len(llm.prompts)
    out = throughput(prm, sols)
    ours = llm.prompts[n_before:]
    assert [c[0] for c in raw.calls] == ours and len(ours) == len(solve(p).steps)  # one analysis per judged step
    assert {c[1]["max_tokens"] for c in raw.calls} == {32} and raw.calls[0][1]["stop"] == ["</analyze>", "<verify>", "<output>"]
    assert out["raw_tokens"] == 5 * len(ours) and out["ours_tokens"] == 2 * len(ours)
    assert out["ratio"] == pytest.approx(out["ours_tokens_per_s"] / out["raw_tokens_per_s"], abs=2e-3)
    assert llm._complete_one.__func__ is ScriptedLLM._complete_one  # the recorder is removed afterwards
