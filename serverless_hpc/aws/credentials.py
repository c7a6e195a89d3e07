"""AWS credentials as secrets: whoever makes a boto3 session registers what it holds.

Here, not beside the targets' session checks (:mod:`serverless_hpc.targets.aws_session`),
so that the ``shpc status`` command and the targets share it without the AWS package
importing a target (docs/design.md, "The layers").
"""

from __future__ import annotations

from typing import Any

from serverless_hpc.redact import register


def register_session(session: Any) -> bool:
    """Register ``session``'s credentials as secrets; False when it has none.

    The frozen credentials are read once (for a refreshing role, the current set; later
    refreshed ones are caught by the shape rules of :mod:`serverless_hpc.redact`).
    """
    credentials = session.get_credentials()
    if credentials is None:
        return False
    frozen = credentials.get_frozen_credentials()
    register(frozen.access_key, frozen.secret_key, frozen.token)
    return True
