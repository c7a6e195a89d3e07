"""Server-sent events from a run's own ``records.jsonl``, tailed as lines are appended.

The stream sends, in order: ``status`` (the run's status, plan and counts), then ``records``
events (every whole line appended since the last one, compacted by
:func:`~serverless_hpc.serve.runfiles.parse_record`, with the running counts), a new ``status``
whenever run.json or serve.json change, and ``end`` once the run can change no more. Each
``records`` event's id is the byte offset after its last line, so a browser's automatic
reconnection (``Last-Event-ID``) resumes where it stopped without repeating a record.

Waiting is bounded: one ``stat`` per ``poll_s`` (default 0.2 s), a keep-alive comment every
``keepalive_s``, and the stream closes after ``max_s`` (the browser reconnects and resumes).
``records.jsonl`` is opened only if it is a regular file, never through a symbolic link
(:mod:`serverless_hpc.safeio`); anything else ends the stream with an ``error`` event naming
it, instead of blocking a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from serverless_hpc import safeio
from serverless_hpc.serve.runfiles import count_records, parse_record
from serverless_hpc.serve.runs import TERMINAL, RunManager

POLL_S: Final = 0.2
KEEPALIVE_S: Final = 15.0
MAX_STREAM_S: Final = 30 * 60.0
#: Lines per ``records`` event, so a long run's history arrives in pieces a page can draw.
MAX_LINES_PER_EVENT: Final = 500


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    """One server-sent event; ``data`` as one line of JSON (no raw newlines can break it)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _signature(run_dir: Path) -> tuple[float, ...]:
    """What changes when the run's status may have: run.json, serve.json, report.html."""
    out = []
    for name in ("run.json", "serve.json", "report.html"):
        try:
            out.append((run_dir / name).stat().st_mtime)
        except FileNotFoundError:
            out.append(0.0)
    return tuple(out)


async def run_events(
    runs: RunManager,
    run_id: str,
    *,
    offset: int = 0,
    poll_s: float = POLL_S,
    keepalive_s: float = KEEPALIVE_S,
    max_s: float = MAX_STREAM_S,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[str]:
    """The event stream of run ``run_id`` from byte ``offset`` of its records file."""
    run_dir = runs.run_dir(run_id)
    records = run_dir / "records.jsonl"
    try:
        done, failed, offset = await asyncio.to_thread(count_records_before, records, offset)
    except safeio.NotRegularFile as exc:
        yield sse("error", {"error": f"run {run_id}: records.jsonl: {exc.strerror}"})
        return
    async for event in _stream(
        runs,
        run_id,
        records,
        done,
        failed,
        offset,
        poll_s=poll_s,
        keepalive_s=keepalive_s,
        max_s=max_s,
        sleep=sleep,
        clock=clock,
    ):
        yield event


async def _stream(
    runs: RunManager,
    run_id: str,
    records: Path,
    done: int,
    failed: int,
    offset: int,
    *,
    poll_s: float,
    keepalive_s: float,
    max_s: float,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
) -> AsyncIterator[str]:
    """:func:`run_events` once the resume point is known."""
    run_dir = records.parent
    detail = await asyncio.to_thread(runs.detail, run_id)
    planned = detail.get("planned")
    yield "retry: 2000\n\n"
    yield sse("status", _status_event(detail, done, failed))
    signature = _signature(run_dir)
    state = detail["status"]
    deadline = clock() + max_s
    last_sent = clock()
    pending = b""
    while clock() < deadline:
        position = offset
        try:
            lines, offset, pending = await asyncio.to_thread(_read_lines, records, offset, pending)
        except safeio.NotRegularFile as exc:  # replaced by a FIFO or a link meanwhile
            yield sse("error", {"error": f"run {run_id}: records.jsonl: {exc.strerror}"})
            return
        batch: list[dict[str, Any]] = []
        for i, line in enumerate(lines):
            position += len(line)
            rec = parse_record(line)
            if rec is not None:
                done += 1
                failed += 0 if rec["ok"] else 1
                batch.append(rec)
            if len(batch) >= MAX_LINES_PER_EVENT or (i == len(lines) - 1):
                yield sse("records", {"records": batch, "done": done, "failed": failed}, position)
                batch = []
                last_sent = clock()
        now_signature = await asyncio.to_thread(_signature, run_dir)
        if now_signature != signature:
            signature = now_signature
            status = await asyncio.to_thread(runs.status, run_id)
            state = status["status"]
            if planned is None and state != "starting":
                planned = (await asyncio.to_thread(runs.detail, run_id)).get("planned")
            yield sse("status", {**status, "planned": planned, "done": done, "failed": failed})
            last_sent = clock()
        if (
            state in TERMINAL
            and not lines
            and not await asyncio.to_thread(_grew, records, offset, pending)
        ):
            yield sse("end", {"status": state})
            return
        if clock() - last_sent >= keepalive_s:
            yield ": keep-alive\n\n"
            last_sent = clock()
        await sleep(poll_s)
    yield sse("reconnect", {"offset": offset})


def _status_event(detail: dict[str, Any], done: int, failed: int) -> dict[str, Any]:
    keep = {k: v for k, v in detail.items() if k not in ("last", "config")}
    return {**keep, "done": done, "failed": failed}


def count_records_before(path: Path, offset: int) -> tuple[int, int, int]:
    """(invocations, failed, where to resume) for a stream resumed at byte ``offset``.

    ``offset`` comes from the browser (``Last-Event-ID``), so it is not trusted: the resume
    point is the end of the last whole line at or before it, within the file; the counts are
    those of the lines before that point.
    """
    if offset <= 0:
        return 0, 0, 0
    done = failed = 0
    try:
        with safeio.open_regular(path, nofollow=True) as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(min(offset, size))
    except FileNotFoundError:
        return 0, 0, 0
    head = head[: head.rfind(b"\n") + 1]
    for line in head.splitlines(keepends=True):
        rec = parse_record(line)
        if rec is not None:
            done += 1
            failed += 0 if rec["ok"] else 1
    return done, failed, len(head)


def _grew(path: Path, offset: int, pending: bytes) -> bool:
    try:
        return path.stat().st_size > offset + len(pending)
    except FileNotFoundError:
        return False


def _read_lines(path: Path, offset: int, pending: bytes) -> tuple[list[bytes], int, bytes]:
    """Whole lines appended after ``offset`` (+ the ``pending`` partial line); the new offset.

    The offset advances over whole lines only, so it is a valid resume point.
    """
    try:
        with safeio.open_regular(path, nofollow=True) as fh:
            fh.seek(offset + len(pending))
            chunk = pending + fh.read(4 * 2**20)
    except FileNotFoundError:
        return [], offset, pending
    if not chunk:
        return [], offset, pending
    cut = chunk.rfind(b"\n") + 1
    lines = chunk[:cut].splitlines(keepends=True)
    return lines, offset + cut, chunk[cut:]


__all__ = ["count_records", "run_events", "sse"]
