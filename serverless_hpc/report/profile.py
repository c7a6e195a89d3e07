"""The platform profile: the dated, editable data file the report's models read.

``serverless_hpc/platform_profile.json`` holds each target's kind (functions billed per use,
or a VM billed per hour), the VM type costs are compared against and its credit mode,
Lambda's limits and overheads with their sources, S3's figures as the store between a coupled
job's rounds (per-request latency, a function's bandwidth, per-prefix request rates), and per
workload the speed factor from this machine's vCPU to a cloud vCPU (a model; 1.0 where
unknown). Nothing here is measured
by the run; every figure derived from it is labelled a model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from serverless_hpc.pricing_data import read_data_file

PROFILE_FILE = "platform_profile.json"

Kind = Literal["faas", "vm", "unknown"]


class ProfileError(ValueError):
    """The platform profile is malformed; the message names the field."""


@dataclass(frozen=True, slots=True)
class LambdaProfile:
    """Lambda's limits and overheads as the projection uses them."""

    architecture: str
    concurrency_limit: int
    burst_per_10s: int
    timeout_s: float
    payload_limit_bytes: int
    memory_mb_min: int
    memory_mb_max: int
    init_billed_cap_ms: float
    invoke_overhead_ms: float
    cold_start_ms: dict[str, float]
    sources: dict[str, str]
    #: How long an idle environment is kept (a model: Lambda does not document it).
    keep_alive_s: float = 600.0


@dataclass(frozen=True, slots=True)
class StoreProfile:
    """S3 as the coupled-work projection models it (typical published values: a model)."""

    as_of: str
    get_first_byte_ms: float  #: a GET's time to its first byte
    put_ms: float  #: a small PUT's round trip
    function_bandwidth_mb_s: float  #: one function's throughput to and from S3, MB/s
    get_per_prefix_per_s: float  #: GET/HEAD requests per second a prefix takes
    put_per_prefix_per_s: float  #: PUT/COPY/POST/DELETE requests per second a prefix takes
    sources: dict[str, str]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StoreProfile:
        """The profile's ``store`` section; :class:`ProfileError` when a figure is not > 0."""
        store = cls(
            as_of=str(raw["as_of"]),
            get_first_byte_ms=float(raw["get_first_byte_ms"]),
            put_ms=float(raw["put_ms"]),
            function_bandwidth_mb_s=float(raw["function_bandwidth_mb_s"]),
            get_per_prefix_per_s=float(raw["get_per_prefix_per_s"]),
            put_per_prefix_per_s=float(raw["put_per_prefix_per_s"]),
            sources={str(k): str(v) for k, v in raw.get("sources", {}).items()},
        )
        figures = (
            store.get_first_byte_ms,
            store.put_ms,
            store.function_bandwidth_mb_s,
            store.get_per_prefix_per_s,
            store.put_per_prefix_per_s,
        )
        if any(not f > 0 for f in figures):  # NaN included
            raise ProfileError("platform profile: every store figure must be > 0")
        return store


@dataclass(frozen=True, slots=True)
class PlatformProfile:
    """The whole profile file."""

    as_of: str
    target_kinds: dict[str, str]
    vm_instance_type: str
    lambda_: LambdaProfile
    #: The comparison VM's CPU credit mode (burstable types): ``unlimited`` or ``standard``.
    vm_credit_mode: str = "unlimited"
    #: Per workload: a cloud vCPU's speed over this machine's (a model; 1.0 = unknown).
    speed_factors: dict[str, float] = field(default_factory=dict)
    speed_default: float = 1.0
    speed_sources: dict[str, str] = field(default_factory=dict)
    #: S3 between a coupled job's rounds (None: the profile has no ``store`` section).
    store: StoreProfile | None = None

    def speed(self, workload: str) -> tuple[float, str]:
        """A workload's speed factor and where it comes from (``unknown`` when assumed 1.0)."""
        factor = self.speed_factors.get(workload, self.speed_default)
        source = self.speed_sources.get(workload) or (
            "unknown: not measured (1.0 assumed)" if factor == 1.0 else "platform profile"
        )
        return factor, source

    def kind(self, target: str) -> Kind:
        """``faas``, ``vm`` or ``unknown`` (a target the profile does not list)."""
        k = self.target_kinds.get(target)
        return k if k in ("faas", "vm") else "unknown"  # type: ignore[return-value]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PlatformProfile:
        """Validate a decoded profile; :class:`ProfileError` names what is wrong."""
        try:
            lam = raw["lambda"]
            lp = LambdaProfile(
                architecture=str(lam["architecture"]),
                concurrency_limit=int(lam["concurrency_limit"]),
                burst_per_10s=int(lam["burst_per_10s"]),
                timeout_s=float(lam["timeout_s"]),
                payload_limit_bytes=int(lam["payload_limit_bytes"]),
                memory_mb_min=int(lam["memory_mb_min"]),
                memory_mb_max=int(lam["memory_mb_max"]),
                init_billed_cap_ms=float(lam["init_billed_cap_ms"]),
                invoke_overhead_ms=float(lam["invoke_overhead_ms"]),
                cold_start_ms={str(k): float(v) for k, v in lam["cold_start_ms"].items()},
                sources={str(k): str(v) for k, v in lam.get("sources", {}).items()},
                keep_alive_s=float(lam.get("keep_alive_s", 600.0)),
            )
            kinds = {str(t): str(v["kind"]) for t, v in raw["targets"].items()}
            speed = raw.get("speed_factor") or {}
            profile = cls(
                as_of=str(raw["as_of"]),
                target_kinds=kinds,
                vm_instance_type=str(raw["vm_instance_type"]),
                lambda_=lp,
                vm_credit_mode=str(raw.get("vm_credit_mode", "unlimited")),
                speed_factors={str(k): float(v) for k, v in speed.get("workloads", {}).items()},
                speed_default=float(speed.get("default", 1.0)),
                speed_sources={str(k): str(v) for k, v in speed.get("sources", {}).items()},
                store=StoreProfile.from_dict(raw["store"]) if "store" in raw else None,
            )
        except ProfileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"platform profile lacks or mistypes {exc}") from exc
        if lp.concurrency_limit < 1 or lp.burst_per_10s < 1 or lp.timeout_s <= 0:
            raise ProfileError("platform profile: concurrency, burst and timeout must be > 0")
        if lp.keep_alive_s < 0:
            raise ProfileError("platform profile: lambda.keep_alive_s must be >= 0")
        if profile.vm_credit_mode not in ("unlimited", "standard"):
            raise ProfileError("platform profile: vm_credit_mode must be unlimited or standard")
        factors = [*profile.speed_factors.values(), profile.speed_default]
        if any(not 0 < f < 1000 for f in factors):
            raise ProfileError("platform profile: speed factors must be > 0")
        return profile


@functools.lru_cache(maxsize=4)
def load_profile(path: Path | None = None) -> PlatformProfile:
    """Parse ``path`` (default: the packaged profile) once per process."""
    return PlatformProfile.from_dict(read_data_file(PROFILE_FILE, path))
