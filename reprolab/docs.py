"""README's table of papers, generated from ``docs/status.md`` (the one place verdicts are typed).

``python -m reprolab.docs`` rewrites the block between the markers in README.md;
``python -m reprolab.docs --check`` exits 1 if README is stale (a test runs the check).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .runtime import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- papers:start (generated from docs/status.md by `make readme`) -->", "<!-- papers:end -->"


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


def read_status(path: Path = ROOT / "docs" / "status.md") -> list[StatusRow]:
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    readme_path = ROOT / "README.md"
    current = readme_path.read_text()
    new = render_readme(current, read_status())
    if "--check" in argv:
        if new != current:
            print("README.md's table is stale: run `make readme`", file=sys.stderr)
            return 1
        return 0
    if new != current:
        atomic_write_text(readme_path, new)
        print("README.md updated from docs/status.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
