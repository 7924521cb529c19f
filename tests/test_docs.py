from __future__ import annotations

import re
from pathlib import Path

from reprolab.docs import ROOT, read_status, readme_table

PAPERS = Path(ROOT).parent / "shared" / "papers" / "README.md"


def test_status_lists_all_23_papers():
    rows = read_status()
    assert [int(r.number) for r in rows] == list(range(1, 24))
    assert len({r.folder for r in rows}) == 23
    if PAPERS.exists():  # names as in the spec sheets' index
        folders = re.findall(r"^\| \d+ \| (`\w+`) \|", PAPERS.read_text(), flags=re.M)
        assert [r.folder for r in rows] == folders


def test_readme_table_is_generated_from_status():
    readme = (ROOT / "README.md").read_text()
    assert readme_table(read_status()) in readme, "README.md is stale: run `make readme`"
    assert readme.index("make demo") < readme.index("## The papers") and readme.index("make test") < readme.index("## The papers")
