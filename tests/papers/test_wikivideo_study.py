"""The wikivideo study at smoke scale (scripted models): it runs, writes the official article files and its
figures, judges every claim, and re-judges from the saved metrics."""

from __future__ import annotations

from reprolab.papers.wikivideo import read_articles
from reprolab.study import rejudge


def test_smoke_study_runs(smoke_run):
    result, out = smoke_run("wikivideo")
    assert result.status == "ok"
    assert [c.key for c in result.claims] == ["beats_captions", "reasoning_matters", "event_level", "hallucination"]
    m = result.metrics
    assert set(m["arms"]) == {"captions", "cag", "fixed"} and len(m["arms"]["cag"]["recall"]) == 3
    # arm C made exactly as many describer calls as CAG, event by event
    assert m["arms"]["fixed"]["describer_calls"] == m["arms"]["cag"]["describer_calls"]
    assert all(c > cap for c, cap in zip(m["arms"]["cag"]["describer_calls"], m["arms"]["captions"]["describer_calls"]))
    assert m["cag_query_share"] > 0 and m["reasoner_json"]["failed"] == 0
    run = out / "wikivideo" / "smoke"
    for arm in ("captions", "cag", "fixed", "reference"):
        arts = read_articles(run / "articles" / f"{arm}.json")
        assert sorted(arts) == m["events"] and all(a.article.startswith("<lead>") for a in arts.values())
    assert sorted(f.file for f in result.figures) == ["figures/claims.png", "figures/recall.png"]
    assert all((run / f.file).stat().st_size > 1000 for f in result.figures)
    assert [c.verdict for c in rejudge(result).claims] == [c.verdict for c in result.claims]
