"""TEST DOUBLE of the Apache OpenWhisk controller's REST API (``/api/v1``), loopback only.

This is not OpenWhisk. It is a small HTTP server on 127.0.0.1 (ephemeral port), written
from the OpenWhisk REST API documentation (docs/rest_api.md, the controller's swagger,
docs/reference.md for limits and activation annotations, the controller's error messages),
implementing only the subset serverless-hpc uses, so the real ``requests``-based client,
``shpc ow apply/destroy/status``, the ``openwhisk`` target and the Pulumi provider can be
exercised end to end on a machine without Docker:

* basic authentication (401 ``The supplied authentication is invalid.``), namespace ``_`` or
  the caller's own (403 otherwise);
* ``GET /namespaces/_/limits`` (namespace action limits, OpenWhisk 2.0 field names);
* packages and actions: ``PUT`` (409 ``resource already exists`` without ``overwrite=true``;
  an update merges fields, bumps the patch version and retires warm containers), ``GET``
  (``code=false``), ``DELETE`` (a package that still holds actions: 409); limits outside
  the namespace's range: 400; a body over the size cap: 413;
* ``POST /actions/{pkg}/{action}``: blocking (200 success, 502 application/developer error,
  500 internal error, each with the activation record; **202** with only the activation id
  when the run outlives the blocking wait) and non-blocking (202); a payload over
  ``maxPayloadSize``: 413; more than ``concurrentInvocations`` in flight: 429;
* ``GET /activations/{id}`` (404 until the activation has completed);
* activation records with ``duration`` (including init), ``response.{status, statusCode,
  success, result}`` and the ``path``, ``kind``, ``limits``, ``timeout``, ``waitTime`` and
  (on a cold start only) ``initTime`` annotations;
* injectable faults (:meth:`ControllerDouble.inject`) for 429/5xx paths;
* for fan-out benchmarks: ``simulate_s`` answers invocations without containers (a contract
  success after that many seconds), ``throttle_share`` answers each invocation with 429
  with that probability (a seeded draw), ``backlog`` sets the listen backlog (5 by default, as
  ``http.server``'s: a controller with a short backlog). Run standalone with
  ``python -m tests.doubles.openwhisk_controller`` (see :func:`main`).

Actions run for real: each container is a Python subprocess running
``tests/doubles/openwhisk_runtime.py`` (a double of the action proxy) that executes the
action's code (the real adapter, ``openwhisk/action.py``) with ``main(args)``. Containers are
reused warm for the same action version, one activation at a time, killed when an activation
exceeds the action's time limit. Not modelled: memory enforcement, image pulls, sequences,
triggers, rules, web actions, activation logs, namespaces other than the caller's.
"""

from __future__ import annotations

import base64
import json
import queue
import random
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

RUNTIME = Path(__file__).with_name("openwhisk_runtime.py")
#: The secret half of the double's AUTH key: tests assert it never appears in any output.
SECRET = "test-double-secret-key-not-real"
DEFAULT_AUTH = f"23bc46b1-71f6-4ed5-8c54-816aa4f8c502:{SECRET}"
DEFAULT_LIMITS: dict[str, Any] = {
    "concurrentInvocations": 30,
    "firesPerMinute": 60,
    "invocationsPerMinute": 60,
    "maxActionConcurrency": 500,
    "maxActionLogs": 10,
    "maxActionMemory": 512,
    "maxActionTimeout": 300000,
    "maxParameterSize": "1048576 B",
    "maxPayloadSize": "1048576 B",
    "minActionConcurrency": 1,
    "minActionLogs": 0,
    "minActionMemory": 128,
    "minActionTimeout": 100,
}
MAX_BODY_BYTES = 50 * 1024 * 1024
STATUS_CODES = {
    "success": 0,
    "application error": 1,
    "action developer error": 2,
    "whisk internal error": 3,
}


def _size(value: Any) -> int:
    m = re.match(r"^\s*(\d+)\s*([KMG]?B)?\s*$", str(value), re.IGNORECASE)
    assert m, value
    unit = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[(m.group(2) or "B").upper()]
    return int(m.group(1)) * unit


class _Reply(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


@dataclass
class Fault:
    """An injected answer: the next ``times`` requests matching method and path get it."""

    method: str
    path: re.Pattern[str]
    status: int
    body: Any
    times: int


class Container:
    """One warm-able container: a runtime subprocess initialised with one action version."""

    def __init__(self, python: str, env: dict[str, str], stderr: Any) -> None:
        self.proc = subprocess.Popen(
            [python, str(RUNTIME)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.key: tuple[str, str] | None = None

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def call(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """Send one message; the reply, or None on timeout or exit."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        try:
            line = self.lines.get(timeout=max(timeout_s, 0.001))
        except queue.Empty:
            return None
        return None if line is None else json.loads(line)

    def kill(self) -> None:
        """Stop the container process."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@dataclass
class Activation:
    """An activation in flight or done."""

    activation_id: str
    done: threading.Event = field(default_factory=threading.Event)
    record: dict[str, Any] | None = None


class ControllerDouble:
    """The controller test double; use as a context manager. See the module docstring."""

    def __init__(
        self,
        *,
        auth: str = DEFAULT_AUTH,
        namespace: str = "guest",
        limits: dict[str, Any] | None = None,
        blocking_wait_s: float = 60.0,
        container_env: dict[str, str] | None = None,
        python: str = sys.executable,
        log_path: Path | None = None,
        simulate_s: float | None = None,
        throttle_share: float = 0.0,
        backlog: int = 5,
    ) -> None:
        self.simulate_s = simulate_s
        self.throttle_share = throttle_share
        self.backlog = backlog
        self.throttled = 0
        self.lost_answers = 0
        self._invocations = 0
        self._draw = random.Random(0)  # seeded: a run throttles the same invocations
        self._sim_idle: dict[tuple[str, str], int] = {}
        self.auth = auth
        self.namespace = namespace
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self.blocking_wait_s = blocking_wait_s
        self.container_env = dict(container_env or {})
        self.python = python
        self.log_path = log_path
        self.packages: dict[str, dict[str, Any]] = {}
        self.actions: dict[str, dict[str, Any]] = {}
        self.activations: dict[str, Activation] = {}
        self.idle: list[Container] = []
        self.busy: set[Container] = set()
        self.containers_started = 0
        self.max_in_flight = 0
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.faults: list[Fault] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._log: Any = None

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> ControllerDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body are written separately: without NODELAY, Nagle plus
                # delayed ACK add ~40 ms to every loopback request.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: tests assert on double.calls instead

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body = double.dispatch(
                    self.command, self.path, self.headers.get("Authorization"), raw
                )
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except ConnectionError:
                    with double.lock:
                        double.lost_answers += 1  # the client left before its answer
                    raise

            do_GET = do_PUT = do_POST = do_DELETE = _serve

        def handle_error(server: Any, request: Any, client_address: Any) -> None:
            if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that left: quiet
                ThreadingHTTPServer.handle_error(server, request, client_address)

        server = type(
            "Server",
            (ThreadingHTTPServer,),
            {"request_queue_size": self.backlog, "handle_error": handle_error},
        )
        self._server = server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.log_path is not None:
            self._log = self.log_path.open("a")
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        with self.lock:
            containers = [*self.idle, *self.busy]
            self.idle.clear()
        for c in containers:
            c.kill()
        if self._log is not None:
            self._log.close()

    @property
    def apihost(self) -> str:
        """``http://127.0.0.1:<port>``: what a ``.wskprops`` APIHOST would say."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def write_wskprops(self, path: Path, *, auth: str | None = None) -> Path:
        """Write a ``.wskprops`` pointing at this double."""
        path.write_text(
            f"APIHOST={self.apihost}\nAUTH={auth or self.auth}\nNAMESPACE={self.namespace}\n"
        )
        return path

    def inject(
        self, method: str, path_regex: str, status: int, body: Any = None, *, times: int = 1
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (and ``body``)."""
        if body is None:
            body = {"error": HTTPStatus(status).phrase, "code": secrets.token_hex(16)}
        self.faults.append(Fault(method, re.compile(path_regex), status, body, times))

    # -- dispatch -------------------------------------------------------------------------

    def _err(self, status: int, message: str) -> _Reply:
        return _Reply(status, {"error": message, "code": secrets.token_hex(16)})

    def dispatch(
        self, method: str, raw_path: str, authorization: str | None, raw: bytes
    ) -> tuple[int, Any]:
        """Route one request; every failure is an OpenWhisk-style ``{"error", "code"}``."""
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        path = split.path
        if path.startswith("/_double/"):  # the benchmark's counters, not OpenWhisk's API
            return self._counters(path)
        with self.lock:
            self.calls.append((method, path, query))
        try:
            self._authenticate(authorization)
            for fault in list(self.faults):
                if fault.method == method and fault.path.search(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault.status, fault.body
            if len(raw) > MAX_BODY_BYTES:
                raise self._err(413, f"Request larger than allowed: {len(raw)} > {MAX_BODY_BYTES}")
            body = json.loads(raw) if raw else None
            return self._route(method, path, query, body)
        except _Reply as reply:
            return reply.status, reply.body

    def _counters(self, path: str) -> tuple[int, Any]:
        """``/_double/stats``: invocations, 429s and the peak in flight; ``/_double/reset``."""
        with self.lock:
            if path == "/_double/reset":
                self.max_in_flight = self.throttled = self._invocations = self.lost_answers = 0
            return 200, {
                "requests": self._invocations,
                "lost_answers": self.lost_answers,
                "throttled": self.throttled,
                "peak_in_flight": self.max_in_flight,
            }

    def _authenticate(self, authorization: str | None) -> None:
        expected = "Basic " + base64.b64encode(self.auth.encode()).decode()
        if authorization != expected:
            raise self._err(401, "The supplied authentication is invalid.")

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.split("/") if p]
        if parts[:3] != ["api", "v1", "namespaces"] or len(parts) < 5:
            raise self._err(404, "The requested resource does not exist.")
        ns, collection, rest = parts[3], parts[4], parts[5:]
        if ns not in ("_", self.namespace):
            raise self._err(403, f"The supplied authentication is not authorized to access '{ns}'.")
        if collection == "limits" and not rest and method == "GET":
            return 200, dict(self.limits)
        if collection == "packages" and len(rest) == 1:
            return self._package(method, rest[0], query, body)
        if collection == "actions" and len(rest) in (1, 2):
            name = "/".join(rest)
            if method == "POST":
                return self._invoke(name, query, body)
            return self._action(method, name, query, body)
        if collection == "activations" and len(rest) == 1 and method == "GET":
            with self.lock:
                act = self.activations.get(rest[0])
            if act is None or act.record is None:
                raise self._err(404, "The requested resource does not exist.")
            return 200, act.record
        raise self._err(404, "The requested resource does not exist.")

    # -- packages and actions -------------------------------------------------------------

    @staticmethod
    def _merge_annotations(old: list[dict[str, Any]], new: list[dict[str, Any]] | None) -> list:
        merged = {a["key"]: a["value"] for a in old}
        merged.update({a["key"]: a["value"] for a in new or []})
        return [{"key": k, "value": v} for k, v in merged.items()]

    @staticmethod
    def _bump(version: str) -> str:
        major, minor, patch = (int(x) for x in version.split("."))
        return f"{major}.{minor}.{patch + 1}"

    def _package(self, method: str, name: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        with self.lock:
            pkg = self.packages.get(name)
            if method == "GET":
                if pkg is None:
                    raise self._err(404, "The requested resource does not exist.")
                actions = [
                    {"name": a["name"], "version": a["version"], "annotations": a["annotations"]}
                    for key, a in sorted(self.actions.items())
                    if key.startswith(name + "/")
                ]
                return 200, {**pkg, "actions": actions, "feeds": []}
            if method == "DELETE":
                if pkg is None:
                    raise self._err(404, "The requested resource does not exist.")
                inside = [k for k in self.actions if k.startswith(name + "/")]
                if inside:
                    raise self._err(
                        409,
                        f"Package not empty (contains {len(inside)} "
                        f"entit{'y' if len(inside) == 1 else 'ies'}). Set force param or "
                        "delete package contents.",
                    )
                del self.packages[name]
                return 200, pkg
            if method != "PUT":
                raise self._err(405, "HTTP method not allowed")
            body = body or {}
            if pkg is not None and query.get("overwrite") != "true":
                raise self._err(409, "resource already exists")
            if pkg is None:
                pkg = {
                    "name": name,
                    "namespace": self.namespace,
                    "version": "0.0.1",
                    "annotations": body.get("annotations") or [],
                    "parameters": body.get("parameters") or [],
                    "publish": bool(body.get("publish", False)),
                    "binding": {},
                }
            else:
                pkg = {
                    **pkg,
                    "version": self._bump(pkg["version"]),
                    "annotations": self._merge_annotations(
                        pkg["annotations"], body.get("annotations")
                    ),
                    "parameters": body.get("parameters", pkg["parameters"]),
                }
            self.packages[name] = pkg
            return 200, pkg

    def _check_limits(self, limits: dict[str, Any]) -> None:
        checks = (("memory", "ActionMemory", "MB"), ("timeout", "ActionTimeout", "ms"))
        for key, suffix, unit in checks:
            value = limits[key]
            if value > self.limits["max" + suffix]:
                raise self._err(
                    400,
                    f"{key.capitalize()} {value} {unit} exceeds allowed threshold of "
                    f"{self.limits['max' + suffix]} {unit}.",
                )
            if value < self.limits["min" + suffix]:
                raise self._err(
                    400,
                    f"{key.capitalize()} {value} {unit} below allowed threshold of "
                    f"{self.limits['min' + suffix]} {unit}.",
                )

    def _action(self, method: str, name: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        with self.lock:
            action = self.actions.get(name)
            if method in ("GET", "DELETE"):
                if action is None:
                    raise self._err(404, "The requested resource does not exist.")
                public = self._public(action, code=query.get("code", "true") == "true")
                if method == "DELETE":
                    del self.actions[name]
                    self._retire(name)
                return 200, public
            if method != "PUT":
                raise self._err(405, "HTTP method not allowed")
            body = body or {}
            if "/" in name and name.split("/", maxsplit=1)[0] not in self.packages:
                raise self._err(404, "The requested resource does not exist.")
            if action is not None and query.get("overwrite") != "true":
                raise self._err(409, "resource already exists")
            default_limits = {"memory": 256, "timeout": 60000, "logs": 10, "concurrency": 1}
            if action is None:
                if not body.get("exec"):
                    raise self._err(400, "exec undefined")
                limits = {**default_limits, **(body.get("limits") or {})}
                self._check_limits(limits)
                action = {
                    "name": name.rsplit("/", maxsplit=1)[-1],
                    "namespace": f"{self.namespace}/{name.rsplit('/', 1)[0]}"
                    if "/" in name
                    else self.namespace,
                    "version": "0.0.1",
                    "exec": body["exec"],
                    "limits": limits,
                    "annotations": self._merge_annotations(
                        [{"key": "exec", "value": body["exec"].get("kind")}],
                        body.get("annotations"),
                    ),
                    "parameters": body.get("parameters") or [],
                    "publish": bool(body.get("publish", False)),
                }
            else:
                limits = {**action["limits"], **(body.get("limits") or {})}
                self._check_limits(limits)
                action = {
                    **action,
                    "version": self._bump(action["version"]),
                    "exec": body.get("exec") or action["exec"],
                    "limits": limits,
                    "annotations": self._merge_annotations(
                        action["annotations"], body.get("annotations")
                    ),
                    "parameters": body.get("parameters", action["parameters"]),
                }
                self._retire(name)
            action["updated"] = int(time.time() * 1000)
            self.actions[name] = action
            return 200, self._public(action, code=True)

    @staticmethod
    def _public(action: dict[str, Any], *, code: bool) -> dict[str, Any]:
        out = json.loads(json.dumps(action))
        if not code:
            out["exec"].pop("code", None)
        return out

    def _retire(self, name: str) -> None:
        """Stop idle containers of ``name`` (an update or delete makes them stale)."""
        stale = [c for c in self.idle if c.key is not None and c.key[0] == name]
        for c in stale:
            self.idle.remove(c)
            threading.Thread(target=c.kill, daemon=True).start()

    # -- invocations ----------------------------------------------------------------------

    def _invoke(self, name: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        payload = body if isinstance(body, dict) else {}
        size = len(json.dumps(payload).encode())
        max_payload = _size(self.limits.get("maxPayloadSize", "1048576 B"))
        if size > max_payload:
            raise self._err(413, f"Request larger than allowed: {size} > {max_payload} bytes.")
        with self.lock:
            action = self.actions.get(name)
            if action is None:
                raise self._err(404, "The requested resource does not exist.")
            self._invocations += 1
            if self._draw.random() < self.throttle_share:  # each one with that chance
                self.throttled += 1
                raise self._err(429, "Too many requests in the last minute (throttled).")
            in_flight = sum(1 for a in self.activations.values() if not a.done.is_set())
            allowed = self.limits["concurrentInvocations"]
            if in_flight >= allowed:
                raise self._err(
                    429,
                    f"Too many concurrent requests in flight (count: {in_flight}, "
                    f"allowed: {allowed}).",
                )
            snapshot = json.loads(json.dumps(action))
            act = Activation(secrets.token_hex(16))
            self.activations[act.activation_id] = act
            self.max_in_flight = max(self.max_in_flight, in_flight + 1)
        received = time.monotonic()
        if self.simulate_s is not None and query.get("blocking") == "true":
            self._simulate(name, snapshot, payload, act)  # in this request's thread
        elif self.simulate_s is not None:
            threading.Thread(
                target=self._simulate, args=(name, snapshot, payload, act), daemon=True
            ).start()
        else:
            threading.Thread(
                target=self._execute, args=(name, snapshot, payload, act, received), daemon=True
            ).start()
        if query.get("blocking") != "true":
            return 202, {"activationId": act.activation_id}
        wait_s = self.blocking_wait_s
        if "timeout" in query:
            wait_s = min(wait_s, int(query["timeout"]) / 1000.0)
        if not act.done.wait(wait_s):
            return 202, {"activationId": act.activation_id}
        assert act.record is not None
        record = act.record
        status = {0: 200, 1: 502, 2: 502, 3: 500}[record["response"]["statusCode"]]
        if query.get("result") == "true":
            return status, record["response"]["result"]
        return status, record

    def _simulate(
        self, name: str, action: dict[str, Any], payload: dict[str, Any], act: Activation
    ) -> None:
        """A simulated activation: a contract success after ``simulate_s``, no container."""
        assert self.simulate_s is not None
        key = (name, action["version"])
        with self.lock:
            cold = self._sim_idle.get(key, 0) == 0
            if not cold:
                self._sim_idle[key] -= 1
        start_ms = int(time.time() * 1000)
        time.sleep(self.simulate_s)
        end_ms = int(time.time() * 1000)
        with self.lock:
            self._sim_idle[key] = self._sim_idle.get(key, 0) + 1
        result = {
            "ok": True,
            "workload": str(payload.get("workload", "")),
            "result": {},
            "timings": {"load_ms": 0.0, "compute_ms": self.simulate_s * 1e3},
            "cold_start": cold,
            "runtime": {"platform": "openwhisk"},
        }
        annotations = [
            {"key": "path", "value": f"{self.namespace}/{name}"},
            {"key": "waitTime", "value": 0},
            {"key": "timeout", "value": False},
            {"key": "limits", "value": action["limits"]},
        ]
        if cold:
            annotations.append({"key": "initTime", "value": 0})
        act.record = {
            "activationId": act.activation_id,
            "namespace": self.namespace,
            "name": action["name"],
            "version": action["version"],
            "start": start_ms,
            "end": end_ms,
            "duration": end_ms - start_ms,
            "response": {"status": "success", "statusCode": 0, "success": True, "result": result},
            "logs": [],
            "annotations": annotations,
        }
        act.done.set()

    def _acquire(self, key: tuple[str, str], env: dict[str, str]) -> tuple[Container, bool]:
        with self.lock:
            for c in reversed(self.idle):
                if c.key == key and c.proc.poll() is None:
                    self.idle.remove(c)
                    self.busy.add(c)
                    return c, False
            self.containers_started += 1
        c = Container(self.python, env, self._log or subprocess.DEVNULL)
        with self.lock:
            self.busy.add(c)
        return c, True

    def _execute(
        self,
        name: str,
        action: dict[str, Any],
        payload: dict[str, Any],
        act: Activation,
        received: float,
    ) -> None:
        start_ms = int(time.time() * 1000)
        limits = action["limits"]
        timeout_s = limits["timeout"] / 1000.0
        key = (name, action["version"])
        ow_env = {
            "__OW_ACTION_NAME": f"/{self.namespace}/{name}",
            "__OW_ACTION_VERSION": action["version"],
            "__OW_NAMESPACE": self.namespace,
            "__OW_ACTIVATION_ID": act.activation_id,
        }
        import os

        env = {**os.environ, **self.container_env, **ow_env}
        container, cold = self._acquire(key, env)
        wait_ms = (time.monotonic() - received) * 1e3
        init_ms: float | None = None
        status, result, timed_out, healthy = "success", None, False, True
        t0 = time.monotonic()
        if cold:
            exec_ = action["exec"]
            reply = container.call(
                {"init": {"code": exec_.get("code", ""), "main": exec_.get("main"), "env": ow_env}},
                timeout_s,
            )
            init_ms = (time.monotonic() - t0) * 1e3
            if reply is None or "error" in reply:
                healthy = False
                status = "action developer error"
                if reply is None and container.proc.poll() is None:
                    timed_out = True
                    result = {
                        "error": f"The action exceeded its time limits of {limits['timeout']} "
                        "milliseconds during initialization."
                    }
                elif reply is None:
                    result = {"error": "The action did not initialize and exited unexpectedly."}
                else:
                    result = {"error": f"The action failed during initialization: {reply['error']}"}
        if healthy:
            params = {p["key"]: p["value"] for p in self._package_params(name)}
            params.update({p["key"]: p["value"] for p in action["parameters"]})
            params.update(payload)
            remaining = timeout_s - (time.monotonic() - t0)
            reply = container.call({"run": {"value": params, "env": ow_env}}, remaining)
            if reply is None:
                healthy = False
                status = "action developer error"
                if container.proc.poll() is None:
                    timed_out = True
                    result = {
                        "error": f"The action exceeded its time limits of {limits['timeout']} "
                        "milliseconds."
                    }
                else:
                    result = {
                        "error": "The action did not produce a valid response and exited "
                        "unexpectedly."
                    }
            elif "error" in reply:
                status, result = "action developer error", {"error": reply["error"]}
            else:
                result = reply["result"]
                size = len(json.dumps(result).encode())
                max_result = _size(self.limits.get("maxPayloadSize", "1048576 B"))
                if size > max_result:
                    status = "action developer error"
                    result = {
                        "error": "The action produced a response that exceeded the allowed "
                        f"length: {size} > {max_result} bytes."
                    }
                elif "error" in result:
                    status = "application error"
        end_ms = int(time.time() * 1000)
        with self.lock:
            self.busy.discard(container)
            current = self.actions.get(name)
            if healthy and current is not None and current["version"] == action["version"]:
                container.key = key
                self.idle.append(container)
            else:
                threading.Thread(target=container.kill, daemon=True).start()
        annotations = [
            {"key": "path", "value": f"{self.namespace}/{name}"},
            {"key": "waitTime", "value": round(wait_ms)},
            {"key": "kind", "value": action["exec"].get("kind")},
            {"key": "timeout", "value": timed_out},
            {"key": "limits", "value": limits},
        ]
        if init_ms is not None:
            annotations.append({"key": "initTime", "value": round(init_ms)})
        act.record = {
            "activationId": act.activation_id,
            "namespace": self.namespace,
            "name": action["name"],
            "version": action["version"],
            "subject": self.namespace,
            "publish": False,
            "start": start_ms,
            "end": end_ms,
            "duration": end_ms - start_ms,
            "response": {
                "status": status,
                "statusCode": STATUS_CODES[status],
                "success": status == "success",
                "result": result,
                "size": len(json.dumps(result)),
            },
            "logs": [],
            "annotations": annotations,
        }
        act.done.set()

    def _package_params(self, name: str) -> list[dict[str, Any]]:
        if "/" not in name:
            return []
        with self.lock:
            pkg = self.packages.get(name.split("/", maxsplit=1)[0])
        return list(pkg["parameters"]) if pkg else []


def main() -> None:
    """Serve standalone with the project's classify action applied, simulated (for
    ``benchmarks/fanout.py``); print ``PORT <port> <auth>`` once ready."""
    import argparse

    from serverless_hpc.openwhisk import deploy
    from serverless_hpc.openwhisk.client import OpenWhiskClient
    from serverless_hpc.openwhisk.config import Credentials

    parser = argparse.ArgumentParser(description="OpenWhisk controller test double")
    parser.add_argument("--simulate-s", type=float, default=0.2)
    parser.add_argument("--throttle", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=5)
    args = parser.parse_args()
    limits = {**DEFAULT_LIMITS, "concurrentInvocations": args.concurrency}
    double = ControllerDouble(
        limits=limits,
        simulate_s=args.simulate_s,
        throttle_share=args.throttle,
        backlog=args.backlog,
    )
    with double:
        client = OpenWhiskClient(Credentials(apihost=double.apihost, auth=double.auth))
        cfg = deploy.ProjectConfig(workloads=("classify",), images={"lean": "img:1"})
        deploy.apply(client, cfg)
        client.close()
        sys.stdout.write(f"PORT {double.apihost.rsplit(':', 1)[1]} {double.auth}\n")
        sys.stdout.flush()
        threading.Event().wait()


if __name__ == "__main__":
    main()
