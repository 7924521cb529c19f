"""Run the usage example of a paper's README as written (the papers' test_<paper>_readme.py files).

``text = run_readme_example("zclip")`` executes the first ```python block of
``reprolab/papers/zclip/README.md`` (as module ``readme``) and returns the README's text;
``printed(text)`` is the block after "prints" that the README says the example prints.
"""

from __future__ import annotations

import re
from pathlib import Path

PAPERS = Path(__file__).resolve().parents[1] / "reprolab" / "papers"


def readme_path(paper: str) -> Path:
    return PAPERS / paper / "README.md"


def run_readme_example(paper: str) -> str:
    readme = readme_path(paper)
    text = readme.read_text()
    block = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    exec(compile(block, str(readme), "exec"), {"__name__": "readme"})
    return text


def printed(text: str) -> list[str]:
    """The lines of the README's "prints" block (what the usage example prints)."""
    return re.findall(r"prints\n\n```\n(.*?)```", text, re.S)[0].splitlines()
