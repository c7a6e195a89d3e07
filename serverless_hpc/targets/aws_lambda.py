"""``lambda``: the workloads as AWS Lambda container-image functions, one per workload.

Each invocation is a synchronous ``Invoke`` (``RequestResponse``) with ``LogType=Tail``, so
the platform's own REPORT line (Init Duration, Duration, Billed Duration, Memory Size, Max
Memory Used) comes back with the response: cold starts and billing are what Lambda says, not
what the driver guesses.

* **Fan-out** is batch-native (:meth:`LambdaTarget.invoke_batch`): the requests go out as
  SigV4-signed HTTP requests over one async connection pool
  (:mod:`serverless_hpc.targets.lambda_dispatch`), with as many coroutines as requests may
  be in flight (:mod:`serverless_hpc.targets.lambda_fanout`, which holds the retry policy),
  so the driver's CPU is not what a 1,000-way batch measures.
* **In-flight limit** (:attr:`LambdaTarget.max_parallel`): ``--target-opt max_parallel``,
  else ``--concurrency``, else the account's concurrency as ``GetAccountSettings`` tells it
  (``UnreservedConcurrentExecutions``, else ``ConcurrentExecutions``); never a silent
  default. :meth:`LambdaTarget.describe` records it and where it came from.

* **Failures**: a ``FunctionError`` (unhandled exception, timeout, out of memory) becomes a
  failure envelope with the platform's error type mapped onto the contract (``Timeout``,
  ``OutOfMemory``, else ``PlatformError``), and it is still costed, since Lambda bills it.
* **Throttling** (``TooManyRequestsException`` and friends) is retried with exponential
  backoff and full jitter, inside the invocation's deadline, and counted in the outcome
  (``throttled``, ``retries``); a backoff never holds an in-flight slot. When the next wait
  would cross the deadline the invocation is recorded as ``Throttled``. A request is re-sent
  only when it provably never ran: an answer that says so (throttled, not ready) or no
  connection at all; a reply lost after sending is a failure, never a second invocation.
* **Deadlines**: one total deadline (the invocation's timeout, counted from its first send)
  covers connecting, sending and reading the whole reply, however slowly a server sends it;
  the boto3 clients the target makes (configuration updates, waiters, CloudFormation, S3)
  end each exchange by a deadline too (:mod:`serverless_hpc.targets.aws_deadline`).
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
stack_prefix=...``, default ``Shpc``). boto3, botocore and aiohttp are imported by the
``lambda`` target's modules only, when used.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from serverless_hpc import aws, journal, workloads
from serverless_hpc.contract import (
    PLATFORM_ERROR,
)
from serverless_hpc.invocation import Outcome
from serverless_hpc.netloop import LoopThread
from serverless_hpc.pricing import CostLedger
from serverless_hpc.store_base import Store
from serverless_hpc.targets.aws_deadline import bound
from serverless_hpc.targets.aws_session import open_session, require_boto3
from serverless_hpc.targets.base import (
    MAX_CONCURRENCY,
    Target,
    TargetSettings,
    TargetUnavailable,
    TimedOutcome,
)
from serverless_hpc.targets.lambda_dispatch import (
    Dispatcher,
    InvokeError,
    Signer,
)
from serverless_hpc.targets.lambda_fanout import FanOut, failed
from serverless_hpc.targets.lambda_reply import reply_outcome

log = logging.getLogger(__name__)

#: Deadline of the one ``GetAccountSettings`` call that reads the account's concurrency.
SETTINGS_DEADLINE_S: Final = 20.0
#: Bound on waiting for a memory update to finish (``function_updated_v2``, 1 s polls).
MEMORY_UPDATE_TIMEOUT_S: Final = 300
BASE_OPTIONS: Final = frozenset(
    {"stack_prefix", "region", "profile", "architecture", "max_parallel"}
)


def known_options() -> frozenset[str]:
    """The target's options: the base ones plus ``function.<workload>`` for every workload."""
    return BASE_OPTIONS | {f"function.{w}" for w in workloads.names()}


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
        dispatcher: Dispatcher | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """``lambda_client``/``cfn_client``/``s3_client``/``dispatcher`` (the Invoke data
        plane)/``sleep``/``clock``/``rng`` are test seams."""
        super().__init__(settings)
        if settings.timeout_s is not None and settings.timeout_s > LAMBDA_MAX_TIMEOUT_S:
            raise TargetUnavailable(
                f"lambda: --timeout {settings.timeout_s:g} s is over Lambda's maximum function "
                f"timeout of {LAMBDA_MAX_TIMEOUT_S:g} s"
            )
        require_boto3(self.name)
        try:
            import httptools  # noqa: F401 - the Invoke fan-out's HTTP parser
        except ImportError as exc:
            raise TargetUnavailable(
                f"lambda: httptools is not installed ({exc}); pip install 'serverless-hpc[aws]'"
            ) from exc
        extra = self.target_options()
        self.prefix = extra.get("stack_prefix", aws.DEFAULT_STACK_PREFIX)
        self.region = extra.get("region")
        self.profile = extra.get("profile")
        self.architecture = extra.get("architecture")
        #: The in-flight limit and where it came from (see :attr:`max_parallel`); an
        #: explicit one now, else the account's, read on first use.
        self._max_parallel: int | None = None
        self._limit_source = ""
        if "max_parallel" in extra:
            try:
                self._max_parallel = int(extra["max_parallel"])
            except ValueError:
                raise TargetUnavailable("lambda: max_parallel must be an integer") from None
            self._limit_source = "--target-opt max_parallel"
        elif settings.concurrency is not None:
            self._max_parallel, self._limit_source = settings.concurrency, "--concurrency"
        if self._max_parallel is not None and not 1 <= self._max_parallel <= MAX_CONCURRENCY:
            raise TargetUnavailable(f"lambda: max_parallel must be >= 1 and <= {MAX_CONCURRENCY}")
        self._account_limits: dict[str, Any] = {}
        self._dispatcher = dispatcher
        self._dispatch_lock = threading.Lock()
        #: The network loop of this target's own HTTP: the Invoke fan-out and the boto3
        #: clients it makes (each exchange under one total deadline).
        self._net = LoopThread("lambda-net")
        self._fan: FanOut | None = None
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
            # control-plane calls only (configuration updates, waiters); invocations go
            # through the dispatcher
            read_timeout=60,
            connect_timeout=10,
            retries={"max_attempts": 0, "mode": "standard"},
        )
        # made here, so bounded here: every exchange ends by its deadline (aws_deadline)
        other = Config(connect_timeout=10, read_timeout=60, retries={"mode": "standard"})
        if self._lambda is None:
            self._lambda = session.client("lambda", config=cfg)
            bound(self._lambda, self._net)
        if self._cfn is None:
            self._cfn = session.client("cloudformation", config=other)
            bound(self._cfn, self._net)
        if self._s3 is None:
            self._s3 = session.client("s3", config=other)
            bound(self._s3, self._net)
        self._session = session

    def _dispatch(self) -> Dispatcher:
        """The Invoke data plane: the control client's endpoint, the session's credentials."""
        with self._dispatch_lock:
            if self._dispatcher is None:
                session = getattr(self, "_session", None) or open_session(
                    self.name, profile=self.profile, region=self.region
                )
                if self._lambda is None:
                    self._make_clients()
                endpoint = self._lambda.meta.endpoint_url
                region = self._lambda.meta.region_name or session.region_name
                signer = Signer(session.get_credentials(), region)
                limit = self._max_parallel or MAX_CONCURRENCY
                self._dispatcher = Dispatcher(endpoint, signer, limit=limit, loop=self._net)
            return self._dispatcher

    def close(self) -> None:
        """Restore every function's memory size, close the data plane, write the cost ledger."""
        self.restore_memory()
        with self._dispatch_lock:
            dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            dispatcher.close()
        self._net.close()  # the bounded boto3 clients' connections with it
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
        """Invocations in flight at once: the explicit limit, else the account's concurrency.

        The account's comes from ``GetAccountSettings`` (read once): the unreserved
        concurrency functions without a reservation share, else the account's total. When it
        cannot be read, Lambda's default quota (1,000), and the log and :meth:`describe` say
        so.
        """
        if self._max_parallel is None:
            self._max_parallel = self._account_limit()
        return self._max_parallel

    def _account_limit(self) -> int:
        try:
            limits = self._dispatch().account_limits(deadline_s=SETTINGS_DEADLINE_S)
        except (InvokeError, TimeoutError, TargetUnavailable) as exc:
            log.warning(
                "lambda: cannot read the account's concurrency (%s); assuming Lambda's "
                "default of %d",
                exc,
                MAX_CONCURRENCY,
            )
            self._limit_source = f"Lambda's default quota (GetAccountSettings failed: {exc})"
            return MAX_CONCURRENCY
        self._account_limits = {
            k: limits[k]
            for k in ("ConcurrentExecutions", "UnreservedConcurrentExecutions")
            if isinstance(limits.get(k), int)
        }
        for key in ("UnreservedConcurrentExecutions", "ConcurrentExecutions"):
            value = self._account_limits.get(key)
            if isinstance(value, int) and value > 0:
                self._limit_source = f"GetAccountSettings AccountLimit.{key}"
                return min(value, MAX_CONCURRENCY)
        self._limit_source = "Lambda's default quota (GetAccountSettings gave no limit)"
        return MAX_CONCURRENCY

    def describe(self) -> dict[str, Any]:
        """Region, functions, architecture, stack prefix and the in-flight limit (and why)."""
        return {
            "region": self.region,
            "functions": dict(self.functions),
            "architecture": self.architecture,
            "stack_prefix": self.prefix,
            "prices_as_of": self.prices.as_of,
            "max_parallel": self.max_parallel,
            "max_parallel_source": self._limit_source,
            "account_limits": dict(self._account_limits),
        }

    # -- invocation ----------------------------------------------------------------------
    batch_native = True

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        """One synchronous invocation; see the module docstring. Never raises."""
        return self.invoke_batch([request], timeout_s=timeout_s, force_cold=force_cold)[0].outcome

    def invoke_batch(
        self, requests: Sequence[dict[str, Any]], *, timeout_s: float, force_cold: bool = False
    ) -> list[TimedOutcome]:
        """A whole fan-out at once, at most :attr:`max_parallel` in flight; never raises.

        One coroutine per request that may be in flight (``min(fan-out, max_parallel)``),
        each taking the next request when its last one is answered. ``client_ms`` of each
        is from its first send to its answer (backoffs included, the wait for a slot not).
        """
        from botocore.exceptions import BotoCoreError, ClientError, WaiterError

        deadline = self._clock() + timeout_s
        workloads_ = {str(r.get("workload", "")) for r in requests}
        waited: dict[str, float] = {}
        refused: dict[str, str] = {}
        if force_cold:
            for workload in sorted(workloads_ & set(self.functions)):
                t0 = self._clock()
                try:
                    self.retire_warm(workload, deadline)
                except (BotoCoreError, ClientError, WaiterError) as exc:
                    fn = self.functions[workload]
                    refused[workload] = f"could not force a cold start of {fn}: {exc}"
                waited[workload] = (self._clock() - t0) * 1e3
        try:
            dispatcher = self._dispatch()
            limit = self.max_parallel
        except TargetUnavailable as exc:
            return [failed(PLATFORM_ERROR, str(exc)) for _ in requests]
        if self._fan is None:  # one per target: invoke() from other threads shares its slots
            self._fan = FanOut(
                dispatcher,
                self.functions,
                limit,
                outcome=lambda fn, reply: reply_outcome(
                    fn,
                    reply,
                    architecture=self.architecture,
                    prices=self.prices,
                    ledger=self.ledger,
                ),
                clock=self._clock,
                rng=self._rng,
                sleep=self._sleep,
            )
        try:
            waves = -(-len(requests) // limit)  # each request's deadline starts when sent
            timed = dispatcher.loop.run(
                self._fan.run(requests, timeout_s, refused), timeout_s=(waves + 1) * timeout_s
            )
        finally:
            if force_cold:
                with self._cold_state_lock:
                    for workload in workloads_ & set(self.functions):
                        self._fresh[workload] = False  # an environment is warm now
        for req, t in zip(requests, timed, strict=True):
            wait_ms = waited.get(str(req.get("workload", "")))
            if wait_ms is not None:
                # the driver's wait for the warm environments to retire, before sending
                t.outcome.extra["force_cold_wait_ms"] = wait_ms
        return timed

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
