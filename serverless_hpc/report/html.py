"""HTML from Jinja2 templates (shipped in ``templates/``), autoescaped: data never becomes markup.

The report is self-contained: charts are inlined as ``data:`` URIs, styles are in the page,
so it opens from disk and can be mailed as one file. An SVG chart goes in as an ``<img>``
source, not as markup: a browser shows an image's SVG without running any script in it and
without letting its styles or ids touch the page.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from serverless_hpc.host import cache_dir
from serverless_hpc.report.headline import fmt_ms, fmt_usd
from serverless_hpc.report.tables import fmt

log = logging.getLogger(__name__)


#: The environment's settings that the compiled code of a template depends on.
_COMPILE_SETTINGS = (
    "block_start_string",
    "block_end_string",
    "variable_start_string",
    "variable_end_string",
    "comment_start_string",
    "comment_end_string",
    "line_statement_prefix",
    "line_comment_prefix",
    "trim_blocks",
    "lstrip_blocks",
    "newline_sequence",
    "keep_trailing_newline",
    "autoescape",
    "finalize",
    "optimized",
    "is_async",
)


@cache
def environment() -> Any:
    """The template environment (autoescape on for every template, undefined is an error),
    with compiled templates kept between processes (:func:`bytecode_cache`)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("serverless_hpc.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )
    # What shapes the compiled code besides a template's source, which Jinja2 checks itself
    settings = [jinja2.__version__, *(str(getattr(env, name)) for name in _COMPILE_SETTINGS)]
    env.bytecode_cache = bytecode_cache(" ".join(settings + sorted(env.extensions)))
    env.filters["fmt"] = fmt
    env.filters["ms"] = lambda v: "" if v is None else fmt_ms(float(v))
    env.filters["usd"] = lambda v: "" if v is None else fmt_usd(float(v))
    # three significant digits at any size: cost per job compared across sides and rates
    env.filters["usd3"] = lambda v: "" if v is None else f"${float(v):.3g}"
    return env


def bytecode_cache(settings: str) -> Any | None:
    """Jinja2's file cache of compiled templates in ``<cache_dir>/report-templates``, or None
    (compile every time) where that directory cannot be made or is not safely ours.

    Compiling the report's templates takes about as long as the rest of a small report;
    the cache turns that into reading a file. Jinja2 keys an entry by the template's path
    and recompiles when its source or the Python version changed; ``settings`` (the
    Jinja2 version and the environment's options that shape the compiled code) is hashed
    into the file names, so a changed setting never reuses old code. The entries are code this
    process runs: the directory must be the user's own and writable by nobody else. A
    failure to write an entry is logged and ignored: the report never depends on the cache.
    """
    import jinja2

    try:
        directory = cache_dir() / "report-templates"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = directory.stat()
    except (OSError, RuntimeError) as exc:  # RuntimeError: no home directory
        log.debug("no template cache: %s", exc)
        return None
    owner = os.getuid() if hasattr(os, "getuid") else st.st_uid
    if st.st_uid != owner or st.st_mode & 0o022 or not os.access(directory, os.W_OK):
        log.debug("no template cache: %s is not the user's own, writable directory", directory)
        return None

    class _Cache(jinja2.FileSystemBytecodeCache):
        def dump_bytecode(self, bucket: Any) -> None:
            try:
                super().dump_bytecode(bucket)
            except OSError as exc:  # a full disk, a directory removed meanwhile
                log.debug("template not cached: %s", exc)

    tag = hashlib.sha256(settings.encode()).hexdigest()[:12]
    return _Cache(str(directory), f"{tag}-%s.cache")


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
