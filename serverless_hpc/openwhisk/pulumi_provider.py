"""A Pulumi dynamic provider for OpenWhisk packages and actions, on the shared REST client.

Used by the Pulumi program in ``openwhisk/__main__.py``; imports ``pulumi``, so only that
program (and its tests) import this module.

Pulumi pickles a dynamic provider into the stack's state and unpickles it in a separate
process for every operation. So the provider object holds **nothing**: no session, no
client, no credentials. Each method reads the credentials itself (``~/.wskprops``,
``$WSK_CONFIG_FILE``, ``WHISK_*`` like ``wsk``; the inputs carry only the non-secret
``config_file`` path and ``insecure`` switch), builds a client, and closes it. The AUTH key
is never an input or an output, so it never reaches the state file.

Inputs of both resources: ``kind`` (``package`` or ``action``), ``name`` (``pkg`` or
``pkg/action``), ``body`` (the REST PUT body, as :mod:`serverless_hpc.openwhisk.deploy`
builds it), ``project``, and optionally ``config_file`` and ``insecure``. Actions are checked
against the namespace limits and the documented caps before they are sent, as ``apply`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from serverless_hpc.openwhisk import deploy
from serverless_hpc.openwhisk.client import OpenWhiskClient
from serverless_hpc.openwhisk.config import load_credentials

log = logging.getLogger(__name__)

KINDS = ("package", "action")
#: Changing one of these means a different entity: replace, do not update.
REPLACE_KEYS = ("kind", "name", "config_file")


@contextmanager
def _client(props: dict[str, Any]) -> Iterator[OpenWhiskClient]:
    config_file = props.get("config_file")
    insecure = props.get("insecure")
    creds = load_credentials(
        config_file=Path(config_file) if config_file else None,
        insecure=bool(insecure) if insecure is not None else None,
    )
    client = OpenWhiskClient(creds)
    try:
        yield client
    finally:
        client.close()


def spec_from_body(name: str, body: dict[str, Any]) -> deploy.ActionSpec:
    """An :class:`~serverless_hpc.openwhisk.deploy.ActionSpec` view of an action body, so
    the provider checks limits with the same code as ``apply``."""
    package, _, action = name.rpartition("/")
    limits = body.get("limits") or {}
    exec_ = body.get("exec") or {}
    return deploy.ActionSpec(
        package=package,
        workload=action,
        image=str(exec_.get("image", "")),
        code=str(exec_.get("code", "")),
        memory_mb=int(limits.get("memory", 256)),
        timeout_ms=int(limits.get("timeout", 60_000)),
        logs_mb=int(limits.get("logs", deploy.DEFAULT_LOGS_MB)),
        annotations=tuple((a["key"], a["value"]) for a in body.get("annotations") or []),
        parameters=tuple((p["key"], p["value"]) for p in body.get("parameters") or []),
    )


class OpenWhiskProvider(ResourceProvider):
    """CRUD for one package or action; stateless (see the module docstring)."""

    def _put(self, props: dict[str, Any], *, overwrite: bool) -> dict[str, Any]:
        kind, name, body = props["kind"], props["name"], dict(props["body"])
        with _client(props) as client:
            if kind == "package":
                out = client.put_package(name, body, overwrite=overwrite)
            else:
                limits = deploy.NamespaceLimits.from_api(client.get_limits())
                deploy.check_limits([spec_from_body(name, body)], limits)
                out = client.put_action(name, body, overwrite=overwrite)
        return {**props, "version": out.get("version")}

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> Any:
        """Reject unknown kinds and bodies without the project's managed-by annotation."""
        from pulumi.dynamic import CheckFailure, CheckResult

        failures = []
        if news.get("kind") not in KINDS:
            failures.append(CheckFailure("kind", f"must be one of {KINDS}"))
        if not deploy.is_managed(news.get("body") or {}, str(news.get("project"))):
            failures.append(CheckFailure("body", "must carry the project's managed-by annotation"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """PUT without overwrite: an existing entity (409) is not silently adopted."""
        outs = self._put(props, overwrite=False)
        return CreateResult(id_=props["name"], outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh: the entity's current version, or no id when it is gone."""
        with _client(props) as client:
            if props.get("kind") == "package":
                entity = client.get_package(id_)
            else:
                entity = client.get_action(id_)
        if entity is None:
            return ReadResult(None, {})
        return ReadResult(id_, {**props, "version": entity.get("version")})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Replace when the identity changes; update when the body or switches change."""
        replaces = [k for k in REPLACE_KEYS if olds.get(k) != news.get(k)]
        changed = bool(replaces) or any(
            olds.get(k) != news.get(k) for k in ("body", "insecure", "project")
        )
        return DiffResult(changes=changed, replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """PUT ?overwrite=true (bumps the entity's version)."""
        return UpdateResult(outs=self._put(news, overwrite=True))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """DELETE; an entity that is already gone is fine (the goal state holds)."""
        from serverless_hpc.openwhisk.client import NotFoundError

        with _client(props) as client:
            try:
                if props.get("kind") == "package":
                    client.delete_package(id_)
                else:
                    client.delete_action(id_)
            except NotFoundError:
                log.info("%s %s was already deleted", props.get("kind"), id_)


class OwEntity(Resource):
    """A package or an action managed through :class:`OpenWhiskProvider`."""

    version: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        kind: str,
        name: str,
        body: dict[str, Any],
        project: str,
        config_file: str | None = None,
        insecure: bool | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "kind": kind,
            "name": name,
            "body": body,
            "project": project,
            "config_file": config_file,
            "insecure": insecure,
            "version": None,
        }
        super().__init__(OpenWhiskProvider(), resource_name, props, opts)
