"""A function instance: the child process the local targets start (``python -m ...worker``).

It lives at the top of the package, not under ``targets/``, so that starting it imports
nothing but this module before the process-start timestamp is taken (``-m`` imports the
parent packages first; ``serverless_hpc/__init__`` is one line).

It speaks JSON lines on a private copy of its stdout; the real fd 1 is pointed at stderr
first, so a library that prints (TensorFlow does) cannot corrupt the protocol.

Messages to the parent:

* ``{"type": "ready", "process_start_ms", "import_ms", "preload_ms", "pid"}`` once, after the
  init phase (interpreter start, core imports, the function's workload imports);
* ``{"type": "result", "response", "duration_ms", "preload_ms", "first_of_workload",
  "max_rss_mb"}`` after each request line it reads.

A worker dies with its driver, even one killed with SIGKILL: it asks the kernel for
SIGKILL when its parent goes (``PR_SET_PDEATHSIG``), checks that the parent did not go
before it asked, and watches the parent's pid (a pidfd, or the parent pid where pidfds do not
exist) in a thread as a fallback. An orphan would otherwise finish its work and publish it
(a trained model made ``latest``) for a run that recorded nothing.

A request line is a contract request, optionally with :data:`DEADLINE_KEY` beside its fields:
the Unix time at which the parent will kill the invocation (local-faas's timeout), which the
worker removes and passes to the workload as ``Context.deadline``.

The cold-start timings use ``time.monotonic_ns`` against the spawn time the parent passes in
argv: on Linux CLOCK_MONOTONIC is system-wide, so the two processes' readings compare.
"""

from __future__ import annotations

import time

_T_MAIN = time.monotonic_ns()

import argparse  # noqa: E402 - the timestamp above must come before any import
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from typing import Any  # noqa: E402

#: Exit status of a worker that found its driver gone (128 + SIGKILL, as if killed).
ORPHAN_EXIT = 137
_PR_SET_PDEATHSIG = 1
#: How often the fallback watch looks at the parent pid where no pidfd can be had.
_PPID_POLL_S = 0.5


def _die_with_parent(parent_pid: int) -> None:
    """Make sure this process does not outlive ``parent_pid`` (see the module docstring)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            logging.getLogger(__name__).warning(
                "prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno()
            )
    except (OSError, AttributeError) as exc:  # not Linux: the watch below still works
        logging.getLogger(__name__).debug("no PR_SET_PDEATHSIG here: %s", exc)
    if os.getppid() != parent_pid:  # the driver died before the kernel was asked
        os._exit(ORPHAN_EXIT)
    threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True
    ).start()


def _watch_parent(parent_pid: int) -> None:
    """Exit the moment ``parent_pid`` is gone (a fallback for PR_SET_PDEATHSIG)."""
    try:
        fd = os.pidfd_open(parent_pid)
    except (OSError, AttributeError):
        fd = None
    if fd is not None and os.getppid() == parent_pid:
        # Readable once the process has exited; blocks without polling until then.
        select.select([fd], [], [])
        os._exit(ORPHAN_EXIT)
    # No pidfd (old kernel, not Linux): compare the parent pid; this lasts the whole life of
    # the process by design, so it is a periodic check rather than a wait with a deadline.
    while os.getppid() == parent_pid:
        time.sleep(_PPID_POLL_S)
    os._exit(ORPHAN_EXIT)


#: Field of a request line that carries the invocation's deadline (Unix seconds), if any.
DEADLINE_KEY = "__shpc_deadline"


def _context(deadline: object) -> Any:
    """The workload context from the environment, with the request line's deadline."""
    from serverless_hpc.workloads.base import Context

    ctx = Context.from_env()
    if isinstance(deadline, int | float) and not isinstance(deadline, bool):
        ctx = Context(data_dir=ctx.data_dir, store_uri=ctx.store_uri, deadline=float(deadline))
    return ctx


def _protocol_stream() -> object:
    """Duplicate fd 1 for the protocol and point fd 1 at stderr."""
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    return os.fdopen(proto_fd, "w", buffering=1)


def main(argv: list[str] | None = None) -> int:
    """Run the init phase, then serve request lines until stdin closes."""
    parser = argparse.ArgumentParser(prog="serverless_hpc.worker")
    parser.add_argument("--platform", required=True)
    parser.add_argument("--spawned-at-ns", type=int, required=True)
    parser.add_argument("--workload", default=None, help="function's workload, preloaded at init")
    parser.add_argument("--memory-mb", type=int, default=None)
    parser.add_argument(
        "--parent-pid", type=int, default=None, help="die when this process (the driver) does"
    )
    args = parser.parse_args(argv)
    if args.parent_pid:
        _die_with_parent(args.parent_pid)
    proto = _protocol_stream()
    logging.basicConfig(
        level=os.environ.get("SHPC_WORKER_LOG_LEVEL", "WARNING"),
        format=f"%(asctime)s worker[{os.getpid()}] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    t_imp = time.monotonic_ns()
    from serverless_hpc import handler

    import_ms = (time.monotonic_ns() - t_imp) / 1e6
    preloaded: set[str] = set()
    preload_ms = 0.0
    if args.workload:
        try:
            preload_ms = handler.preload(args.workload)
        except Exception as exc:  # report why init failed, then exit like a crashed runtime
            logging.getLogger(__name__).exception("init failed")
            failure = {"type": "init_error", "message": f"{type(exc).__name__}: {exc}"}
            proto.write(json.dumps(failure) + "\n")  # type: ignore[attr-defined]
            return 1
        preloaded.add(args.workload)
    ready = {
        "type": "ready",
        "pid": os.getpid(),
        "process_start_ms": (_T_MAIN - args.spawned_at_ns) / 1e6,
        "import_ms": import_ms,
        "preload_ms": preload_ms,
    }
    proto.write(json.dumps(ready) + "\n")  # type: ignore[attr-defined]
    served: dict[str, int] = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        t0 = time.perf_counter()
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            event = {"__invalid_json__": str(exc)}
        deadline = event.pop(DEADLINE_KEY, None) if isinstance(event, dict) else None
        name = event.get("workload") if isinstance(event, dict) else None
        lazy_ms = 0.0
        if isinstance(name, str) and name not in preloaded:
            try:
                lazy_ms = handler.preload(name)
                preloaded.add(name)
            except Exception:  # unknown workload: the handler reports it in the contract's terms
                logging.getLogger(__name__).debug("preload of %r failed", name, exc_info=True)
        response = handler.handle(
            event, platform=args.platform, memory_mb=args.memory_mb, ctx=_context(deadline)
        )
        first = isinstance(name, str) and served.get(name, 0) == 0
        if isinstance(name, str):
            served[name] = served.get(name, 0) + 1
        reply = {
            "type": "result",
            "response": response,
            "duration_ms": (time.perf_counter() - t0) * 1e3,
            "preload_ms": lazy_ms,
            "first_of_workload": first,
            "max_rss_mb": handler.max_rss_mb(),
        }
        proto.write(json.dumps(reply) + "\n")  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
