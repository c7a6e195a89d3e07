"""The typed app config: defaults, coercion of ``-c`` strings, and errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacks.config import AppConfig, ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_cdk_json_context_parses_to_the_documented_defaults() -> None:
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    cfg = AppConfig.from_context(context.get, env={})
    assert cfg.instance_type == "t3.xlarge"
    assert cfg.functions["train"].timeout_s == 900
    assert cfg.architecture == "x86_64"
    assert cfg.retain_results is False
    assert cfg.reserved_concurrency is None
    assert cfg.cpu_credits == "unlimited"


def test_cli_strings_are_coerced() -> None:
    ctx = {"retain_results": "true", "classify_memory_mb": "3008", "reserved_concurrency": "20"}
    cfg = AppConfig.from_context(ctx.get, env={})
    assert cfg.retain_results is True
    assert cfg.functions["classify"].memory_mb == 3008
    assert cfg.reserved_concurrency == 20


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("train_timeout_s", "901", "train_timeout_s"),
        ("classify_memory_mb", "64", "classify_memory_mb"),
        ("architecture", "sparc", "architecture"),
        ("retain_results", "maybe", "retain_results"),
        ("log_retention_days", "13", "log_retention_days"),
        ("instance_type", "not a type", "instance_type"),
        ("cpu_credits", "turbo", "cpu_credits"),
    ],
)
def test_invalid_values_name_the_key(key: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        AppConfig.from_context({key: value}.get, env={})


def test_dataset_dir_falls_back_to_the_environment(tmp_path: Path) -> None:
    cfg = AppConfig.from_context({}.get, env={"FASHION_MNIST_DIR": str(tmp_path)})
    assert cfg.dataset_dir == tmp_path


def test_missing_dataset_fails_synth_with_a_clear_message(tmp_path: Path) -> None:
    from stacks.data import verified_dataset_files

    with pytest.raises(ConfigError, match="shpc data fetch"):
        verified_dataset_files(tmp_path / "absent")
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not the file")
    with pytest.raises(ConfigError, match=r"lacks|md5"):
        verified_dataset_files(tmp_path)


def test_function_sizing_comes_from_the_workload_specs() -> None:
    # GIVEN no per-workload keys in the context WHEN the config is read
    import math

    from serverless_hpc import workloads

    cfg = AppConfig.from_context({}.get, env={})
    # THEN every workload has a function sized by its spec
    assert set(cfg.functions) == set(workloads.names())
    for name, fn in cfg.functions.items():
        spec = workloads.spec(name)
        assert (fn.memory_mb, fn.timeout_s) == (spec.memory_mb, math.ceil(spec.timeout_s))


def test_an_override_for_no_workload_is_an_error() -> None:
    # GIVEN a context key for a workload that does not exist (a typo, or a renamed one)
    ctx = {"clasify_memory_mb": "1024"}
    # WHEN the config is read THEN the key and the known workloads are named
    with pytest.raises(ConfigError, match=r"clasify_memory_mb.*known: .*classify"):
        AppConfig.from_context(ctx.get, env={}, keys=ctx)


def test_cpu_credit_mode_is_configurable() -> None:
    assert AppConfig.from_context({"cpu_credits": "Standard"}.get, env={}).cpu_credits == (
        "standard"
    )
