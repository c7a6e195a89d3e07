"""OpenWhisk action adapter: ``main(args)`` around the shared handler, and nothing else.

OpenWhisk passes the invocation's JSON body merged with the action's and package's bound
parameters as ``args``. The adapter takes its own configuration out of them:

* ``shpc_store``: the model store URI the workloads use (else ``$SHPC_STORE`` in the image);
* ``shpc_data_dir``: the Fashion-MNIST directory (else ``$FASHION_MNIST_DIR``);
* ``shpc_memory_mb``: the action's memory limit, reported in the response's ``runtime``
  (OpenWhisk does not tell an action its own memory limit);
* ``__ow_*`` fields, which only web actions receive;

and hands the rest, a contract request, to :func:`serverless_hpc.handler.handle`. A
success envelope is returned as the activation result; a failure envelope is returned as
``{"error": <envelope>}``, which OpenWhisk records as an *application error*
(``response.success == false``, HTTP 502 on a blocking invoke) rather than a success.

Module import happens in the container's init phase (``/init``), so the workload's
libraries are preloaded here: their import time is reported by OpenWhisk as ``initTime``,
the cold start, the way a Lambda function's module-level imports are.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from serverless_hpc import handler, workloads
from serverless_hpc.workloads.base import Context, deadline_from_epoch_ms

log = logging.getLogger("serverless_hpc.openwhisk.action")

CONFIG_KEYS = ("shpc_store", "shpc_data_dir", "shpc_memory_mb")


def _action_workload() -> str | None:
    """The workload this action serves, from ``__OW_ACTION_NAME`` (``/ns/pkg/<workload>``)."""
    name = os.environ.get("__OW_ACTION_NAME", "").rsplit("/", 1)[-1]
    return name if name in workloads.specs() else None


def _preload() -> None:
    workload = _action_workload()
    if workload is None:
        return
    try:
        ms = handler.preload(workload)
    except ImportError as exc:
        # Not fatal at init: the first invocation re-imports and returns the failure as an
        # InternalError envelope, which is where the caller will look for it.
        log.warning("preloading %s failed: %s", workload, exc)
    else:
        log.info("preloaded %s in %.0f ms", workload, ms)


_preload()


def _context(config: dict[str, Any]) -> Context:
    base = Context.from_env()
    data = config.get("shpc_data_dir")
    store = config.get("shpc_store")
    return Context(
        data_dir=Path(data) if isinstance(data, str) and data else base.data_dir,
        store_uri=store if isinstance(store, str) and store else base.store_uri,
        # set by the runtime for each activation: when OpenWhisk will stop it
        deadline=deadline_from_epoch_ms(os.environ.get("__OW_DEADLINE")),
    )


def main(args: dict[str, Any]) -> dict[str, Any]:
    """Run one contract request; a failure comes back as ``{"error": <envelope>}``."""
    request = dict(args)
    config = {k: request.pop(k) for k in CONFIG_KEYS if k in request}
    for key in [k for k in request if k.startswith("__ow_")]:
        request.pop(key)
    memory = config.get("shpc_memory_mb")
    memory_mb = memory if isinstance(memory, int) and not isinstance(memory, bool) else None
    response = handler.handle(
        request, platform="openwhisk", memory_mb=memory_mb, ctx=_context(config)
    )
    if response.get("ok"):
        return response
    return {"error": response}
