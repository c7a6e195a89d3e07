"""The Lambda adapter: event and context in, the shared handler, the contract response out.

:class:`LambdaAdapter` is what ``lambdas/handler.py`` calls, so that file stays a few lines.
It stages the dataset splits the request's workload declares (see
:mod:`~serverless_hpc.aws.function.staging`), maps the event (the contract request itself) and
context to :func:`serverless_hpc.handler.handle`, and adds what only Lambda knows (the log
stream naming the execution environment, the S3 requests it made). Every failure becomes the
contract's failure envelope.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from serverless_hpc.aws.function.staging import dataset_splits, stage_dataset
from serverless_hpc.contract import DATASET_ERROR, INVALID_REQUEST, error_response
from serverless_hpc.data import fashion_mnist as fm
from serverless_hpc.workloads.base import Context, deadline_from_remaining_ms

log = logging.getLogger(__name__)


class LambdaAdapter:
    """One function's event -> contract -> response mapping (see the module docstring).

    Configuration comes from the function's environment, set by the WorkloadFunction construct:
    ``SHPC_WORKLOAD`` (the workload this function serves), ``SHPC_DATASET_URI`` and
    ``FASHION_MNIST_DIR`` (where to stage the dataset), ``SHPC_STORE`` (the model store).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.workload = env.get("SHPC_WORKLOAD", "")
        self.dataset_uri = env.get("SHPC_DATASET_URI", "")
        self.data_dir = Path(env.get("FASHION_MNIST_DIR", "/tmp/fashion-mnist"))  # noqa: S108 - Lambda's only writable directory
        self.store_uri = env.get("SHPC_STORE") or None
        self.preload_ms: float | None = None
        self.s3_requests = S3RequestCounter()

    def init(self) -> float:
        """Init-phase work: import the workload's libraries; return the time it took (ms)."""
        from serverless_hpc.handler import preload
        from serverless_hpc.store_s3 import default_client

        self.s3_requests.attach(default_client())
        self.preload_ms = preload(self.workload) if self.workload else 0.0
        return self.preload_ms

    def __call__(self, event: object, context: Any) -> dict[str, Any]:
        """Handle one invocation; never raises."""
        from serverless_hpc.handler import handle

        memory_mb = _memory_of(context)
        if not isinstance(event, dict):
            return error_response(
                INVALID_REQUEST, f"event must be a JSON object, got {type(event).__name__}"
            )
        workload = event.get("workload")
        if self.workload and workload != self.workload:
            return error_response(
                INVALID_REQUEST,
                f"field 'workload': this function serves {self.workload!r}, got {workload!r}",
            )
        self.s3_requests.reset()
        stage_ms = 0.0
        if self.dataset_uri and isinstance(workload, str):
            t0 = time.perf_counter()
            try:
                stage_dataset(
                    self.dataset_uri, self.data_dir, dataset_splits(workload, event.get("params"))
                )
            except fm.DatasetError as exc:
                log.exception("dataset staging failed")
                return error_response(DATASET_ERROR, str(exc))
            stage_ms = (time.perf_counter() - t0) * 1e3
        ctx = Context(
            data_dir=self.data_dir, store_uri=self.store_uri, deadline=_deadline_of(context)
        )
        response = handle(event, platform="lambda", memory_mb=memory_mb, ctx=ctx)
        if response.get("ok"):
            response["timings"]["stage_ms"] = stage_ms
            if response.get("cold_start") and self.preload_ms is not None:
                response["timings"]["preload_ms"] = self.preload_ms
            response["runtime"]["s3_requests"] = self.s3_requests.snapshot()
            # the log stream names this execution environment (pids repeat across them)
            stream = getattr(context, "log_stream_name", None)
            if isinstance(stream, str):
                response["runtime"]["instance"] = stream
        return response


class S3RequestCounter:
    """Counts the S3 requests a client makes, by price class, through botocore's events.

    S3 prices LIST like PUT; HEAD and GET are GET-class. The counts let the Lambda target
    price each invocation's S3 requests from what was really sent, not from a guess.
    """

    _PUT_CLASS = frozenset({"PutObject", "CopyObject", "ListObjects", "ListObjectsV2"})

    def __init__(self) -> None:
        self.get = 0
        self.put = 0

    def attach(self, client: Any) -> None:
        """Start counting ``client``'s requests."""
        client.meta.events.register("before-call.s3", self._on_call)

    def _on_call(self, model: Any, **_: Any) -> None:
        if model.name in self._PUT_CLASS:
            self.put += 1
        else:
            self.get += 1

    def reset(self) -> None:
        """Zero the counts (at the start of each invocation)."""
        self.get = self.put = 0

    def snapshot(self) -> dict[str, int]:
        """The counts so far."""
        return {"get": self.get, "put": self.put}


def _deadline_of(context: Any) -> float | None:
    """When Lambda will stop this invocation (Unix seconds), from the context's remaining time."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    return deadline_from_remaining_ms(float(remaining()), time.time())


def _memory_of(context: Any) -> int | None:
    raw = getattr(context, "memory_limit_in_mb", None)
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
