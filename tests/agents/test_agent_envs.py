"""Gymnasium environments in the loop, and the Sokoban generator with BFS-verified solutions."""

from __future__ import annotations

import pytest

from reprolab.agents import Agent, LogProbChoice, Lookahead, ReAct, SimulatorWorldModel, TextEnv
from reprolab.data.sokoban import Level, SokobanEnv, generate_levels, replay, solve
from reprolab.errors import ConfigError, MalformedFile
from reprolab.llm.fake import ScriptedLLM


def test_a_real_gymnasium_env_plugs_in():
    gym = pytest.importorskip("gymnasium")
    raw = gym.make("FrozenLake-v1", is_slippery=False, map_name="4x4")
    env = TextEnv(raw, ["left", "down", "right", "up"], render=lambda s: f"You are on cell {s} of a 4x4 frozen lake.")
    path = iter(["down", "down", "right", "right", "down", "right"])
    llm = ScriptedLLM(lambda p, s: f'{{"action": "{next(path)}"}}')
    res = Agent(ReAct(), llm, max_steps=10).run("Reach the goal at cell 15.", env)
    assert res.status == "terminated" and res.success and res.env_steps == 6
    assert "cell 15" in res.mental.last_observation.content
    # the external world model clones the gymnasium env and leaves the real one where it is
    env.reset(seed=0)
    p = SimulatorWorldModel().predict(env, "right")
    assert p.text.endswith("cell 1 of a 4x4 frozen lake.") and env.steps == 0


def test_bfs_is_optimal_on_a_hand_level():
    lv = Level.from_text("#######\n#@ $ .#\n#######")
    assert solve(lv) == ("right", "right", "right")
    assert Level.from_text(lv.text).text == lv.text == "#######\n#@ $ .#\n#######"
    assert solve(Level.from_text("#####\n#@$.#\n#####")) == ("right",)
    assert solve(Level.from_text("#####\n#$@.#\n#####")) is None  # the box can only be pulled: unsolvable


def test_generated_levels_are_solvable_and_deterministic():
    levels = generate_levels(12, size=6, boxes=1, seed=3, min_moves=2, max_moves=8)
    assert len({lv.text for lv in levels}) == 12
    for lv in levels:
        assert lv.solution and 2 <= len(lv.solution) <= 8 and replay(lv, lv.solution)
        assert solve(lv) == lv.solution  # the stored solution is BFS's optimum
        assert not replay(lv, lv.solution[:-1])  # and no shorter prefix solves it
    assert [lv.text for lv in generate_levels(12, size=6, boxes=1, seed=3, min_moves=2, max_moves=8)] == [lv.text for lv in levels]
    two = generate_levels(3, size=7, boxes=2, seed=0)
    assert all(len(lv.boxes) == 2 and replay(lv, lv.solution) for lv in two)


def test_bad_levels_and_actions_are_typed_errors():
    with pytest.raises(MalformedFile):
        Level.from_text("#####\n#@$ #\n#####")  # a box without a target
    with pytest.raises(MalformedFile):
        Level.from_text("#@X#")
    with pytest.raises(ConfigError):
        SokobanEnv(Level.from_text("#####\n#@$.#\n#####")).step("jump")
    with pytest.raises(ConfigError):
        generate_levels(2, min_moves=5, max_moves=3)


def test_sokoban_env_rewards_and_clone():
    env = SokobanEnv(Level.from_text("#######\n#@ $ .#\n#######"), max_steps=5)
    obs, r, term, trunc, _ = env.step("right")
    assert r == pytest.approx(-0.01) and not term and obs == "#######\n# @$ .#\n#######"
    c = env.clone()
    c.step("right"), c.step("right")
    assert c.solved and not env.solved and env.distance() == 2
    _, r, term, _, _ = env.step("right")
    _, r, term, _, _ = env.step("right")
    assert term and r == pytest.approx(-0.01 + 0.1 + 1.0)


def test_lookahead_through_the_simulator_beats_a_reactive_policy_on_sokoban():
    levels = generate_levels(10, size=6, boxes=1, seed=1, min_moves=3, max_moves=6)
    value = lambda p: p.state.heuristic()  # noqa: E731  (a leaf heuristic: boxes closer to targets)
    planner = Agent(Lookahead(depth=2, value=value), world_model=SimulatorWorldModel(), max_steps=12)
    # a reactive policy with a fixed preference order (a constant model): always the same first-ranked action
    constant = ScriptedLLM(lambda p, s: "", choices=lambda p: {"A": -0.1, "B": -1.0, "C": -2.0, "D": -3.0})
    reactive = Agent(LogProbChoice(), constant, max_steps=12)
    solved_plan = sum(bool(planner.run(None, SokobanEnv(lv, max_steps=12)).success) for lv in levels)
    solved_react = sum(bool(reactive.run(None, SokobanEnv(lv, max_steps=12)).success) for lv in levels)
    assert solved_plan >= 8 > solved_react
