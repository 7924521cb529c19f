"""The HTML report, rendered from saved results alone (``runs/<study>/<scale>/result.json``).

``runs/report/index.html`` has one table of every registered study's claims (paper, claim,
paper's figure, ours, verdict, wall time, scale); ``runs/report/<study>.html`` has the
study's figures, rules, config, metrics and provenance. A study with no saved result is
shown as ``not run``. Nothing here runs a study.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import runtime
from .study import RESULT_FILE, BenchResult, BenchRow, ClaimOutcome, Result, Scale, Verdict, benches, overall_verdict, studies

SCALE_PREFERENCE = (Scale.FULL, Scale.QUICK, Scale.SMOKE)


@dataclass
class StudyRow:
    """What the templates need of one study."""

    name: str
    title: str
    arxiv: str
    code: str | None
    result: Result | None
    claims: list[ClaimOutcome]
    scale: str = "-"
    wall: str = "-"
    reason: str | None = None
    figures: list[dict[str, str]] = field(default_factory=list)
    scales: str = ""
    metrics: str = ""
    provenance: str = ""
    changelog: list[tuple[int, str]] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return overall_verdict(self.claims)


def pick_result(out: Path, name: str, scale: Scale | None = None) -> Result | None:
    """The result to show for a study: the given scale, else the largest scale on disk."""
    order = (scale,) if scale else SCALE_PREFERENCE
    for s in order:
        p = out / name / s.value / RESULT_FILE
        if p.exists():
            return Result.load(p)
    return None


def _fmt_wall(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def collect(out: str | Path = "runs", scale: Scale | None = None) -> list[StudyRow]:
    out = Path(out)
    rows = []
    for name, cls in studies().items():
        res = pick_result(out, name, scale)
        if res is None:
            claims = [ClaimOutcome(c.key, c.statement, c.paper, c.rule, Verdict.NOT_RUN, "not run") for c in cls.claims]
            row = StudyRow(name, cls.paper.title, cls.paper.arxiv, cls.paper.code, None, claims, reason="no saved result")
        else:
            row = StudyRow(
                name, res.title, res.arxiv, cls.paper.code, res, res.claims, scale=res.scale, wall=_fmt_wall(res.wall_seconds), reason=res.reason
            )
            row.metrics = json.dumps(res.metrics, indent=2)
            row.provenance = json.dumps({"config": res.config, "versions": res.versions, "machine": res.machine}, indent=2)
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


def build_report(out: str | Path = "runs", scale: Scale | None = None, rows: list[StudyRow] | None = None) -> Path:
    """Render ``<out>/report/index.html`` and one page per study; return the index path.

    ``rows`` are what :func:`collect` read for the same ``out`` and ``scale`` (read here if not given)."""
    import jinja2

    from . import __version__

    out = Path(out)
    report_dir = runtime.ensure_writable_dir(out / "report")
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reprolab", "templates"), autoescape=jinja2.select_autoescape(["html", "j2"])
    )
    common: dict[str, Any] = {"version": __version__, "generated": time.strftime("%Y-%m-%d %H:%M:%S")}
    rows = collect(out, scale) if rows is None else rows
    for row in rows:
        if row.result is not None:
            src_dir = out / row.name / row.result.scale
            dst_dir = report_dir / row.name
            for f in row.result.figures:
                src = src_dir / f.file
                if src.exists():
                    dst = dst_dir / Path(f.file).name
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dst)
                    row.figures.append({"src": f"{row.name}/{dst.name}", "caption": f.caption})
                else:
                    row.figures.append({"src": "", "caption": f"(missing file {f.file}) {f.caption}"})
        page = env.get_template("study.html.j2").render(s=row, title=f"reprolab: {row.name}", **common)
        runtime.atomic_write_text(report_dir / f"{row.name}.html", page)
    index = env.get_template("index.html.j2").render(studies=rows, benches=collect_benches(out), title="reprolab report", **common)
    return runtime.atomic_write_text(report_dir / "index.html", index)


def summary_line(row: StudyRow) -> str:
    """One line per study for the terminal: claim, ours vs paper, verdict."""
    if row.result is None:
        return f"{row.name:<18} not run ({row.reason})"
    parts = [f"{c.key}: ours {c.ours} | paper {c.paper} -> {c.verdict.value}" for c in row.claims]
    return f"{row.name:<18} [{row.scale}, {row.wall}] {row.verdict.value}: " + "; ".join(parts)
