"""Run directories and the ``shpc bench`` child processes that write them (what is read
from a run's files, leniently, is :mod:`serverless_hpc.serve.runfiles`).

A run started from the page is the terminal's run: the same argv is checked by the CLI's own
parser and :class:`~serverless_hpc.driver.BenchConfig`, then ``python -m serverless_hpc.cli
bench ... --out RESULTS/RUN_ID -q`` runs in its own process group (so a cancel reaches its
workers, and it outlives the server). Beside the driver's files the server writes
``serve.json`` (pid, process start time, argv, exit code, cancel request) and ``serve.log``
(the child's output), which is how a restarted server tells a live run from an interrupted
one.

Statuses: ``starting`` (no run.json yet), ``running``, ``reporting`` (finished, report being
built), ``finished``, ``stopping`` (cancel sent), ``cancelled``, ``aborted`` (stopped by
anything else), ``interrupted`` (its process is gone with the run unfinished: records kept),
``failed`` (the command refused the run before anything ran; ``error`` says why),
``unreadable`` (its files make no sense: ``errors`` says why). ``problems`` lists the fields
of run.json or serve.json that were of the wrong type and so were left out.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil

from serverless_hpc import rundir
from serverless_hpc.report.headline import verdict_sentences
from serverless_hpc.rundir import read_run_meta, read_serve_meta, write_serve_meta
from serverless_hpc.serve.bounds import unreadable_status
from serverless_hpc.serve.form import check_argv, form_to_argv
from serverless_hpc.serve.runfiles import (
    SERVE_LOG,
    count_records,
    error_lines,
    headline_of,
    name_list,
    planned_invocations,
    public_config,
    read_json,
)

log = logging.getLogger(__name__)

SERVE_META: Final = rundir.files.SERVE_META

#: After a cancel (SIGINT, which the CLI turns into a clean abort), SIGTERM then SIGKILL.
CANCEL_GRACE_S: Final = 30.0
KILL_GRACE_S: Final = 10.0
#: A terminal run (not started here) with no activity for this long is shown as interrupted.
TERMINAL_STALE_S: Final = 15 * 60.0

ACTIVE: Final = frozenset({"starting", "running", "reporting", "stopping"})
#: Statuses that will not change any more (the event stream ends on them).
TERMINAL: Final = frozenset(
    {"finished", "cancelled", "aborted", "interrupted", "failed", "unreadable"}
)


class RunNotFound(LookupError):
    """No run with that id in the results directory (or the id is not a valid one)."""


class RunConflict(RuntimeError):
    """A run cannot start or be cancelled now; ``run_id`` names the run concerned."""

    def __init__(self, run_id: str, message: str) -> None:
        super().__init__(message)
        self.run_id = run_id


# --------------------------------------------------------------------------------------
# Run ids.


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a valid id (the CLI's rule), else :class:`RunNotFound`."""
    try:
        return rundir.check_run_id(run_id)
    except rundir.RunDirError:
        raise RunNotFound(f"no run {run_id!r}: not a valid run id") from None


# --------------------------------------------------------------------------------------
# Child processes.


@dataclass
class _Child:
    """A run's process: our own child (``popen``) or one adopted after a restart."""

    run_id: str
    process: psutil.Process
    popen: subprocess.Popen[bytes] | None = None
    cancel_requested: float | None = None
    #: Set once our child's exit code is in serve.json.
    reaped: threading.Event = field(default_factory=threading.Event)

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            return self.process.is_running() and self.process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def wait(self, timeout: float) -> bool:
        """Whether the process ended within ``timeout`` seconds (our child is reaped by Popen)."""
        try:
            if self.popen is not None:
                self.popen.wait(timeout=timeout)
            else:
                self.process.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
            return False
        except psutil.NoSuchProcess:
            pass
        return True


@dataclass
class RunManager:
    """The results directory: reads its runs, starts and cancels ``shpc bench`` children.

    ``command`` is the interpreter-and-module prefix of the child's argv (the real CLI by
    default); ``max_runs`` bounds runs going at once from this server; ``clock`` is
    injectable for the terminal-run staleness rule.
    """

    results: Path
    max_runs: int = 1
    command: tuple[str, ...] = (sys.executable, "-m", "serverless_hpc.cli")
    clock: Callable[[], float] = time.time
    _children: dict[str, _Child] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.results = self.results.resolve()
        self.results.mkdir(parents=True, exist_ok=True)
        self._adopt()

    # ---- paths and reading

    def run_dir(self, run_id: str) -> Path:
        """The directory of an existing run; :class:`RunNotFound` for anything else."""
        check_run_id(run_id)
        path = self.results / run_id
        if path.parent != self.results or not path.is_dir() or path.is_symlink():
            raise RunNotFound(f"no run {run_id!r} in {self.results.name}/")
        if not any((path / n).exists() for n in (rundir.RUN_META, SERVE_META, rundir.RECORDS)):
            raise RunNotFound(f"no run {run_id!r}: {run_id}/ holds no run")
        return path

    def run_ids(self) -> list[str]:
        """Every run in the results directory, newest first (by name: ids sort by time)."""
        out = []
        for path in self.results.iterdir():
            if not rundir.lock.RUN_ID_RE.match(path.name) or not path.is_dir() or path.is_symlink():
                continue
            if any((path / n).exists() for n in (rundir.RUN_META, SERVE_META, rundir.RECORDS)):
                out.append(path.name)
        return sorted(out, reverse=True)

    def status(self, run_id: str) -> dict[str, Any]:
        """A run's status, plan and headline (cheap: records are not read).

        A run whose files cannot be made sense of is shown as ``unreadable`` with why: one
        bad run directory never breaks the list of the others.
        """
        path = self.run_dir(run_id)
        read_meta, read_serve = read_run_meta(path), read_serve_meta(path)
        try:
            from_server = rundir.paths(path).serve_meta.exists()
            out = self._status(run_id, path, read_meta.data, read_serve.data, from_server)
        except (TypeError, ValueError, KeyError, AttributeError, OSError) as exc:
            log.warning("run %s cannot be read: %s", run_id, exc)
            out = unreadable_status(run_id, str(exc))
        out["problems"] = [*read_meta.problems, *read_serve.problems]
        return out

    def _status(
        self,
        run_id: str,
        path: Path,
        meta: dict[str, Any],
        serve: dict[str, Any],
        from_server: bool,
    ) -> dict[str, Any]:
        said = read_json(rundir.paths(path).headline)
        child = self._children.get(run_id) or self._find_live(run_id, serve)
        alive = child.alive() if child else False
        cancelled = bool(serve.get("cancel_requested") or (child and child.cancel_requested))
        if "finished" in meta:
            status = "reporting" if alive else "finished"
        elif "aborted" in meta:
            status = "stopping" if alive else ("cancelled" if cancelled else "aborted")
        elif alive:
            status = "stopping" if cancelled else ("running" if meta else "starting")
        elif from_server:
            status = "interrupted" if meta else "failed"
        else:
            status = "running" if self._recently_active(path) else "interrupted"
        config = meta.get("config")
        config = config if isinstance(config, Mapping) else {}
        targets = config.get("targets") or serve.get("targets") or []
        workloads = config.get("workloads") or serve.get("workloads") or []
        return {
            "id": run_id,
            "status": status,
            "source": "serve" if from_server else "terminal",
            "targets": name_list(targets),
            "workloads": name_list(workloads),
            "started": meta.get("started") or serve.get("requested"),
            "finished": meta.get("finished"),
            "aborted": meta.get("aborted"),
            "exit_code": serve.get("exit_code"),
            "report": rundir.paths(path).report.is_file(),
            "headline": headline_of(said),
            # functions or a VM, per workload: what a finished run answers, shown first
            "verdict": [v[:300] for v in verdict_sentences(said) or []],
            "command": serve.get("command"),
            "errors": error_lines(path) if status in ("failed", "finished", "aborted") else [],
            "skipped": [
                {k: str(s.get(k, ""))[:300] for k in ("target", "workload", "reason")}
                for s in meta.get("skipped") or ()
                if isinstance(s, Mapping)
            ],
        }

    def detail(self, run_id: str) -> dict[str, Any]:
        """:meth:`status` plus the plan, the planned count and the progress from the records."""
        out = self.status(run_id)
        path = self.results / run_id
        meta = read_run_meta(path).data
        done, failed, last = count_records(rundir.paths(path).records)
        out.update(
            config=public_config(meta.get("config")),
            planned=planned_invocations(meta) if meta else None,
            done=done,
            failed=failed,
            last=last,
        )
        return out

    def _recently_active(self, path: Path) -> bool:
        files = rundir.paths(path)
        newest = max(
            (p.stat().st_mtime for p in (files.meta, files.records) if p.exists()),
            default=0.0,
        )
        return self.clock() - newest < TERMINAL_STALE_S

    # ---- starting and cancelling

    def active(self) -> list[str]:
        """Runs of this server (or adopted from a previous one) whose process is alive."""
        return [rid for rid, c in self._children.items() if c.alive()]

    def start(self, body: object) -> str:
        """Validate a run request, then start it; the new run's id.

        :class:`FormError` for bad input (nothing created); :class:`RunConflict` when
        ``max_runs`` runs are going already.
        """
        from serverless_hpc import driver

        argv = form_to_argv(body)
        run_id = driver.new_run_id()
        out = self.results / run_id
        cfg = check_argv(argv, out)
        with self._lock:
            going = self.active()
            if len(going) >= self.max_runs:
                raise RunConflict(
                    going[0],
                    f"run {going[0]} is going; this server runs at most {self.max_runs} at "
                    "once (shpc serve --max-runs)",
                )
            out.mkdir(parents=True, exist_ok=False)
            full = [*self.command, "bench", *argv, "--run-id", run_id, "--out", str(out), "-q"]
            with (out / SERVE_LOG).open("wb") as logf:
                popen = subprocess.Popen(
                    full,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: cancel reaches workers
                    close_fds=True,
                )
            proc = psutil.Process(popen.pid)
            child = _Child(run_id, proc, popen)
            self._children[run_id] = child
            self._write_serve(
                out,
                {
                    "pid": popen.pid,
                    "create_time": proc.create_time(),
                    "requested": self.clock(),
                    "targets": list(cfg.targets),
                    "workloads": list(cfg.workloads),
                    "argv": argv,
                    "command": shlex.join(["shpc", "bench", *argv]),
                    "exit_code": None,
                    "cancel_requested": None,
                },
            )
        threading.Thread(
            target=self._reap, args=(child,), name=f"reap-{run_id}", daemon=True
        ).start()
        log.info("started run %s (pid %d): %s", run_id, popen.pid, shlex.join(full))
        return run_id

    def wait(self, run_id: str, timeout: float) -> bool:
        """Whether run ``run_id``'s process (if this server holds it) ended within ``timeout``."""
        child = self._children.get(run_id)
        if child is None:
            return True
        return child.reaped.wait(timeout) if child.popen is not None else child.wait(timeout)

    def cancel(self, run_id: str) -> None:
        """Interrupt a going run (SIGINT to its group, then SIGTERM, SIGKILL if it lingers)."""
        self.run_dir(run_id)
        child = self._children.get(run_id)
        if child is None or not child.alive():
            status = self.status(run_id)["status"]
            raise RunConflict(run_id, f"run {run_id} is not going ({status}); nothing to cancel")
        if child.cancel_requested is None:
            child.cancel_requested = self.clock()
            self._update_serve(run_id, cancel_requested=child.cancel_requested)
            self._signal(child, signal.SIGINT)
            threading.Thread(
                target=self._escalate, args=(child,), name=f"cancel-{run_id}", daemon=True
            ).start()

    def _signal(self, child: _Child, sig: signal.Signals) -> None:
        try:
            os.killpg(os.getpgid(child.process.pid), sig)
        except ProcessLookupError:
            log.info("run %s ended before %s", child.run_id, sig.name)

    def _escalate(self, child: _Child) -> None:
        for sig, grace in ((signal.SIGTERM, CANCEL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
            if child.wait(grace):
                return
            log.warning("run %s still going after %g s: %s", child.run_id, grace, sig.name)
            self._signal(child, sig)

    def _reap(self, child: _Child) -> None:
        """Wait for our child (its own timeouts bound it) and record its exit code."""
        assert child.popen is not None
        code = child.popen.wait()
        log.info("run %s exited with %d", child.run_id, code)
        try:
            self._update_serve(child.run_id, exit_code=code)
        finally:
            child.reaped.set()

    def _adopt(self) -> None:
        """After a restart: keep hold of runs a previous server started that still run."""
        for run_id in self.run_ids():
            self._find_live(run_id, read_serve_meta(self.results / run_id).data)

    def _find_live(self, run_id: str, serve: Mapping[str, Any]) -> _Child | None:
        """The live process of a run another server started (its pid and start time match).

        Adopted, it counts against ``max_runs`` and can be cancelled from here.
        """
        if not serve or serve.get("exit_code") is not None or run_id in self._children:
            return None
        try:
            proc = psutil.Process(int(serve["pid"]))
            same = abs(proc.create_time() - float(serve["create_time"])) < 0.01
        except (psutil.Error, KeyError, TypeError, ValueError):
            return None
        if not same:
            return None
        child = _Child(run_id, proc, cancel_requested=serve.get("cancel_requested"))
        if not child.alive():
            return None
        with self._lock:
            child = self._children.setdefault(run_id, child)
        log.info("adopted run %s (pid %d), still going", run_id, proc.pid)
        return child

    def _write_serve(self, out: Path, data: Mapping[str, Any]) -> None:
        write_serve_meta(out, data)  # whole: a reader never sees half a file

    def _update_serve(self, run_id: str, **changes: Any) -> None:
        with self._lock:
            path = self.results / run_id
            data = read_serve_meta(path).data
            data.update(changes)
            self._write_serve(path, data)
