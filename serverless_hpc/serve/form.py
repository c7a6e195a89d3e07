"""The dashboard's run form: a JSON body turned into ``shpc bench`` options, checked as the
command line checks them.

The plan's fields are fixed; the workloads' own fields come from the options their specs
declare with a flag (:func:`form_fields`, :func:`workload_fields`), so a workload package
brings its form fields with it (docs/design.md, "The workload spec").
"""

from __future__ import annotations

import argparse
import functools
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, NoReturn


class FormError(ValueError):
    """A run request is invalid; ``field`` names the offending form field."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


# --------------------------------------------------------------------------------------
# The form: JSON body -> shpc bench argv, validated as the CLI validates it.

#: The plan's form fields -> (``shpc bench`` option, kind). Kinds: ``list`` of names,
#: ``ints`` list of integers, ``int``, ``float``, ``bool``, ``choice`` (a string), ``params``
#: ({workload: {key: value}}). The workloads' own fields come from their specs
#: (:func:`form_fields`).
PLAN_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "targets": ("--targets", "list"),
    "workloads": ("--workloads", "list"),
    "shards": ("--shards", "ints"),
    "repeats": ("--repeats", "int"),
    "modes": ("--modes", "list"),
    "cold_repeats": ("--cold-repeats", "int"),
    "train_repeats": ("--train-repeats", "int"),
    "memory_mb": ("--memory-mb", "ints"),
    "concurrency": ("--concurrency", "int"),
    "timeout": ("--timeout", "float"),
}
_KINDS: Final = {int: "int", float: "float", str: "choice", bool: "bool"}


@functools.cache
def form_fields() -> dict[str, tuple[str, str]]:
    """Every form field: the plan's, then one per flag a workload declares, then params."""
    from serverless_hpc import workloads

    out = dict(PLAN_FIELDS)
    for spec in workloads.specs().values():
        for option in spec.options:
            if option.flag and option.flag not in out:
                out[option.flag] = (f"--{option.flag.replace('_', '-')}", _KINDS[option.kind])
    out["params"] = ("--param", "params")
    return out


def workload_fields() -> list[dict[str, Any]]:
    """The workloads' form fields as the page draws them (one per declared flag)."""
    from serverless_hpc import workloads

    seen: dict[str, dict[str, Any]] = {}
    for spec in workloads.specs().values():
        for o in spec.options:
            if not o.flag:
                continue
            if o.flag in seen:
                seen[o.flag]["workloads"].append(spec.name)
                continue
            default = spec.plan_params.get(o.param)
            seen[o.flag] = {
                "name": o.flag,
                "label": o.flag.replace("_", " ").capitalize(),
                "kind": _KINDS[o.kind],
                "help": o.describe(),
                "workloads": [spec.name],
                "param": o.param,
                "min": o.minimum,
                "max": o.maximum,
                "choices": list(o.choices),
                "default": default if isinstance(default, int | float | str) else None,
            }
    return list(seen.values())


_NAME_CHARS: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _scalar(name: str, value: object, kind: str) -> str:
    if kind == "bool":
        if not isinstance(value, bool):
            raise FormError(name, f"{name}: expected true or false, got {value!r}")
        return "true" if value else "false"
    if kind in ("int", "ints"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise FormError(name, f"{name}: expected an integer, got {value!r}")
        return str(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FormError(name, f"{name}: expected a number, got {value!r}")
        return repr(float(value))
    if not isinstance(value, str) or not _NAME_CHARS.match(value):
        raise FormError(name, f"{name}: expected a name (letters, digits, _.-), got {value!r}")
    return value


def form_to_argv(body: object) -> list[str]:
    """``shpc bench`` options from a run request; :class:`FormError` naming a bad field.

    Lists may be JSON arrays or comma-separated strings; absent or null fields take the CLI's
    defaults. Only the fields of :func:`form_fields` are accepted (no ``--out``, no
    ``--target-opt``: the server chooses where runs go and sends no secrets anywhere).
    """
    fields = form_fields()
    if not isinstance(body, Mapping):
        raise FormError(None, "the request body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise FormError(
            unknown[0],
            f"{unknown[0]}: unknown field (known: {', '.join(sorted(fields))})",
        )
    argv: list[str] = []
    for name, (option, kind) in fields.items():
        value = body.get(name)
        if value is None or value in ("", [], {}):
            continue
        if kind in ("list", "ints"):
            items: Iterable[object]
            if isinstance(value, str):
                parts = [v.strip() for v in value.split(",") if v.strip()]
                items = parts
                if kind == "ints":
                    items = [int(v) if v.lstrip("-").isdigit() else v for v in parts]
            elif isinstance(value, list):
                items = value
            elif kind == "ints" and isinstance(value, int) and not isinstance(value, bool):
                items = [value]  # one number is a list of one (a single memory size)
            else:
                raise FormError(name, f"{name}: expected a list, got {value!r}")
            argv += [option, ",".join(_scalar(name, v, kind) for v in items)]
        elif kind == "params":
            argv += _params_argv(value)
        else:
            argv += [option, _scalar(name, value, kind)]
    return argv


def _params_argv(value: object) -> list[str]:
    if not isinstance(value, Mapping):
        raise FormError("params", "params: expected an object {workload: {key: value}}")
    out: list[str] = []
    for workload, kv in value.items():
        if not isinstance(kv, Mapping):
            raise FormError("params", f"params.{workload}: expected an object {{key: value}}")
        for key, val in kv.items():
            _scalar("params", workload, "choice")
            _scalar("params", key, "choice")
            if isinstance(val, dict | list):
                raise FormError("params", f"params.{workload}.{key}: expected a scalar value")
            out += ["--param", f"{workload}.{key}={json.dumps(val)}"]
    return out


def _field_of(message: str) -> str | None:
    """The form field a CLI error message is about (it names the option)."""
    by_option = {opt: name for name, (opt, _) in form_fields().items()}
    for match in re.finditer(r"--[a-z][a-z-]*", message):
        if match.group(0) in by_option:
            return by_option[match.group(0)]
    return None


class _FormParser(argparse.ArgumentParser):
    """An argument parser that raises :class:`FormError` where argparse would print and exit.

    Never ``contextlib.redirect_stderr`` in a server: it swaps the process-wide
    ``sys.stderr`` under every other thread, and may put back a stream closed meanwhile.
    """

    def error(self, message: str) -> NoReturn:
        raise FormError(_field_of(message), message)


def check_argv(argv: list[str], out: Path) -> Any:
    """Check ``shpc bench`` options exactly as the CLI would; the :class:`BenchConfig`.

    Parses with :func:`serverless_hpc.cli.build_parser` (its errors become a
    :class:`FormError`), then builds the run's ``BenchConfig`` with the CLI's own
    :func:`~serverless_hpc.cli_bench.bench_config`, whose checks name the option at fault.
    """
    from serverless_hpc import cli, cli_bench, driver
    from serverless_hpc.targets.base import TargetUnavailable

    args = cli.build_parser(_FormParser).parse_args(["bench", *argv])
    try:
        cfg = cli_bench.bench_config(args, out)
        driver.check_plan_size(cfg, confirmed=False)
    except (driver.BenchError, TargetUnavailable) as exc:
        raise FormError(_field_of(str(exc)), str(exc)) from None
    return cfg
