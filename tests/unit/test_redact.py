"""Scrubbing by value: every registered secret, in every form a server may echo it."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest

from serverless_hpc import redact
from serverless_hpc.redact import REDACTED, RedactingFormatter, register, register_url, scrub

USER = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502"
PASSWORD = "p4ss/word+with=odd&chars"
AUTH = f"{USER}:{PASSWORD}"
TOKEN = "FwoGZXIvYXdzEJr//////////wEaDH7+session/token=="


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    redact.forget_all()
    yield
    redact.forget_all()


@pytest.mark.parametrize(
    "form",
    [
        PASSWORD,
        USER,
        AUTH,
        quote(PASSWORD, safe=""),
        quote(PASSWORD, safe="").lower(),  # a server re-encoding with lower-case hex
        quote(PASSWORD),
        quote_plus(PASSWORD),
        base64.b64encode(AUTH.encode()).decode(),
        base64.b64encode(AUTH.encode()).decode().rstrip("="),
        base64.b64encode(PASSWORD.encode()).decode(),
        PASSWORD.replace("/", "\\/"),
    ],
)
def test_a_registered_auth_key_is_removed_in_every_form(form: str) -> None:
    # GIVEN the AUTH key registered as the process learnt it
    register(AUTH)
    # WHEN an error body echoes it in this form
    out = scrub(f"controller said: <{form}> end")
    # THEN the form is gone and the context stays
    assert out == f"controller said: <{REDACTED}> end"


def test_an_error_giving_user_and_password_separately_shows_neither() -> None:
    register(AUTH)
    body = f'{{"error": "bad login", "user": "{USER}", "password": "{PASSWORD}"}}'
    out = scrub(body)
    assert USER not in out and PASSWORD not in out and out.count(REDACTED) == 2


def test_a_session_token_echoed_url_encoded_in_a_query_string_is_removed() -> None:
    # GIVEN AWS credentials registered when the session was made
    register("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", TOKEN)
    url = (
        "https://s3.amazonaws.com/b?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260101%2F"
        f"us-east-1&X-Amz-Security-Token={quote(TOKEN, safe='')}&x=1"
    )
    out = scrub(f"An error occurred (403) when calling {url}")
    assert TOKEN not in out and quote(TOKEN, safe="") not in out
    assert "AKIAIOSFODNN7EXAMPLE" not in out and "&x=1" in out


def test_an_unregistered_security_token_is_removed_by_shape_even_url_encoded() -> None:
    token = quote("IQoJb3JpZ2luX2Vj/abc+def==", safe="")
    out = scrub(f"GET /?X-Amz-Security-Token={token}&Action=List")
    assert "IQoJb3JpZ2luX2Vj" not in out and "abc" not in out and "&Action=List" in out


def test_short_values_are_not_registered() -> None:
    # GIVEN values below the minimum (they would blank out ordinary words)
    register("abc", "12345", "", None)
    # THEN nothing is registered and text is left alone
    assert redact.registered() == 0
    assert scrub("abc 12345") == "abc 12345"


def test_a_password_inside_a_url_is_removed_by_value_and_by_shape() -> None:
    register_url("https://admin:hunter2hunter2@ow.example.com:443")
    assert scrub("password hunter2hunter2 was wrong") == f"password {REDACTED} was wrong"
    # a short password is not registered, but a URL carrying one is scrubbed by its shape
    out = scrub("connecting to https://u:pw@host.example/api")
    assert out == f"connecting to https://u:{REDACTED}@host.example/api"


def test_a_token_query_parameter_is_removed_by_shape() -> None:
    out = scrub('"GET /?token=abcdefgh&x=1 HTTP/1.1" 303')
    assert "abcdefgh" not in out and "&x=1" in out


def test_one_off_secrets_are_removed_without_being_registered() -> None:
    out = scrub(f"echo {PASSWORD}", (AUTH,))
    assert PASSWORD not in out
    assert redact.registered() == 0


def test_the_log_formatter_scrubs_messages_and_tracebacks() -> None:
    register(TOKEN)
    formatter = RedactingFormatter("%(message)s")

    def fail() -> None:
        raise RuntimeError(f"upstream echoed {TOKEN}")

    try:
        fail()
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "got %s", (TOKEN,), None)
        record.exc_info = sys.exc_info()
        text = formatter.format(record)
    assert TOKEN not in text and "Traceback" in text and REDACTED in text
