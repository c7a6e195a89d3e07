"""A small REST client for the OpenWhisk controller, shared by apply, the target and Pulumi.

It speaks the documented ``/api/v1`` subset this project needs (namespace limits, packages,
actions, invocations, activations) over :class:`~serverless_hpc.openwhisk.transport.Transport`,
which bounds every call by one deadline, retries what is safe to retry and turns HTTP
statuses into the exceptions of :mod:`serverless_hpc.openwhisk.errors` (which status
raises which: see :mod:`serverless_hpc.openwhisk.transport`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final
from urllib.parse import quote

from serverless_hpc.openwhisk.errors import (
    ActivationTimeout,
    AuthenticationError,
    ConflictError,
    DeadlinePassed,
    Dropped,
    Invocation,
    NotFoundError,
    NotSent,
    OpenWhiskError,
    PayloadTooLargeError,
    PlatformError,
    RequestError,
    ThrottledError,
)
from serverless_hpc.openwhisk.transport import Transport
from serverless_hpc.retry import Backoff

#: The errors live in :mod:`serverless_hpc.openwhisk.errors`; callers import them from here.
__all__ = [
    "ActivationTimeout",
    "AuthenticationError",
    "ConflictError",
    "DeadlinePassed",
    "Dropped",
    "Invocation",
    "NotFoundError",
    "NotSent",
    "OpenWhiskClient",
    "OpenWhiskError",
    "PayloadTooLargeError",
    "PlatformError",
    "RequestError",
    "ThrottledError",
]

#: The controller's longest blocking wait (its own limit; a longer wait answers 202).
MAX_BLOCKING_WAIT_MS: Final = 60_000


def _segments(name: str) -> str:
    return "/".join(quote(part, safe="") for part in name.split("/"))


class OpenWhiskClient(Transport):
    """REST client for one namespace. Thread-safe; one connection pool, reused.

    ``deadline_s`` (default :data:`~serverless_hpc.openwhisk.transport.DEFAULT_DEADLINE_S`,
    read when the client is built) bounds every call including its retries;
    ``backoff_base_s`` and ``backoff_cap_s`` shape the retry delays (tests make them tiny);
    ``pool_size`` bounds the open connections.
    The HTTP exchanges run on a network loop (:mod:`serverless_hpc.netloop`): blocking
    callers use the plain methods, a fan-out uses :meth:`attempt` on :attr:`loop`.
    """

    def __repr__(self) -> str:
        return f"OpenWhiskClient({self.credentials!r})"

    # -- paths ----------------------------------------------------------------------------

    def action_path(self, name: str) -> str:
        """The REST path of action ``package/name``."""
        return self._ns_path("actions", _segments(name))

    def _ns_path(self, *parts: str) -> str:
        ns = quote(self.credentials.namespace, safe="")
        return "/".join((f"/namespaces/{ns}", *parts))

    # -- namespace --------------------------------------------------------------------------

    def get_limits(self) -> dict[str, Any]:
        """``GET /namespaces/_/limits``: the namespace's limits as the controller reports them."""
        _, body = self.request("GET", "/namespaces/_/limits")
        if not isinstance(body, dict):
            raise PlatformError("namespace limits: the controller did not answer a JSON object")
        return body

    # -- packages -------------------------------------------------------------------------

    def get_package(self, name: str) -> dict[str, Any] | None:
        """The package, with its ``actions`` list; None when it does not exist."""
        try:
            _, body = self.request("GET", self._ns_path("packages", _segments(name)))
        except NotFoundError:
            return None
        return dict(body)

    def put_package(self, name: str, body: dict[str, Any], *, overwrite: bool) -> dict[str, Any]:
        """Create (or, with ``overwrite``, update) a package."""
        _, out = self.request(
            "PUT",
            self._ns_path("packages", _segments(name)),
            params={"overwrite": str(overwrite).lower()},
            body=body,
        )
        return dict(out)

    def delete_package(self, name: str) -> None:
        """Delete a package (the controller refuses, 409, while it still holds actions)."""
        self.request("DELETE", self._ns_path("packages", _segments(name)))

    # -- actions --------------------------------------------------------------------------

    def get_action(self, name: str, *, code: bool = False) -> dict[str, Any] | None:
        """The action ``package/name`` (without its code unless asked); None when absent."""
        try:
            _, body = self.request(
                "GET",
                self._ns_path("actions", _segments(name)),
                params={"code": str(code).lower()},
            )
        except NotFoundError:
            return None
        return dict(body)

    def put_action(self, name: str, body: dict[str, Any], *, overwrite: bool) -> dict[str, Any]:
        """Create (or, with ``overwrite``, update) an action; returns the stored entity.

        Every update bumps the action's version, and the invokers stop reusing warm
        containers of older versions: that is how a cold start is forced.
        """
        _, out = self.request(
            "PUT",
            self._ns_path("actions", _segments(name)),
            params={"overwrite": str(overwrite).lower()},
            body=body,
        )
        return dict(out)

    def delete_action(self, name: str) -> None:
        """Delete an action."""
        self.request("DELETE", self._ns_path("actions", _segments(name)))

    def invoke(
        self,
        name: str,
        payload: dict[str, Any],
        *,
        blocking: bool = True,
        wait_ms: int = MAX_BLOCKING_WAIT_MS,
        deadline_s: float | None = None,
    ) -> Invocation:
        """Invoke an action; blocking invocations return the whole activation record.

        200 is a success, 502 the action's own failure and 500 a platform failure *with* a
        record (all three carry the activation); 202 means the activation was accepted but
        did not finish within the blocking wait (or the call was non-blocking): only its
        id is known and :meth:`wait_activation` fetches the record.
        """
        status, body = self.request(
            "POST",
            self._ns_path("actions", _segments(name)),
            params=self._invoke_params(blocking, wait_ms),
            body=payload,
            ok=(200, 202, 500, 502),
            deadline_s=deadline_s,
        )
        return self._invocation(name, status, body)

    async def invoke_once(
        self, name: str, payload: dict[str, Any], *, wait_ms: int, deadline_s: float
    ) -> Invocation:
        """One blocking invocation attempt on the network loop, no retry (a fan-out's own
        loop decides: :class:`ThrottledError` and :class:`NotSent` may be re-sent)."""
        status, body = await self.attempt(
            "POST",
            self._ns_path("actions", _segments(name)),
            params=self._invoke_params(True, wait_ms),
            body=payload,
            ok=(200, 202, 500, 502),
            deadline_s=deadline_s,
        )
        return self._invocation(name, status, body)

    @staticmethod
    def _invoke_params(blocking: bool, wait_ms: int) -> dict[str, str]:
        params = {"blocking": str(blocking).lower(), "result": "false"}
        if blocking:
            params["timeout"] = str(max(1, min(int(wait_ms), MAX_BLOCKING_WAIT_MS)))
        return params

    def _invocation(self, name: str, status: int, body: Any) -> Invocation:
        if status == 500 and not (isinstance(body, dict) and "response" in body):
            # A 500 with an activation is a "whisk internal error" record worth keeping;
            # without one it is a plain platform failure.
            raise self._error_for("POST", f"actions/{name}", status, body)
        if not isinstance(body, dict) or "activationId" not in body:
            raise PlatformError(f"invoke {name}: HTTP {status} without an activation id")
        record = body if "response" in body else None
        return Invocation(status=status, activation_id=str(body["activationId"]), record=record)

    async def await_activation(self, activation_id: str, *, deadline_s: float) -> dict[str, Any]:
        """:meth:`wait_activation` on the network loop (polls back off with asyncio)."""
        end = self._clock() + deadline_s
        backoff = Backoff(
            deadline_s, base_s=self.backoff_base_s, cap_s=self.backoff_cap_s, clock=self._clock
        )
        path = self._ns_path("activations", quote(activation_id))
        attempt = 0
        while (left := end - self._clock()) > 0:
            try:
                _, body = await self.arequest("GET", path, deadline_s=left)
            except NotFoundError:
                pass  # not stored yet
            else:
                return dict(body)
            await asyncio.sleep(min(backoff.delay(attempt), max(end - self._clock(), 0.0)))
            attempt += 1
        raise ActivationTimeout(
            f"activation {activation_id} did not complete within {deadline_s:.0f} s"
        )

    def get_activation(self, activation_id: str) -> dict[str, Any] | None:
        """The activation record; None while it is not (yet) stored."""
        try:
            _, body = self.request("GET", self._ns_path("activations", quote(activation_id)))
        except NotFoundError:
            return None
        return dict(body)

    def wait_activation(self, activation_id: str, *, deadline_s: float) -> dict[str, Any]:
        """Poll an accepted activation with bounded backoff until its record exists."""
        end = self._clock() + deadline_s
        for _ in Backoff(
            deadline_s, base_s=self.backoff_base_s, cap_s=self.backoff_cap_s, clock=self._clock
        ):
            remaining = end - self._clock()
            if remaining <= 0:
                break
            record = self._poll_once(activation_id, remaining)
            if record is not None:
                return record
        raise ActivationTimeout(
            f"activation {activation_id} did not complete within {deadline_s:.0f} s"
        )

    def _poll_once(self, activation_id: str, remaining_s: float) -> dict[str, Any] | None:
        path = self._ns_path("activations", quote(activation_id))
        try:
            _, body = self.request("GET", path, deadline_s=remaining_s)
        except NotFoundError:
            return None
        return dict(body)
