"""Typed, validated app configuration, read once from the cdk.json context.

Every value comes from the ``context`` block of ``cdk.json`` and can be overridden on the
command line (``cdk synth -c retain_results=true``); values given with ``-c`` arrive as
strings and are coerced here. Nothing else in the app reads context, the environment or
files for settings: the stacks take this object's fields as typed keyword arguments.

Each workload's function takes its memory and timeout from the workload's spec
(:mod:`serverless_hpc.workloads.spec`); ``<workload>_memory_mb`` / ``<workload>_timeout_s``
in the context override them, and such a key naming no workload is an error (a renamed
workload's stale setting would otherwise be ignored without a word).

Account and region are not configuration: the app takes them from ``CDK_DEFAULT_ACCOUNT`` /
``CDK_DEFAULT_REGION`` (set by the CDK CLI from the AWS profile), so nothing here names one.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from serverless_hpc import aws, workloads

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
ARCHITECTURES: Final = ("x86_64", "arm64")
#: Retention periods CloudWatch Logs accepts (days) that the stacks map onto RetentionDays.
LOG_RETENTION_DAYS: Final = (1, 3, 5, 7, 14, 30, 60, 90, 180, 365)
_INSTANCE_TYPE_RE: Final = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
#: CPU credit modes of a burstable (T-family) instance; ``unlimited`` is T3's launch default
#: and what the report's VM model prices (surplus credits above the baseline).
CPU_CREDIT_MODES: Final = ("unlimited", "standard")
#: Where ``shpc data fetch`` puts the dataset when nothing else is configured.
DEFAULT_DATASET_DIR: Final = Path.home() / ".cache" / "serverless-hpc" / "fashion-mnist"
_PREFIX_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,30}$")
#: A per-workload override key: ``<workload>_memory_mb`` or ``<workload>_timeout_s``.
_OVERRIDE_RE: Final = re.compile(r"^(?P<workload>.+)_(?P<what>memory_mb|timeout_s)$")


class ConfigError(ValueError):
    """A context value is missing or invalid; the message names the key."""


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """One Lambda function's sizing."""

    memory_mb: int
    timeout_s: int


def spec_functions() -> dict[str, FunctionConfig]:
    """Every workload's function sizing as its spec declares it (timeouts rounded up to s)."""
    return {
        spec.name: FunctionConfig(memory_mb=spec.memory_mb, timeout_s=math.ceil(spec.timeout_s))
        for spec in workloads.specs().values()
    }


@dataclass(frozen=True, slots=True)
class AppConfig:
    """Everything the stacks need, validated on construction."""

    stack_prefix: str = aws.DEFAULT_STACK_PREFIX
    tag_key: str = aws.PROJECT_TAG_KEY
    tag_value: str = aws.PROJECT_TAG_VALUE
    architecture: str = "x86_64"
    #: One function per workload spec (see :func:`spec_functions`).
    functions: Mapping[str, FunctionConfig] = field(default_factory=spec_functions)
    ephemeral_storage_mb: int = 512
    reserved_concurrency: int | None = None
    instance_type: str = "t3.xlarge"
    #: Burstable types only (T family): ``unlimited`` (CPU above the baseline is billed as
    #: surplus credits) or ``standard`` (throttled to the baseline when credits run out).
    cpu_credits: str = "unlimited"
    root_volume_gb: int = 30
    retain_results: bool = False
    log_retention_days: int = 14
    dataset_dir: Path = field(default_factory=lambda: DEFAULT_DATASET_DIR)
    nag: bool = True

    def __post_init__(self) -> None:
        if not _PREFIX_RE.match(self.stack_prefix):
            raise ConfigError(
                f"stack_prefix must match {_PREFIX_RE.pattern}: {self.stack_prefix!r}"
            )
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"architecture must be one of {ARCHITECTURES}: {self.architecture!r}")
        names = workloads.names()
        if set(self.functions) != set(names):
            raise ConfigError(f"functions must configure exactly the workloads {names}")
        for name, fn in self.functions.items():
            if not 128 <= fn.memory_mb <= 10240:
                raise ConfigError(f"{name}_memory_mb must be 128..10240, got {fn.memory_mb}")
            if not 1 <= fn.timeout_s <= 900:
                raise ConfigError(
                    f"{name}_timeout_s must be 1..900 (Lambda's ceiling), got {fn.timeout_s}"
                )
        if not 512 <= self.ephemeral_storage_mb <= 10240:
            raise ConfigError(
                f"ephemeral_storage_mb must be 512..10240, got {self.ephemeral_storage_mb}"
            )
        if self.reserved_concurrency is not None and self.reserved_concurrency < 1:
            raise ConfigError(
                f"reserved_concurrency must be >= 1 or null, got {self.reserved_concurrency}"
            )
        if not _INSTANCE_TYPE_RE.match(self.instance_type):
            raise ConfigError(f"instance_type is not an instance type: {self.instance_type!r}")
        if self.cpu_credits not in CPU_CREDIT_MODES:
            raise ConfigError(
                f"cpu_credits must be one of {CPU_CREDIT_MODES}, got {self.cpu_credits!r}"
            )
        if not 8 <= self.root_volume_gb <= 1024:
            raise ConfigError(f"root_volume_gb must be 8..1024, got {self.root_volume_gb}")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ConfigError(f"log_retention_days must be one of {LOG_RETENTION_DAYS}")

    @classmethod
    def from_context(
        cls,
        get: Callable[[str], Any],
        env: Mapping[str, str] | None = None,
        *,
        keys: Iterable[str] = (),
    ) -> AppConfig:
        """Build from a context getter (``app.node.try_get_context``).

        ``keys`` are every context key given (``app.node.get_all_context()``), checked so a
        per-workload override names a workload that exists. ``dataset_dir``: the context value
        when set, else ``$FASHION_MNIST_DIR``, else the cache ``shpc data fetch`` fills.
        Relative paths are relative to the repository.
        """
        env = os.environ if env is None else env
        known = workloads.names()
        for key in keys:
            m = _OVERRIDE_RE.match(key)
            if m and m["workload"] not in known:
                raise ConfigError(
                    f"context key {key}: no workload {m['workload']!r} (known: {', '.join(known)})"
                )

        def raw(key: str, default: Any) -> Any:
            value = get(key)
            return default if value is None else value

        base = cls()
        functions = {
            w: FunctionConfig(
                memory_mb=_int(
                    raw(f"{w}_memory_mb", base.functions[w].memory_mb), f"{w}_memory_mb"
                ),
                timeout_s=_int(
                    raw(f"{w}_timeout_s", base.functions[w].timeout_s), f"{w}_timeout_s"
                ),
            )
            for w in known
        }
        dataset = str(raw("dataset_dir", "") or env.get("FASHION_MNIST_DIR", ""))
        dataset_dir = _resolve(dataset) if dataset else DEFAULT_DATASET_DIR
        reserved = raw("reserved_concurrency", None)
        return cls(
            stack_prefix=str(raw("stack_prefix", base.stack_prefix)),
            tag_key=str(raw("project_tag_key", base.tag_key)),
            tag_value=str(raw("project_tag_value", base.tag_value)),
            architecture=str(raw("architecture", base.architecture)),
            functions=functions,
            ephemeral_storage_mb=_int(
                raw("ephemeral_storage_mb", base.ephemeral_storage_mb), "ephemeral_storage_mb"
            ),
            reserved_concurrency=None
            if reserved in (None, "", "null", "none")
            else _int(reserved, "reserved_concurrency"),
            instance_type=str(raw("instance_type", base.instance_type)),
            cpu_credits=str(raw("cpu_credits", base.cpu_credits)).strip().lower(),
            root_volume_gb=_int(raw("root_volume_gb", base.root_volume_gb), "root_volume_gb"),
            retain_results=_bool(raw("retain_results", False), "retain_results"),
            log_retention_days=_int(
                raw("log_retention_days", base.log_retention_days), "log_retention_days"
            ),
            dataset_dir=dataset_dir,
            nag=_bool(raw("nag", True), "nag"),
        )


def _resolve(path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (REPO_ROOT / p).resolve()


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be an integer, got {value!r}") from None


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigError(f"{key} must be true or false, got {value!r}")
