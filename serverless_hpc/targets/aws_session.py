"""What both AWS targets (``lambda``, ``ec2``) check before they touch AWS.

Target code (it speaks in :class:`TargetUnavailable`), so it lives with the targets rather
than in :mod:`serverless_hpc.aws`, which the targets import and which imports no target.

Each check raises :class:`~serverless_hpc.targets.base.TargetUnavailable` with a message that
starts with the target's name and says what to do. boto3 is imported inside the functions, so
importing this module stays light.

A session's credentials (access key id, secret key, session token) are registered with
:func:`serverless_hpc.redact.register` when the session is opened, so no error, log line or
record shows them, whatever form an AWS error echoes them in.
"""

from __future__ import annotations

from typing import Any

from serverless_hpc.redact import register
from serverless_hpc.targets.base import TargetUnavailable


def require_boto3(target: str) -> None:
    """Fail unless boto3 (the ``aws`` extra) is installed."""
    try:
        import boto3  # noqa: F401
    except ImportError as exc:
        raise TargetUnavailable(
            f"{target}: boto3 is not installed ({exc}); pip install 'serverless-hpc[aws]'"
        ) from exc


def open_session(
    target: str, *, profile: str | None, region: str | None, session: Any = None
) -> Any:
    """A boto3 session (``session`` when given) that has credentials and a region."""
    import boto3

    if session is None:
        session = boto3.Session(profile_name=profile, region_name=region)
    if not register_session(session):
        raise TargetUnavailable(
            f"{target}: no AWS credentials found (set AWS_PROFILE or run 'aws configure')"
        )
    if session.region_name is None:
        raise TargetUnavailable(f"{target}: no AWS region (set AWS_REGION or region=...)")
    return session


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
