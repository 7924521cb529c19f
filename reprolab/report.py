"""The HTML report, rendered from saved results alone: the record beside the fresh run.

For every claim of every registered study the report shows two runs side by side:

- the **record**: the committed ``full`` run of record, ``results/<name>/result.json`` and its
  figures (absent until a study's full run is saved: shown as "no record yet");
- the **fresh run**: what the user just ran, ``runs/<name>/<scale>/result.json`` (``make demo``
  writes ``quick``); with no scale given, the largest scale on disk.

For each: the verdict, our figure in words, and the headline comparison as
``effect [low, high] over n unit`` (see :mod:`reprolab.stats`). A ``smoke`` run proves the
code path, not the claim, so it never gets a verdict colour: it is shown grey as
"smoke: code path only".

``<out>/report/index.html`` has the forest plot of every claim (:func:`forest_plot`), the
legend of the verdicts and the table of claims; ``<out>/report/<study>.html`` has the
study's rules, supporting checks and preconditions, both runs' figures, metrics and
provenance, and links to both ``result.json`` files (copied beside the page). Nothing here
runs a study.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import runtime, stats
from .study import (
    RECORDS,
    RESULT_FILE,
    BenchResult,
    BenchRow,
    ClaimOutcome,
    Result,
    Scale,
    Verdict,
    benches,
    load_record,
    overall_verdict,
    record_path,
    studies,
)

SCALE_PREFERENCE = (Scale.FULL, Scale.QUICK, Scale.SMOKE)
FOREST_FILE = "forest.png"

SMOKE_LABEL = "smoke: code path only"
NO_RECORD_LABEL = "no record yet"
ABSENT_FRESH_LABEL = "not run"

# css class, label, one-line meaning, table background, text colour, plot colour. One source for
# the page style, the legend and the forest plot.
_STYLES: list[tuple[str, str, str, str, str, str]] = [
    ("v-reproduced", Verdict.REPRODUCED.value,
     "the headline's 95% interval lies wholly on the paper's side of the margin, and every supporting check holds",
     "#d9f2d9", "#1d5e27", "#2e9e44"),
    ("v-partly", Verdict.PARTLY.value,
     "the headline holds but a supporting check failed (for a study: its claims' verdicts differ)",
     "#fff1c2", "#6b5200", "#e0a800"),
    ("v-inconclusive", Verdict.INCONCLUSIVE.value,
     "the interval straddles the margin: the difference is inside the noise at this number of units",
     "#d6e6fb", "#1f4f8f", "#3b7dd8"),
    ("v-not-reproduced", Verdict.NOT_REPRODUCED.value,
     "the interval lies wholly on the other side of the margin: the measurement contradicts the paper",
     "#f8d3d3", "#7a1a14", "#d1352b"),
    ("v-not-testable", Verdict.NOT_TESTABLE.value,
     "a precondition failed: the method did not run as the paper describes, or the model does not use what is measured",
     "#eadcf6", "#4b2a6b", "#8e5bbf"),
    ("v-not-run", Verdict.NOT_RUN.value,
     "not measured at this scale or on this machine (the reason is given, e.g. an asset `make assets` installs)",
     "#ffffff", "#666666", "#c8c8c8"),
    ("v-smoke", SMOKE_LABEL,
     "a seconds-long smoke run proves that the code runs, not the claim: its numbers are shown, never a verdict",
     "#e2e2e2", "#444444", "#8a8a8a"),
    ("v-no-record", NO_RECORD_LABEL,
     "no committed full run in results/<study>/ yet (`reprolab run NAME --scale full`, then save it as the record)",
     "#fafafa", "#888888", "#c8c8c8"),
]
STYLES = {css: {"label": label, "meaning": meaning, "bg": bg, "fg": fg, "plot": plot}
          for css, label, meaning, bg, fg, plot in _STYLES}


def verdict_css(verdict: Verdict | str) -> str:
    return "v-" + str(verdict).replace(" ", "-")


# ----------------------------------------------------------------------------- what the templates see


def _fmt_num(x: float) -> str:
    if not math.isfinite(x) or abs(x) >= 1e299:  # stats stores an unbounded side as +-1e300
        return "-\u221e" if x < 0 else "\u221e"
    return f"{x:.3g}"


def headline_text(c: stats.Comparison) -> str:
    """``effect [low, high] over n unit`` (plus the margin when it is not zero)."""
    eff = f"{c.effect:+.3g}" if math.isfinite(c.effect) else _fmt_num(c.effect)
    text = f"{eff} [{_fmt_num(c.low)}, {_fmt_num(c.high)}] over {c.n} {c.unit}"
    return text + (f", margin {c.margin:+.3g}" if c.margin else "")


@dataclass
class Side:
    """One claim in one run, as the report shows it: the record or the fresh run."""

    source: str  # "record" or "fresh"
    result: Result | None
    outcome: ClaimOutcome | None

    @property
    def scale(self) -> str:
        return self.result.scale if self.result is not None else "-"

    @property
    def smoke(self) -> bool:
        """A smoke run that ran: a code-path check, never shown with a verdict."""
        return self.result is not None and self.result.scale == Scale.SMOKE.value and self.result.status == "ok"

    @property
    def css(self) -> str:
        if self.outcome is None:
            return "v-no-record" if self.source == "record" else "v-not-run"
        return "v-smoke" if self.smoke else verdict_css(self.outcome.verdict)

    @property
    def label(self) -> str:
        if self.outcome is None:
            return NO_RECORD_LABEL if self.source == "record" else ABSENT_FRESH_LABEL
        return SMOKE_LABEL if self.smoke else self.outcome.verdict.value

    @property
    def ours(self) -> str:
        if self.outcome is not None:
            return self.outcome.ours
        return "" if self.source == "record" else "no saved result"

    @property
    def comparison(self) -> stats.Comparison | None:
        return self.outcome.comparison if self.outcome is not None else None

    @property
    def effect(self) -> str:
        c = self.comparison
        return headline_text(c) if c is not None else ""

    @property
    def details(self) -> str:
        """The headline's method, p-value, outcome and (when unresolved) units needed to resolve it."""
        c = self.comparison
        if c is None:
            return ""
        parts = [c.label] if c.label else []
        parts.append(c.method)
        if c.p_value is not None:
            parts.append(f"p = {c.p_value:.3g}")
        parts.append(f"headline {c.outcome.value}")
        if c.outcome == stats.Outcome.UNRESOLVED:
            need = c.units_to_resolve()
            if need is not None:
                parts.append(f"about {need} {c.unit} would resolve an effect this size")
        return "; ".join(parts)

    @property
    def wall(self) -> str:
        return _fmt_wall(self.result.wall_seconds) if self.result is not None else "-"

    @property
    def checks(self) -> dict[str, bool]:
        return self.outcome.checks if self.outcome is not None else {}

    @property
    def preconditions(self) -> dict[str, bool]:
        return self.outcome.preconditions if self.outcome is not None else {}


@dataclass
class ClaimRow:
    """One claim: the registered statement and rule, and the record beside the fresh run."""

    study: str
    key: str
    statement: str
    paper: str
    rule: str
    record: Side
    fresh: Side

    @property
    def sides(self) -> list[Side]:
        return [self.record, self.fresh]


@dataclass
class RunView:
    """One run of a study (record or fresh) on its page: provenance, figures, metrics."""

    source: str
    result: Result
    folder: Path  # where its result.json and figures are on disk
    figures: list[dict[str, str]] = field(default_factory=list)  # src relative to the report folder, caption
    json_href: str = ""  # the copied result.json, relative to the report folder
    metrics: str = ""
    provenance: str = ""

    @property
    def scale(self) -> str:
        return self.result.scale

    @property
    def wall(self) -> str:
        return _fmt_wall(self.result.wall_seconds)

    @property
    def smoke(self) -> bool:
        return self.result.scale == Scale.SMOKE.value and self.result.status == "ok"

    @property
    def verdict(self) -> Verdict:
        return overall_verdict(self.result.claims)

    @property
    def css(self) -> str:
        return "v-smoke" if self.smoke else verdict_css(self.verdict)

    @property
    def label(self) -> str:
        return SMOKE_LABEL if self.smoke else self.verdict.value


@dataclass
class StudyRow:
    """What the templates need of one study."""

    name: str
    title: str
    arxiv: str
    code: str | None
    claims: list[ClaimRow]
    record: RunView | None = None
    fresh: RunView | None = None
    scales: str = ""
    changelog: list[tuple[int, str]] = field(default_factory=list)

    @property
    def runs(self) -> list[RunView]:
        return [r for r in (self.record, self.fresh) if r is not None]

    @property
    def figure_pairs(self) -> list[dict[str, dict[str, str] | None]]:
        """The runs' figures matched by file name, the record's order first: ``{"record": fig or
        None, "fresh": fig or None}`` per figure (after :func:`build_report` copied them)."""
        pairs: dict[str, dict[str, dict[str, str] | None]] = {}
        for view in self.runs:
            for f in view.figures:
                pairs.setdefault(f["name"], {"record": None, "fresh": None})[view.source] = f
        return list(pairs.values())

    @property
    def result(self) -> Result | None:
        """The fresh run's result (None when there is none)."""
        return self.fresh.result if self.fresh is not None else None


def pick_result(out: Path, name: str, scale: Scale | None = None) -> tuple[Result, Path] | None:
    """The fresh run to show for a study: the given scale, else the largest scale on disk."""
    order = (scale,) if scale else SCALE_PREFERENCE
    for s in order:
        p = Path(out) / name / s.value / RESULT_FILE
        if p.exists():
            return Result.load(p), p.parent
    return None


def _fmt_wall(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _run_view(source: str, result: Result, folder: Path) -> RunView:
    view = RunView(source, result, folder)
    view.metrics = json.dumps(result.metrics, indent=2)
    view.provenance = json.dumps(
        {"command": result.command, "commit": result.commit, "key": result.key, "config": result.config,
         "versions": result.versions, "machine": result.machine}, indent=2)
    return view


def collect(out: str | Path = "runs", scale: Scale | str | None = None, records: str | Path = RECORDS) -> list[StudyRow]:
    """Every registered study with its record (``<records>/<name>/``) and its fresh run
    (``<out>/<name>/<scale>/``, or the largest scale on disk when ``scale`` is None)."""
    out = Path(out)
    scale = Scale.parse(scale) if scale else None
    rows = []
    for name, cls in studies().items():
        record = load_record(name, records)
        picked = pick_result(out, name, scale)
        fresh, fresh_dir = picked if picked is not None else (None, None)
        rec_by_key = {c.key: c for c in record.claims} if record is not None else {}
        fresh_by_key = {c.key: c for c in fresh.claims} if fresh is not None else {}
        claims = [
            ClaimRow(name, c.key, c.statement, c.paper, c.rule,
                     Side("record", record, rec_by_key.get(c.key)), Side("fresh", fresh, fresh_by_key.get(c.key)))
            for c in cls.claims
        ]
        row = StudyRow(name, cls.paper.title, cls.paper.arxiv, cls.paper.code, claims)
        if record is not None:
            row.record = _run_view("record", record, record_path(name, records).parent)
        if fresh is not None:
            row.fresh = _run_view("fresh", fresh, fresh_dir)
        row.scales = json.dumps(cls.describe_scales(), indent=2)
        row.changelog = sorted(cls.changelog.items())
        rows.append(row)
    return rows


def collect_benches(out: str | Path = "runs") -> list[BenchResult]:
    found = []
    for name in benches():
        p = Path(out) / "bench" / name / RESULT_FILE
        if p.exists():
            d = json.loads(p.read_text())
            d["rows"] = [BenchRow(**r) for r in d["rows"]]
            found.append(BenchResult(**d))
    return found


# ----------------------------------------------------------------------------- the forest plot

# An unbounded side (a single unit: no interval) and the plot's x-range, in half-widths.
_UNBOUNDED = 1e299
FOREST_XLIM = 10.0


@dataclass
class ForestRow:
    """One claim's row of the forest plot, on its own normalised axis (see :func:`forest_plot`)."""

    label: str  # "study.claim"
    side: Side
    comparison: stats.Comparison | None
    x_effect: float = 0.0
    x_low: float = 0.0
    x_high: float = 0.0
    x_zero: float = 0.0  # where a zero effect lies on this row's axis
    unbounded: bool = False

    @property
    def text(self) -> str:
        """The raw numbers, printed beside the row."""
        if self.side.result is None:
            return "no headline: no record, no fresh run"
        where = "record" if self.side.source == "record" else f"fresh {self.side.scale}"
        if self.comparison is None:
            return f"no headline ({self.side.label}; {where})"
        return f"{headline_text(self.comparison)} ({where})"

    @property
    def colour(self) -> str:
        return STYLES[self.side.css]["plot"]


def normalise(c: stats.Comparison) -> tuple[float, float, float, float, bool]:
    """``(x_effect, x_low, x_high, x_zero, unbounded)`` of a comparison on the forest plot's axis:
    ``x = (value - margin) / h`` with ``h`` half the width of the 95% interval.

    So the margin is at 0 on every row, every bounded interval is 2 wide, and the verdict reads
    off the picture: an interval wholly right of 0 holds, wholly left is contradicted, across 0
    is unresolved. A zero-width interval (no variation across units) uses ``h = |effect -
    margin|`` (or 1 when that is 0 too). An unbounded interval (a single unit) has no scale: its
    effect is drawn on the margin with the interval spanning the axis."""
    if abs(c.low) >= _UNBOUNDED or abs(c.high) >= _UNBOUNDED:
        return 0.0, -math.inf, math.inf, 0.0, True
    h = (c.high - c.low) / 2
    if not h > 0:
        h = abs(c.effect - c.margin) or 1.0
    return (c.effect - c.margin) / h, (c.low - c.margin) / h, (c.high - c.margin) / h, -c.margin / h, False


def forest_rows(rows: list[StudyRow]) -> list[ForestRow]:
    """One row per claim: the record's headline where the record has one, else the fresh run's,
    else whichever run exists (drawn as "no headline")."""
    out = []
    for s in rows:
        for c in s.claims:
            side = next((x for x in c.sides if x.comparison is not None), None)
            if side is None:
                side = c.record if c.record.outcome is not None else c.fresh
            fr = ForestRow(f"{s.name}.{c.key}", side, side.comparison)
            if fr.comparison is not None:
                fr.x_effect, fr.x_low, fr.x_high, fr.x_zero, fr.unbounded = normalise(fr.comparison)
            out.append(fr)
    return out


def forest_plot(rows: list[StudyRow], path: str | Path) -> list[ForestRow]:
    """Draw every claim's headline effect and 95% interval, across all studies, as one PNG.

    Effects have different units per claim (points of accuracy, dB, nats, FID), so each row is
    drawn on its own scale: positions are ``(value - margin) / h``, ``h`` half the width of that
    row's interval (:func:`normalise`). The margin is therefore the vertical line at 0 on every
    row (also marked on each row by a short red tick), a zero effect is a grey ``|`` on the row
    (where the margin is not zero), and the row's raw numbers (``effect [low, high] over n unit,
    margin``) are printed at its right, with whether they come from the record or the fresh run.
    The x-axis is cut at +-``FOREST_XLIM`` half-widths; what lies beyond is drawn as an arrow
    at the edge. Colour is the verdict (the page's colours); a smoke run is grey whatever its
    rule said. Filled circles are records, open squares fresh runs.
    """
    plt = runtime.pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    frows = forest_rows(rows)
    n = max(len(frows), 1)
    fig, ax = plt.subplots(figsize=(11.5, 1.8 + 0.34 * n))
    lim = FOREST_XLIM
    finite = [v for r in frows if r.comparison is not None and not r.unbounded for v in (r.x_low, r.x_high, r.x_zero)]
    lo = max(-lim, min([-3.0, *finite]) - 0.5)
    hi = min(lim, max([3.0, *finite]) + 0.5)

    def clip(x: float) -> float:
        return min(max(x, lo), hi)

    ax.axvspan(0.0, hi, color="#2e9e44", alpha=0.05, zorder=0)  # the paper's side of every margin
    ax.axvline(0.0, color="#d1352b", lw=1.0, ls="--", zorder=1)
    for i, r in enumerate(frows):
        y = n - 1 - i
        ax.plot([0, 0], [y - 0.3, y + 0.3], color="#d1352b", lw=2.0, zorder=2)  # this row's margin
        if r.comparison is None:
            ax.text(0.15, y, r.text, va="center", ha="left", fontsize=7.5, color="#777777")
            continue
        col = r.colour
        record = r.side.source == "record"
        a, b = clip(r.x_low), clip(r.x_high)
        ax.plot([a, b], [y, y], color=col, lw=2.2, ls=":" if r.unbounded else "-", zorder=3)
        for x, edge, marker in ((r.x_low, lo, "<"), (r.x_high, hi, ">")):
            if (marker == "<" and x < lo) or (marker == ">" and x > hi):
                ax.plot([edge], [y], marker=marker, color=col, ms=7, zorder=3)
        if not r.unbounded and r.x_zero != 0.0 and lo <= r.x_zero <= hi:
            ax.plot([r.x_zero], [y], marker="|", color="#555555", ms=11, mew=1.5, zorder=4)
        xe = clip(r.x_effect)
        ax.plot([xe], [y], marker="o" if record else "s", ms=7, zorder=5,
                markerfacecolor=col if record else "white", markeredgecolor=col, markeredgewidth=1.8)
        ax.text(1.01, y, r.text, transform=ax.get_yaxis_transform(), va="center", ha="left", fontsize=7.5)
    if not frows:
        ax.text(0.5, 0.5, "no registered claims", transform=ax.transAxes, ha="center")
    ax.set_yticks(range(n))
    ax.set_yticklabels([r.label for r in reversed(frows)] or [""], fontsize=8.5)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("(value - margin) / half-width of the row's own 95% interval: right of the red line is the paper's side")
    ax.grid(axis="x", color="#eeeeee", zorder=0)
    ax.set_title("Every claim's headline effect and 95% interval (one scale per row)", fontsize=10)
    fresh_scales = sorted({r.side.scale for r in frows if r.side.source == "fresh" and r.comparison is not None})
    handles = [Patch(color=STYLES[css]["plot"], label=STYLES[css]["label"])
               for css in ("v-reproduced", "v-partly", "v-inconclusive", "v-not-reproduced", "v-not-testable", "v-smoke")]
    handles += [
        Line2D([], [], ls="", marker="o", color="#444444", label="record (full, results/)"),
        Line2D([], [], ls="", marker="s", markerfacecolor="white", color="#444444",
               label=f"fresh run ({', '.join(fresh_scales) or 'none shown'}, runs/): no record yet"),
        Line2D([], [], color="#d1352b", ls="--", label="margin (each row's own)"),
        Line2D([], [], ls="", marker="|", color="#555555", ms=11, mew=1.5, label="zero effect"),
    ]
    fig_h = fig.get_size_inches()[1]
    axes_h = fig_h * (fig.subplotpars.top - fig.subplotpars.bottom)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.6 / axes_h), ncol=5, fontsize=7.5, frameon=False)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    runtime.atomic_write_bytes(Path(path), buf.getvalue())
    return frows


# ----------------------------------------------------------------------------- rendering


def _copy_run(view: RunView, name: str, report_dir: Path) -> None:
    """Copy a run's figures and result.json beside the report: ``<study>/<record|scale>/``."""
    sub = "record" if view.source == "record" else view.scale
    dst_dir = report_dir / name / sub
    dst_dir.mkdir(parents=True, exist_ok=True)
    view.figures = []
    for f in view.result.figures:
        src = view.folder / f.file
        if src.exists():
            dst = dst_dir / Path(f.file).name
            shutil.copyfile(src, dst)
            view.figures.append({"name": dst.name, "src": f"{name}/{sub}/{dst.name}", "caption": f.caption})
        else:
            view.figures.append({"name": Path(f.file).name, "src": "", "caption": f"(missing file {f.file}) {f.caption}"})
    src_json = view.folder / RESULT_FILE
    if src_json.exists():
        shutil.copyfile(src_json, dst_dir / RESULT_FILE)
        view.json_href = f"{name}/{sub}/{RESULT_FILE}"


def build_report(out: str | Path = "runs", scale: Scale | str | None = None, rows: list[StudyRow] | None = None,
                 records: str | Path = RECORDS) -> Path:
    """Render ``<out>/report/index.html``, its forest plot and one page per study; return the index path.

    ``rows`` are what :func:`collect` read for the same ``out``, ``scale`` and ``records`` (read
    here if not given)."""
    import jinja2

    from . import __version__

    out = Path(out)
    report_dir = runtime.ensure_writable_dir(out / "report")
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reprolab", "templates"), autoescape=jinja2.select_autoescape(["html", "j2"])
    )
    common: dict[str, Any] = {"version": __version__, "generated": time.strftime("%Y-%m-%d %H:%M:%S"), "styles": STYLES}
    rows = collect(out, scale, records) if rows is None else rows
    for row in rows:
        for view in row.runs:
            _copy_run(view, row.name, report_dir)
        page = env.get_template("study.html.j2").render(s=row, title=f"reprolab: {row.name}", **common)
        runtime.atomic_write_text(report_dir / f"{row.name}.html", page)
    forest_plot(rows, report_dir / FOREST_FILE)
    fresh_scales = sorted({r.fresh.scale for r in rows if r.fresh is not None})
    index = env.get_template("index.html.j2").render(
        studies=rows, benches=collect_benches(out), forest=FOREST_FILE, title="reprolab report",
        fresh_scales=", ".join(fresh_scales) or (Scale.parse(scale).value if scale else "none yet"), **common)
    return runtime.atomic_write_text(report_dir / "index.html", index)


def summary_line(row: StudyRow) -> str:
    """One line per study for the terminal: the fresh run's claims (ours vs paper, verdict) and the record's verdict."""
    rec = row.record.label if row.record is not None else NO_RECORD_LABEL
    if row.fresh is None:
        return f"{row.name:<18} fresh: not run (no saved result) | record: {rec}"
    f = row.fresh
    parts = [f"{c.key}: ours {c.fresh.ours} | paper {c.paper} -> {c.fresh.label}" for c in row.claims]
    reason = f" ({f.result.reason})" if f.result.reason else ""
    return f"{row.name:<18} [{f.scale}, {f.wall}] {f.label}{reason}: " + "; ".join(parts) + f" | record: {rec}"
