"""AGS (arXiv 2503.22444): the lab, the analysis protocol and discovery test, the scientist's modules, the community."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp

from reprolab.errors import ConfigError, MalformedFile, NonFiniteError, ShapeError, UnknownName
from reprolab.llm.fake import ScriptedLLM
from reprolab.papers.ags import (COSTS, AnalysisConfig, Autonomy, Community, ExperimentFailed, KnowledgeBase, Lab, Scientist,
                                 analyse, canonical, catalogue, catalogue_subset, is_discovery, skeleton)

m, v, h, T, S, P = sp.symbols("m v h T S P", positive=True)
NO_SR = AnalysisConfig(sr="none")


def _data(law, n=16, seed=0, sigma=0.005):
    lab = Lab([law], sigma=sigma, seed=seed)
    rng = np.random.default_rng(seed)
    lo, hi = np.log([x.low for x in law.inputs]), np.log([x.high for x in law.inputs])
    X = np.exp(rng.uniform(lo, hi, (n, len(law.inputs))))
    return X, lab.measure(law.name, X)


# ----------------------------------------------------------------------------------------- lab
def test_catalogue_has_24_laws_over_every_form_and_composites_over_primitives():
    laws = catalogue()
    assert len(laws) == 24 and len({law.name for law in laws}) == 24
    assert {law.form for law in laws} == {"monomial", "sum", "exponential", "saturating", "composite"}
    by = {law.name: law for law in laws}
    for law in laws:
        assert {s.name for s in law.truth.free_symbols} <= set(law.input_names)
        for b in law.builds_on:
            assert set(by[b].input_names) <= set(law.input_names)  # built on a quantity of its own inputs
    ke = by["boltzmann_factor"]
    assert sp.simplify(ke.truth - sp.exp(-sp.Float(0.5) * m * v ** 2 / T)) == 0


def test_noise_is_seeded_relative_gaussian_with_the_stated_sigma():
    law = catalogue_subset(["kinetic_energy"])[0]
    X = np.tile([[2.0, 3.0]], (4000, 1))
    y = Lab([law], sigma=0.05, seed=3).measure("kinetic_energy", X)
    ratio = y / 9.0
    assert abs(ratio.mean() - 1) < 0.005 and abs(ratio.std() - 0.05) < 0.004
    assert np.array_equal(y, Lab([law], sigma=0.05, seed=3).measure("kinetic_energy", X))
    assert not np.array_equal(y, Lab([law], sigma=0.05, seed=4).measure("kinetic_energy", X))
    assert np.allclose(Lab([law], sigma=0.0).measure("kinetic_energy", [[2.0, 3.0]]), 9.0)


def test_costs_physical_is_slower_and_dearer_and_every_attempt_is_paid():
    law = catalogue_subset(["density"])[0]
    assert COSTS["physical"].money > COSTS["virtual"].money and COSTS["physical"].hours > COSTS["virtual"].hours
    for kind in ("virtual", "physical"):
        lab = Lab([law], kind=kind)
        lab.measure("density", [[1.0, 0.5]] * 5)
        assert lab.ledger.experiments == lab.ledger.attempts == 5 and lab.ledger.failures == 0
        assert lab.ledger.money == pytest.approx(5 * COSTS[kind].money) and lab.ledger.hours == pytest.approx(5 * COSTS[kind].hours)


def test_robot_failures_are_retried_and_counted():
    law = catalogue_subset(["density"])[0]
    lab = Lab([law], p_fail=0.5, seed=0)
    lab.measure("density", [[1.0, 0.5]] * 200)
    led = lab.ledger
    assert led.experiments == 200 and led.attempts == 200 + led.failures
    assert 0.35 < led.failures / led.attempts < 0.65  # p = 0.5
    assert led.money == pytest.approx(led.attempts * COSTS["virtual"].money)
    with pytest.raises(ExperimentFailed, match="failed 3 times"):
        Lab([law], p_fail=0.999, max_retries=2, seed=0).measure("density", [[1.0, 0.5]])


def test_lab_bad_inputs_raise_typed_errors():
    law = catalogue_subset(["density"])[0]
    lab = Lab([law])
    with pytest.raises(ShapeError):
        lab.measure("density", [[1.0, 2.0, 3.0]])
    with pytest.raises(NonFiniteError):
        lab.measure("density", [[np.nan, 0.5]])
    with pytest.raises(ConfigError, match="m"):
        lab.measure("density", [[1000.0, 0.5]])  # beyond the extrapolation range
    with pytest.raises(ConfigError):
        Lab([law], p_fail=1.0)
    with pytest.raises(KeyError):
        lab.measure("denisty", [[1.0, 0.5]])


def test_lab_state_round_trip_resumes_the_stream():
    law = catalogue_subset(["density"])[0]
    a = Lab([law], p_fail=0.3, seed=1)
    a.measure("density", [[1.0, 0.5]] * 3)
    b = Lab([law], p_fail=0.3, seed=99)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert np.array_equal(a.measure("density", [[2.0, 0.5]] * 4), b.measure("density", [[2.0, 0.5]] * 4))
    assert a.ledger == b.ledger


# ----------------------------------------------------------------------------------------- discovery test
@pytest.mark.parametrize("pub,truth", [
    (sp.Float(0.5) * m * v ** 2, m * v ** 2 / 2),
    (sp.Float(0.502) * m * v ** 2 + sp.Float(9.75) * m * h, sp.Float(9.81) * m * h + m * v ** 2 / 2),
    (sp.Float(1.004) * S / (S + sp.Float(2.49)), S / (S + sp.Float(2.5))),
    (sp.Float(39.8) * (1 - sp.exp(sp.Float(-0.01005) * m * v)), sp.Float(40.0) * (1 - sp.exp(sp.Float(-0.01) * m * v))),
    (sp.Float(6.28) * m ** sp.Float(0.5) * v ** sp.Rational(-1, 2), sp.Float(6.2832) * sp.sqrt(m / v)),
])
def test_planted_equal_pairs_are_discoveries(pub, truth):
    assert is_discovery(pub, truth)


@pytest.mark.parametrize("pub,truth", [
    (sp.Float(0.52) * m * v ** 2, m * v ** 2 / 2),  # a constant 4% off
    (sp.Float(0.5) * m * v ** sp.Float(1.9), m * v ** 2 / 2),  # a wrong exponent
    (sp.Float(0.5) * m * v ** 2 + sp.Float(0.01) * h, m * v ** 2 / 2),  # an extra term
    (sp.Float(0.5) * m * v ** 2, sp.Float(0.5) * m * v ** 2 + sp.Float(9.81) * m * h),  # a missing term
    (sp.Float(0.5) * m * h ** 2, m * v ** 2 / 2),  # another variable
    (sp.exp(-m * v), 1 / (m * v)),  # another family
    (S / (S + sp.Float(2.6)), S / (S + sp.Float(2.5))),  # a saturation constant 4% off
])
def test_planted_unequal_pairs_are_not(pub, truth):
    assert not is_discovery(pub, truth)


def test_canonical_form_and_skeleton():
    assert skeleton(canonical(sp.Float(0.3) * m * v ** 2)) == skeleton(canonical(m * v ** 2 / 7))
    assert skeleton(canonical(m * v ** 2)) != skeleton(canonical(m * v ** 3))
    assert canonical(m ** sp.Float(0.5)) == sp.sqrt(m)


# ----------------------------------------------------------------------------------------- analysis protocol
@pytest.mark.parametrize("name", ["kinetic_energy", "pendulum", "arrhenius", "michaelis_menten", "joule_power"])
def test_analysis_recovers_planted_laws_from_noisy_data(name):
    law = catalogue_subset([name])[0]
    X, y = _data(law, n=24)
    best = analyse(X, y, law.input_names, sigma=0.005, config=NO_SR)[0]
    assert best.fits_noise()
    assert is_discovery(best.primitive, law.truth), (name, best.expr)


def test_a_composite_needs_the_quantity_of_the_published_law():
    law = catalogue_subset(["boltzmann_factor"])[0]
    X, y = _data(law, n=24)
    blind = analyse(X, y, law.input_names, sigma=0.005, config=NO_SR)[0]
    assert not is_discovery(blind.primitive, law.truth)
    Ek = sp.Float(0.5) * m * v ** 2
    seen = analyse(X, y, law.input_names, sigma=0.005, config=NO_SR, derived={"E_k": Ek})[0]
    assert is_discovery(seen.primitive, law.truth) and "E_k" in str(seen.expr)


def test_bic_prefers_the_simpler_of_two_equal_fits_and_a_proposal_gets_its_prior():
    law = catalogue_subset(["kinetic_energy"])[0]
    X, y = _data(law, n=20)
    hyps = analyse(X, y, law.input_names, sigma=0.005, config=NO_SR)
    assert hyps[0].family == "monomial" and all(h.score >= hyps[0].score for h in hyps)
    prop = analyse(X, y, law.input_names, sigma=0.005, config=AnalysisConfig(sr="none", families=False), proposals=[m * v ** 2])
    assert any(h.family == "proposal" for h in prop)


def test_symbolic_regression_runs_behind_the_enumeration_only_when_nothing_fits(monkeypatch):
    from reprolab.papers.ags import analysis

    calls = []
    real = analysis.symbolic_regression
    monkeypatch.setattr(analysis, "symbolic_regression", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    cfg = AnalysisConfig(sr="pyoperon", sr_generations=5)
    law = catalogue_subset(["density"])[0]
    analyse(*_data(law), law.input_names, sigma=0.005, config=cfg)
    assert calls == []  # the monomial fit is at the noise level: no SR
    law = catalogue_subset(["mechanical_energy"])[0]
    analyse(*_data(law, n=24), law.input_names, sigma=0.005, config=cfg)
    assert calls == ["pyoperon"]


@pytest.mark.parametrize("backend", ["pyoperon", "gplearn"])
def test_sr_backends_give_sympy_expressions_over_the_inputs(backend):
    pytest.importorskip(backend)
    from reprolab.papers.ags.analysis import _Data, symbolic_regression

    law = catalogue_subset(["joule_power"])[0]
    X, y = _data(law, n=20)
    (e,) = symbolic_regression(_Data(X, y, law.input_names, {}, 0.005), backend, 3, seed=0)
    assert isinstance(e, sp.Expr) and {s.name for s in e.free_symbols} <= {"I", "R"}


def test_analysis_bad_inputs():
    law = catalogue_subset(["density"])[0]
    X, y = _data(law)
    with pytest.raises(ShapeError):
        analyse(X[:, :1], y, law.input_names, sigma=0.005)
    y2 = y.copy()
    y2[0] = np.nan
    with pytest.raises(NonFiniteError):
        analyse(X, y2, law.input_names, sigma=0.005)
    with pytest.raises(ConfigError):
        analyse(X, y, law.input_names, sigma=0.0)
    with pytest.raises(ConfigError):
        AnalysisConfig(sr="pysr")


# ----------------------------------------------------------------------------------------- scientist
def test_scientist_discovers_and_writes_a_latex_report(tmp_path):
    law = catalogue_subset(["arrhenius"])[0]
    lab = Lab([law], sigma=0.005, seed=0)
    kb = KnowledgeBase()
    sci = Scientist("a", lab, kb, Autonomy.level(4, llm_prior=False, sr="none"), seed=0, reports=tmp_path)
    out = sci.investigate(law)
    assert out.status == "published" and out.correct and out.replications == 4
    assert out.experiments == lab.ledger.experiments
    report = (tmp_path / "arrhenius.md").read_text()
    assert "$$" in report and "\\frac" in report and "experiments" in report
    assert kb.laws() == {"arrhenius"}


def test_literature_retrieval_gives_the_quantity_of_a_published_law():
    laws = {law.name: law for law in catalogue()}
    kb = KnowledgeBase()
    kb.publish(laws["kinetic_energy"], sp.Float(0.5) * m * v ** 2, "x", 0)
    kb.publish(laws["coulomb"], sp.Float(8.99) * sp.Symbol("q1", positive=True), "x", 0)
    sci = Scientist("a", Lab(list(laws.values())), kb, Autonomy(sr="none"))
    got = sci.literature(laws["boltzmann_factor"])
    assert list(got) == ["E_k"] and got["E_k"] == sp.Float(0.5) * m * v ** 2  # coulomb's inputs are not this task's


def test_proposal_module_asks_the_model_and_parses_named_and_anonymised_forms():
    law = catalogue_subset(["kinetic_energy"])[0]
    seen = []

    def respond(prompt, s):
        seen.append(prompt)
        return '{"formulas": ["E_k = 0.5*m*v^2", "x1*np.exp(0)*x2**2", "not a formula ((("]}'

    llm = ScriptedLLM(respond)
    named = Scientist("a", Lab([law]), KnowledgeBase(), Autonomy(llm_prior=True, sr="none"), llm=llm)
    forms = named.propose(law)
    assert forms[0] == sp.Float(0.5) * m * v ** 2 and named.failures.reasons == {"unparsable formula": 1}
    assert "kinetic energy" in seen[0] and "[J]" in seen[0]
    anon = Scientist("b", Lab([law]), KnowledgeBase(), Autonomy(llm_prior=True, anonymise=True, sr="none"), llm=llm)
    forms = anon.propose(law)
    assert m * v ** 2 in forms and "kinetic" not in seen[-1] and "m/s" not in seen[-1]
    with pytest.raises(ConfigError):
        Scientist("c", Lab([law]), KnowledgeBase(), Autonomy(llm_prior=True))


def test_autonomy_levels_are_cumulative():
    lv = [Autonomy.level(i) for i in range(6)]
    assert lv[0].design == "grid" and not lv[0].families and lv[0].sr == "none"
    assert lv[1].families and lv[1].sr == "pyoperon" and lv[1].design == "grid"
    assert lv[2].design == "active" and not lv[2].llm_prior
    assert lv[3].llm_prior and not lv[3].reflection
    assert lv[4].reflection and not lv[4].sharing and lv[5].sharing
    with pytest.raises(ConfigError):
        Autonomy.level(6)


def test_active_design_picks_where_hypotheses_disagree():
    law = catalogue_subset(["michaelis_menten"])[0]
    X, y = _data(law, n=8)
    sci = Scientist("a", Lab([law], sigma=0.005), KnowledgeBase(), Autonomy(sr="none"), seed=0)
    inv = sci.start(law)
    inv.X, inv.y = X.tolist(), y.tolist()
    hyps = analyse(X, y, law.input_names, sigma=0.005, config=NO_SR)
    from reprolab.papers.ags import disagreement

    pick = sci.design(inv, law, hyps)
    pool = np.exp(np.random.default_rng(5).uniform(np.log([1, 0.1]), np.log([10, 20]), (64, 2)))
    assert disagreement(hyps, pick, 0.005).mean() >= np.median(disagreement(hyps, pool, 0.005))


def test_community_writes_reports_and_knowledge_and_resumes_identically(tmp_path):
    laws = catalogue_subset(["kinetic_energy", "boltzmann_factor", "density"])
    auto = Autonomy.level(4, llm_prior=False, sr="none")
    full = Community(laws, 2, auto, seed=0, out=tmp_path / "a")
    full.run(6)
    part = Community(laws, 2, auto, seed=0, out=tmp_path / "b")
    part.run(3)
    resumed = Community(laws, 2, auto, seed=0, out=tmp_path / "b")
    assert resumed.round == 3
    resumed.run(6)
    assert resumed.events == full.events and resumed.experiments_by_round == full.experiments_by_round
    assert full.discoveries() >= 2
    assert (tmp_path / "a" / "knowledge0.jsonl").read_text().count("\n") == len(full.kbs[0])
    assert len(list((tmp_path / "a" / "reports").glob("*.md"))) == len([e for e in full.events if e["status"] == "published"])
    with pytest.raises(ConfigError):
        Community(laws, 3, auto, seed=0, out=tmp_path / "a")  # another run's folder
    (tmp_path / "b" / "knowledge0.jsonl").write_text("{broken\n")
    with pytest.raises(MalformedFile):
        Community(laws, 2, auto, seed=0, out=tmp_path / "b")


def test_sharing_lets_a_second_agent_build_on_the_firsts_law():
    laws = catalogue_subset(["kinetic_energy", "boltzmann_factor"])
    shared = Community(laws, 2, Autonomy.level(4, llm_prior=False, sr="none", sharing=True), seed=1)
    shared.run(10)
    assert shared.discoveries(composite_only=True) == 1
    iso = Community(laws, 2, Autonomy.level(4, llm_prior=False, sr="none", sharing=False), seed=1)
    iso.run(10)
    assert len(iso.kbs) == 2


def test_bad_configuration_raises_typed_errors():
    laws = catalogue_subset(["density"])
    with pytest.raises(ConfigError, match="n_agents"):
        Community(laws, 0, Autonomy(sr="none"))
    with pytest.raises(ConfigError, match="design"):
        Autonomy(design="random")
    with pytest.raises(ConfigError, match="batch"):
        Autonomy(batch=0)
    with pytest.raises(UnknownName, match="no_such_law"):
        catalogue_subset(["no_such_law"])
    with pytest.raises(MalformedFile):
        KnowledgeBase.from_jsonl('{"text": "x"}\nnot json\n')
