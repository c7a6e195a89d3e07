"""Scrub credentials from text before it is shown, logged or recorded.

A controller or cloud that echoes the request (headers included) in an error body would
otherwise put the OpenWhisk AUTH key or an AWS access key into an ``error:`` line, a log or
a record. :func:`scrub` replaces what looks like a credential with ``[REDACTED]``:

* HTTP authorization values: ``Basic <base64>``, ``Bearer <token>``, AWS SigV4's
  ``Credential=<key id>/...`` and ``Signature=<hex>``;
* AWS access key ids (``AKIA``/``ASIA`` + 16 characters) and ``aws_secret_access_key`` /
  ``aws_session_token`` / ``X-Amz-Security-Token`` values;
* the OpenWhisk AUTH key form ``<uuid>:<64 characters>``;
* any literal secrets the caller names (the AUTH key it holds, its base64 form).

This module imports nothing from the project (the CLI's log handler uses it).
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable
from typing import Any, Final

REDACTED: Final = "[REDACTED]"

#: Each pattern's ``keep`` group stays (it says what was there); the rest is redacted.
_PATTERNS: Final = (
    # "Authorization: Basic dXNlcjpwYXNz", "'Authorization': 'Bearer abc.def'"
    re.compile(r"(?i)(?P<keep>\b(?:basic|bearer)\s+)[A-Za-z0-9+/=._~-]{6,}"),
    re.compile(r"(?i)(?P<keep>credential=)[A-Za-z0-9/_+=-]+"),
    re.compile(r"(?i)(?P<keep>signature=)[0-9a-f]{16,}"),
    re.compile(
        r"(?i)(?P<keep>(?:aws_secret_access_key|aws_session_token|secretaccesskey|sessiontoken"
        r"|x-amz-security-token)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{8,}"
    ),
    re.compile(r"(?P<keep>)\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}\b"),
    # OpenWhisk AUTH: uuid:key (the guest key of every OpenWhisk install has this shape too)
    re.compile(
        r"(?P<keep>)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[A-Za-z0-9]{32,}"
    ),
)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every credential it seems to hold, and every one of ``secrets``, redacted.

    For each literal secret its base64 form (as sent in a Basic header) is redacted too.
    """
    for secret in secrets:
        if not secret or len(secret) < 4:
            continue
        text = text.replace(secret, REDACTED)
        encoded = base64.b64encode(secret.encode()).decode()
        text = text.replace(encoded, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group("keep") + REDACTED, text)
    return text


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """A contract response whose failure message is :func:`scrub`-bed (a copy if changed).

    Error messages carry what platforms answered, which may echo the request's credentials;
    results are the workload's own and are left alone.
    """
    err = response.get("error")
    if response.get("ok") or not isinstance(err, dict) or not isinstance(err.get("message"), str):
        return response
    clean = scrub(err["message"])
    if clean == err["message"]:
        return response
    return {**response, "error": {**err, "message": clean}}


class RedactingFormatter(logging.Formatter):
    """A formatter whose output (message, arguments and traceback) is :func:`scrub`-bed."""

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual, then scrub."""
        return scrub(super().format(record))
