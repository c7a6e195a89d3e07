"""AWS Lambda entry point: the event is the contract request; the return value its response.

A few lines on purpose: all logic lives in
:class:`serverless_hpc.aws.function.adapter.LambdaAdapter` and the shared
:func:`serverless_hpc.handler.handle`. Module-level code runs in Lambda's INIT
phase, so the workload's heavy imports are timed as the REPORT line's Init Duration.
"""

from __future__ import annotations

import logging
from typing import Any

from serverless_hpc.aws.function.adapter import LambdaAdapter

logging.getLogger().setLevel(logging.INFO)
_adapter = LambdaAdapter()
INIT_IMPORT_MS = _adapter.init()


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda handler: contract request in, contract response out (never a traceback)."""
    return _adapter(event, context)
