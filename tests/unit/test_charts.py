"""The report's SVG charts, from a synthetic run that draws every kind: each is valid SVG,
inert (no script, no comment, nothing fetched from outside), names what it shows, draws the
95% CI whiskers, and uses a log axis exactly where the chart says it does."""

from __future__ import annotations

import base64
import csv
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from serverless_hpc import charts
from serverless_hpc.report import build_report
from tests.unit.test_report_answers import job_records, write_run

SVG = "{http://www.w3.org/2000/svg}"
EVERY_CHART = (
    "latency_by_fanout.svg",
    "makespan_by_fanout.svg",
    "cold_vs_warm.svg",
    "cold_start_breakdown.svg",
    "pareto_time_cost.svg",
    "projection_lambda_model.svg",
    "time_and_cost_by_memory.svg",
)
SHARDS = (1, 2, 4)
REPEATS = 6  # the fewest with a 95% CI of a median


def _jobs() -> list[list[dict[str, Any]]]:
    """dataproc on two targets at three fan-outs (cold first jobs with a breakdown), and a
    classify memory sweep at 512, 1024 and 2048 MB on local-faas."""
    jobs: list[list[dict[str, Any]]] = []
    for target, base_ms in (("local-faas", 400.0), ("standalone", 90.0)):
        for shards in SHARDS:
            times = [base_ms / shards * (1 + 0.02 * k) for k in range(REPEATS)]
            made = job_records(
                target,
                times,
                shards=shards,
                workload="dataproc",
                items=12000 // shards,
                duration_ms=times[0] * 0.9,
                memory_mb=2048 if target == "local-faas" else None,
            )
            for r in made[0]:
                r["cold"] = True
                r["client_ms"] *= 8
                r["breakdown"] = {"process_start_ms": 40.0, "import_ms": 300.0, "load_ms": 60.0}
            jobs += made
    for memory, ms in ((512, 1500.0), (1024, 800.0), (2048, 420.0)):
        jobs += job_records(
            "local-faas",
            [ms * (1 + 0.01 * k) for k in range(5)],
            shards=2,
            workload="classify",
            items=100,
            duration_ms=ms,
            memory_mb=memory,
        )
    return jobs


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The report of the synthetic run, built once: file name -> path."""
    meta = {"run_id": "charts", "started": 1.0, "finished": 2.0}
    return build_report(write_run(tmp_path_factory.mktemp("charts") / "run", _jobs(), meta))


def _tree(path: Path) -> ET.Element:
    return ET.fromstring(path.read_bytes())


def _texts(root: ET.Element) -> list[str]:
    return [t.strip() for t in root.itertext() if t.strip()]


def _classes(el: ET.Element) -> set[str]:
    return set((el.get("class") or "").split())


def _ticks(panel: ET.Element, axis: str) -> list[tuple[float, float]]:
    """(value, px) of one axis's tick labels in a panel: ``x`` or ``y``."""
    out = []
    for group in panel.iter(f"{SVG}g"):
        if {"axis", axis} <= _classes(group):
            for text in group.iter(f"{SVG}text"):
                if text.text and text.text.strip():
                    out.append((float(text.text), float(text.get(axis) or "nan")))
    return out


def _affine(pairs: list[tuple[float, float]], scale: Any) -> bool:
    """Whether the pixel positions are an affine function of ``scale(value)``."""
    if scale is math.log10 and min(v for v, _ in pairs) <= 0:
        return False  # a log axis cannot hold zero
    (v0, p0), (v1, p1) = pairs[0], pairs[-1]
    slope = (p1 - p0) / (scale(v1) - scale(v0))
    return all(abs(p0 + slope * (scale(v) - scale(v0)) - p) < 0.5 for v, p in pairs)


def _panels(root: ET.Element) -> list[ET.Element]:
    """The pygal panels nested in a composed chart."""
    return [el for el in root if el.tag == f"{SVG}svg"]


def test_every_chart_is_written_as_svg_and_shown_inert_in_the_page(built: dict[str, Path]) -> None:
    # THEN every chart kind was drawn, as an SVG document
    assert set(EVERY_CHART) <= set(built)
    page = built["report.html"].read_text()
    for name in EVERY_CHART:
        raw = built[name].read_bytes()
        root = ET.fromstring(raw)
        assert root.tag == f"{SVG}svg" and _panels(root), name
        # AND the page shows exactly this file as a data: image (an image never runs script)
        assert f"data:image/svg+xml;base64,{base64.b64encode(raw).decode()}" in page, name
    assert "data:image/png" not in page and not list(built["report.html"].parent.glob("*.png"))


def assert_inert(raw: str) -> None:
    """Assert that an SVG document runs nothing, says nothing of how it was made and fetches
    nothing (every chart file of the report must pass)."""
    root = ET.fromstring(raw)
    # THEN no script element, no event handler, no comment (pygal's carry its URL and a date)
    assert "<script" not in raw.lower() and "<!--" not in raw
    assert not [
        el for el in root.iter() if el.tag.rpartition("}")[2] in ("script", "foreignObject")
    ]
    assert not [k for el in root.iter() for k in el.attrib if k.lower().startswith("on")]
    # AND no URL but the XML namespaces: nothing is fetched when the chart is shown
    assert "http" not in re.sub(r'xmlns(:\w+)?="[^"]*"', "", raw)
    assert not re.search(r"url\(\s*['\"]?(?!#)", raw) and "@import" not in raw
    # AND ids stay unique although panels are nested (each panel's styles are scoped by id)
    ids = [el.get("id") for el in root.iter() if el.get("id")]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", EVERY_CHART)
def test_a_chart_holds_no_script_no_comment_and_no_outside_reference(
    built: dict[str, Path], name: str
) -> None:
    assert_inert(built[name].read_text(encoding="utf-8"))


def test_charts_name_what_they_show(built: dict[str, Path]) -> None:
    def shown(name: str) -> str:
        """A chart's text, one space between texts: pygal breaks a long title into lines."""
        return " " + " ".join(_texts(_tree(built[name]))) + " "

    def has(name: str, *wanted: str) -> bool:
        missing = [w for w in wanted if f" {w} " not in shown(name)]
        assert not missing, (name, missing)
        return True

    assert has("latency_by_fanout.svg", "local-faas", "standalone", "dataproc: by fan-out")
    assert has("latency_by_fanout.svg", "shards (fan-out)")
    assert has("makespan_by_fanout.svg", "makespan: first send to last reply (ms)")
    assert has("cold_vs_warm.svg", "cold", "warm", "local-faas / dataproc", "standalone / dataproc")
    assert has("cold_start_breakdown.svg", "process start", "imports", "model + data load")
    assert has("cold_start_breakdown.svg", "dataproc: where a cold start's time goes")
    assert has("pareto_time_cost.svg", "Pareto front", "local-faas (cost: model)")
    assert has("pareto_time_cost.svg", "dataproc: time against cost (labels: shards, memory)")
    assert has("pareto_time_cost.svg", "4, 2048 MB")  # a point's label: fan-out, memory
    assert has(
        "projection_lambda_model.svg",
        "Projection (a model, not a measurement)",
        "MODEL: dataproc projected to Lambda",
        "2048 MB cold",
        "2048 MB warm",
        "makespan (s)",
        "cost per job (USD)",
    )
    assert has(
        "time_and_cost_by_memory.svg",
        "local-faas classify x2",
        "median ms (left axis)",
        "USD per job (Lambda-equivalent model) (right axis)",
        "512",  # each size labelled as a whole number of MB
        "1024",
        "2048",
    )
    assert "cheapest" in shown("time_and_cost_by_memory.svg")


def test_fan_out_charts_draw_a_95_ci_whisker_at_every_point_that_has_one(
    built: dict[str, Path],
) -> None:
    rows = list(csv.DictReader(built["summary.csv"].open(encoding="utf-8")))
    for name, low in (
        ("latency_by_fanout.svg", "ci95_low_ms"),
        ("makespan_by_fanout.svg", "makespan_ci95_low_ms"),
    ):
        (panel,) = _panels(_tree(built[name]))
        whiskers = [g for g in panel.iter(f"{SVG}g") if "ci" in _classes(g)]
        # THEN one whisker per dataproc summary row with an interval (>= 6 values)
        expected = [r for r in rows if r["workload"] == "dataproc" and r[low]]
        assert expected and len(whiskers) == len(expected), name
    # AND every latency row has one: two targets at three fan-outs, 6+ invocations each
    (panel,) = _panels(_tree(built["latency_by_fanout.svg"]))
    assert len([g for g in panel.iter(f"{SVG}g") if "ci" in _classes(g)]) == 2 * len(SHARDS)


@pytest.mark.parametrize(
    ("name", "log_x", "log_y"),
    [
        ("latency_by_fanout.svg", False, False),
        ("cold_vs_warm.svg", None, True),  # bars: categories on x
        ("pareto_time_cost.svg", True, True),
        ("projection_lambda_model.svg", True, False),
        ("time_and_cost_by_memory.svg", True, False),
    ],
)
def test_log_axes_are_where_the_chart_uses_them(
    built: dict[str, Path], name: str, log_x: bool | None, log_y: bool
) -> None:
    panel = _panels(_tree(built[name]))[0]
    for axis, log in (("x", log_x), ("y", log_y)):
        if log is None:
            continue
        ticks = _ticks(panel, axis)
        assert len({v for v, _ in ticks}) >= 3, (name, axis, ticks)
        # THEN tick positions are affine in log10(value) on a log axis, in value otherwise
        assert _affine(ticks, math.log10 if log else float), (name, axis, ticks)
        assert not _affine(ticks, float if log else math.log10), (name, axis, ticks)


def test_a_bar_on_a_log_axis_starts_at_the_axis_so_the_smallest_value_has_a_bar(
    built: dict[str, Path],
) -> None:
    (panel,) = _panels(_tree(built["cold_vs_warm.svg"]))
    heights = [
        float(r.get("height") or 0) for r in panel.iter(f"{SVG}rect") if "rect" in _classes(r)
    ]
    # cold and warm dataproc on two targets, warm classify on one: five bars, none flat
    assert len(heights) == 5 and min(heights) > 5


def test_the_chart_settings_that_keep_an_svg_inert_cannot_be_overridden() -> None:
    # GIVEN a chart asked for pygal's tooltip script from a CDN and an XML declaration
    made = charts.chart(
        "Bar", js=["//cdn.example/pygal-tooltips.js"], disable_xml_declaration=False
    )
    made.add("a", [1, 2, 3])
    svg = charts.render(made).svg
    # THEN it has neither: no script at all (pygal writes its config as one), no declaration
    assert "<script" not in svg and "cdn.example" not in svg and not svg.startswith("<?xml")


def test_compose_escapes_its_title_and_keeps_panel_sizes() -> None:
    made = charts.chart("Bar", width=300, height=200)
    made.add("a", [1, 2])
    one = charts.render(made)
    doc = charts.compose([one, one, one], columns=2, title='<b> & "q"')
    root = ET.fromstring(doc)
    assert root.get("width") == "600" and root.get("height") == str(36 + 2 * 200)
    assert '<b> & "q"' in _texts(root) and b"<b>" not in doc
    placed = [(p.get("x"), p.get("y")) for p in _panels(root)]
    assert placed == [("0", "36"), ("300", "36"), ("0", "236")]
    with pytest.raises(ValueError, match="no panel"):
        charts.compose([])


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [
        (3.0, 40.0, [2.0, 5.0, 10.0, 20.0, 50.0]),
        (0.021, 0.048, [0.02, 0.03, 0.04, 0.05]),  # within one 1-2-5 step: 1 to 9
        (1e-7, 3e-3, [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2]),  # > 3 decades: powers of ten
        (10.0, 10.0, [5.0, 10.0, 20.0]),  # one value: its neighbours too
    ],
)
def test_log_ticks_cover_the_values_with_1_2_5_steps(
    low: float, high: float, ticks: list[float]
) -> None:
    assert charts.log_ticks(low, high) == pytest.approx(ticks)


def test_log_ticks_refuse_values_a_log_axis_cannot_show() -> None:
    with pytest.raises(ValueError, match="positive"):
        charts.log_ticks(0.0, 1.0)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.25, "0.25"),
        (1500.0, "1500"),
        (999.6, "1000"),
        (8e-05, "8e-05"),
        (0.00012, "1.2e-04"),
        (0.0, "0"),
    ],
)
def test_labels_read_as_plain_numbers(value: float, text: str) -> None:
    assert charts.fmt3(value) == text


def test_importing_the_report_and_the_charts_loads_no_pygal() -> None:
    code = (
        "import sys, serverless_hpc.charts, serverless_hpc.picks, serverless_hpc.report.plots\n"
        "print('pygal' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
