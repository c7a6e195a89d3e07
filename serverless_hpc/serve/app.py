"""The web application: pages, the JSON API they use, and the guards in front of both.

JSON API (machine-readable at ``/api/openapi.json``; every error is ``{"error": message}``,
plus ``"field"`` naming the form field for a bad run request, or ``"run_id"`` for a 409):

``GET /api/options``
    Targets, workloads (name, summary, in the default plan) and the ``shpc bench``
    defaults the form starts from.
``GET /api/runs``
    Every run in the results directory, newest first: id, status, source (``serve`` or
    ``terminal``), targets, workloads, started/finished (unix time), headline sentences.
``POST /api/runs``
    Start a run. Body: ``{"targets": [...], "workloads": [...], "shards": [...], "repeats": n,
    "modes": [...], "images": n, "memory_mb": n, "params": {workload: {key: value}}, ...}``
    (fields as :func:`serverless_hpc.serve.form.form_fields`; lists may be comma-separated
    strings). 201 ``{"id", "url"}``; 422 naming the field (the CLI's own checks); 409 when
    ``--max-runs`` runs are going (the message and ``run_id`` say which).
``GET /api/runs/{id}``
    Status, plan, planned invocations, invocations done and failed, the latest record.
``GET /api/runs/{id}/events``
    Server-sent events from the run's records (see :mod:`serverless_hpc.serve.events`).
``POST /api/runs/{id}/cancel``
    Interrupt a going run (202); 409 when it is not going.
``GET /api/compare?base=ID&new=ID``
    ``shpc compare BASE NEW --json`` of two runs; 503 with the command's message when it
    cannot run.

Guards (:class:`Guard`): the Host header must name this server (no DNS rebinding); with a
token, every request carries it (``Authorization: Bearer``, or the cookie that
``?token=`` sets once); state-changing requests must come from this origin; run ids are
checked against the results directory; an empty token is refused, and an empty credential
never matches. Headers are bounded (:data:`MAX_HEADER_BYTES`, :data:`MAX_HEADERS`: 431
beyond), request bodies too (:data:`MAX_BODY_BYTES`: 413) and a JSON body's nesting is
checked before it is parsed (:data:`MAX_JSON_DEPTH`: 400 beyond). ``Last-Event-ID`` is used
only when it is a plain ASCII number of at most 18 digits. Pages build every element with
``textContent``, under a Content-Security-Policy that allows only this server's own scripts.

Files: the report is served only if ``report.html`` is a regular file, not a symbolic link
(``O_NOFOLLOW``, ``fstat``), inside the results directory. Before a run's files are read with
a plain ``open`` (:data:`~serverless_hpc.serve.bounds.PLAIN_READS`; every file of both runs
before ``shpc compare``), they must be regular files or absent (a FIFO there would block a
worker thread for good): a run holding anything else answers 422 and is listed as
``unreadable``.
The token is registered as a secret (:mod:`serverless_hpc.redact`), so no log line shows it.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from serverless_hpc.redact import register
from serverless_hpc.serve.bounds import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_JSON_DEPTH,
    MAX_REPORT_BYTES,
    PLAIN_READS,
    UnreadableRun,
    check_run_files,
    json_depth_exceeds,
    last_event_offset,
    read_run_file,
    unreadable_status,
)
from serverless_hpc.serve.events import run_events
from serverless_hpc.serve.form import FormError
from serverless_hpc.serve.runs import (
    RunConflict,
    RunManager,
    RunNotFound,
    check_run_id,
)

log = logging.getLogger(__name__)

STATIC: Final = Path(__file__).parent / "static"
TOKEN_COOKIE: Final = "shpc_token"  # noqa: S105 - the cookie's name, not a secret
COMPARE_TIMEOUT_S: Final = 120.0
#: A run request is a few hundred bytes; anything much larger is refused unread.
MAX_BODY_BYTES: Final = 64 * 1024
LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

#: Pages: only this server's scripts and styles; fetch/EventSource to this origin only.
PAGE_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
#: The report is self-contained HTML (inline style, data: images) and needs no script.
REPORT_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


@dataclass
class Guard:
    """ASGI middleware: host check, token, same-origin for state changes, security headers."""

    app: ASGIApp
    allowed_hosts: frozenset[str]
    token: str | None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_headers = scope["headers"]
        size = sum(len(k) + len(v) for k, v in raw_headers)
        if len(raw_headers) > MAX_HEADERS or size > MAX_HEADER_BYTES:
            refused = _error(
                431, f"request headers exceed {MAX_HEADERS} fields or {MAX_HEADER_BYTES} bytes"
            )
            await refused(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                names = {k.lower() for k, _ in raw}
                extra = {
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"no-referrer",
                    b"content-security-policy": PAGE_CSP.encode(),
                    b"cache-control": b"no-store",
                }
                raw += [(k, v) for k, v in extra.items() if k not in names]
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> ASGIApp | None:
        host = headers.get("host", "")
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if "*" not in self.allowed_hosts and hostname.lower() not in self.allowed_hosts:
            return _error(403, f"host {host!r} is not this server's (start it with --host)")
        if self.token is not None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = self._given_token(headers)
            if given is None and "token" in query and scope["method"] == "GET":
                return self._token_redirect(scope, query)
            if not given or not _same(given, self.token):
                return _error(401, "a valid token is required (shpc serve printed it)")
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            origin = headers.get("origin")
            scheme = scope.get("scheme", "http")
            if origin is not None and origin != f"{scheme}://{host}":
                return _error(403, f"cross-origin request refused (origin {origin!r})")
            fetch_site = headers.get("sec-fetch-site")
            if origin is None and fetch_site not in (None, "same-origin", "none"):
                return _error(403, f"cross-site request refused (sec-fetch-site {fetch_site})")
        return None

    @staticmethod
    def _given_token(headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except ValueError:
            return None
        morsel = cookie.get(TOKEN_COOKIE)
        return morsel.value if morsel else None

    def _token_redirect(self, scope: Scope, query: dict[str, list[str]]) -> ASGIApp:
        """``?token=`` once: checked, kept in an HttpOnly cookie, dropped from the URL."""
        given = query.pop("token")[0]
        assert self.token is not None
        if not given or not _same(given, self.token):
            return _error(401, "a valid token is required (shpc serve printed it)")
        rest = urlencode(query, doseq=True)
        target = scope["path"] + (f"?{rest}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict", path="/")
        return response


def _same(given: str, token: str) -> bool:
    """Constant-time comparison (as bytes: any character a client sends is comparable);
    an empty value never matches."""
    if not given or not token:
        return False
    return secrets.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def create_app(
    runs: RunManager,
    *,
    token: str | None = None,
    allowed_hosts: frozenset[str] = LOOPBACK_NAMES,
    compare_command: tuple[str, ...] = (sys.executable, "-m", "serverless_hpc.cli", "compare"),
    events_options: dict[str, Any] | None = None,
) -> Guard:
    """The ASGI application over ``runs``; ``token`` None means no token is asked.

    ``ValueError`` for an empty token (it would guard nothing).
    """
    if token is not None:
        if not token.strip():
            raise ValueError("the token is empty")
        register(token)
    api = FastAPI(
        title="serverless-hpc dashboard",
        description=__doc__,
        docs_url=None,  # the interactive docs load scripts from a CDN: offline, none
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_error_handlers(api)
    _add_pages(api, runs)
    _add_api(api, runs, compare_command, events_options or {})
    return Guard(api, allowed_hosts=allowed_hosts, token=token)


def _add_error_handlers(api: FastAPI) -> None:
    """Every error as ``{"error": message}`` (plus ``field`` / ``run_id`` where they apply)."""

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @api.exception_handler(RequestValidationError)
    async def _bad_query(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return _error(422, f"{where}: {first.get('msg', 'invalid')}", field=where)

    @api.exception_handler(RunNotFound)
    async def _not_found(_: Request, exc: RunNotFound) -> JSONResponse:
        return _error(404, str(exc))

    @api.exception_handler(RunConflict)
    async def _conflict(_: Request, exc: RunConflict) -> JSONResponse:
        return _error(409, str(exc), run_id=exc.run_id)

    @api.exception_handler(UnreadableRun)
    async def _unreadable(_: Request, exc: UnreadableRun) -> JSONResponse:
        return _error(422, str(exc))

    @api.exception_handler(FormError)
    async def _bad_form(_: Request, exc: FormError) -> JSONResponse:
        return _error(422, str(exc), field=exc.field)


#: Every page is the same shell (its data come through the API); only title and page differ.
_SHELL: Final = jinja2.Environment(
    loader=jinja2.PackageLoader("serverless_hpc.serve", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
).get_template("shell.html.j2")


def _page(page: str, title: str) -> HTMLResponse:
    return HTMLResponse(_SHELL.render(page=page, title=title))


def _add_pages(api: FastAPI, runs: RunManager) -> None:
    """The HTML shells (static: every datum comes through the API) and the reports."""

    @api.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return _page("runs", "Runs")

    @api.get("/new", include_in_schema=False)
    def new_page() -> HTMLResponse:
        return _page("new", "New run")

    @api.get("/compare", include_in_schema=False)
    def compare_page() -> HTMLResponse:
        return _page("compare", "Compare runs")

    @api.get("/runs/{run_id}", include_in_schema=False)
    def run_page(run_id: str) -> HTMLResponse:
        runs.run_dir(run_id)
        return _page("run", "Run")

    @api.get("/runs/{run_id}/report", include_in_schema=False)
    def report(run_id: str) -> Any:
        run_dir = runs.run_dir(run_id)
        try:
            body = read_run_file(runs.results, run_dir, "report.html", MAX_REPORT_BYTES)
        except FileNotFoundError:
            return _error(404, f"run {run_id} has no report (yet)")
        except UnreadableRun as exc:
            log.warning("refused to serve a report: %s", exc)
            return _error(403, str(exc))
        return Response(
            body, media_type="text/html", headers={"content-security-policy": REPORT_CSP}
        )


def _add_api(
    api: FastAPI,
    runs: RunManager,
    compare_command: tuple[str, ...],
    events_options: dict[str, Any],
) -> None:
    """The JSON API of the module docstring."""

    @api.get("/api/options")
    def options() -> dict[str, Any]:
        """What the form offers: targets, workloads, their options and the CLI's defaults."""
        from serverless_hpc import cli, targets, workloads
        from serverless_hpc.serve.form import workload_fields

        bench = cli.build_parser().parse_args(["bench"])
        return {
            "targets": sorted(targets.TARGETS),
            "local_targets": sorted(targets.LOCAL_TARGETS),
            "workloads": [
                {"name": s.name, "summary": s.summary, "default": s.default}
                for s in workloads.specs().values()
            ],
            "defaults": {
                "targets": list(bench.targets),
                "workloads": list(workloads.default_names()),
                "shards": list(bench.shards),
                "repeats": bench.repeats,
                "modes": list(bench.modes),
                "cold_repeats": bench.cold_repeats,
                "train_repeats": bench.train_repeats,
            },
            "workload_options": workload_fields(),
            "max_runs": runs.max_runs,
        }

    @api.get("/api/runs")
    def list_runs() -> dict[str, Any]:
        """Every run, newest first, with its status and headline figures."""
        out = []
        for run_id in runs.run_ids():
            try:
                check_run_files(runs.results / run_id, PLAIN_READS)
                out.append(runs.status(run_id))
            except RunNotFound:
                continue  # removed while listing
            except UnreadableRun as exc:
                out.append(unreadable_status(run_id, str(exc)))
        return {"runs": out, "active": runs.active()}

    @api.post("/api/runs", status_code=201)
    async def start_run(request: Request) -> Any:
        """Start a ``shpc bench`` run from the form's fields."""
        body = await _json_body(request)
        if isinstance(body, JSONResponse):
            return body
        from starlette.concurrency import run_in_threadpool

        run_id = await run_in_threadpool(runs.start, body)
        return JSONResponse({"id": run_id, "url": f"/runs/{run_id}"}, status_code=201)

    @api.get("/api/runs/{run_id}")
    def run_detail(run_id: str) -> dict[str, Any]:
        """A run's status, plan and progress."""
        check_run_files(runs.run_dir(run_id), PLAIN_READS)
        return runs.detail(run_id)

    @api.get("/api/runs/{run_id}/events")
    def events(run_id: str, request: Request) -> StreamingResponse:
        """Live progress as server-sent events, resumable with ``Last-Event-ID``."""
        check_run_files(runs.run_dir(run_id), PLAIN_READS)
        offset = last_event_offset(request.headers.get("last-event-id"))
        stream = run_events(runs, run_id, offset=offset, **events_options)
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={"x-accel-buffering": "no"}
        )

    @api.post("/api/runs/{run_id}/cancel", status_code=202)
    def cancel(run_id: str) -> dict[str, Any]:
        """Interrupt a going run; its records so far are kept."""
        check_run_files(runs.run_dir(run_id), PLAIN_READS)
        runs.cancel(run_id)
        return {"id": run_id, "status": runs.status(run_id)["status"]}

    @api.get("/api/compare")
    def compare(base: str, new: str) -> Any:
        """``shpc compare BASE NEW --json`` of two runs of the results directory."""
        base_dir, new_dir = runs.run_dir(check_run_id(base)), runs.run_dir(check_run_id(new))
        check_run_files(base_dir)
        check_run_files(new_dir)
        argv = [*compare_command, str(base_dir), str(new_dir), "--json"]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=COMPARE_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            return _error(504, f"shpc compare gave no answer within {COMPARE_TIMEOUT_S:g} s")
        if done.returncode != 0 and not done.stdout.strip():
            return _error(422, f"shpc compare: {_last_line(done.stderr)}")
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError:
            return _error(502, f"shpc compare printed no JSON: {_last_line(done.stderr)}")


async def _json_body(request: Request) -> Any:
    """The request's JSON body, bounded in size and depth before it is parsed; a
    :class:`JSONResponse` (413 or 400) saying why not."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return _error(413, f"the request body exceeds {MAX_BODY_BYTES} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            return _error(413, f"the request body exceeds {MAX_BODY_BYTES} bytes")
    if json_depth_exceeds(raw, MAX_JSON_DEPTH):
        return _error(
            400, f"the request body nests deeper than {MAX_JSON_DEPTH} levels", field=None
        )
    try:
        return json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return _error(400, "the request body is not JSON", field=None)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    message = lines[-1] if lines else "no output"
    return message.removeprefix("error: ")[:500]
