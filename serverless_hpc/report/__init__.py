"""The report: a run's records turned into a summary, plots, the answer and an HTML page.

Split by job: :mod:`.data` reads a run (skipping bad lines), :mod:`.stats` the statistics,
:mod:`.tables` the summary (CSV, Markdown), :mod:`.checks` each workload's checks,
:mod:`.headline` the answer in sentences, :mod:`.decision` functions against a VM,
:mod:`.projection` the Lambda model, :mod:`.cloud` and :mod:`.verdict` both sides of the
cloud question and the verdict, :mod:`.timeline` per-batch timelines, :mod:`.plots`
SVG charts (pygal, imported lazily), :mod:`.html` (Jinja2 templates, autoescaped), :mod:`.compare`
two runs, :mod:`.build` everything into a directory. It reads records only; it never needs to
know which target produced them.
"""

from __future__ import annotations

from serverless_hpc.report.build import build_report, main, render_report, terminal_summary
from serverless_hpc.report.checks import checks
from serverless_hpc.report.data import RunData, load_run
from serverless_hpc.report.stats import median_ci, percentile
from serverless_hpc.report.tables import SUMMARY_COLUMNS, markdown_table, summarize, write_csv

__all__ = [
    "SUMMARY_COLUMNS",
    "RunData",
    "build_report",
    "checks",
    "load_run",
    "main",
    "markdown_table",
    "median_ci",
    "percentile",
    "render_report",
    "summarize",
    "terminal_summary",
    "write_csv",
]
