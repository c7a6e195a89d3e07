"""What the OpenWhisk REST client raises, by HTTP status or by what became of a request.

See :mod:`serverless_hpc.openwhisk.transport` for when each is raised; every message is
scrubbed of credentials by the client before it gets here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


class OpenWhiskError(Exception):
    """A controller request failed; ``status`` is the HTTP status (None if unreachable)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class AuthenticationError(OpenWhiskError):
    """401/403: the AUTH key is wrong or may not access this namespace or entity."""


class NotFoundError(OpenWhiskError):
    """404: the entity does not exist."""


class ConflictError(OpenWhiskError):
    """409: the entity exists (create without overwrite) or a package is not empty."""


class PayloadTooLargeError(OpenWhiskError):
    """413: the request body is over the controller's limit."""


class RequestError(OpenWhiskError):
    """Any other 4xx: the request itself is invalid (the message quotes the controller)."""


class ThrottledError(OpenWhiskError):
    """429 persisted until the deadline: the namespace is over its rate or concurrency."""


class PlatformError(OpenWhiskError):
    """5xx (not an action's own failure) or no answer at all: the platform failed."""


class NotSent(PlatformError):
    """No connection could be made: the request provably never reached the controller."""


class DeadlinePassed(PlatformError):
    """No complete answer within the call's deadline."""


class Dropped(PlatformError):
    """The connection failed after the request may have been sent (never resent unless
    the call is idempotent: an invocation might have started)."""


class ActivationTimeout(OpenWhiskError):
    """An accepted activation did not complete within the caller's deadline."""


@dataclass(frozen=True, slots=True)
class Invocation:
    """What an invocation answered: a finished activation record, or only its id (202)."""

    status: int
    activation_id: str
    record: dict[str, Any] | None


def error_text(body: Any) -> tuple[str, str | None]:
    """The message and transaction code of an OpenWhisk error body (at most 300 chars)."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        code = body.get("code")
        return body["error"], str(code) if code is not None else None
    text = body if isinstance(body, str) else json.dumps(body)
    return text[:300], None
