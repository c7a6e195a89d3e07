"""The parent side of a function instance: spawn, wait for ready, send, receive, kill.

Every wait here has a deadline: a worker that does not answer in time is killed, never
waited on forever.

A worker never outlives its driver: it asks the kernel to kill it when its parent dies
(``PR_SET_PDEATHSIG``, see :mod:`serverless_hpc.worker`). Linux sends that signal when the
*thread* that forked the worker exits, not only the process; so every worker is forked from
one keeper thread that lives as long as the driver (:func:`_popen`), never from an
invocation thread that may end first.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from serverless_hpc.worker import DEADLINE_KEY

log = logging.getLogger(__name__)

_READ_CHUNK = 1 << 16

#: The one thread every worker is forked from (see the module docstring). An idle
#: ThreadPoolExecutor thread lives until the interpreter exits, and its children die then.
_keeper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker-keeper")


def _popen(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen`` run on the keeper thread (so ``PR_SET_PDEATHSIG`` means "the
    driver died", not "the invocation thread that started the worker ended")."""

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, **kwargs)

    return _keeper.submit(start).result()


class WorkerDied(Exception):
    """The worker exited or closed its pipe before answering."""


class WorkerTimeout(Exception):
    """The worker did not answer before the deadline (it has been killed)."""


@dataclass(frozen=True, slots=True)
class ReadyInfo:
    """What the worker reported about its init phase."""

    pid: int
    init_ms: float  # spawn -> ready, measured by the parent
    process_start_ms: float
    import_ms: float
    preload_ms: float


class WorkerProcess:
    """One worker child process speaking the JSON-lines protocol of :mod:`serverless_hpc.worker`."""

    def __init__(
        self,
        *,
        platform: str,
        workload: str | None = None,
        memory_mb: int | None = None,
        env: dict[str, str] | None = None,
        stderr: IO[bytes] | int | None = None,
        launcher: Callable[[list[str]], list[str]] | None = None,
    ) -> None:
        """``launcher`` rewrites the argv to start the child inside its resource limits
        (:meth:`serverless_hpc.targets.resources.InstanceGroup.wrap`)."""
        self.workload = workload
        spawned = time.monotonic_ns()
        argv = [
            sys.executable,
            "-m",
            "serverless_hpc.worker",
            "--platform",
            platform,
            "--spawned-at-ns",
            str(spawned),
            "--parent-pid",
            str(os.getpid()),
        ]
        if workload:
            argv += ["--workload", workload]
        if memory_mb:
            argv += ["--memory-mb", str(memory_mb)]
        if launcher is not None:
            argv = launcher(argv)
        self._spawned_ns = spawned
        self.proc = _popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr if stderr is not None else subprocess.DEVNULL,
            # SHPC_PARENT_PID: the store publishes a model only while this driver lives.
            env={**os.environ, **(env or {}), "SHPC_PARENT_PID": str(os.getpid())},
            close_fds=True,
            # Its own session: a Ctrl-C in the driver's terminal goes to the driver, which
            # then closes its targets; the instances are never killed behind its back.
            start_new_session=True,
        )
        self._buf = bytearray()
        self._io_lock = threading.Lock()
        self._reading = False
        self.ready: ReadyInfo | None = None
        self.invocations = 0
        self.last_used = time.monotonic()

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the child is still running."""
        return self.proc.poll() is None

    def wait_ready(self, timeout_s: float) -> ReadyInfo:
        """Block until the worker reports ready; kill it and raise on timeout or death."""
        msg = self._read_message(time.monotonic() + timeout_s)
        if msg.get("type") == "init_error":
            self.kill()
            raise WorkerDied(f"worker {self.pid} init failed: {msg.get('message')}")
        if msg.get("type") != "ready":
            self.kill()
            raise WorkerDied(f"worker {self.pid} sent {msg.get('type')!r} before ready")
        init_ms = (time.monotonic_ns() - self._spawned_ns) / 1e6
        self.ready = ReadyInfo(
            pid=int(msg["pid"]),
            init_ms=init_ms,
            process_start_ms=float(msg["process_start_ms"]),
            import_ms=float(msg["import_ms"]),
            preload_ms=float(msg["preload_ms"]),
        )
        return self.ready

    def call(
        self, request: dict[str, Any], timeout_s: float, *, deadline: float | None = None
    ) -> dict[str, Any]:
        """Send one request and return the worker's ``result`` message.

        ``deadline`` (Unix seconds) tells the workload when the platform will stop it; it
        travels beside the request (:data:`DEADLINE_KEY`), not inside the contract request.
        """
        assert self.proc.stdin is not None
        line = request if deadline is None else {**request, DEADLINE_KEY: deadline}
        try:
            self.proc.stdin.write(json.dumps(line).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self.kill()
            raise WorkerDied(f"worker {self.pid} is gone: {exc}") from exc
        msg = self._read_message(time.monotonic() + timeout_s)
        if msg.get("type") != "result":
            self.kill()
            raise WorkerDied(f"worker {self.pid} sent unexpected {msg.get('type')!r}")
        self.invocations += 1
        self.last_used = time.monotonic()
        return msg

    def _read_message(self, deadline: float) -> dict[str, Any]:
        with self._io_lock:
            self._reading = True
        try:
            return self._read_message_unlocked(deadline)
        finally:
            with self._io_lock:
                self._reading = False
            if self.proc.returncode is not None and self.proc.stdout is not None:
                self.proc.stdout.close()  # the child is gone: release the read side

    def _read_message_unlocked(self, deadline: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        # Only the newly read chunk is searched for the newline, so a large reply costs
        # linear, not quadratic, time.
        end = self._buf.find(b"\n")
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while end < 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill()
                    raise WorkerTimeout(f"worker {self.pid} did not answer in time")
                if not sel.select(remaining):
                    continue
                chunk = os.read(fd, _READ_CHUNK)
                if not chunk:
                    try:  # EOF: the child has exited or is exiting
                        self.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        self.kill()
                    raise WorkerDied(f"worker {self.pid} exited with code {self.proc.returncode}")
                found = chunk.find(b"\n")
                if found >= 0:
                    end = len(self._buf) + found
                self._buf += chunk
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        try:
            msg: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError as exc:
            self.kill()
            raise WorkerDied(f"worker {self.pid} broke the protocol: {exc}") from exc
        return msg

    def kill(self) -> None:
        """Kill the child (SIGKILL, like a platform retiring an instance) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.exception("worker %d did not exit after SIGKILL", self.pid)
        with self._io_lock:
            # A thread blocked reading the reply sees EOF now that the child is dead and
            # closes the read side itself: closing an fd another thread is select()ing on
            # would leave that thread waiting out its whole deadline.
            streams = [self.proc.stdin] + ([] if self._reading else [self.proc.stdout])
        for stream in streams:
            if stream is not None:
                try:
                    stream.close()
                except OSError as exc:
                    log.debug("closing worker %d pipe: %s", self.pid, exc)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close stdin so the worker exits on its own; kill it if it does not in time."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError as exc:
                log.debug("closing worker %d stdin: %s", self.pid, exc)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("worker %d ignored stdin close; killing it", self.pid)
        self.kill()


def open_log(log_dir: Path | None, name: str) -> IO[bytes] | None:
    """An append-mode log file for workers' stderr, or None (discard) without a directory."""
    if log_dir is None:
        return None
    log_dir.mkdir(parents=True, exist_ok=True)
    return (log_dir / f"{name}.log").open("ab")


def call_or_error(
    worker: WorkerProcess,
    request: dict[str, Any],
    timeout_s: float,
    *,
    deadline: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Call ``worker``; return ``(response, reply)`` with failures as contract envelopes.

    A timeout or a dead worker yields a ``Timeout`` / ``PlatformError`` envelope and
    ``reply=None``; the worker has then been killed and must be replaced.
    """
    from serverless_hpc.contract import PLATFORM_ERROR, TIMEOUT, error_response

    try:
        reply = worker.call(request, timeout_s, deadline=deadline)
    except WorkerTimeout:
        return error_response(TIMEOUT, f"invocation exceeded its {timeout_s:g} s timeout"), None
    except WorkerDied as exc:
        return error_response(PLATFORM_ERROR, str(exc)), None
    response = reply.get("response")
    if not isinstance(response, dict):
        return error_response(PLATFORM_ERROR, "worker reply has no response object"), None
    return response, reply
