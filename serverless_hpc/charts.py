"""The one place the report's charts are configured: pygal (pure Python), SVG out, inert.

Every chart of the report (:mod:`serverless_hpc.report.plots`, the trainings' in
:mod:`serverless_hpc.report.training`) and of the memory picks
(:func:`serverless_hpc.picks.plot_memory`) is made by :func:`chart` and written as one SVG
document (UTF-8 bytes) by :func:`compose`, so sizes, fonts, colours and the safety settings
are set here once. An SVG made here holds no ``<script>`` (pygal's
tooltip script is not linked, ``js=[]``, and the configuration script pygal always writes is
removed), no comment and no reference to anything outside itself: it is shown in the report
as a ``data:`` image, which a browser never runs anyway, and it opens on its own too.

pygal is imported inside the functions only: importing this module (and the driver, and
:mod:`serverless_hpc.picks`) loads no charting library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from html import escape  # not xml.sax.saxutils: it imports urllib.request (~20 ms)
from typing import Any, Final

#: A panel's size in px. Two panels side by side fill the report's 1200 px column at 1:1.
WIDTH: Final = 600
HEIGHT: Final = 400
#: Series colours (matplotlib's "tab10", the colours of the report's earlier PNG plots).
PALETTE: Final = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: The colour that says "attention": the Pareto front, the MODEL title.
ALERT: Final = "#b00020"
FONT: Final = 'system-ui, "DejaVu Sans", "Liberation Sans", Arial, sans-serif'
#: More decades than this on a log axis: ticks at powers of ten only, not 1-2-5.
DENSE_DECADES: Final = 3
#: A log axis reaches this factor beyond its end ticks: pygal does not draw a tick label
#: that falls exactly on the plot's edge, and points on the edge would touch the frame.
LOG_ROOM: Final = 10**0.03

_SVG_NS: Final = "http://www.w3.org/2000/svg"
_XLINK_NS: Final = "http://www.w3.org/1999/xlink"


def fmt3(value: float) -> str:
    """A tick or value label: three significant digits, no trailing zeros (``0.25``), whole
    numbers from 1000 up (``1500``, never ``1.5e+03``); below 0.001 always in powers of ten
    (``8e-05``, ``1.2e-04``), so one axis of small costs does not mix the two notations."""
    if abs(float(f"{value:.3g}")) >= 1e3:
        return f"{value:.0f}"
    if value == 0 or abs(value) >= 1e-3:
        return f"{value:.3g}"
    mantissa, _, exponent = f"{value:.2e}".partition("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


def fmt_count(value: float) -> str:
    """A label of a count or size (fan-out, MB): a whole number from 1 up (``1769``), else
    :func:`fmt3`."""
    return f"{value:.0f}" if value >= 1 else fmt3(value)


@dataclass(frozen=True)
class Panel:
    """One rendered chart: SVG text (no XML declaration) and its size in px."""

    svg: str
    width: int
    height: int


def _style(colors: Sequence[str], *, marked: bool = False) -> Any:
    """The report's pygal style; with ``marked``, major guide lines are solid and in
    :data:`ALERT` (the chart's marked levels), else dashed grey like the others."""
    from pygal.style import Style

    return Style(
        background="white",
        plot_background="white",
        foreground="#222",
        foreground_strong="#222",
        foreground_subtle="#555",
        font_family=FONT,
        label_font_size=12,
        major_label_font_size=12,
        value_font_size=11,
        value_label_font_size=11,
        tooltip_font_size=12,
        title_font_size=15,
        legend_font_size=12,
        guide_stroke_color="#d0d0d0",
        major_guide_stroke_color=ALERT if marked else "#b0b0b0",
        guide_stroke_dasharray="3,3",
        major_guide_stroke_dasharray="none" if marked else "3,3",
        opacity=".85",
        opacity_hover=".85",
        stroke_width="2",
        colors=tuple(colors),
        # Confidence-interval whiskers in their series' colour.
        ci_colors=tuple(colors),
    )


def config(*, colors: Sequence[str] = PALETTE, marked: Sequence[float] = (), **options: Any) -> Any:
    """A pygal ``Config`` with the report's settings, then ``options`` (pygal's own names).

    ``marked``: y values (among the y labels) drawn as the only major guide lines, solid and
    in :data:`ALERT`: a level the chart is read against, such as a target accuracy.

    The settings that make the SVG inert and self-contained are not options: ``js`` empty
    (pygal's default links its tooltip script from a CDN), no XML declaration (the SVG is
    nested and inlined), no Google font.
    """
    import pygal

    cfg = pygal.Config()
    cfg.width = WIDTH
    cfg.height = HEIGHT
    cfg.style = _style(colors, marked=bool(marked))
    if marked:
        cfg.y_labels_major = list(marked)
    cfg.legend_at_bottom = True
    # Columns left to pygal (ceil(sqrt(series))): with a fixed count, pygal 3.1.3 reserves
    # too few legend rows and the legend is cut off at the bottom.
    cfg.legend_at_bottom_columns = None
    cfg.truncate_legend = -1
    cfg.truncate_label = -1
    cfg.value_formatter = fmt3
    cfg.x_value_formatter = fmt3
    cfg.dots_size = 3.5
    cfg.margin = 14
    cfg.spacing = 10
    cfg.show_x_guides = False
    # At most about this many ticks per linear axis: pygal's default (16) crowds a panel.
    cfg.max_scale = 8
    for key, value in options.items():
        setattr(cfg, key, value)
    cfg.js = []
    cfg.disable_xml_declaration = True
    return cfg


def _inert(root: Any) -> Any:
    """Drop every ``<script>`` and comment from a chart's tree (pygal's xml filter hook),
    and the legend ids that only pygal's script uses.

    pygal writes its configuration as an inline script whatever ``js`` says, and comments
    that carry its home page and the date (output would change day to day). Its legend ids
    (``activate-serie-0``...) repeat in every chart: they would clash between the panels of
    one composed SVG.
    """
    for parent in list(root.iter()):
        if str(parent.get("id", "")).startswith("activate-serie-"):
            del parent.attrib["id"]
        for child in list(parent):
            tag = child.tag
            # Comments and processing instructions have a function, not a name, as tag.
            if not isinstance(tag, str) or tag.rpartition("}")[2] == "script":
                parent.remove(child)
    return root


@cache
def _classes() -> dict[str, Any]:
    """The chart classes :func:`chart` makes, by name (pygal imported on first use)."""
    import pygal

    class XY(pygal.XY):
        """pygal's XY chart, with the confidence intervals its Line parent draws.

        pygal 3.1.3 draws ``{'value': ..., 'ci': {...}}`` intervals on Line and Bar but fails
        on XY, whose values are (x, y) pairs: the interval is about y.
        """

        def _confidence_interval(self, node: Any, x: Any, y: Any, value: Any, meta: Any) -> None:
            point = value[1] if isinstance(value, tuple | list) else value
            super()._confidence_interval(node, x, y, point, meta)

    return {"XY": XY, "Bar": pygal.Bar, "StackedBar": pygal.StackedBar}


def chart(
    kind: str, *, colors: Sequence[str] = PALETTE, marked: Sequence[float] = (), **options: Any
) -> Any:
    """A new pygal chart of ``kind`` (``XY``, ``Bar``, ``StackedBar``) with the
    report's configuration (:func:`config`, which says what ``marked`` does) and ``options``;
    add series, then :func:`render`.

    ``XY`` draws confidence intervals given as ``{'value': (x, y), 'ci': {'low', 'high'}}``.
    """
    made = _classes()[kind](config(colors=colors, marked=marked, **options))
    made.add_xml_filter(_inert)
    return made


def render(made: Any) -> Panel:
    """A chart from :func:`chart` as a :class:`Panel` (SVG text, no script, no comment)."""
    return Panel(str(made.render(is_unicode=True)), int(made.config.width), int(made.config.height))


def compose(
    panels: Sequence[Panel],
    *,
    columns: int = 2,
    title: str | None = None,
    title_color: str = ALERT,
) -> bytes:
    """Panels in a grid of ``columns`` as one SVG document (UTF-8), under ``title`` if given.

    Each panel stays a nested ``<svg>`` with its own styles, scoped by pygal to the panel's
    id, so panels never restyle one another.
    """
    if not panels:
        raise ValueError("no panel to compose")
    columns = max(1, min(columns, len(panels)))
    col_w = max(p.width for p in panels)
    rows = [panels[i : i + columns] for i in range(0, len(panels), columns)]
    top = 36 if title else 0
    width = col_w * columns
    height = top + sum(max(p.height for p in row) for row in rows)
    label = title or "chart"
    parts = [
        f'<svg xmlns="{_SVG_NS}" xmlns:xlink="{_XLINK_NS}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        parts.append(
            f'<text x="{width / 2:g}" y="24" text-anchor="middle" font-family="{escape(FONT)}" '
            f'font-size="17" font-weight="bold" fill="{title_color}">{escape(title)}</text>'
        )
    y = top
    for row in rows:
        for i, panel in enumerate(row):
            at = f'<svg x="{i * col_w}" y="{y}" width="{panel.width}" height="{panel.height}" '
            parts.append(panel.svg.replace("<svg ", at, 1))
        y += max(p.height for p in row)
    parts.append("</svg>")
    return "".join(parts).encode("utf-8")


def log_ticks(low: float, high: float) -> list[float]:
    """Ticks of a log axis covering ``[low, high]`` (both > 0): 1-2-5 in each decade (powers
    of ten only over more than :data:`DENSE_DECADES` decades), finer steps (1 to 9, then
    halves, then tenths) while that gives fewer than three ticks. The first tick is at or
    below ``low`` and the last at or above ``high``, so they make the axis range too (a bar
    on a log axis starts at the range's bottom: the smallest value still gets a bar)."""
    if low <= 0 or high <= 0:
        raise ValueError("a log axis needs positive values")
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    finer = [
        (1.0,),
        (1.0, 2.0, 5.0),
        tuple(float(m) for m in range(1, 10)),
        tuple(m / 2 for m in range(2, 20)),
        tuple(m / 10 for m in range(10, 100)),
    ]
    ticks: list[float] = []
    for steps in finer[0 if last - first > DENSE_DECADES else 1 :]:
        ticks = _ticks_between(low, high, first, last, steps)
        if len(ticks) >= 3:
            break
    return ticks


def _ticks_between(
    low: float, high: float, first: int, last: int, steps: tuple[float, ...]
) -> list[float]:
    every = [float(f"{m * 10.0**e:.6g}") for e in range(first - 1, last + 2) for m in steps]
    below = [t for t in every if t <= low * (1 + 1e-9)]
    above = [t for t in every if t >= high * (1 - 1e-9)]
    lo, hi = (below[-1] if below else every[0]), (above[0] if above else every[-1])
    if lo == hi:  # one value on a tick: show the neighbouring ticks as well
        i = every.index(lo)
        lo, hi = every[max(0, i - 1)], every[min(len(every) - 1, i + 1)]
    return [t for t in every if lo <= t <= hi]


def padded(low: float, high: float, *, floor: float | None = 0.0) -> tuple[float, float]:
    """A linear axis range around ``[low, high]`` with 8% room each side (whiskers, labels),
    not below ``floor`` when the data are not."""
    room = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
    lo = low - room
    if floor is not None and low >= floor:
        lo = max(lo, floor)
    return lo, high + room


def _log_range(ticks: Sequence[float]) -> tuple[float, float]:
    return ticks[0] / LOG_ROOM, ticks[-1] * LOG_ROOM


def log_axis(values: Sequence[float]) -> dict[str, Any]:
    """pygal options of a log y axis over ``values``: range, 1-2-5 labels, and bars that
    start at the range's bottom (pygal starts them at the smallest value, which then has
    no bar)."""
    ticks = log_ticks(min(values), max(values))
    low, high = _log_range(ticks)
    return {"logarithmic": True, "range": (low, high), "y_labels": ticks, "zero": low}


def xy_log_axes(xs: Sequence[float], ys: Sequence[float], *, x_room: float = 1.0) -> dict[str, Any]:
    """pygal options of an XY chart with both axes logarithmic over ``xs`` and ``ys``; the
    x axis reaches at least ``x_room`` times the largest x (room for point labels)."""
    xt, yt = log_ticks(min(xs), max(xs) * x_room), log_ticks(min(ys), max(ys))
    return {
        "logarithmic": True,
        "xrange": _log_range(xt),
        "x_labels": xt,
        "range": _log_range(yt),
        "y_labels": yt,
    }


def log_x(
    values: Sequence[float], ticks: Sequence[float] | None = None
) -> tuple[Callable[[float], float], dict[str, Any]]:
    """A log x axis of counts or sizes on an otherwise linear XY chart, which pygal does not
    have: plot ``to_x(x)`` (log10 x) instead of x; the options label the axis in x's own
    units (:func:`fmt_count`), at ``ticks`` (default: 1-2-5 ticks over ``values``)."""
    at = list(ticks) if ticks else log_ticks(min(values), max(values))
    low, high = _log_range([min(*at, *values), max(*at, *values)])
    return math.log10, {
        "x_labels": [math.log10(t) for t in at],
        "xrange": (math.log10(low), math.log10(high)),
        "x_value_formatter": lambda v: fmt_count(10.0**v),
    }
