"""drc_planning and its shared rooms: the Boxoban format and batched env (push rules, rewards, observation, BFS
optimality), the DRC (shapes, official tick/layer order, interventions), concept labels on a scripted episode, probes
(macro-F1 against scikit-learn, the LogisticRegression round trip, a planted concept vs shuffled labels), V-trace."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from reprolab.data.sokoban import (ACTIONS, BatchedSokoban, Level, boxoban_dir, format_boxoban, frame_level, generate_framed_levels,
                                   load_boxoban, parse_boxoban, replay, save_boxoban, solve)
from reprolab.errors import ConfigError, MalformedFile, ShapeError
from reprolab.nn.convlstm import DRC, DRCConfig
from reprolab.papers.drc_planning import (ConvProbe, ProbeConfig, concept_labels, confusion, fit_probe, from_sklearn, labels_from_moves,
                                          macro_f1, play, route_choice_levels, to_sklearn, vtrace)

pytestmark = pytest.mark.usefixtures("one_thread")

ROOM = """##########
#@ $ .   #
#        #
#  $     #
#  .     #
#        #
#        #
#        #
#        #
##########"""


def env_of(text: str, **kw) -> BatchedSokoban:
    return BatchedSokoban([Level.from_text(text)], **kw)


# ----------------------------------------------------------------------------- Sokoban room


def test_boxoban_text_round_trip_and_headers(tmp_path):
    text = "; 0\n" + ROOM + "\n\n;1\n" + ROOM.replace("@", " ").replace("#        #\n##########", "#       @#\n##########") + "\n"
    levels = parse_boxoban(text)
    assert [n for n, _ in levels] == ["0", "1"]
    out = save_boxoban([lv for _, lv in levels], tmp_path / "x.txt")
    again = load_boxoban(out)
    assert [lv.text for lv in again] == [lv.text for _, lv in levels]
    assert format_boxoban(again).startswith("; 0\n##########")
    with pytest.raises(MalformedFile, match="level '1'"):
        parse_boxoban("; 0\n" + ROOM + "\n; 1\n" + ROOM.replace("$", "X"))
    with pytest.raises(MalformedFile, match="no levels"):
        parse_boxoban("")
    with pytest.raises(MalformedFile, match="no such file"):
        load_boxoban(tmp_path / "missing.txt")


def test_shared_boxoban_slice_loads_when_present():
    root = boxoban_dir()
    if root is None:
        pytest.skip("no Boxoban copy in shared/ (generated levels are used instead)")
    levels = load_boxoban(root / "unfiltered" / "valid" / "000.txt")
    assert len(levels) == 1000 and all(len(lv.boxes) == 4 and lv.height == 10 for lv in levels)
    env = BatchedSokoban(levels[:8])
    assert env.observation().shape == (8, 7, 8, 8)


def test_push_rules_and_rewards():
    env = env_of(ROOM)
    _, r, d, info = env.step(np.array([1]))  # up into the wall: no move, step cost only
    assert not info["moved"][0] and r[0] == pytest.approx(-0.01)
    env.step(np.array([4]))  # right onto the floor
    _, r, _, info = env.step(np.array([4]))  # push the box from (1,3) to (1,4)
    assert info["pushed"][0] and env.boxes[0, 1, 4] and not env.boxes[0, 1, 3] and r[0] == pytest.approx(-0.01)
    _, r, _, _ = env.step(np.array([4]))  # box onto the target at (1,5): +1
    assert r[0] == pytest.approx(0.99)
    _, r, _, _ = env.step(np.array([4]))  # box off the target: -1
    assert r[0] == pytest.approx(-1.01)
    _, r, _, info = env.step(np.array([0]))  # noop
    assert not info["moved"][0] and r[0] == pytest.approx(-0.01)
    # a box against a wall or another box does not move
    blocked = env_of(ROOM.replace("#@ $ .   #", "#  @$#.  #").replace("#  $     #", "#  $     #"))
    _, _, _, info = blocked.step(np.array([4]))
    assert not info["moved"][0]
    two = env_of(ROOM.replace("#@ $ .   #", "#@$$ ..  #"))
    _, _, _, info = two.step(np.array([4]))
    assert not info["moved"][0]


def test_solving_pays_ten_and_ends_the_episode_and_the_step_limit_cuts():
    text = ROOM.replace("#@ $ .   #", "#@$.     #").replace("#  $     #", "#        #").replace("#  .     #", "#        #")
    env = env_of(text)
    _, r, d, info = env.step(np.array([4]))
    assert d[0] and info["solved"][0] and r[0] == pytest.approx(-0.01 + 1 + 10)
    _, r, d, _ = env.step(np.array([4]))  # a finished env stays frozen
    assert r[0] == 0 and not d[0]
    env = env_of(ROOM, step_limit=3)
    for k in range(3):
        _, _, d, _ = env.step(np.array([0]))
    assert d[0] and not env.solved[0]


def test_observation_is_one_hot_over_the_official_channels():
    lv = Level.from_text(ROOM.replace("#  .     #", "#  *     #").replace("#@ $ .   #", "#  $ +   #").replace("#  $     #", "#        #"))
    obs = BatchedSokoban([lv]).observation()[0]
    assert obs.shape == (7, 8, 8) and (obs.sum(0) == 1).all()
    # channels: wall, empty, box, box on target, agent, agent on target, target
    assert obs[2, 0, 2] == 1 and obs[5, 0, 4] == 1 and obs[3, 3, 2] == 1 and obs[1, 7, 7] == 1
    assert obs[0].sum() == 0  # the 10x10 border is not in the 8x8 interior


def test_bfs_is_optimal_on_small_levels():
    for lv in generate_framed_levels(6, room=6, boxes=1, seed=3, min_moves=2, max_moves=5):
        n = len(lv.solution)
        assert replay(lv, lv.solution)
        for k in range(1, n):  # no shorter sequence solves it
            assert not any(replay(lv, seq) for seq in itertools.product(ACTIONS, repeat=k))
    assert solve(Level.from_text("#####\n#@$.#\n#####")) == ("right",)


def test_generated_levels_are_framed_and_reproducible():
    a = generate_framed_levels(5, room=7, boxes=2, seed=1, min_moves=3)
    b = generate_framed_levels(5, room=7, boxes=2, seed=1, min_moves=3)
    assert [x.text for x in a] == [x.text for x in b]
    assert all(lv.height == lv.width == 10 and len(lv.boxes) == 2 for lv in a)
    with pytest.raises(ConfigError):
        frame_level(a[0], 8)
    env = BatchedSokoban(a)  # the BFS solutions solve them in the batched env too
    moves = {"up": 1, "down": 2, "left": 3, "right": 4}
    for t in range(max(len(lv.solution) for lv in a)):
        env.step(np.array([moves[lv.solution[t]] if t < len(lv.solution) else 0 for lv in a]))
    assert env.solved.all()
    with pytest.raises(ConfigError):
        env.step(np.array([7] * 5))


def test_batched_env_agrees_with_gym_sokoban():
    pytest.importorskip("gym_sokoban", reason="gym-sokoban 0.0.6 not installed")
    import warnings

    from reprolab.papers.drc_planning.bench import _gym_env

    levels = generate_framed_levels(4, room=8, boxes=2, seed=5, min_moves=4)
    rng = np.random.default_rng(0)
    ours = BatchedSokoban(levels, step_limit=10**6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = [_gym_env(lv) for lv in levels]
        for _ in range(60):
            a = rng.integers(0, 5, len(levels))
            ours.step(a)
            for e, x in zip(theirs, a):
                e.step(int(x), observation_mode="tiny_rgb_array")
    for k, e in enumerate(theirs):
        assert tuple(e.player_position) == tuple(ours.player[k])
        assert {tuple(p) for p in np.argwhere(np.isin(e.room_state, (3, 4)))} == {tuple(p) for p in np.argwhere(ours.boxes[k])}


# ----------------------------------------------------------------------------- DRC room


def test_drc_shapes_record_and_bad_input():
    m = DRC(DRCConfig(channels=8, depth=3, ticks=2))
    s = m.initial_state(4)
    out = m(torch.rand(4, 7, 8, 8), s, record=True)
    assert out.logits.shape == (4, 5) and out.value.shape == (4,)
    assert out.state.c.shape == (4, 3, 8, 8, 8) and out.c.shape == (4, 2, 3, 8, 8, 8)
    assert torch.equal(out.c[:, -1], out.state.c)
    with pytest.raises(ShapeError):
        m(torch.rand(4, 6, 8, 8), s)
    with pytest.raises(ShapeError):
        m(torch.rand(4, 7, 8, 8), s, cell_delta={5: torch.zeros(4, 8, 8, 8)})


def test_drc_follows_the_official_tick_and_layer_order():
    torch.manual_seed(0)
    m = DRC(DRCConfig(channels=4, depth=3, ticks=3))
    x_obs = torch.rand(2, 7, 8, 8)
    s = m.initial_state(2)
    s.h.normal_()
    s.c.normal_()
    out = m(x_obs, s)
    # reference: per tick, layer d reads [x, h of layer d-1 of this tick]; layer 0 reads the top layer's h of the last tick
    x = m.encoder(x_obs)
    h, c = list(s.h.unbind(1)), list(s.c.unbind(1))
    for _ in range(3):
        inp = h[2]
        for d in range(3):
            cell = m.cells[d]
            z = cell.gates(torch.cat([x, inp, h[d], cell.pooled(h[d])], 1))
            i, f, o, g = z.split(4, 1)
            c[d] = torch.sigmoid(f) * c[d] + torch.sigmoid(i) * torch.tanh(g)
            h[d] = torch.sigmoid(o) * torch.tanh(c[d])
            inp = h[d]
    head = torch.relu(m.final(torch.cat([x, h[2]], 1).flatten(1)))
    assert torch.allclose(out.logits, m.policy(head), atol=1e-6)
    assert torch.allclose(out.state.c, torch.stack(c, 1), atol=1e-6)
    # pool-and-inject is one (mean, max) pair per channel, broadcast over the grid
    p = m.cells[0].pooled(torch.rand(2, 4, 8, 8))
    assert torch.allclose(p, p[:, :, :1, :1].expand_as(p))


def test_zero_intervention_changes_nothing_and_a_square_intervention_acts_there():
    torch.manual_seed(1)
    m = DRC(DRCConfig(channels=6))
    obs, s = torch.rand(3, 7, 8, 8), m.initial_state(3)
    base = m(obs, s, record=True)
    zero = m(obs, s, record=True, cell_delta={1: torch.zeros(3, 6, 8, 8)})
    assert torch.equal(base.logits, zero.logits) and torch.equal(base.c, zero.c)
    delta = torch.zeros(3, 6, 8, 8)
    delta[:, :, 4, 5] = 3.0
    hit = m(obs, s, record=True, cell_delta={1: delta}, delta_ticks=[0])
    diff = (hit.c[:, 0, 1] - base.c[:, 0, 1]).abs()  # tick 0, layer 1: only the square (4, 5) moved
    assert torch.allclose(diff[:, :, 4, 5], torch.full((3, 6), 3.0), atol=1e-5)
    diff[:, :, 4, 5] = 0
    assert diff.max() == 0 and torch.equal(hit.c[:, 0, 0], base.c[:, 0, 0])  # layer 0 of tick 0 untouched
    assert not torch.equal(hit.logits, base.logits)


# ----------------------------------------------------------------------------- concepts, probes, training pieces


def test_concept_labels_on_a_scripted_episode():
    # agent (1,1) moves right twice (the 2nd move pushes the box from (1,3) to (1,4)), then down
    agent = np.array([[1, 1], [1, 2], [1, 3], [2, 3]])
    actions = np.array([4, 4, 2])
    moved = np.array([True, True, True])
    pushed = np.array([False, True, False])
    ca = labels_from_moves(actions, agent, moved, pushed, "C_A")
    cb = labels_from_moves(actions, agent, moved, pushed, "C_B")
    assert ca.shape == (3, 8, 8)
    # interior coordinates are 10x10 minus 1
    assert ca[0, 0, 1] == 4 and ca[0, 0, 2] == 4 and ca[0, 1, 2] == 2 and ca[0].astype(bool).sum() == 3
    assert ca[1, 0, 1] == 0 and ca[1, 0, 2] == 4 and ca[2, 1, 2] == 2 and ca[2].astype(bool).sum() == 1
    assert cb[0, 0, 2] == 4 and cb[0].astype(bool).sum() == 1 and cb[2].sum() == 0


def test_concept_labels_from_a_played_episode_match_its_moves():
    torch.manual_seed(0)
    m = DRC(DRCConfig(channels=4))
    ep = play(m, generate_framed_levels(1, room=7, boxes=1, seed=2, min_moves=3), step_limit=15, greedy=False)[0]
    lab = concept_labels(ep, "C_A")
    for t in range(len(ep.actions)):
        if ep.moved[t]:
            i, j = ep.agent[t + 1] - 1
            assert lab[t, i, j] == ep.actions[t]
    assert ep.cells.shape[1:] == (3, 4, 8, 8) and len(ep.obs) == len(ep.actions)


def test_macro_f1_matches_sklearn_and_the_logistic_regression_round_trip():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 500)  # class 4 absent from labels
    p = np.where(rng.random(500) < 0.6, y, rng.integers(0, 5, 500))
    assert macro_f1(confusion(p, y)) == pytest.approx(f1_score(y, p, labels=range(5), average="macro", zero_division=1))
    probe = ConvProbe(6, 1)
    lr = to_sklearn(probe)
    x = torch.randn(3, 6, 8, 8)
    rows = x.permute(0, 2, 3, 1).reshape(-1, 6).numpy()
    ours = torch.softmax(probe(x), 1).permute(0, 2, 3, 1).reshape(-1, 5).detach().numpy()
    assert np.allclose(lr.predict_proba(rows), ours, atol=1e-5)
    assert torch.equal(from_sklearn(lr).conv.weight, probe.conv.weight)
    with pytest.raises(ConfigError):
        to_sklearn(ConvProbe(6, 3))
    lr.intercept_ = np.ones(5)
    with pytest.raises(MalformedFile):
        from_sklearn(lr)


def test_probe_finds_a_planted_linear_concept_and_not_shuffled_labels():
    rng = np.random.default_rng(0)
    n, c = 300, 8
    y = rng.integers(0, 5, (n, 8, 8))
    x = rng.normal(size=(n, c, 8, 8))
    x[:, :5] += 3 * np.eye(5)[y].transpose(0, 3, 1, 2)  # class k lifts channel k
    tr, te = slice(0, 200), slice(200, None)
    good = fit_probe(x[tr], y[tr], ProbeConfig(epochs=4, lr=2e-2))
    assert macro_f1(confusion(good.predict(x[te]), y[te])) > 0.9
    shuffled = rng.permutation(y[tr].ravel()).reshape(y[tr].shape)
    bad = fit_probe(x[tr], shuffled, ProbeConfig(epochs=4, lr=2e-2))
    assert macro_f1(confusion(bad.predict(x[te]), y[te])) < 0.4
    with pytest.raises(ShapeError):
        fit_probe(x[:, :, :4], y)


def test_vtrace_on_policy_is_the_n_step_return():
    T, B = 5, 3
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(T, B, generator=g), torch.randn(T, B, generator=g)
    boot = torch.randn(B, generator=g)
    disc = torch.full((T, B), 0.9)
    disc[2, 1] = 0.0  # an episode end
    lp = torch.randn(T, B, generator=g)
    vs, adv = vtrace(lp, lp, r, v, boot, disc)
    ret = boot.clone()
    expect = torch.zeros(T, B)
    for t in range(T - 1, -1, -1):
        ret = r[t] + disc[t] * ret
        expect[t] = ret
    assert torch.allclose(vs, expect, atol=1e-5)
    nxt = torch.cat([expect[1:], boot[None]])
    assert torch.allclose(adv, r + disc * nxt - v, atol=1e-5)


def test_route_choice_levels_offer_two_ways():
    routes = route_choice_levels(generate_framed_levels(60, room=8, boxes=1, seed=4, min_moves=5, pulls=60))
    assert routes
    for r in routes:
        assert not set(r.new) & set(r.old) and len(r.new) == len(r.new_dirs)
        assert set(r.new_dirs) <= {1, 2, 3, 4}


def test_agent_checkpoint_is_cached_and_loads_and_a_corrupt_one_is_refused(tmp_path):
    from reprolab.papers.drc_planning import TrainConfig, load_agent, train_agent

    cfg = TrainConfig(transitions=320, envs=16, channels=4, pool=6)
    first = train_agent(cfg, tmp_path / "a.pt")
    again = train_agent(cfg, tmp_path / "a.pt")
    assert not first.cached and again.cached and first.curve == again.curve
    model, saved = load_agent(tmp_path / "a.pt")
    assert saved["channels"] == 4 and all(torch.equal(a, b) for a, b in zip(model.parameters(), first.model.parameters()))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MalformedFile, match="torch checkpoint"):
        load_agent(tmp_path / "bad.pt")
    with pytest.raises(MalformedFile):
        load_agent(tmp_path / "missing.pt")


def test_bench_env_rates_measure_both_envs():
    from reprolab.papers.drc_planning.bench import env_rates

    rates = env_rates(generate_framed_levels(4, room=7, boxes=1, seed=0, min_moves=3), steps=5)
    assert rates["ours"] > 0
    if "_missing" not in rates:
        assert rates["gym-sokoban 0.0.6"] > 0
