"""The report renders from saved results alone; its table matches the results on disk."""

from __future__ import annotations

from html.parser import HTMLParser

from reprolab import study as study_mod
from reprolab.report import build_report
from reprolab.study import Result, run_study


class TableParser(HTMLParser):
    """Collect the rows of <table id="claims"> as dicts of cell class -> text."""

    def __init__(self):
        super().__init__()
        self.rows, self._in_table, self._row, self._cell = [], False, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "claims":
            self._in_table = True
        elif self._in_table and tag == "tr" and "data-study" in a:
            self._row = {"study": a["data-study"], "data-claim": a["data-claim"]}
        elif self._row is not None and tag == "td":
            self._cell = a.get("class", "").split()[0]
            self._row[self._cell] = ""

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


def parse(path):
    p = TableParser()
    p.feed(path.read_text())
    return p.rows


def test_report_table_matches_saved_results(toy_study, tmp_path):
    result, _ = run_study("toy", "quick", out=tmp_path)
    index = build_report(tmp_path)
    rows = {(r["study"], r["data-claim"]): r for r in parse(index)}
    # every registered study has rows; the toy's row is the saved result's
    assert {name for name, _ in rows} == set(study_mod.studies())
    row = rows[("toy", "big")]
    saved = Result.load(tmp_path / "toy" / "quick" / "result.json")
    claim = saved.claims[0]
    assert row["verdict"].strip() == claim.verdict.value == "reproduced"
    assert row["ours"].strip() == claim.ours
    assert row["paper-figure"].strip() == claim.paper
    assert row["claim"].strip() == claim.statement
    assert row["scale"].strip() == "quick"
    assert row["wall"].strip().endswith("s")
    # the study page shows its figure, copied beside the report
    page = (tmp_path / "report" / "toy.html").read_text()
    assert 'src="toy/line.png"' in page and (tmp_path / "report" / "toy" / "line.png").exists()


def test_unrun_studies_show_as_not_run(toy_study, tmp_path):
    index = build_report(tmp_path)
    rows = parse(index)
    assert rows and all(r["verdict"].strip() == "not run" for r in rows)


def test_report_prefers_the_largest_scale(toy_study, tmp_path):
    run_study("toy", "smoke", out=tmp_path)
    run_study("toy", "full", out=tmp_path)
    rows = {(r["study"], r["data-claim"]): r for r in parse(build_report(tmp_path))}
    assert rows[("toy", "big")]["scale"].strip() == "full"
