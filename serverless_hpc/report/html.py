"""HTML from Jinja2 templates (shipped in ``templates/``), autoescaped: data never becomes markup.

The report is self-contained: charts are inlined as ``data:`` URIs, styles are in the page,
so it opens from disk and can be mailed as one file. An SVG chart goes in as an ``<img>``
source, not as markup: a browser shows an image's SVG without running any script in it and
without letting its styles or ids touch the page.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from serverless_hpc.report.headline import fmt_ms, fmt_usd
from serverless_hpc.report.tables import fmt


@cache
def environment() -> Any:
    """The template environment (autoescape on for every template, undefined is an error)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("serverless_hpc.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )
    env.filters["fmt"] = fmt
    env.filters["ms"] = lambda v: "" if v is None else fmt_ms(float(v))
    env.filters["usd"] = lambda v: "" if v is None else fmt_usd(float(v))
    return env


def render(template: str, **context: Any) -> str:
    """Render one template of the package with ``context``."""
    return str(environment().get_template(template).render(**context))


def inline_svg(svg: bytes) -> str:
    """An SVG document (UTF-8, as the chart files hold it) as base64 for a
    ``data:image/svg+xml`` URI (an ``<img>``: never scripted)."""
    return base64.b64encode(svg).decode("ascii")


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list | tuple):
        out.append((prefix, ", ".join(str(v) for v in value) if value else "(none)"))
    elif isinstance(value, Mapping):
        out.append((prefix, "(none)"))
    else:
        out.append((prefix, "" if value is None else str(value)))


def environment_rows(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """run.json's environment, targets and configuration as (setting, value) rows."""
    out: list[tuple[str, str]] = []
    for section in ("environment", "targets", "config"):
        _flatten(section, meta.get(section) or {}, out)
    for key in ("started", "finished"):
        if isinstance(meta.get(key), int | float):
            when = datetime.fromtimestamp(meta[key], tz=UTC)
            out.append((key, when.isoformat(timespec="seconds")))
    if "planned_invocations" in meta:
        out.append(("planned invocations", str(meta["planned_invocations"])))
    return out
