"""The report in a real browser: headless Chromium (Debian's ``chromium``, driven by playwright with
``executable_path``; never playwright's own browser download) opens ``index.html`` from disk and
every page it links to, and finds no failed request, no image that did not load and no relative
link to a file that does not exist.

Skips, saying how to install them, when playwright or Chromium is absent.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from reprolab import study as study_mod
from reprolab.report import build_report
from reprolab.study import run_study, save_record

CHROMIUM = os.environ.get("REPROLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: `make setup` (the dev extra) or `.venv/bin/pip install playwright==1.65.2`")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: `make assets` (or `apt-get install -y --no-install-recommends chromium`)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


def check_pages(browser, index: Path) -> dict[str, str]:
    """Open ``index`` and, transitively, every page it links to by a relative ``.html`` link, from
    disk; fail on a failed request, an image with no pixels, or a relative link whose file does
    not exist. Returns each visited page's name -> its visible text."""
    page = browser.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
    problems: list[str] = []
    todo, texts = [index.resolve()], {}
    while todo:
        path = todo.pop()
        if path.name in texts:
            continue
        page.goto(path.as_uri(), wait_until="load")
        texts[path.name] = page.inner_text("body")
        for img in page.eval_on_selector_all(
            "img", "els => els.map(e => ({src: e.getAttribute('src'), complete: e.complete, width: e.naturalWidth}))"
        ):
            if not (img["complete"] and img["width"] > 0):
                problems.append(f"{path.name}: image {img['src']!r} did not load")
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or not parts.path:  # https://arxiv.org/..., or "#fragment"
                continue
            target = (path.parent / unquote(parts.path)).resolve()
            if not target.is_file():
                problems.append(f"{path.name}: broken link {href!r}")
            elif target.suffix == ".html":
                todo.append(target)
    page.close()
    assert not failed, f"failed requests: {failed}"
    assert not problems, "\n".join(problems)
    return texts


def test_report_with_record_fresh_and_smoke_runs_in_chromium(browser, toy_study, tmp_path):
    """A toy record (full) beside its fresh quick run; every other study without results."""
    records = tmp_path / "results"
    run_study("toy", "full", out=tmp_path / "record-runs")
    save_record("toy", out=tmp_path / "record-runs", records=records)
    out = tmp_path / "runs"
    run_study("toy", "quick", out=out)
    texts = check_pages(browser, build_report(out, records=records))
    assert set(texts) == {"index.html"} | {f"{name}.html" for name in study_mod.studies()}
    assert "&#10003;" not in "".join(texts.values())
    assert "record" in texts["toy.html"] and "result.json" in texts["toy.html"]
    # a smoke run instead: its page and index show it as a code-path check
    smoke_out = tmp_path / "smoke-runs"
    run_study("toy", "smoke", out=smoke_out)
    texts = check_pages(browser, build_report(smoke_out, records=records))
    assert "smoke: code path only" in texts["toy.html"] and "smoke: code path only" in texts["index.html"]


def test_report_of_the_repository_records_in_chromium(browser, tmp_path):
    """The committed records (results/<name>/, with their figures) beside no fresh runs."""
    texts = check_pages(browser, build_report(tmp_path, records=study_mod.RECORDS))
    assert set(texts) == {"index.html"} | {f"{name}.html" for name in study_mod.studies()}


def test_the_check_catches_a_missing_image_and_a_broken_link(browser, tmp_path):
    """The control: a page with a missing image, and one with a link to a missing file, fail the check."""
    (tmp_path / "index.html").write_text('<html><body><a href="other.html">other</a></body></html>')
    (tmp_path / "other.html").write_text('<html><body><img src="missing.png" alt="x"></body></html>')
    with pytest.raises(AssertionError, match="missing.png"):
        check_pages(browser, tmp_path / "index.html")
    (tmp_path / "other.html").write_text('<html><body><a href="gone/result.json">gone</a></body></html>')
    with pytest.raises(AssertionError, match="broken link 'gone/result.json'"):
        check_pages(browser, tmp_path / "index.html")
