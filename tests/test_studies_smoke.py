"""Every registered study runs at smoke scale, so a new paper cannot break `make demo` unnoticed."""

from __future__ import annotations

import pytest

from reprolab.study import Verdict, studies


@pytest.mark.parametrize("name", sorted(studies()))
def test_study_smoke_run(name, smoke_run):
    result, out = smoke_run(name)  # shared with the papers' own smoke tests (tests/conftest.py)
    # Every skip reason today is something `make setup` / `make assets` installs (which `make test`
    # runs first), so a skip here means the set-up is broken: fail, do not pass quietly.
    assert result.status == "ok", f"{name} was skipped at smoke scale: {result.reason}"
    assert {c.key for c in result.claims} == {c.key for c in studies()[name].claims}
    for c in result.claims:
        assert isinstance(c.verdict, Verdict)
    for f in result.figures:
        assert (out / name / "smoke" / f.file).stat().st_size > 1000
