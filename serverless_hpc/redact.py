"""Scrub credentials from text before it is shown, logged or recorded.

A controller or cloud that echoes the request (headers, query string, body) in an error
would otherwise put the OpenWhisk AUTH key, an AWS key or the dashboard's token into an
``error:`` line, a log, a traceback or a record. :func:`scrub` removes them two ways:

**By value.** Every secret the process learns is registered where it is learnt
(:func:`register`: the OpenWhisk AUTH key when credentials are loaded, the AWS key id,
secret key and session token when a boto3 session is made, a password inside a URL, the
dashboard's token), and :func:`scrub` removes each registered value wherever it appears, in
every form a server may echo it:

* as it is, and JSON-escaped (``/`` as ``\\/``);
* URL-encoded (``quote`` with and without ``/`` kept, ``quote_plus``), hex digits in either
  case;
* base64, with and without padding (as in a ``Basic`` header);
* for a ``user:pass`` value (the AUTH key), also each part alone, in the forms above.

Values shorter than :data:`MIN_SECRET_LENGTH` characters are not registered: replacing them
would blank out ordinary words and numbers, and no credential the project handles is that
short (a short password inside a URL is still caught by shape, below).

**By shape**, for credentials the process never held (a key id in someone else's error):

* HTTP authorization values: ``Basic <base64>``, ``Bearer <token>``, AWS SigV4's
  ``Credential=<key id>/...`` and ``Signature=<hex>``;
* AWS access key ids (``AKIA``/``ASIA`` + 16 characters) and ``aws_secret_access_key`` /
  ``aws_session_token`` / ``X-Amz-Security-Token`` values, URL-encoded or not;
* the OpenWhisk AUTH key form ``<uuid>:<64 characters>``;
* the password of a ``scheme://user:password@host`` URL, and a ``token=`` query parameter.

This module imports nothing from the project (the CLI's log handler uses it).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import quote, quote_plus

REDACTED: Final = "[REDACTED]"
#: Shortest value :func:`register` accepts (see the module docstring).
MIN_SECRET_LENGTH: Final = 6

#: Each pattern's ``keep`` group stays (it says what was there); the rest is redacted.
_PATTERNS: Final = (
    # "Authorization: Basic dXNlcjpwYXNz", "'Authorization': 'Bearer abc.def'"
    re.compile(r"(?i)(?P<keep>\b(?:basic|bearer)\s+)[A-Za-z0-9+/=._~-]{6,}"),
    re.compile(r"(?i)(?P<keep>credential=)[A-Za-z0-9/_+=%-]+"),
    re.compile(r"(?i)(?P<keep>signature=)[0-9a-f]{16,}"),
    re.compile(
        r"(?i)(?P<keep>(?:aws_secret_access_key|aws_session_token|secretaccesskey|sessiontoken"
        r"|x-amz-security-token)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=%]{8,}"
    ),
    re.compile(r"(?P<keep>)\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}\b"),
    # OpenWhisk AUTH: uuid:key (the guest key of every OpenWhisk install has this shape too)
    re.compile(
        r"(?P<keep>)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[A-Za-z0-9]{32,}"
    ),
    # https://user:password@host: the password
    re.compile(r"(?i)(?P<keep>\b[a-z][a-z0-9+.-]*://[^\s/:@'\"]*:)[^\s/@'\"]+(?=@)"),
    # ?token=... / &token=... (the dashboard's first visit)
    re.compile(r"(?i)(?P<keep>[?&]token=)[^&\s'\"#]+"),
)


class _Registry:
    """The process's registered secrets: every form, and one pattern matching any of them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.forms: set[str] = set()
        self.pattern: re.Pattern[str] | None = None


_REGISTRY: Final = _Registry()


def _encodings(value: str) -> set[str]:
    """``value`` as a server may echo it: plain, JSON-escaped, URL-encoded, base64."""
    raw = value.encode("utf-8")
    b64 = base64.b64encode(raw).decode("ascii")
    forms = {
        value,
        value.replace("/", "\\/"),
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        b64,
        b64.rstrip("="),
        base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
    }
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def _forms(value: str) -> set[str]:
    """Every form of ``value`` to remove; a ``user:pass`` value adds each part's forms."""
    if len(value) < MIN_SECRET_LENGTH:
        return set()
    forms = _encodings(value)
    user, sep, password = value.partition(":")
    if sep:
        for part in (user, password):
            if len(part) >= MIN_SECRET_LENGTH:
                forms |= _encodings(part)
    return forms


def _pattern(forms: Iterable[str]) -> re.Pattern[str] | None:
    """One regular expression matching any of ``forms``, longest first.

    A ``%XX`` escape matches in either case (servers re-encode with lower-case hex).
    """
    parts = []
    for form in sorted(set(forms), key=lambda f: (-len(f), f)):
        escaped = re.escape(form)
        parts.append(re.sub(r"%([0-9A-F]{2})", lambda m: "%(?i:" + m.group(1) + ")", escaped))
    return re.compile("|".join(parts)) if parts else None


def register(*values: str | None) -> None:
    """Remember ``values`` as secrets: from now on :func:`scrub` removes them in every form.

    ``None``, non-strings and values shorter than :data:`MIN_SECRET_LENGTH` are ignored
    (see the module docstring). Registering is process-wide and cannot be undone, except by
    :func:`forget_all` (for tests).
    """
    new: set[str] = set()
    for value in values:
        if isinstance(value, str):
            new |= _forms(value)
    with _REGISTRY.lock:
        if new <= _REGISTRY.forms:
            return
        _REGISTRY.forms.update(new)
        _REGISTRY.pattern = _pattern(_REGISTRY.forms)


def register_url(url: str | None) -> None:
    """Register the password (and the ``user:password`` pair) inside ``url``'s authority."""
    if not isinstance(url, str) or "@" not in url:
        return
    match = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@", url.strip())
    if match is None:
        return
    userinfo = match.group(1)
    _, sep, password = userinfo.partition(":")
    register(password if sep else userinfo, userinfo)


def registered() -> int:
    """How many forms of registered secrets :func:`scrub` removes (for tests and logs)."""
    with _REGISTRY.lock:
        return len(_REGISTRY.forms)


def forget_all() -> None:
    """Forget every registered secret (tests only: a process never needs this)."""
    with _REGISTRY.lock:
        _REGISTRY.forms.clear()
        _REGISTRY.pattern = None


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without any registered secret, any of ``secrets``, or any credential shape.

    ``secrets`` are removed in the same forms as registered ones, for this call only.
    """
    extra: set[str] = set()
    for secret in secrets:
        if isinstance(secret, str):
            extra |= _forms(secret)
    with _REGISTRY.lock:
        known = _REGISTRY.pattern
    if extra:
        one_off = _pattern(extra)
        if one_off is not None:
            text = one_off.sub(REDACTED, text)
    if known is not None:
        text = known.sub(REDACTED, text)
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
