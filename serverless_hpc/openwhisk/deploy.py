"""Apply, destroy and inspect the project's OpenWhisk resources: one package, one action
per workload.

Every entity carries a ``managed-by`` annotation naming the project, and destroy touches
only entities that carry it, so a shared namespace keeps everything else. Apply is
idempotent (``PUT ?overwrite=true``) and checks each action against the namespace's limits
(``GET /namespaces/_/limits``) and the documented caps *before* sending anything, so an
action over a limit fails with a message saying what to change instead of half a deploy.

Actions are ``blackbox`` actions: a runtime image built from ``openwhisk/Dockerfile.<image>``
(the official Python 3.11 action runtime plus this package) with the adapter
``openwhisk/action.py`` sent as the action's code.

What each action is comes from its workload's spec (:mod:`serverless_hpc.workloads.spec`):
the image kind, the time limit, and the memory: the spec's, capped at the namespace's
maximum (a default OpenWhisk allows 512 MB) but never below the least the workload runs in,
where apply stops and says what the operator must raise. Every workload in the package is
applied unless ``--workloads`` names fewer, so a new workload needs no edit here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from serverless_hpc import workloads
from serverless_hpc.openwhisk.client import OpenWhiskClient
from serverless_hpc.workloads.spec import Image, WorkloadSpec

log = logging.getLogger(__name__)

DEFAULT_PROJECT: Final = "serverless-hpc"
MANAGED_BY: Final = "managed-by"
#: The action parameter that binds the model store (read by ``openwhisk/action.py``).
STORE_PARAM: Final = "shpc_store"
#: Where an image kind's reference comes from when ``--image-<kind>`` is not given.
IMAGE_ENV: Final = {kind.value: f"SHPC_OW_IMAGE_{kind.name}" for kind in Image}
DEFAULT_LOGS_MB: Final = 10
DEFAULT_ACTION_FILE: Final = Path(__file__).resolve().parents[2] / "openwhisk" / "action.py"

MB: Final = 1024 * 1024
#: Documented caps (OpenWhisk docs/reference.md): fixed, whatever the namespace says.
CODE_MAX_BYTES: Final = 48 * MB
PARAMETERS_MAX_BYTES: Final = 1 * MB
PAYLOAD_MAX_BYTES: Final = 1 * MB
#: Documented system defaults, used when a controller's limits API does not report a value.
DOCUMENTED_DEFAULTS: Final = {
    "minActionMemory": 128,
    "maxActionMemory": 512,
    "minActionTimeout": 100,
    "maxActionTimeout": 300_000,
    "minActionLogs": 0,
    "maxActionLogs": 10,
}

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_@.\- ]{0,255}$")
_SIZE_RE: Final = re.compile(r"^\s*(\d+)\s*([KMG]?B)?\s*$", re.IGNORECASE)
_UNITS: Final = {"B": 1, "KB": 1024, "MB": MB, "GB": 1024 * MB}


class DeployError(Exception):
    """The deployment cannot proceed; the message says why and what to change."""


class LimitError(DeployError):
    """An action would exceed a namespace limit or a documented cap (nothing was sent)."""


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    """What to deploy, validated on construction.

    ``images`` maps an image kind (``lean``, ``train``) to a pullable image reference;
    ``store_uri`` and ``data_dir`` are bound as action parameters so the adapter can tell
    the workloads where the model store and the dataset are inside the container.
    """

    project: str = DEFAULT_PROJECT
    package: str | None = None
    #: Workloads to apply (empty: every workload of the package).
    workloads: tuple[str, ...] = ()
    images: Mapping[str, str] = field(default_factory=dict)
    memory_mb: Mapping[str, int] = field(default_factory=dict)
    timeout_ms: Mapping[str, int] = field(default_factory=dict)
    action_file: Path = DEFAULT_ACTION_FILE
    store_uri: str | None = None
    data_dir: str | None = None

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.project):
            raise DeployError(f"project name {self.project!r} is not a valid OpenWhisk name")
        if not _NAME_RE.match(self.package_name):
            raise DeployError(f"package name {self.package_name!r} is not a valid name")
        known = workloads.names()
        if not self.workloads:
            object.__setattr__(self, "workloads", known)
        for what, names in (
            ("workload", self.workloads),
            ("--memory workload", tuple(self.memory_mb)),
            ("--timeout workload", tuple(self.timeout_ms)),
        ):
            bad = sorted(set(names) - set(known))
            if bad:
                raise DeployError(f"unknown {what}(s) {bad} (known: {', '.join(known)})")
        bad_images = sorted(set(self.images) - set(IMAGE_ENV))
        if bad_images:
            raise DeployError(f"unknown image kind(s) {bad_images} (known: {', '.join(IMAGE_ENV)})")

    @property
    def package_name(self) -> str:
        """The project's one package (the project name unless set)."""
        return self.package or self.project


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action as it will be PUT: name, image, code, limits, annotations, parameters."""

    package: str
    workload: str
    image: str
    code: str
    memory_mb: int
    timeout_ms: int
    logs_mb: int
    annotations: tuple[tuple[str, Any], ...]
    parameters: tuple[tuple[str, Any], ...]
    #: The least memory the workload runs in (its spec's), named when a limit refuses it.
    min_memory_mb: int = 128
    #: Memory was given explicitly (``--memory``), so it is never fitted to the namespace.
    memory_fixed: bool = True

    @property
    def qualified_name(self) -> str:
        """``package/action``, the name the REST API addresses it by."""
        return f"{self.package}/{self.workload}"

    @property
    def code_bytes(self) -> int:
        """Size of the action code as sent (UTF-8)."""
        return len(self.code.encode())

    @property
    def parameters_bytes(self) -> int:
        """Size of the bound parameters as JSON."""
        return len(json.dumps(self.parameters_json()).encode())

    def parameters_json(self) -> list[dict[str, Any]]:
        """Bound parameters in the REST form ``[{"key", "value"}]``."""
        return [{"key": k, "value": v} for k, v in self.parameters]

    def body(self) -> dict[str, Any]:
        """The PUT body of this action."""
        return {
            "exec": {"kind": "blackbox", "image": self.image, "code": self.code, "main": "main"},
            "limits": {
                "memory": self.memory_mb,
                "timeout": self.timeout_ms,
                "logs": self.logs_mb,
                "concurrency": 1,
            },
            "annotations": [{"key": k, "value": v} for k, v in self.annotations],
            "parameters": self.parameters_json(),
        }


def managed_annotations(project: str, **extra: Any) -> tuple[tuple[str, Any], ...]:
    """The annotations that mark an entity as this project's."""
    return ((MANAGED_BY, project), *sorted(extra.items()))


def is_managed(entity: Mapping[str, Any] | None, project: str) -> bool:
    """Whether ``entity`` carries ``managed-by: <project>``."""
    if not entity:
        return False
    return any(
        a.get("key") == MANAGED_BY and a.get("value") == project
        for a in entity.get("annotations") or []
        if isinstance(a, Mapping)
    )


def build_specs(
    cfg: ProjectConfig,
    env: Mapping[str, str] | None = None,
    *,
    max_memory_mb: int | None = None,
) -> list[ActionSpec]:
    """The actions ``cfg`` describes, from each workload's spec.

    Images come from ``cfg.images`` or ``$SHPC_OW_IMAGE_<KIND>``. Memory is ``--memory`` when
    given, else the spec's capped at ``max_memory_mb`` (the namespace's maximum) but never
    below the spec's ``min_memory_mb``; the time limit is ``--timeout`` or the spec's.
    """
    env = os.environ if env is None else env
    try:
        code = cfg.action_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeployError(
            f"action adapter {cfg.action_file} not found (run from a checkout of the repo, "
            "or pass --action-file)"
        ) from None
    specs = []
    for workload in cfg.workloads:
        spec = workloads.spec(workload)
        kind = spec.image.value
        image = cfg.images.get(kind) or env.get(IMAGE_ENV[kind])
        if not image:
            raise DeployError(
                f"no runtime image for {workload!r}: build openwhisk/Dockerfile.{kind}, push it "
                f"to a registry your invokers can pull from, and pass --image-{kind} or set "
                f"${IMAGE_ENV[kind]} (see docs/openwhisk.md)"
            )
        fixed = workload in cfg.memory_mb
        memory = int(cfg.memory_mb[workload]) if fixed else _fitted_memory(spec, max_memory_mb)
        params: list[tuple[str, Any]] = [("shpc_memory_mb", memory)]
        if cfg.store_uri:
            params.append((STORE_PARAM, cfg.store_uri))
        if cfg.data_dir:
            params.append(("shpc_data_dir", cfg.data_dir))
        default_timeout_ms = math.ceil(spec.timeout_s * 1000)
        specs.append(
            ActionSpec(
                package=cfg.package_name,
                workload=workload,
                image=image,
                code=code,
                memory_mb=memory,
                timeout_ms=int(cfg.timeout_ms.get(workload, default_timeout_ms)),
                logs_mb=DEFAULT_LOGS_MB,
                annotations=managed_annotations(cfg.project, workload=workload),
                parameters=tuple(params),
                min_memory_mb=spec.min_memory_mb,
                memory_fixed=fixed,
            )
        )
    return specs


def _fitted_memory(spec: WorkloadSpec, max_memory_mb: int | None) -> int:
    """The spec's memory within the namespace's ceiling, but not below the spec's minimum.

    Below the minimum the minimum is returned, so the limit check refuses it and says what
    the operator must raise, instead of deploying an action that would run out of memory.
    """
    if max_memory_mb is None or spec.memory_mb <= max_memory_mb:
        return spec.memory_mb
    fitted = max(max_memory_mb, spec.min_memory_mb)
    log.info(
        "%s: memory %d MB (its spec asks %d MB; the namespace allows %d MB)",
        spec.name,
        fitted,
        spec.memory_mb,
        max_memory_mb,
    )
    return fitted


def parse_byte_size(value: object) -> int:
    """OpenWhisk's ``ByteSize`` strings (``"1048576 B"``, ``"512 KB"``, ``"1 MB"``) to bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE_RE.match(str(value))
    if not m:
        raise DeployError(f"unreadable size {value!r} in the namespace limits")
    return int(m.group(1)) * _UNITS[(m.group(2) or "B").upper()]


@dataclass(frozen=True, slots=True)
class NamespaceLimits:
    """Action limits in force, with where each came from (namespace API or documentation)."""

    min_memory_mb: int
    max_memory_mb: int
    min_timeout_ms: int
    max_timeout_ms: int
    max_logs_mb: int
    max_parameters_bytes: int
    max_payload_bytes: int
    concurrent_invocations: int | None
    reported: frozenset[str]

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> NamespaceLimits:
        """Read ``GET /namespaces/_/limits``; fields it lacks take the documented defaults
        (older controllers report only the rate limits)."""

        def num(key: str) -> int:
            value = raw.get(key, DOCUMENTED_DEFAULTS[key])
            if isinstance(value, bool) or not isinstance(value, int):
                raise DeployError(f"namespace limit {key} is not an integer: {value!r}")
            return value

        params = min(
            parse_byte_size(raw.get("maxParameterSize", PARAMETERS_MAX_BYTES)),
            PARAMETERS_MAX_BYTES,
        )
        payload = min(
            parse_byte_size(raw.get("maxPayloadSize", PAYLOAD_MAX_BYTES)), PAYLOAD_MAX_BYTES
        )
        concurrent = raw.get("concurrentInvocations")
        return cls(
            min_memory_mb=num("minActionMemory"),
            max_memory_mb=num("maxActionMemory"),
            min_timeout_ms=num("minActionTimeout"),
            max_timeout_ms=num("maxActionTimeout"),
            max_logs_mb=num("maxActionLogs"),
            max_parameters_bytes=params,
            max_payload_bytes=payload,
            concurrent_invocations=concurrent if isinstance(concurrent, int) else None,
            reported=frozenset(raw),
        )

    def source(self, key: str) -> str:
        """How a limit was learned, for messages."""
        if key in self.reported:
            return "namespace limit"
        return "documented default; this controller does not report it"


def check_limits(specs: Sequence[ActionSpec], limits: NamespaceLimits) -> None:
    """Raise :class:`LimitError` listing every spec that is over a limit or cap."""
    problems: list[str] = []
    for s in specs:
        name = s.qualified_name
        if s.memory_mb > limits.max_memory_mb:
            advice = (
                f" The operator must raise the action memory maximum to at least "
                f"{s.memory_mb} MB (ansible: limit_action_memory_max={s.memory_mb}m; helm: "
                f"whisk.limits.actions.memory.max={s.memory_mb}m; or the namespace's "
                "maxActionMemory)"
            )
            if s.memory_fixed and s.memory_mb > s.min_memory_mb:
                advice += ", or deploy with a smaller --memory."
            else:
                advice += (
                    f"; {s.workload} needs at least {s.min_memory_mb} MB (its spec's "
                    "min_memory_mb)."
                )
            problems.append(
                f"{name}: memory {s.memory_mb} MB exceeds the maximum {limits.max_memory_mb} MB "
                f"({limits.source('maxActionMemory')}).{advice}"
            )
        if s.memory_mb < limits.min_memory_mb:
            problems.append(
                f"{name}: memory {s.memory_mb} MB is below the minimum {limits.min_memory_mb} MB"
            )
        if s.timeout_ms > limits.max_timeout_ms:
            problems.append(
                f"{name}: timeout {s.timeout_ms} ms exceeds the maximum {limits.max_timeout_ms} "
                f"ms ({limits.source('maxActionTimeout')}). The operator must raise it "
                f"(ansible: limit_action_time_max={s.timeout_ms // 1000}s; namespace: "
                "maxActionTimeout), or deploy with a shorter --timeout."
            )
        if s.timeout_ms < limits.min_timeout_ms:
            problems.append(
                f"{name}: timeout {s.timeout_ms} ms is below the minimum {limits.min_timeout_ms}"
            )
        if s.logs_mb > limits.max_logs_mb:
            problems.append(f"{name}: logs {s.logs_mb} MB exceed the maximum {limits.max_logs_mb}")
        if s.code_bytes > CODE_MAX_BYTES:
            problems.append(
                f"{name}: code is {s.code_bytes} bytes, over the documented {CODE_MAX_BYTES} "
                "bytes (48 MB) cap; put dependencies in the runtime image instead"
            )
        if s.parameters_bytes > limits.max_parameters_bytes:
            problems.append(
                f"{name}: bound parameters are {s.parameters_bytes} bytes, over the "
                f"{limits.max_parameters_bytes} bytes cap"
            )
    if problems:
        raise LimitError("nothing was deployed:\n  " + "\n  ".join(problems))


@dataclass(slots=True)
class Report:
    """What an operation did, entity by entity (for the CLI and the logs)."""

    package: str
    applied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def package_body(cfg: ProjectConfig) -> dict[str, Any]:
    """The PUT body of the project's package."""
    return {
        "annotations": [
            {"key": k, "value": v}
            for k, v in managed_annotations(
                cfg.project, description=f"{cfg.project} workloads (serverless-hpc)"
            )
        ],
        "parameters": [],
        "publish": False,
    }


def apply(client: OpenWhiskClient, cfg: ProjectConfig) -> Report:
    """Check limits, then create or update the package and every action (idempotent)."""
    limits = NamespaceLimits.from_api(client.get_limits())
    built = build_specs(cfg, max_memory_mb=limits.max_memory_mb)
    # Logs only help debugging: fit them to the namespace rather than refuse to deploy.
    specs = [replace(s, logs_mb=min(s.logs_mb, limits.max_logs_mb)) for s in built]
    check_limits(specs, limits)
    existing = client.get_package(cfg.package_name)
    if existing is not None and not is_managed(existing, cfg.project):
        raise DeployError(
            f"package {cfg.package_name!r} exists but is not managed by project "
            f"{cfg.project!r}; choose another --package (nothing was changed)"
        )
    report = Report(package=cfg.package_name)
    client.put_package(cfg.package_name, package_body(cfg), overwrite=True)
    for spec in specs:
        current = client.get_action(spec.qualified_name)
        if current is not None and not is_managed(current, cfg.project):
            raise DeployError(
                f"action {spec.qualified_name!r} exists but is not managed by {cfg.project!r}"
            )
        client.put_action(spec.qualified_name, spec.body(), overwrite=True)
        log.info("applied %s (%d MB, %d ms)", spec.qualified_name, spec.memory_mb, spec.timeout_ms)
        report.applied.append(spec.qualified_name)
    return report


def _package_actions(pkg: Mapping[str, Any]) -> list[str]:
    names = []
    for brief in pkg.get("actions") or []:
        if isinstance(brief, Mapping) and isinstance(brief.get("name"), str):
            names.append(brief["name"])
    return names


def destroy(client: OpenWhiskClient, *, project: str, package: str | None = None) -> Report:
    """Delete this project's actions, then its package if it is now empty and ours."""
    name = package or project
    report = Report(package=name)
    pkg = client.get_package(name)
    if pkg is None:
        log.info("package %s does not exist; nothing to destroy", name)
        return report
    for action in _package_actions(pkg):
        qualified = f"{name}/{action}"
        entity = client.get_action(qualified)
        if entity is None:
            continue  # deleted concurrently
        if is_managed(entity, project):
            client.delete_action(qualified)
            report.deleted.append(qualified)
        else:
            report.kept.append(qualified)
    if not is_managed(pkg, project):
        report.kept.append(name)
    elif report.kept:
        log.warning("package %s keeps unmanaged actions %s; not deleted", name, report.kept)
        report.kept.append(name)
    else:
        client.delete_package(name)
        report.deleted.append(name)
    return report


def status(client: OpenWhiskClient, *, project: str, package: str | None = None) -> dict[str, Any]:
    """What exists: the package, each action with its limits, version and ownership."""
    name = package or project
    pkg = client.get_package(name)
    if pkg is None:
        return {"package": name, "exists": False, "actions": []}
    actions = []
    for action in _package_actions(pkg):
        entity = client.get_action(f"{name}/{action}")
        if entity is None:
            continue
        limits = entity.get("limits") or {}
        actions.append(
            {
                "name": f"{name}/{action}",
                "managed": is_managed(entity, project),
                "version": entity.get("version"),
                "memory_mb": limits.get("memory"),
                "timeout_ms": limits.get("timeout"),
                "image": (entity.get("exec") or {}).get("image"),
            }
        )
    return {
        "package": name,
        "exists": True,
        "managed": is_managed(pkg, project),
        "actions": actions,
    }
