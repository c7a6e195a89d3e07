"""``openwhisk``: the workloads as actions on an Apache OpenWhisk deployment.

The actions are created by ``shpc ow apply`` (one package per project, one action per
workload); this target only invokes them, through the same REST client:

* **Invoke**: a blocking invocation (``blocking=true``, whole activation record). When the
  controller answers **202** (the run outlived its blocking wait, at most 60 s), the
  activation is polled with bounded exponential backoff until the invocation's own timeout.
* **Accounting** comes from the activation record: ``initTime`` (present only on a cold
  start) is ``init_ms``; ``duration`` includes the init, so the handler's duration is
  ``duration - initTime``; ``waitTime`` (queueing and container provisioning) and the raw
  duration go to ``breakdown``; memory is the ``limits`` annotation's. OpenWhisk itself bills
  nothing, so ``billed_ms`` and ``cost_usd`` stay null.
* **Success** is judged by ``response.success`` and the contract envelope in the result,
  never by the HTTP status alone. An application error whose result is ``{"error":
  <envelope>}`` (the adapter's) is that envelope; a time limit is ``Timeout``; memory
  exhaustion ``OutOfMemory``; anything else the platform did is ``PlatformError``.
* **Fan-out** is batch-native (:meth:`OpenWhiskTarget.invoke_batch`): the invocations run on
  the client's network loop, at most :attr:`max_parallel` in flight (``--target-opt
  max_parallel``, else ``--concurrency``, else the namespace's ``concurrentInvocations``, and
  never above it), with 429s and re-sends counted per invocation and backoffs outside the
  in-flight slots (:mod:`serverless_hpc.targets.openwhisk_dispatch`).
* **Forced cold**: an update of the action (``PUT ?overwrite=true`` with an empty body) bumps
  its version, and invokers do not reuse containers of older versions, so the next activation
  starts a new container. With several forced-cold invocations of one action in flight, one
  may still land on a container another just started; ``cold`` is therefore always taken from
  the record's ``initTime``, never assumed.

* **Memory sweep**: :meth:`OpenWhiskTarget.check_memory` refuses sizes outside the
  namespace's ``minActionMemory``/``maxActionMemory`` before anything runs;
  :meth:`OpenWhiskTarget.set_memory` updates the action's ``limits.memory`` (which also
  retires its warm containers) and :meth:`OpenWhiskTarget.close` restores the applied size.

Target options (``--target-opt key=value``): ``project``, ``package``, ``config_file`` (a
``.wskprops``), ``insecure`` (true/false), ``max_parallel`` (default: ``--concurrency``, else
the namespace's ``concurrentInvocations``; never above it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from serverless_hpc import journal, workloads
from serverless_hpc.contract import (
    INVALID_REQUEST,
    NOT_FOUND,
    OUT_OF_MEMORY,
    PLATFORM_ERROR,
    TIMEOUT,
    error_response,
    validate_response,
)
from serverless_hpc.invocation import Outcome, Phase, first_call_phases
from serverless_hpc.netloop import drain
from serverless_hpc.openwhisk.client import (
    OpenWhiskClient,
    OpenWhiskError,
)
from serverless_hpc.openwhisk.config import CredentialsError, load_credentials
from serverless_hpc.openwhisk.deploy import (
    DEFAULT_PROJECT,
    PAYLOAD_MAX_BYTES,
    STORE_PARAM,
    is_managed,
)
from serverless_hpc.store_base import Store
from serverless_hpc.targets.base import (
    MAX_CONCURRENCY,
    Target,
    TargetSettings,
    TargetUnavailable,
    TimedOutcome,
)
from serverless_hpc.targets.openwhisk_dispatch import Call, attempt

log = logging.getLogger(__name__)

OPTIONS: Final = frozenset({"project", "package", "config_file", "insecure", "max_parallel"})
_TRUE: Final = {"1", "true", "yes", "on"}
_FALSE: Final = {"0", "false", "no", "off"}


def _bool_option(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise TargetUnavailable(f"openwhisk: --target-opt {name} must be true or false, got {value!r}")


def _key_values(entity: dict[str, Any], field: str) -> dict[str, Any]:
    """An entity's ``annotations`` or ``parameters`` (a list of ``{key, value}``) as a dict."""
    return {
        kv["key"]: kv.get("value")
        for kv in entity.get(field) or []
        if isinstance(kv, dict) and "key" in kv
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def outcome_from_activation(record: dict[str, Any]) -> Outcome:
    """Turn an activation record into an :class:`Outcome` (see the module docstring)."""
    ann = _key_values(record, "annotations")
    init_ms = _number(ann.get("initTime"))
    total_ms = _number(record.get("duration"))
    duration_ms = total_ms - init_ms if total_ms is not None and init_ms is not None else total_ms
    raw_limits = ann.get("limits")
    limits: dict[str, Any] = raw_limits if isinstance(raw_limits, dict) else {}
    memory = limits.get("memory") if isinstance(limits.get("memory"), int) else None
    extra: dict[str, float] = {}
    for key, value in (("wait_ms", ann.get("waitTime")), ("activation_ms", total_ms)):
        number = _number(value)
        if number is not None:
            extra[key] = number
    raw_resp = record.get("response")
    resp: dict[str, Any] = raw_resp if isinstance(raw_resp, dict) else {}
    response = _contract_response(record.get("activationId"), resp, ann)
    max_rss = None
    if response.get("ok"):
        max_rss = _number((response.get("runtime") or {}).get("max_rss_mb"))
    cold = init_ms is not None
    breakdown: dict[str, float] = {}
    if cold:
        if "wait_ms" in extra:
            breakdown[Phase.QUEUE] = extra["wait_ms"]
        breakdown.update(first_call_phases(response))
    return Outcome(
        response=response,
        cold=cold,
        init_ms=init_ms,
        duration_ms=duration_ms,
        memory_mb=memory,
        max_rss_mb=max_rss,
        breakdown=breakdown,
        extra=extra,
    )


def _contract_response(
    activation_id: object, resp: dict[str, Any], ann: dict[str, Any]
) -> dict[str, Any]:
    result = resp.get("result")
    status = resp.get("status")
    if resp.get("success") is True:
        try:
            return validate_response(result)
        except ValueError as exc:
            return error_response(
                PLATFORM_ERROR, f"activation {activation_id}: not a contract response ({exc})"
            )
    err = result.get("error") if isinstance(result, dict) else None
    if isinstance(err, dict):
        try:
            envelope = validate_response(err)
        except ValueError:
            pass  # an action's own {"error": {...}} that is not ours: reported below
        else:
            if not envelope["ok"]:
                return envelope
    text = err if isinstance(err, str) else json.dumps(err)[:500]
    if ann.get("timeout") is True:
        return error_response(TIMEOUT, f"activation {activation_id}: {text}")
    if isinstance(err, str) and "exhausted its memory" in err:
        return error_response(OUT_OF_MEMORY, f"activation {activation_id}: {text}")
    return error_response(PLATFORM_ERROR, f"activation {activation_id} ({status}): {text}")


class OpenWhiskTarget(Target):
    """Invoke the applied actions of one project; see the module docstring."""

    name = "openwhisk"
    options = OPTIONS
    supports_forced_cold = True
    supports_memory = True

    def __init__(self, settings: TargetSettings) -> None:
        super().__init__(settings)
        extra = self.target_options()
        self.project = extra.get("project") or DEFAULT_PROJECT
        self.package = extra.get("package") or self.project
        config_file = extra.get("config_file")
        try:
            self.credentials = load_credentials(
                config_file=Path(config_file) if config_file else None,
                insecure=_bool_option(extra.get("insecure"), "insecure"),
            )
        except CredentialsError as exc:
            raise TargetUnavailable(f"openwhisk: {exc}") from None
        try:
            import aiohttp  # noqa: F401 - the client's HTTP
        except ImportError:
            raise TargetUnavailable(
                "openwhisk: needs the 'openwhisk' extra (pip install 'serverless-hpc[openwhisk]')"
            ) from None
        requested = extra.get("max_parallel")
        try:
            self._requested_parallel = int(requested) if requested else settings.concurrency
        except ValueError:
            raise TargetUnavailable(
                f"openwhisk: max_parallel must be an integer, got {requested!r}"
            ) from None
        if self._requested_parallel is not None and self._requested_parallel < 1:
            raise TargetUnavailable("openwhisk: max_parallel must be >= 1")
        # no request: the namespace's concurrentInvocations, which open() reads and caps to
        self._parallel = self._requested_parallel or MAX_CONCURRENCY
        self._aslots: asyncio.Semaphore | None = None
        self._client: OpenWhiskClient | None = None
        self._slots = threading.BoundedSemaphore(self._parallel)
        self._actions: dict[str, int | None] = {}
        self._original_memory: dict[str, int | None] = {}
        self._memory_lock = threading.Lock()
        self._limits: dict[str, Any] = {}
        #: Per action: the model store URI bound to it (``shpc_store``), when one is.
        self._bound_stores: dict[str, str] = {}
        self._scratch: Store | None = None

    def open(self) -> None:
        """Check that the project's package and actions exist; size the in-flight cap."""
        client = OpenWhiskClient(self.credentials, pool_size=self._parallel)
        try:
            concurrent = self._discover(client)
        except OpenWhiskError as exc:
            client.close()
            raise TargetUnavailable(f"openwhisk: {exc}") from None
        except TargetUnavailable:
            client.close()
            raise
        if isinstance(concurrent, int) and concurrent > 0 and concurrent < self._parallel:
            log.info("namespace admits %d concurrent invocations; capping fan-out", concurrent)
            self._parallel = concurrent
            self._slots = threading.BoundedSemaphore(concurrent)
        self._client = client
        try:  # a driver that died mid-sweep left an action's memory changed: put it back first
            journal.restore_leftovers(self._journal_platform(), self._restore_leftover)
        except (OpenWhiskError, OSError) as exc:
            self.close()
            raise TargetUnavailable(
                f"openwhisk: an action's memory left changed by a driver that died could not "
                f"be restored ({exc}); 'shpc ow apply' resets it"
            ) from None

    def _discover(self, client: OpenWhiskClient) -> object:
        """Read the applied actions' memory; return the namespace's concurrency limit."""
        pkg = client.get_package(self.package)
        if pkg is None or not is_managed(pkg, self.project):
            raise TargetUnavailable(
                f"openwhisk: package {self.package!r} of project {self.project!r} is not "
                f"applied on {self.credentials.apihost}; run 'shpc ow apply' first"
            )
        for brief in pkg.get("actions") or []:
            entity = client.get_action(f"{self.package}/{brief.get('name')}")
            if entity is not None and is_managed(entity, self.project):
                limits = entity.get("limits") or {}
                self._actions[str(entity["name"])] = limits.get("memory")
                bound = _key_values(entity, "parameters").get(STORE_PARAM)
                if isinstance(bound, str) and bound:
                    self._bound_stores[str(entity["name"])] = bound
        self._limits = client.get_limits()
        return self._limits.get("concurrentInvocations")

    def check_memory(self, sizes: Sequence[int]) -> None:
        """Refuse sizes outside the namespace's action memory limits (as the controller says)."""
        low, high = self._limits.get("minActionMemory"), self._limits.get("maxActionMemory")
        bad = [
            m
            for m in sizes
            if (isinstance(low, int) and m < low) or (isinstance(high, int) and m > high)
        ]
        if bad:
            raise TargetUnavailable(
                f"openwhisk: --memory-mb {', '.join(map(str, bad))} outside the namespace's "
                f"action memory limits {low}-{high} MB (the operator sets them)"
            )

    def set_memory(self, workload: str, memory_mb: int) -> None:
        """Update the action's memory limit (a new action version: no warm container is reused)."""
        if self._client is None:
            raise RuntimeError("OpenWhiskTarget.set_memory before open()")
        if workload not in self._actions:
            raise TargetUnavailable(f"openwhisk: no action for workload {workload!r}")
        with self._memory_lock:
            current = self._actions[workload]
            if current == memory_mb:
                return
            self._original_memory.setdefault(workload, current)
            if current is not None:  # journalled before the change (see serverless_hpc.journal)
                journal.record(self._journal_platform(), workload, "memory_mb", current)
            self._put_memory(workload, memory_mb)
        log.info("%s/%s: memory set to %d MB", self.package, workload, memory_mb)

    def _put_memory(self, workload: str, memory_mb: int) -> None:
        assert self._client is not None
        entity = self._client.put_action(
            f"{self.package}/{workload}", {"limits": {"memory": memory_mb}}, overwrite=True
        )
        limits = entity.get("limits") or {}
        self._actions[workload] = limits.get("memory", memory_mb)

    def restore_memory(self) -> None:
        """Put back each changed action's applied memory; failures are logged, not raised."""
        with self._memory_lock:
            for workload, original in list(self._original_memory.items()):
                if original is None or self._actions.get(workload) == original:
                    del self._original_memory[workload]
                    journal.clear(self._journal_platform(), workload, "memory_mb")
                    continue
                try:
                    self._put_memory(workload, original)
                except OpenWhiskError:
                    log.exception(
                        "openwhisk: could not restore %s/%s to %d MB; 'shpc ow apply' resets it",
                        self.package,
                        workload,
                        original,
                    )
                    continue
                del self._original_memory[workload]
                journal.clear(self._journal_platform(), workload, "memory_mb")

    def _journal_platform(self) -> str:
        """This project's actions on this controller and namespace, as the journal names them."""
        creds = self.credentials
        return f"openwhisk:{creds.base_url}/{creds.namespace}/{self.package}"

    def _restore_leftover(self, entry: journal.Entry) -> bool:
        """Put back an action memory a dead driver journalled; False for a gone action."""
        if entry.resource not in self._actions:
            return False
        self._put_memory(entry.resource, entry.original)
        return True

    def close(self) -> None:
        """Restore the actions' memory, then close the HTTP session."""
        if self._client is not None:
            self.restore_memory()
            self._client.close()
            self._client = None

    def scratch_store(self) -> Store | None:
        """The model store bound to the training actions, when the driver can reach it.

        Only an ``s3://`` store is reachable from here (with the driver's AWS credentials);
        a path is on the invokers' side, and no bound store means the action's own default
        inside its container. Where it is reachable, the driver follows a training's
        progress note there and deletes a finished training's checkpoints.
        """
        if self._scratch is not None:
            return self._scratch
        uris = {
            self._bound_stores.get(spec.name)
            for spec in workloads.specs().values()
            if spec.resumable or spec.data_parallel
        }
        if len(uris) != 1:
            return None  # none bound, or actions disagree: nothing the driver can name
        uri = uris.pop()
        if uri is None or not uri.startswith("s3://"):
            return None
        from serverless_hpc.store import open_store

        self._scratch = open_store(uri)
        return self._scratch

    @property
    def max_parallel(self) -> int:
        """Invocations in flight at once (the namespace's concurrency limit at most)."""
        return self._parallel

    def _parallel_source(self) -> str:
        """Where :attr:`max_parallel` came from (recorded in run.json)."""
        concurrent = self._limits.get("concurrentInvocations")
        from_namespace = isinstance(concurrent, int) and concurrent == self._parallel
        capped = from_namespace and self._parallel < (self._requested_parallel or 0)
        if self._requested_parallel is not None and not capped:
            return "--target-opt max_parallel or --concurrency"
        if from_namespace:
            return "namespace limits concurrentInvocations"
        return f"no namespace limit reported: the driver's largest fan-out ({MAX_CONCURRENCY})"

    def describe(self) -> dict[str, Any]:
        """Endpoint, namespace, package, each action's memory and the in-flight limit and
        where it came from (never the AUTH key)."""
        return {
            "apihost": self.credentials.apihost,
            "namespace": self.credentials.namespace,
            "project": self.project,
            "package": self.package,
            "max_parallel": self._parallel,
            "max_parallel_source": self._parallel_source(),
            "memory_mb": self.settings.memory_mb,
            "actions_memory_mb": dict(self._actions),
        }

    batch_native = True

    def invoke(
        self, request: dict[str, Any], *, timeout_s: float, force_cold: bool = False
    ) -> Outcome:
        """Invoke the workload's action and read its activation record."""
        return self.invoke_batch([request], timeout_s=timeout_s, force_cold=force_cold)[0].outcome

    def invoke_batch(
        self, requests: Sequence[dict[str, Any]], *, timeout_s: float, force_cold: bool = False
    ) -> list[TimedOutcome]:
        """A whole fan-out at once, at most :attr:`max_parallel` in flight; never raises
        for a failed invocation (see :mod:`serverless_hpc.targets.openwhisk_dispatch`)."""
        if self._client is None:
            raise RuntimeError("OpenWhiskTarget.invoke before open()")
        client = self._client
        out: list[TimedOutcome | None] = [None] * len(requests)
        calls: list[Call] = []
        for index, request in enumerate(requests):
            refusal = self._refusal(request)
            if refusal is not None:
                now = time.time()
                out[index] = TimedOutcome(Outcome(response=refusal, cold=False), 0.0, now, now)
            else:
                name = f"{self.package}/{request['workload']}"
                calls.append(Call(index, name, request, timeout_s, force_cold=force_cold))
        limit = self._parallel

        async def one(call: Call) -> float | None:
            if self._aslots is None:
                self._aslots = asyncio.Semaphore(limit)  # one per target, on its loop
            delay = await attempt(client, self._aslots, call)
            if delay is None:
                outcome = call.outcome or outcome_from_activation(call.record or {})
                out[call.index] = call.finished(outcome)
            return delay

        waves = -(-len(calls) // limit)  # each call's deadline starts when it is sent
        client.loop.run(drain(calls, limit, one), timeout_s=(waves + 1) * timeout_s)
        return [t for t in out if t is not None]

    def _refusal(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The failure envelope of a request that is not sent at all, else None."""
        workload = request.get("workload")
        if not isinstance(workload, str) or workload not in self._actions:
            msg = (
                f"field 'workload': {workload!r} is not applied as an action of package "
                f"{self.package!r} (applied: {', '.join(sorted(self._actions)) or 'none'})"
            )
            return error_response(NOT_FOUND, msg)
        size = len(json.dumps(request).encode())
        if size > PAYLOAD_MAX_BYTES:
            msg = f"request is {size} bytes, over OpenWhisk's {PAYLOAD_MAX_BYTES} bytes payload cap"
            return error_response(INVALID_REQUEST, msg)
        return None
