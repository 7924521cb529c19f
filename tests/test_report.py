"""The report renders from saved results alone: the record beside the fresh run for every claim,
a forest plot of every headline, smoke runs without verdict colours, real check marks."""

from __future__ import annotations

import math
from html.parser import HTMLParser

import pytest

from reprolab import stats
from reprolab import study as study_mod
from reprolab.report import (
    FOREST_FILE,
    SMOKE_LABEL,
    STYLES,
    build_report,
    collect,
    forest_rows,
    normalise,
    summary_line,
    verdict_css,
)
from reprolab.study import Claim, Judgement, Result, Verdict, run_study, save_record
from tests.conftest import make_toy_study


class TableParser(HTMLParser):
    """Collect the rows of <table id="..."> as dicts: cell class -> text (and -> its classes),
    plus the row's data-* attributes."""

    def __init__(self, table_id: str = "claims"):
        super().__init__()
        self.table_id = table_id
        self.rows, self._in_table, self._row, self._cell = [], False, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._in_table = a.get("id") == self.table_id
        elif self._in_table and tag == "tr" and "data-claim" in a:
            self._row = {"study": a.get("data-study"), "key": a["data-claim"], "source": a.get("data-source")}
        elif self._row is not None and tag == "td":
            classes = (a.get("class") or "").split()
            self._cell = classes[0] if classes else "?"
            self._row[self._cell] = ""
            self._row[self._cell + ".class"] = classes

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._row is not None and self._cell:
            self._row[self._cell] += data


def parse(path, table_id="claims"):
    """The table's rows; a claim's second row (the fresh run) gets the cells its first row spans."""
    p = TableParser(table_id)
    p.feed(path.read_text())
    rows, first = p.rows, {}
    for r in rows:
        spanned = first.setdefault((r["study"], r["key"]), r)
        for k, v in spanned.items():
            r.setdefault(k, v)
    return rows


def index_rows(index):
    """(study, claim, source) -> row of the index's claims table."""
    return {(r["study"], r["key"], r["source"]): r for r in parse(index)}


@pytest.fixture
def records(tmp_path):
    """An empty records folder (never the repository's results/)."""
    d = tmp_path / "results"
    d.mkdir()
    return d


def make_record(tmp_path, records, name="toy"):
    """Run the study at full scale in a scratch folder and save it as the record."""
    run_study(name, "full", out=tmp_path / "record-runs")
    save_record(name, out=tmp_path / "record-runs", records=records)


@pytest.fixture
def registered():
    """Register study classes for one test."""
    added = []

    def add(cls):
        study_mod.discover()
        added.append(study_mod.register(cls))
        return cls

    yield add
    for cls in added:
        study_mod._STUDIES.pop(cls.name, None)


# ----------------------------------------------------------------------------- the table


def test_report_table_matches_saved_results(toy_study, tmp_path, records):
    run_study("toy", "quick", out=tmp_path)
    index = build_report(tmp_path, records=records)
    rows = index_rows(index)
    # every registered study has a record row and a fresh row per claim
    assert {s for s, _, _ in rows} == set(study_mod.studies())
    assert all((s, c, "record") in rows and (s, c, "fresh") in rows for s, c, _ in rows)
    fresh = rows[("toy", "big", "fresh")]
    saved = Result.load(tmp_path / "toy" / "quick" / "result.json")
    claim = saved.claims[0]
    assert fresh["verdict"].strip() == claim.verdict.value == "reproduced"
    assert "v-reproduced" in fresh["verdict.class"]
    assert fresh["ours"].strip() == claim.ours
    assert fresh["paper-figure"].strip() == claim.paper
    assert fresh["claim"].strip() == claim.statement
    assert fresh["scale"].strip() == "quick"
    assert fresh["wall"].strip().endswith("s")
    c = claim.comparison
    assert fresh["effect"].strip() == f"{c.effect:+.3g} [{c.low:.3g}, {c.high:.3g}] over 3 draws"
    # no record: said so, with no verdict colour
    record = rows[("toy", "big", "record")]
    assert record["verdict"].strip() == "no record yet" and record["verdict.class"] == ["verdict", "v-no-record"]
    # the study page shows the fresh run's figure, copied beside the report
    page = (tmp_path / "report" / "toy.html").read_text()
    assert 'src="toy/quick/line.png"' in page and (tmp_path / "report" / "toy" / "quick" / "line.png").exists()


def test_unrun_studies_show_as_not_run(toy_study, tmp_path, records):
    rows = index_rows(build_report(tmp_path, records=records))
    assert rows
    assert all(r["verdict"].strip() == ("no record yet" if src == "record" else "not run") for (_, _, src), r in rows.items())


def test_report_prefers_the_largest_scale(toy_study, tmp_path, records):
    run_study("toy", "smoke", out=tmp_path)
    run_study("toy", "full", out=tmp_path)
    rows = index_rows(build_report(tmp_path, records=records))
    assert rows[("toy", "big", "fresh")]["scale"].strip() == "full"


def test_record_beside_the_fresh_run(toy_study, tmp_path, records):
    """The record (full, from results/) and the fresh quick run, each with verdict, ours and headline."""
    make_record(tmp_path, records)
    out = tmp_path / "runs"
    run_study("toy", "quick", out=out)
    index = build_report(out, "quick", records=records)
    rows = index_rows(index)
    rec, fresh = rows[("toy", "big", "record")], rows[("toy", "big", "fresh")]
    assert rec["scale"].strip() == "full" and fresh["scale"].strip() == "quick"
    assert rec["ours"].strip() == "x = 3" and fresh["ours"].strip() == "x = 2"
    assert rec["effect"].strip().startswith("+2 [") and fresh["effect"].strip().startswith("+1 [")
    assert rec["effect"].strip().endswith("over 3 draws")
    assert rec["verdict"].strip() == fresh["verdict"].strip() == "reproduced"
    # the study page: both runs, both figures, both result.json files copied and linked
    report = out / "report"
    page = (report / "toy.html").read_text()
    for sub in ("record", "quick"):
        assert f'src="toy/{sub}/line.png"' in page and (report / "toy" / sub / "line.png").exists()
        assert f'href="toy/{sub}/result.json"' in page and (report / "toy" / sub / "result.json").exists()
    # the same figure of both runs side by side, in one row
    figures = page.split('<table id="figures">')[1].split("</table>")[0]
    assert "<th>record (full)</th><th>fresh run (quick)</th>" in figures
    assert any('src="toy/record/line.png"' in tr and 'src="toy/quick/line.png"' in tr for tr in figures.split("<tr>"))
    # the terminal line names both
    (row,) = [r for r in collect(out, study_mod.Scale.QUICK, records) if r.name == "toy"]
    line = summary_line(row)
    assert "[quick," in line and "record: reproduced" in line


def test_smoke_run_is_a_code_path_check_not_a_verdict(toy_study, tmp_path, records):
    """The toy's smoke run measures x = 0.5 < 1 (its rule: not reproduced): shown grey as a code-path check."""
    res, _ = run_study("toy", "smoke", out=tmp_path)
    assert res.claims[0].verdict == Verdict.NOT_REPRODUCED  # what the rule said
    index = build_report(tmp_path, records=records)
    fresh = index_rows(index)[("toy", "big", "fresh")]
    assert fresh["verdict"].strip() == SMOKE_LABEL == "smoke: code path only"
    assert fresh["verdict.class"] == ["verdict", "v-smoke"]
    assert fresh["ours"].strip() == "x = 0.5" and fresh["effect"].strip()  # the numbers are still shown
    page = (tmp_path / "report" / "toy.html").read_text()
    assert "v-not-reproduced" not in page.split("<h2>Runs</h2>")[1] and "smoke: code path only" in page
    rows = collect(tmp_path, records=records)
    (fr,) = [f for f in forest_rows(rows) if f.label == "toy.big"]
    assert fr.side.smoke and fr.colour == STYLES["v-smoke"]["plot"]
    (row,) = [r for r in rows if r.name == "toy"]
    assert "smoke: code path only" in summary_line(row) and "not reproduced" not in summary_line(row)


def test_skipped_smoke_run_shows_not_run(tmp_path, records, registered):
    from reprolab.errors import StudySkipped

    def skip(config, run):
        raise StudySkipped("an asset is missing", fix="make assets")

    registered(make_toy_study("toyskip", behaviour=skip))
    run_study("toyskip", "smoke", out=tmp_path)
    fresh = index_rows(build_report(tmp_path, records=records))[("toyskip", "big", "fresh")]
    assert fresh["verdict"].strip() == "not run" and "v-not-run" in fresh["verdict.class"]


# ----------------------------------------------------------------------------- checks and verdict colours


def _checked_study(name, preconditions_hold=True):
    base = make_toy_study(name)

    def judge(m):
        c = stats.compare_to_value(m["x"], 1.0, unit="draws")
        return Judgement.from_headline("x checked", c, supporting={"sign is right": True, "size <= 10": False},
                                       preconditions={"method ran": preconditions_hold})

    base.claims = [Claim("big", "x is larger than one", paper="x = 2", rule="mean x > 1; two supporting checks", judge=judge)]
    return base


def test_checks_show_real_marks_supporting_and_preconditions_apart(tmp_path, records, registered):
    registered(_checked_study("toycheck"))
    run_study("toycheck", "quick", out=tmp_path)
    build_report(tmp_path, records=records)
    page_path = tmp_path / "report" / "toycheck.html"
    html = page_path.read_text()
    assert "&#10003;" not in html and "&amp;#10003;" not in html and "&#10007;" not in html
    (row,) = [r for r in parse(page_path) if r["source"] == "fresh"]
    assert row["checks"] == "✓ sign is right" + "✗ size <= 10"  # one <li> each
    assert row["preconditions"] == "✓ method ran"
    assert row["verdict"].strip() == "partly"  # the headline holds, a supporting check failed


def test_not_testable_and_inconclusive_have_their_own_colours(tmp_path, records, registered):
    registered(_checked_study("toypre", preconditions_hold=False))
    run_study("toypre", "quick", out=tmp_path)
    index = build_report(tmp_path, records=records)
    fresh = index_rows(index)[("toypre", "big", "fresh")]
    assert fresh["verdict"].strip() == "not testable" and "v-not-testable" in fresh["verdict.class"]
    html = index.read_text()
    for v in Verdict:
        css = verdict_css(v)
        assert css in STYLES and f".{css} {{ background: {STYLES[css]['bg']}" in html
    # every verdict (and smoke, and no record) has its own background and one line in the legend
    assert len({st["bg"] for st in STYLES.values()}) == len(STYLES)
    legend = {}
    for r in _legend_rows(index):
        legend[r[0]] = r[1]
    assert set(legend) == {st["label"] for st in STYLES.values()} >= {v.value for v in Verdict} | {SMOKE_LABEL}
    assert all(text.strip() for text in legend.values())


def _legend_rows(index):
    class P(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.inside, self.cells = [], False, None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.inside = dict(attrs).get("id") == "legend"
            elif self.inside and tag == "tr":
                self.cells = []
            elif self.inside and tag == "td" and self.cells is not None:
                self.cells.append("")

        def handle_endtag(self, tag):
            if tag == "tr" and self.inside and self.cells is not None:
                self.rows.append(tuple(c.strip() for c in self.cells))
                self.cells = None
            elif tag == "table":
                self.inside = False

        def handle_data(self, data):
            if self.cells:
                self.cells[-1] += data

    p = P()
    p.feed(index.read_text())
    return p.rows


# ----------------------------------------------------------------------------- the forest plot


def _comparison(effect, low, high, margin=0.0, n=5):
    return stats.Comparison(effect, low, high, n, "items", margin, "greater", "t", stats.outcome_of(low, high, margin))


def test_forest_normalisation_puts_the_margin_at_zero_and_intervals_two_wide():
    x_eff, x_lo, x_hi, x_zero, unbounded = normalise(_comparison(3.0, 1.0, 5.0, margin=2.0))
    assert (x_eff, x_lo, x_hi, x_zero, unbounded) == (0.5, -0.5, 1.5, -1.0, False)  # h = 2
    # holds <=> the normalised interval is right of 0, contradicted <=> left of 0
    for c in (_comparison(0.3, 0.1, 0.5), _comparison(-0.3, -0.5, -0.1), _comparison(0.1, -0.1, 0.3, margin=0.05)):
        _, lo, hi, _, _ = normalise(c)
        assert (lo > 0) == (c.outcome == stats.Outcome.HOLDS) and (hi < 0) == (c.outcome == stats.Outcome.CONTRADICTED)
        assert hi - lo == pytest.approx(2.0)
    # zero-width interval: scaled by the distance to the margin; unbounded (one unit): no scale
    assert normalise(_comparison(0.4, 0.4, 0.4, margin=0.2))[:3] == (1.0, 1.0, 1.0)
    x_eff, x_lo, x_hi, _, unbounded = normalise(_comparison(0.4, -1e300, 1e300))
    assert unbounded and x_eff == 0 and math.isinf(x_lo) and math.isinf(x_hi)


def test_forest_plot_uses_the_record_else_the_fresh_run(toy_study, tmp_path, records, registered):
    registered(make_toy_study("toyfresh"))
    make_record(tmp_path, records)  # toy has a record; toyfresh only a fresh run
    out = tmp_path / "runs"
    run_study("toy", "quick", out=out)
    run_study("toyfresh", "quick", out=out)
    index = build_report(out, "quick", records=records)
    rows = collect(out, study_mod.Scale.QUICK, records)
    by_label = {f.label: f for f in forest_rows(rows)}
    assert by_label["toy.big"].side.source == "record" and by_label["toy.big"].comparison.effect == pytest.approx(2.0)
    assert by_label["toyfresh.big"].side.source == "fresh" and by_label["toyfresh.big"].comparison.effect == pytest.approx(1.0)
    assert "(record)" in by_label["toy.big"].text and "(fresh quick)" in by_label["toyfresh.big"].text
    assert by_label["toy.big"].colour == STYLES["v-reproduced"]["plot"]
    # one row per registered claim, studies without results drawn as "no headline"
    assert len(by_label) == sum(len(cls.claims) for cls in study_mod.studies().values())
    png = out / "report" / FOREST_FILE
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f'<img src="{FOREST_FILE}"' in index.read_text()
