"""``lambda``: the workloads as AWS Lambda container-image functions, one per workload.

Each invocation is a synchronous ``Invoke`` (``RequestResponse``) with ``LogType=Tail``, so
the platform's own REPORT line (Init Duration, Duration, Billed Duration, Memory Size, Max
Memory Used) comes back with the response: cold starts and billing are what Lambda says, not
what the driver guesses. The driver fans out through its thread pool; this target bounds
what is in flight with :attr:`max_parallel` and the client's connection pool.

* **Failures**: a ``FunctionError`` (unhandled exception, timeout, out of memory) becomes a
  failure envelope with the platform's error type mapped onto the contract (``Timeout``,
  ``OutOfMemory``, else ``PlatformError``), and it is still costed, since Lambda bills it.
* **Throttling** (``TooManyRequestsException`` and friends) is retried with exponential
  backoff and full jitter, inside the invocation's deadline; when the next wait would cross
  the deadline the invocation is recorded as ``Throttled``. botocore's own retries are off so
  this loop alone decides and the deadline holds.
* **Forced cold starts**: a configuration change (a fresh ``SHPC_COLD_TOKEN`` environment
  variable) retires every warm execution environment; the target waits for it with the
  ``function_updated_v2`` waiter before invoking. The change is drift from the template that
  the next ``cdk deploy`` resets; it does not alter behaviour.
* **Memory sweep** (:meth:`LambdaTarget.set_memory`): the function's ``MemorySize`` is
  updated between sizes and the target waits with ``function_updated_v2``; the original size
  is restored on :meth:`LambdaTarget.close`, which the driver also calls after a failure or
  Ctrl-C. A restore that fails is logged with the command that restores it by hand.
* **Cost**: Billed Duration (which includes INIT for container images) times the memory in
  GB at the architecture's rate, plus the request price and the S3 requests the function
  counted itself; every priced line also goes to a per-run ledger written on :meth:`close`.

Names come from the CloudFormation outputs of the deployed stacks (``--target-opt
stack_prefix=...``, default ``Shpc``). boto3 is imported here only.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from serverless_hpc import aws, journal, workloads
from serverless_hpc.contract import (
    OUT_OF_MEMORY,
    PLATFORM_ERROR,
    THROTTLED,
    TIMEOUT,
    error_response,
    validate_response,
)
from serverless_hpc.invocation import Outcome, Phase, first_call_phases
from serverless_hpc.pricing import CostLedger, lambda_invocation_cost, s3_requests_cost
from serverless_hpc.retry import Backoff
from serverless_hpc.store_base import Store
from serverless_hpc.targets.aws_session import open_session, require_boto3
from serverless_hpc.targets.base import Target, TargetSettings, TargetUnavailable

log = logging.getLogger(__name__)

#: Error codes worth retrying: throttling and Lambda's transient "not ready / busy" states.
RETRYABLE_CODES: Final = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "EC2ThrottledException",
        "ResourceNotReadyException",
        "ServiceException",
    }
)
BACKOFF_BASE_S: Final = 0.25
BACKOFF_CAP_S: Final = 8.0
MAX_ATTEMPTS: Final = 50
#: Bound on waiting for a memory update to finish (``function_updated_v2``, 1 s polls).
MEMORY_UPDATE_TIMEOUT_S: Final = 300
BASE_OPTIONS: Final = frozenset(
    {"stack_prefix", "region", "profile", "architecture", "max_parallel"}
)


def known_options() -> frozenset[str]:
    """The target's options: the base ones plus ``function.<workload>`` for every workload."""
    return BASE_OPTIONS | {f"function.{w}" for w in workloads.names()}


@dataclass(frozen=True, slots=True)
class Report:
    """The platform's REPORT line for one invocation."""

    duration_ms: float | None = None
    billed_ms: float | None = None
    memory_mb: int | None = None
    max_memory_mb: float | None = None
    init_ms: float | None = None


def decode_tail(log_result: str | None) -> str:
    """The invocation's log tail (``LogResult`` is base64 of the last 4 KB)."""
    if not log_result:
        return ""
    return base64.b64decode(log_result).decode("utf-8", errors="replace")


def parse_report(log_text: str) -> Report | None:
    """The REPORT line's figures; ``None`` when the tail holds no REPORT line.

    The line is tab-separated ``Key: value unit`` fields after ``REPORT RequestId: ...``.
    """
    line = next((ln for ln in reversed(log_text.splitlines()) if ln.startswith("REPORT ")), None)
    if line is None:
        return None
    fields: dict[str, str] = {}
    for part in line.split("\t"):
        key, sep, value = part.strip().partition(": ")
        if sep:
            fields[key] = value.split()[0] if value.split() else ""

    def num(key: str) -> float | None:
        try:
            return float(fields[key]) if key in fields else None
        except ValueError:
            return None

    mem = num("Memory Size")
    return Report(
        duration_ms=num("Duration"),
        billed_ms=num("Billed Duration"),
        memory_mb=int(mem) if mem is not None else None,
        max_memory_mb=num("Max Memory Used"),
        init_ms=num("Init Duration"),
    )


def _function_error(payload: Any, report: Report | None) -> dict[str, Any]:
    """Map a ``FunctionError`` payload onto the contract's failure envelope."""
    etype = str(payload.get("errorType", "")) if isinstance(payload, dict) else ""
    emsg = str(payload.get("errorMessage", payload)) if isinstance(payload, dict) else str(payload)
    text = f"{etype}: {emsg}" if etype else emsg
    if "Task timed out" in emsg or etype == "Sandbox.Timedout":
        return error_response(TIMEOUT, f"function timed out: {text}")
    oom = (
        report is not None
        and report.memory_mb is not None
        and report.max_memory_mb is not None
        and report.max_memory_mb >= report.memory_mb
    )
    if oom or etype == "Runtime.OutOfMemory":
        return error_response(OUT_OF_MEMORY, f"function ran out of memory: {text}")
    return error_response(PLATFORM_ERROR, f"function error: {text}")


def _instance_of(runtime: dict[str, Any]) -> str | None:
    """The execution environment: its log stream (unique), else the pid the handler saw."""
    if isinstance(runtime.get("instance"), str):
        return str(runtime["instance"])
    return str(runtime["pid"]) if "pid" in runtime else None


#: Lambda's longest function timeout (15 minutes).
LAMBDA_MAX_TIMEOUT_S: Final = 900.0


class LambdaTarget(Target):
    """Invoke the deployed functions; see the module docstring."""

    name = "lambda"
    options = known_options()
    supports_forced_cold = True
    supports_memory = True

    def __init__(
        self,
        settings: TargetSettings,
        *,
        lambda_client: Any = None,
        cfn_client: Any = None,
        s3_client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """``lambda_client``/``cfn_client``/``s3_client``/``sleep``/``clock``/``rng`` are
        test seams."""
        super().__init__(settings)
        if settings.timeout_s is not None and settings.timeout_s > LAMBDA_MAX_TIMEOUT_S:
            raise TargetUnavailable(
                f"lambda: --timeout {settings.timeout_s:g} s is over Lambda's maximum function "
                f"timeout of {LAMBDA_MAX_TIMEOUT_S:g} s"
            )
        require_boto3(self.name)
        extra = self.target_options()
        self.prefix = extra.get("stack_prefix", aws.DEFAULT_STACK_PREFIX)
        self.region = extra.get("region")
        self.profile = extra.get("profile")
        self.architecture = extra.get("architecture")
        try:
            self._max_parallel = int(extra.get("max_parallel", settings.concurrency or 64))
        except ValueError:
            raise TargetUnavailable("lambda: max_parallel must be an integer") from None
        if self._max_parallel < 1:
            raise TargetUnavailable("lambda: max_parallel must be >= 1")
        #: One function per workload spec, each one's own cold-start state.
        self.workloads = workloads.names()
        self.functions: dict[str, str] = {
            w: extra[f"function.{w}"] for w in self.workloads if f"function.{w}" in extra
        }
        self._lambda = lambda_client
        self._cfn = cfn_client
        self._s3 = s3_client
        #: The results bucket's store (see :meth:`scratch_store`): unknown until asked, then
        #: the store or False when it could not be found (said once).
        self._scratch: Store | bool | None = None
        self._scratch_lock = threading.Lock()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._cold_locks = {w: threading.Lock() for w in self.workloads}
        self._cold_state_lock = threading.Lock()
        #: Per workload: a configuration update completed and no invocation has finished since,
        #: so no warm environment exists and an invocation sent now starts cold.
        self._fresh = dict.fromkeys(self.workloads, False)
        #: Per workload: the function's MemorySize before this run changed it, and now.
        self._original_memory: dict[str, int] = {}
        self._memory: dict[str, int] = {}
        self.ledger = CostLedger()
        from serverless_hpc.pricing_data import load_prices

        self.prices = load_prices()

    # -- setup ---------------------------------------------------------------------------
    def open(self) -> None:
        """Create clients and read function names from the stack outputs."""
        from botocore.exceptions import BotoCoreError, ClientError, WaiterError

        from serverless_hpc.aws.outputs import OutputsUnavailable, function_outputs

        complete = set(self.functions) >= set(self.workloads)
        if self._lambda is None or (self._cfn is None and not complete):
            self._make_clients()
        if not complete or self.architecture is None:
            try:
                outs = function_outputs(self._cfn, self.prefix)
            except OutputsUnavailable as exc:
                raise TargetUnavailable(f"lambda: {exc}") from exc
            except (BotoCoreError, ClientError) as exc:
                raise TargetUnavailable(f"lambda: cannot read stack outputs: {exc}") from exc
            self.functions = {**outs.functions, **self.functions}
            self.architecture = self.architecture or outs.architecture
        log.info("lambda functions: %s (%s)", self.functions, self.architecture)
        try:  # a driver that died mid-sweep left a function's memory changed: put it back first
            journal.restore_leftovers(
                f"lambda:{self.region}",
                lambda entry: self._update_memory(entry.resource, entry.original),
            )
        except (BotoCoreError, ClientError, WaiterError, OSError) as exc:
            raise TargetUnavailable(
                f"lambda: a function's memory left changed by a driver that died could not be "
                f"restored ({exc})"
            ) from exc

    def _make_clients(self) -> None:
        from botocore.config import Config

        session = open_session(self.name, profile=self.profile, region=self.region)
        self.region = session.region_name
        cfg = Config(
            # Lambda's ceiling is 900 s: the read timeout must outlast the longest invocation.
            read_timeout=max(self.settings.timeout_s or 900.0, 900.0) + 30.0,
            connect_timeout=10,
            retries={"max_attempts": 0, "mode": "standard"},  # the loop below retries
            max_pool_connections=self._max_parallel,
        )
        self._lambda = self._lambda or session.client("lambda", config=cfg)
        self._cfn = self._cfn or session.client("cloudformation")
        self._s3 = self._s3 or session.client("s3")

    def close(self) -> None:
        """Restore every function's memory size, then write the run's cost ledger."""
        self.restore_memory()
        if self.settings.log_dir is None or not self.ledger.lines:
            return
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.settings.log_dir / "lambda-cost-ledger.json"
        summary = {**self.ledger.summary(), "prices_as_of": self.prices.as_of}
        path.write_text(json.dumps(summary, indent=2), encoding="utf-8")

    def scratch_store(self) -> Store | None:
        """The model store in the deployment's results bucket (a stack output), where the
        functions write training checkpoints and progress notes.

        The driver reads a training's progress note there (a GET every few seconds while a
        leg runs) and deletes a finished training's checkpoints. None, said once, when the
        bucket cannot be found: the checkpoints then stay, under the prefix the log names.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        from serverless_hpc.aws.outputs import OutputsUnavailable, data_outputs
        from serverless_hpc.store_s3 import S3Store

        with self._scratch_lock:
            if self._scratch is None:
                try:
                    if self._cfn is None or self._s3 is None:
                        self._make_clients()
                    bucket = data_outputs(self._cfn, self.prefix).results_bucket
                except (OutputsUnavailable, BotoCoreError, ClientError, TargetUnavailable) as exc:
                    log.warning("lambda: cannot find the model store's bucket: %s", exc)
                    self._scratch = False
                else:
                    self._scratch = S3Store(bucket, client=self._s3)
            return self._scratch if isinstance(self._scratch, Store) else None

    @property
    def max_parallel(self) -> int:
        """In-flight invocations the driver should keep (bounded by the connection pool)."""
        return self._max_parallel

    def describe(self) -> dict[str, Any]:
        """Region, functions, architecture and stack prefix."""
        return {
            "region": self.region,
            "functions": dict(self.functions),
            "architecture": self.architecture,
            "stack_prefix": self.prefix,
            "prices_as_of": self.prices.as_of,
        }

    # -- invocation ----------------------------------------------------------------------
    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        """One synchronous invocation; see the module docstring. Never raises."""
        from botocore.exceptions import BotoCoreError, ClientError, WaiterError

        deadline = self._clock() + timeout_s
        workload = str(request.get("workload", ""))
        fn = self.functions.get(workload)
        if fn is None:
            return Outcome(
                response=error_response(
                    "InvalidRequest", f"field 'workload': no function for {workload!r}"
                ),
                cold=False,
            )
        wait_ms = None
        if force_cold:
            t0 = self._clock()
            try:
                self.retire_warm(workload, deadline)
            except (BotoCoreError, ClientError, WaiterError) as exc:
                msg = f"could not force a cold start of {fn}: {exc}"
                return Outcome(response=error_response(PLATFORM_ERROR, msg), cold=False)
            wait_ms = (self._clock() - t0) * 1e3
        body = json.dumps(request).encode()
        try:
            outcome = self._invoke_with_retry(fn, body, deadline, timeout_s)
        finally:
            if force_cold:
                with self._cold_state_lock:
                    self._fresh[workload] = False  # an environment of this function is warm now
        if wait_ms is not None:
            # part of the driver's client_ms that went to retiring warm environments
            outcome.extra["force_cold_wait_ms"] = wait_ms
        return outcome

    def _invoke_with_retry(
        self, fn: str, body: bytes, deadline: float, timeout_s: float
    ) -> Outcome:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            ReadTimeoutError,
        )

        backoff = Backoff(
            max(deadline - self._clock(), 0.0),
            base_s=BACKOFF_BASE_S,
            cap_s=BACKOFF_CAP_S,
            clock=self._clock,
            sleep=self._sleep,
            rng=self._rng,
        )
        for attempt in range(MAX_ATTEMPTS):
            try:
                resp = self._lambda.invoke(
                    FunctionName=fn, InvocationType="RequestResponse", LogType="Tail", Payload=body
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in RETRYABLE_CODES:
                    return Outcome(
                        response=error_response(PLATFORM_ERROR, f"{fn}: {exc}"), cold=False
                    )
                # the whole wait or none: an invocation sent at the deadline could not finish
                delay = backoff.pause(attempt)
                if delay is None:
                    msg = (
                        f"{fn}: still {code} after {attempt + 1} attempt(s); "
                        f"the {timeout_s:g} s deadline would pass"
                    )
                    return Outcome(response=error_response(THROTTLED, msg), cold=False)
                log.info("%s: %s, retrying after %.2f s (attempt %d)", fn, code, delay, attempt + 1)
                continue
            except (ReadTimeoutError, ConnectTimeoutError) as exc:
                return Outcome(response=error_response(TIMEOUT, f"{fn}: {exc}"), cold=False)
            except BotoCoreError as exc:
                return Outcome(response=error_response(PLATFORM_ERROR, f"{fn}: {exc}"), cold=False)
            return self._outcome(fn, resp)
        msg = f"{fn}: throttled {MAX_ATTEMPTS} times within the deadline"
        return Outcome(response=error_response(THROTTLED, msg), cold=False)

    def _outcome(self, fn: str, resp: dict[str, Any]) -> Outcome:
        """Turn an ``Invoke`` response into an outcome: payload, REPORT, cost, breakdown."""
        report = parse_report(decode_tail(resp.get("LogResult")))
        raw = resp["Payload"].read()
        try:
            payload: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            payload = raw.decode("utf-8", errors="replace")
        if resp.get("FunctionError"):
            response = _function_error(payload, report)
        else:
            try:
                response = validate_response(payload)
            except ValueError as exc:
                response = error_response(PLATFORM_ERROR, f"{fn}: malformed response: {exc}")
        if report is not None:
            cold = report.init_ms is not None
        else:
            log.warning("%s: no REPORT line in the log tail; timings from the payload", fn)
            cold = bool(response.get("cold_start", False))
        runtime = response.get("runtime", {}) if response.get("ok") else {}
        cost = self._cost(fn, report, runtime.get("s3_requests"))
        return Outcome(
            response=response,
            cold=cold,
            init_ms=report.init_ms if report else None,
            duration_ms=report.duration_ms if report else None,
            billed_ms=report.billed_ms if report else None,
            memory_mb=report.memory_mb if report else runtime.get("memory_mb"),
            max_rss_mb=report.max_memory_mb if report else runtime.get("max_rss_mb"),
            cost_usd=cost,
            breakdown=self._breakdown(report, response) if cold else {},
            instance=_instance_of(runtime),
        )

    @staticmethod
    def _breakdown(report: Report | None, response: dict[str, Any]) -> dict[str, float]:
        """A cold start split into the platform's INIT and the handler's own phases."""
        timings = response.get("timings", {}) if response.get("ok") else {}
        out: dict[str, float] = {}
        if report is not None and report.init_ms is not None and "preload_ms" in timings:
            out[Phase.IMPORTS] = float(timings["preload_ms"])
            # the rest of INIT: runtime start-up and the core imports
            out[Phase.PROCESS_START] = max(report.init_ms - float(timings["preload_ms"]), 0.0)
        if "stage_ms" in timings:
            out[Phase.DATASET_STAGE] = float(timings["stage_ms"])
        return {**out, **first_call_phases(response)}

    def _cost(self, fn: str, report: Report | None, s3: Any) -> float | None:
        """This invocation's cost (``None`` without a REPORT line to bill from)."""
        if report is None or report.billed_ms is None or report.memory_mb is None:
            return None
        arch = self.architecture or "x86_64"
        compute = lambda_invocation_cost(
            billed_ms=report.billed_ms,
            memory_mb=report.memory_mb,
            architecture=arch,
            prices=self.prices,
        )
        request = self.prices.lambda_.request
        gb_s = report.billed_ms / 1000.0 * report.memory_mb / 1024.0
        self.ledger.add(f"lambda GB-s ({arch})", gb_s, "GB-s", compute - request)
        self.ledger.add("lambda requests", 1, "request", request)
        total = compute
        if isinstance(s3, dict):
            gets, puts = int(s3.get("get", 0)), int(s3.get("put", 0))
            self.ledger.add(
                "s3 GET-class requests", gets, "request", gets * self.prices.s3.get_request
            )
            self.ledger.add(
                "s3 PUT-class requests", puts, "request", puts * self.prices.s3.put_request
            )
            total += s3_requests_cost(gets=gets, puts=puts, prices=self.prices)
        return total

    # -- memory sweep --------------------------------------------------------------------
    def set_memory(self, workload: str, memory_mb: int) -> None:
        """Set ``workload``'s function to ``memory_mb`` and wait until the update is done.

        The size before the first change is kept for :meth:`restore_memory`. An update
        retires the warm environments, so the next invocations start cold, as they would on
        Lambda after such a change.
        """
        if workload not in self.functions:
            raise TargetUnavailable(f"lambda: no function for workload {workload!r}")
        fn = self.functions[workload]
        with self._cold_locks[workload]:
            if self._memory.get(workload) == memory_mb:
                return
            if workload not in self._original_memory:
                cfg = self._lambda.get_function_configuration(FunctionName=fn)
                self._original_memory[workload] = int(cfg["MemorySize"])
                self._memory[workload] = int(cfg["MemorySize"])
            if self._memory.get(workload) != memory_mb:
                self._memory.pop(workload, None)  # unknown until the update is done
                journal.record(
                    f"lambda:{self.region}", fn, "memory_mb", self._original_memory[workload]
                )
                self._update_memory(fn, memory_mb)
                with self._cold_state_lock:
                    self._fresh[workload] = True
            self._memory[workload] = memory_mb
        log.info("%s: memory set to %d MB", fn, memory_mb)

    def _update_memory(self, fn: str, memory_mb: int) -> None:
        self._lambda.update_function_configuration(FunctionName=fn, MemorySize=memory_mb)
        self._lambda.get_waiter("function_updated_v2").wait(
            FunctionName=fn,
            WaiterConfig={"Delay": 1, "MaxAttempts": MEMORY_UPDATE_TIMEOUT_S},
        )

    def restore_memory(self) -> None:
        """Put back every function's original memory size; failures are logged, not raised.

        Each function is tried even when another fails, so one error does not leave the
        rest changed; the log names the command that finishes the job by hand.
        """
        from botocore.exceptions import BotoCoreError, ClientError, WaiterError

        for workload, original in list(self._original_memory.items()):
            fn = self.functions[workload]
            if self._memory.get(workload) == original:
                del self._original_memory[workload]
                journal.clear(f"lambda:{self.region}", fn, "memory_mb")
                continue
            try:
                self._update_memory(fn, original)
            except (BotoCoreError, ClientError, WaiterError):
                log.exception(
                    "lambda: could not restore %s to %d MB; run: aws lambda "
                    "update-function-configuration --function-name %s --memory-size %d",
                    fn,
                    original,
                    fn,
                    original,
                )
                continue
            self._memory[workload] = original
            del self._original_memory[workload]
            journal.clear(f"lambda:{self.region}", fn, "memory_mb")
            log.info("%s: memory restored to %d MB", fn, original)

    # -- forced cold starts --------------------------------------------------------------
    def prepare_batch(self, workload: str, *, force_cold: bool, timeout_s: float) -> None:
        """Retire warm environments before a forced-cold batch, outside the timing.

        The invocations' own :meth:`retire_warm` then finds the function fresh and returns
        at once; if this failed, they try again and report the failure themselves.
        """
        if force_cold and workload in self.functions:
            self.retire_warm(workload, self._clock() + timeout_s)

    def retire_warm(self, workload: str, deadline: float) -> None:
        """Make sure no warm environment of ``workload``'s function exists; wait if updating.

        One configuration update serves every forced-cold invocation sent before the first
        of them finishes (none of them can find a warm environment), so a cold fan-out of N
        costs one update, not N. Updates are serialised per function: Lambda rejects an
        update while another is in progress. Whether an invocation really was cold is still
        decided by its REPORT line (Init Duration), never assumed.
        """
        fn = self.functions[workload]
        with self._cold_locks[workload]:
            with self._cold_state_lock:
                if self._fresh[workload]:
                    return
            cfg = self._lambda.get_function_configuration(FunctionName=fn)
            variables = dict(cfg.get("Environment", {}).get("Variables", {}))
            variables["SHPC_COLD_TOKEN"] = secrets.token_hex(8)
            self._lambda.update_function_configuration(
                FunctionName=fn, Environment={"Variables": variables}
            )
            remaining = max(deadline - self._clock(), 1.0)
            self._lambda.get_waiter("function_updated_v2").wait(
                FunctionName=fn,
                WaiterConfig={"Delay": 1, "MaxAttempts": max(int(remaining), 1)},
            )
            with self._cold_state_lock:
                self._fresh[workload] = True
        log.info("%s: warm environments retired", fn)
