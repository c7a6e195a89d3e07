"""Targets by name. Each lives in its own module, imported only when a run asks for it, so
a driver that benchmarks remote targets never loads the local workloads and vice versa."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Final

from serverless_hpc.targets.base import Target, TargetSettings, TargetUnavailable

#: Target name -> "module:Class". Cloud SDKs are imported inside those modules only.
TARGETS: Final = {
    "standalone": "serverless_hpc.targets.standalone:StandaloneTarget",
    "local-faas": "serverless_hpc.targets.local_faas:LocalFaasTarget",
    "lambda": "serverless_hpc.targets.aws_lambda:LambdaTarget",
    "ec2": "serverless_hpc.targets.ec2:Ec2Target",
    "openwhisk": "serverless_hpc.targets.openwhisk:OpenWhiskTarget",
}

#: Targets that run on this machine and read the dataset from a local directory.
LOCAL_TARGETS: Final = frozenset({"standalone", "local-faas"})


def check_options(extra: Mapping[str, str], targets: Sequence[Target]) -> None:
    """Every ``--target-opt`` must reach a target of the run (see :meth:`Target.target_options`).

    A plain key must be known by at least one target; a ``<target>.key`` must name a target
    of the run (that target validates the key itself). A typo is then an error, not a
    setting silently ignored.
    """
    by_name = {t.name: t for t in targets}
    for key in extra:
        head, dot, rest = key.partition(".")
        if dot and head in TARGETS:
            if head not in by_name:
                raise TargetUnavailable(f"--target-opt {key}: target {head!r} is not in this run")
            # Checked here too, not only by targets that read their options: local-faas
            # reads none, and a typo there must not be silently ignored.
            options = by_name[head].options
            if rest not in options:
                raise TargetUnavailable(
                    f"--target-opt {key}: {head} has no option {rest!r} "
                    f"(known: {', '.join(sorted(options)) or 'none'})"
                )
            continue
        if not any(key in t.options for t in targets):
            known = sorted({o for t in targets for o in t.options})
            raise TargetUnavailable(
                f"--target-opt {key}: no target in this run knows it "
                f"(known: {', '.join(known) or 'none'})"
            )


def create(name: str, settings: TargetSettings) -> Target:
    """Instantiate target ``name``; :class:`TargetUnavailable` for unknown or unusable ones."""
    try:
        spec = TARGETS[name]
    except KeyError:
        raise TargetUnavailable(
            f"unknown target {name!r} (known: {', '.join(sorted(TARGETS))})"
        ) from None
    module_name, _, cls_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetUnavailable(
            f"target {name!r} needs an extra that is not installed: {exc}"
        ) from exc
    cls: type[Target] = getattr(module, cls_name)
    return cls(settings)
