"""Documentation generated from the results of record (``results/<name>/result.json``).

``python -m reprolab.docs`` (``make readme``) rewrites, in this order:

1. each study folder's README block between ``<!-- record:start ... -->`` and
   ``<!-- record:end -->``: the record's claims (paper, ours, headline effect with its interval,
   verdict) with command, commit, wall time and machine;
2. the *study* column of ``docs/status.md`` for every folder with a registered study;
3. README.md's table of papers, from ``docs/status.md``.

``python -m reprolab.docs --check`` exits 1 if any of them is stale (a test runs the check), so
no verdict or number in the docs can disagree with its result file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .runtime import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- papers:start (generated from docs/status.md by `make readme`) -->", "<!-- papers:end -->"
RECORD_START = "<!-- record:start (generated from results/{name}/result.json by `make readme`; edit nothing inside) -->"
RECORD_END = "<!-- record:end -->"
STATUS = ROOT / "docs" / "status.md"


@dataclass(frozen=True)
class StatusRow:
    number: str
    folder: str
    paper: str
    arxiv: str
    method: str
    integration: str
    study: str
    benchmark: str



def _rejudged(res) -> str:
    """", verdicts by the v3 rules" when `reprolab rejudge --write` re-judged an older run."""
    return f", verdicts by the v{res.judged_by} rules (`reprolab rejudge`)" if res.judged_by else ""

def read_status(path: Path = STATUS) -> list[StatusRow]:
    rows = []
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 8 and cells[0].isdigit():
            rows.append(StatusRow(*cells))
    return rows


def readme_table(rows: list[StatusRow]) -> str:
    lines = [START, "| # | paper | folder | study verdict (ours vs paper) | method | benchmark |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.number} | {r.paper} ([{r.arxiv}](https://arxiv.org/abs/{r.arxiv})) | {r.folder} | {r.study} | {r.method} | {r.benchmark} |")
    lines.append(END)
    return "\n".join(lines)


def render_readme(readme: str, rows: list[StatusRow]) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md lacks the markers {START!r} ... {END!r}")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + readme_table(rows) + tail


def _replace_between(text: str, start: str, end: str, body: str, where: str) -> str:
    if start not in text or end not in text:
        raise SystemExit(f"{where} lacks the markers {start!r} ... {end!r}: add them where the generated text goes")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return head + start + "\n" + body + "\n" + end + tail


def _num(x: float) -> str:
    if abs(x) >= 1e299:
        return "-inf" if x < 0 else "inf"
    return f"{x:.3g}"


def headline_text(h: dict | None) -> str:
    """``+0.012 [-0.03, 0.05] over 3 seeds (t, margin 0)`` from a saved Comparison."""
    if not h:
        return "-"
    margin = f", margin {_num(h['margin'])}" if h.get("margin") else ""
    level = h.get("confidence", 0.95)
    conf = "" if abs(level - 0.95) < 1e-9 else f", {100 * level:g}% interval"
    return f"{_num(h['effect'])} [{_num(h['low'])}, {_num(h['high'])}] over {h['n']} {h['unit']} ({h['method']}{conf}{margin})"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def record_block(name: str, records: Path | None = None) -> str:
    """The generated README block of one study: its record's claims and provenance."""
    from .study import RECORDS, load_record, overall_verdict

    res = load_record(name, records or RECORDS)
    if res is None:
        return (f"No result of record yet. To make one: `reprolab run {name} --scale full && reprolab record {name} && make readme` "
                f"(commit `results/{name}/`).")
    wall = res.wall_seconds
    lines = [
        f"**{overall_verdict(res.claims).value}** (study v{res.version}{_rejudged(res)}, `{res.command}`, commit `{(res.commit[:12] + ('+dirty' if res.commit.endswith('+dirty') else '')) if res.commit else '?'}`, "
        f"{wall / 60:.1f} min on {res.timings.get('threads', '?')} threads, {res.machine.get('cpu_count', '?')} CPUs, "
        f"{res.machine.get('cuda') or 'no GPU'}, {res.timings.get('started', '?')}). "
        f"Effects are in the paper's direction (positive = the paper's side); the verdict is the headline's interval against its margin.",
        "",
        "| claim | paper | ours | headline: effect [95% interval unless stated] | verdict |",
        "|---|---|---|---|---|",
    ]
    for c in res.claims:
        lines.append(f"| {c.key} | {_cell(c.paper)} | {_cell(c.ours)} | {_cell(headline_text(c.headline))} | **{c.verdict.value}** |")
    figs = ", ".join(f"[{Path(f.file).stem}](../../../results/{name}/{f.file})" for f in res.figures)
    if figs:
        lines += ["", f"Figures of record: {figs}."]
    return "\n".join(lines)


def status_cell(name: str, records: Path | None = None) -> str:
    """The study column of docs/status.md for a folder with a registered study."""
    from .study import RECORDS, load_record, overall_verdict

    res = load_record(name, records or RECORDS)
    if res is None:
        return "no record yet (the full run is pending)"
    parts = [f"{c.key} {c.verdict.value} ({_cell(c.ours)})" for c in res.claims]
    return f"{overall_verdict(res.claims).value} (record, study v{res.version}{_rejudged(res)}): " + "; ".join(parts)


def render_status(text: str, cells: dict[str, str]) -> str:
    """docs/status.md with the study column of the given folders replaced."""
    out = []
    for line in text.splitlines(keepends=True):
        cells_ = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells_) == 8 and cells_[0].isdigit() and cells_[1].strip("`") in cells:
            cells_[6] = cells[cells_[1].strip("`")]
            line = "| " + " | ".join(cells_) + " |\n"
        out.append(line)
    return "".join(out)


def generated_files(records: Path | None = None) -> dict[Path, str]:
    """Every generated file's new text, keyed by path (nothing written)."""
    from .study import studies

    new: dict[Path, str] = {}
    names = list(studies())
    for name in names:
        readme = ROOT / "reprolab" / "papers" / name / "README.md"
        start = RECORD_START.format(name=name)
        new[readme] = _replace_between(readme.read_text(), start, RECORD_END, record_block(name, records), str(readme))
    status = render_status(STATUS.read_text(), {n: status_cell(n, records) for n in names})
    new[STATUS] = status
    readme_path = ROOT / "README.md"
    rows = []
    for line in status.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 8 and cells[0].isdigit():
            rows.append(StatusRow(*cells))
    new[readme_path] = render_readme(readme_path.read_text(), rows)
    return new


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    new = generated_files()
    stale = [p for p, text in new.items() if p.read_text() != text]
    if "--check" in argv:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is stale (its generated part disagrees with results/): run `make readme`", file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        atomic_write_text(p, new[p])
        print(f"{p.relative_to(ROOT)} updated from results/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
