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
        assert items.count() == 3  # classify, dataproc, train: the default workloads
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


APP_JS = Path(__file__).resolve().parents[2] / "serverless_hpc" / "serve" / "static" / "app.js"


def test_the_live_chart_gives_each_workload_its_own_panel_and_axis(browser: Any) -> None:
    """A training's minutes beside a classification's milliseconds: each workload is drawn on
    its own latency axis, so neither lies flat on zero."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.set_content("<!doctype html><html><body><div id='host'></div></body></html>")
        page.add_script_tag(path=str(APP_JS))
        records = [
            {"ok": True, "target": t, "workload": w, "shards": n, "client_ms": ms}
            for t in ("local-faas", "standalone")
            for w, n, ms in (
                ("classify", 1, 20.0),
                ("classify", 5, 12.0),
                ("train", 1, 280_000.0),
            )
        ]
        out = page.evaluate(
            """(records) => {
                const chart = new FanoutChart();
                document.getElementById("host").append(chart.legend, chart.node);
                chart.add(records);
                chart.draw();
                const panels = [...chart.node.querySelectorAll("g.panel")];
                return {
                  panels: panels.map((g) => g.dataset.workload),
                  points: chart.node.dataset.points,
                  heights: panels.map((g) => {
                    const ys = [...g.querySelectorAll("circle")].map((c) => +c.getAttribute("cy"));
                    const axis = g.querySelector("line.axis");
                    const y1 = +axis.getAttribute("y1"), y2 = +axis.getAttribute("y2");
                    return (Math.max(...ys) - Math.min(...ys) + (y2 - Math.max(...ys))) / (y2 - y1);
                  }),
                  legend: [...chart.legend.querySelectorAll("span")].map((s) => s.textContent),
                };
            }""",
            records,
        )
        assert out["panels"] == ["classify", "train"]
        assert out["points"] == str(len(records))
        assert out["legend"] == ["local-faas", "standalone"]
        # in each panel the slowest point reaches most of the way up its own axis
        assert all(h > 0.8 for h in out["heights"]), out["heights"]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "live-chart-panels.png"), full_page=True)
    finally:
        context.close()
