"""Options that must not silently mean something else: bad values, defaults, a bad dataset."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from serverless_hpc.cli import build_parser, main
from serverless_hpc.cli_bench import workload_params
from serverless_hpc.data import fashion_mnist as fm
from serverless_hpc.driver import BenchConfig
from serverless_hpc.targets.base import TargetSettings, TargetUnavailable
from serverless_hpc.workloads.train.params import TrainParams


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"concurrency": 0}, "--concurrency must be >= 1 and at most 1000, got 0"),
        ({"concurrency": -3}, "--concurrency must be >= 1 and at most 1000, got -3"),
        ({"timeout_s": 0.0}, "--timeout must be > 0 seconds and at most 86400, got 0.0"),
        ({"timeout_s": math.nan}, "--timeout must be > 0 seconds and at most 86400, got nan"),
        ({"keep_alive_s": -1.0}, "--keep-alive must be >= 0 seconds and at most 86400, got -1.0"),
        (
            {"memory_mb": 64},
            "--memory-mb: memory_mb must be >= 128 and at most 10240 (Lambda's range), got 64",
        ),
        ({"init_timeout_s": 0.0}, "init_timeout_s must be > 0 seconds and at most 86400, got 0.0"),
    ],
)
def test_target_settings_reject_values_that_would_mean_the_default(
    kwargs: dict[str, Any], fragment: str
) -> None:
    # WHEN settings are made with a zero/negative value THEN the option is named, at once
    with pytest.raises(TargetUnavailable) as err:
        TargetSettings(**kwargs)
    assert fragment in str(err.value)


def test_target_settings_accept_the_edges() -> None:
    s = TargetSettings(concurrency=1, timeout_s=0.001, keep_alive_s=0.0, memory_mb=128)
    assert (s.concurrency, s.timeout_s, s.keep_alive_s, s.memory_mb) == (1, 0.001, 0.0, 128)


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [
        ("--concurrency", "0", "--concurrency must be >= 1 and at most 1000"),
        ("--timeout", "0", "--timeout must be > 0 seconds and at most"),
        ("--keep-alive", "-5", "--keep-alive must be >= 0 seconds and at most"),
        ("--memory-mb", "100", "--memory-mb: memory_mb must be >= 128 and at most 10240"),
    ],
)
def test_cli_bad_target_option_is_a_usage_error_and_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, fragment: str
) -> None:
    out = tmp_path / "run"
    code = main(["bench", "--targets", "standalone", "--out", str(out), "-q", flag, value])
    assert code == 2
    assert fragment in capsys.readouterr().err
    assert not out.exists()


def test_invoke_with_timeout_zero_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["invoke", "lambda", '{"workload": "classify"}', "--timeout", "0"])
    assert code == 2
    assert "--timeout must be > 0 seconds and at most" in capsys.readouterr().err


def test_a_non_canonical_dataset_fails_up_front_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a directory with the four canonical names whose content differs
    data = tmp_path / "data"
    data.mkdir()
    for name in fm.missing_files(data):
        (data / name).write_bytes(b"not the canonical file")
    out = tmp_path / "run"
    # WHEN a local benchmark is started on it
    args = ["bench", "--targets", "standalone", "--workloads", "dataproc"]
    code = main([*args, "--data-dir", str(data), "--out", str(out), "-q"])
    # THEN it is a usage error naming a file and the md5 mismatch, and nothing ran
    assert code == 2
    err = capsys.readouterr().err
    assert str(data) in err and "does not match the published" in err
    assert not out.exists()


def test_bench_help_states_the_train_workloads_own_epoch_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["bench", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    epochs = TrainParams.model_fields["epochs"].default
    assert f"training epochs (1..200) (train.epochs; default {epochs})" in text


def test_bench_config_defaults_are_the_clis(tmp_path: Path) -> None:
    # GIVEN the CLI's defaults for `shpc bench` and BenchConfig's own
    args = build_parser().parse_args(["bench"])
    cfg = BenchConfig(out=tmp_path)
    # THEN a library caller gets the same experiment as the command line
    for name in (
        "targets",
        "workloads",
        "shards",
        "repeats",
        "train_repeats",
        "train_workers",
        "modes",
        "cold_repeats",
    ):
        assert getattr(cfg, name) == getattr(args, name), name
    assert workload_params(args) == {}  # no shorthand set: every workload's spec decides
    assert (cfg.repeats, cfg.cold_repeats) == (6, 2)


def test_train_workers_is_a_comma_separated_plan_dimension() -> None:
    args = build_parser().parse_args(["bench", "--train-workers", "1,2,4"])
    assert args.train_workers == (1, 2, 4)
