"""The report in a real browser: headless Chromium opens index.html from disk, nothing may fail.

Screenshots (laptop viewport and full page) and a print-to-PDF are kept in test-artifacts/
(git-ignored) for a human to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from report_fakes import make_generation_run, make_sr_run

from medsyn.reports import build_report

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required under CI; .ci/run installs Debian chromium)")
    pytest.skip(reason)


def _chromium() -> str:
    for candidate in (os.environ.get("MEDSYN_CHROMIUM"), shutil.which("chromium"),
                      "/usr/bin/chromium", shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    _missing("headless Chromium not found (install the Debian package chromium)")


def test_report_renders_in_headless_chromium(tmp_path):
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package (dev extra) is not installed")

    runs = tmp_path / "runs"
    make_generation_run(runs, "acgan-cxr3", {2: 160.0, 4: 121.5, 6: 128.9})
    make_generation_run(runs, "cgan-pneumonia", {3: 41.0}, dataset="pneumoniamnist",
                        image_size=28, classes=["normal", "pneumonia"], n=4708, n_test=624,
                        model_kind="cgan")
    make_sr_run(runs)
    result = build_report(None, tmp_path / "reports", runs_root=runs)
    assert not result.problems
    url = result.index_html.resolve().as_uri()

    requests, failed, errors = [], [], []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1366, "height": 768})
        try:
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            page.on("response", lambda r: r.status >= 400 and failed.append(
                f"{r.url}: HTTP {r.status}"))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, wait_until="load")

            assert page.title() == "medsyn report"
            assert page.locator("h1").inner_text() == "medsyn report"
            assert page.locator("table.summary").count() >= 5
            assert page.locator("table.summary tr.baseline").count() >= 10
            broken = page.evaluate(
                "() => Array.from(document.images)"
                ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
            assert broken == []
            n_images = page.evaluate("() => document.images.length")
            assert n_images >= 15
            # the summary tables fit the laptop viewport or scroll inside their own box
            overflow = page.evaluate("() => document.documentElement.scrollWidth")
            assert overflow <= 1366

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report-laptop.png"))
            page.screenshot(path=str(ARTIFACTS / "report-full.png"), full_page=True)
            page.pdf(path=str(ARTIFACTS / "report-print.pdf"), format="A4", landscape=True,
                     print_background=True)
        finally:
            context.close()

    assert failed == [] and errors == []
    assert requests and all(u.startswith(("file://", "data:")) for u in requests), requests
    assert (ARTIFACTS / "report-print.pdf").stat().st_size > 10_000


def test_fidelity_table_fits_a_1100_px_window_without_scrolling(tmp_path):
    """Every column of the generation summary table is visible in a 1,100 px wide window (the
    table's own scroll box does not overflow), and the verdicts are on the page."""
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package (dev extra) is not installed")

    runs = tmp_path / "runs"
    make_generation_run(runs, "acgan-cxr3", {2: 160.0, 4: 121.5})
    result = build_report(None, tmp_path / "reports", runs_root=runs)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1100, "height": 800})
        try:
            page = context.new_page()
            page.goto(result.index_html.resolve().as_uri(), wait_until="load")
            boxes = page.evaluate(
                "() => Array.from(document.querySelectorAll('.scroll'))"
                ".map(b => [b.querySelector('h3, caption, th') ? b.scrollWidth : 0,"
                " b.clientWidth, b.querySelectorAll('thead th').length])")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report-1100.png"))
            assert boxes, "no summary table found"
            fidelity = boxes[0]
            assert fidelity[2] >= 10          # row head + the fidelity columns
            assert fidelity[0] <= fidelity[1] + 1, f"table overflows: {fidelity}"
            assert page.locator(".verdicts li.verdict").count() == 1
        finally:
            context.close()
