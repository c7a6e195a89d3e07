"""The names of a run directory's files: spelled here and nowhere else.

``results/<run-id>/`` holds one run (see docs/design.md, "The run directory"):

========================  ==============================================================
``records.jsonl``         one line per invocation, appended as it completes (the driver)
``batches.jsonl``         one line per batch once it finished (the driver)
``run.json``              the configuration, environment, plan counts, outcome (the driver)
``headline.json``         the answer, with the rows each figure comes from (the report)
``summary.csv``/``.md``   one row per configuration (the report)
``memory.csv``            time and cost at each memory size (the report)
``report.html``           the whole report in one page (the report)
``compare.html``          a comparison against a base run (``shpc compare``)
``serve.json``/``.log``   a run the dashboard started: its state and its output
``logs/``                 function instances' stderr (local targets)
``.lock``                 the claim of the run that owns the directory
========================  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

RECORDS: Final = "records.jsonl"
BATCHES: Final = "batches.jsonl"
RUN_META: Final = "run.json"
HEADLINE: Final = "headline.json"
SUMMARY_CSV: Final = "summary.csv"
SUMMARY_MD: Final = "summary.md"
MEMORY_CSV: Final = "memory.csv"
REPORT_HTML: Final = "report.html"
COMPARE_HTML: Final = "compare.html"
SERVE_META: Final = "serve.json"
SERVE_LOG: Final = "serve.log"
LOGS: Final = "logs"
LOCK: Final = ".lock"

#: Files a run appends to: another run's lines there would be mixed with this run's.
APPENDED: Final = (RECORDS, BATCHES)
#: Files a run or its report writes whole: an existing one would be overwritten.
WRITTEN: Final = (RUN_META, SUMMARY_MD, SUMMARY_CSV, REPORT_HTML)


@dataclass(frozen=True, slots=True)
class RunPaths:
    """The paths of one run directory's files."""

    root: Path

    @property
    def records(self) -> Path:
        """``records.jsonl``."""
        return self.root / RECORDS

    @property
    def batches(self) -> Path:
        """``batches.jsonl``."""
        return self.root / BATCHES

    @property
    def meta(self) -> Path:
        """``run.json``."""
        return self.root / RUN_META

    @property
    def headline(self) -> Path:
        """``headline.json``."""
        return self.root / HEADLINE

    @property
    def summary_csv(self) -> Path:
        """``summary.csv``."""
        return self.root / SUMMARY_CSV

    @property
    def summary_md(self) -> Path:
        """``summary.md``."""
        return self.root / SUMMARY_MD

    @property
    def memory_csv(self) -> Path:
        """``memory.csv``."""
        return self.root / MEMORY_CSV

    @property
    def report(self) -> Path:
        """``report.html``."""
        return self.root / REPORT_HTML

    @property
    def compare(self) -> Path:
        """``compare.html``."""
        return self.root / COMPARE_HTML

    @property
    def serve_meta(self) -> Path:
        """``serve.json``."""
        return self.root / SERVE_META

    @property
    def serve_log(self) -> Path:
        """``serve.log``."""
        return self.root / SERVE_LOG

    @property
    def logs(self) -> Path:
        """``logs/``."""
        return self.root / LOGS


def paths(root: Path) -> RunPaths:
    """The paths of the run directory ``root``."""
    return RunPaths(root)
