"""The report's verdict in a real headless Chromium: at 1300x900 it is on the first screen,
before any scrolling, with the model's details folded away (a small synthetic run, so fast).

The page is kept as a screenshot under ``test-artifacts/e2e/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from serverless_hpc.report import build_report
from tests import synthetic_run
from tests.e2e.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser]

VIEWPORT = {"width": 1300, "height": 900}


def test_the_verdict_is_visible_without_scrolling(browser: Any, tmp_path: Path) -> None:
    run = synthetic_run.write(tmp_path / "run")
    build_report(run, plots=True, jobs_per_hour=(1.0, 1000.0))
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto((run / "report.html").as_uri())
        assert page.evaluate("window.scrollY") == 0
        verdict = page.locator("#verdict")
        box = verdict.bounding_box()
        assert box is not None
        # the whole verdict (every workload's sentence) lies inside the first screen
        assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], box
        items = verdict.locator("li")
        assert items.count() == 2
        for i in range(items.count()):
            assert items.nth(i).is_visible()
        assert items.nth(0).inner_text().startswith("classify at 1-1,000 jobs/h: ")
        assert "(model)" in items.nth(0).inner_text()
        # the rest is on demand: the emulation check is folded away until asked for
        more = page.locator("details#more")
        assert not more.locator("li").first.is_visible()
        more.locator("summary").click()
        assert more.locator("li").first.is_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / "report-verdict-1300x900.png"))
    finally:
        context.close()
