"""Bad ``--store``, model names and special files are refused up front, never run or waited on.

A store URI that cannot be a store, or an S3 bucket that does not exist, is exit 2 naming
``--store`` before anything runs (not exit 4, not a run whose every invocation fails); a
model name that is not one safe path segment is exit 2 naming the parameter; a FIFO planted
where the driver reads a file (the store's ``LATEST``, a dataset file) is refused at once.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from serverless_hpc.cli import main
from serverless_hpc.contract import ContractError, InvalidRequest
from serverless_hpc.data import fashion_mnist as fm
from serverless_hpc.store import LocalStore, bundle_key, check_store_uri
from tests.faults.conftest import run_shpc, shpc_env

BENCH = ["bench", "--targets", "standalone", "-q"]


@pytest.mark.parametrize(
    ("store", "named"),
    [
        ("", "--store: the store URI is empty"),
        ("   ", "--store: the store URI is empty"),
        ("s3://", "names no bucket"),
        ("s3://Bad_Bucket/p", "is not a valid bucket name"),
        ("s3://ok-bucket/../p", "the prefix is not a valid key"),
        ("ftp://host/p", "unsupported store URI"),
        ("file://", "names no directory"),
        ("x" * 5000, "5000 characters long"),
    ],
)
def test_a_bad_store_is_a_usage_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], store: str, named: str
) -> None:
    out = tmp_path / "run"
    code = main([*BENCH, "--workloads", "sleep", "--store", store, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and named in err and "--store" in err, err
    assert "Traceback" not in err and not out.exists()


def test_an_s3_bucket_that_does_not_exist_is_refused_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    moto = pytest.importorskip("moto")
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "run"
    # GIVEN an S3 (moto's double of it) without the bucket WHEN a run names it
    with moto.mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="a-bucket-that-exists")
        code = main(
            [*BENCH, "--workloads", "sleep", "--store", "s3://nobucket/p", "--out", str(out)]
        )
        err = capsys.readouterr().err
        ok_args = ["--shards", "1", "--repeats", "1", "--modes", "natural"]
        ok_args += ["--store", "s3://a-bucket-that-exists/p", "--out", str(tmp_path / "ok")]
        ok = main([*BENCH, "--workloads", "sleep", *ok_args])
    # THEN exit 2 naming --store and the bucket, before anything ran or was written
    assert code == 2 and "error: --store: bucket 'nobucket' does not exist" in err, err
    assert not out.exists()
    # AND an existing bucket passes the check (the run itself then goes on)
    assert ok == 0


@pytest.mark.parametrize("value", ["../../etc", "a/b", ".hidden", "x" * 65, "", "..", "a\\b"])
def test_a_model_name_that_is_not_one_path_segment_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    out = tmp_path / "run"
    args = [*BENCH, "--workloads", "classify", "--param", f"classify.model={value}"]
    code = main([*args, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--param classify.model: field 'model' must match" in err, err
    assert not out.exists()


def test_store_keys_are_never_built_from_a_bad_model_name() -> None:
    with pytest.raises(InvalidRequest, match="field 'model'"):
        bundle_key("../../etc", "v1", "model.tflite")
    assert bundle_key("fashion-cnn", "v1", "model.tflite") == "models/fashion-cnn/v1/model.tflite"
    assert check_store_uri("s3://good-bucket/some/prefix") == "s3://good-bucket/some/prefix"


# -- special files where the driver reads files ----------------------------------------


def test_a_fifo_as_latest_is_refused_at_once(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    (tmp_path / "store" / "models" / "fashion-cnn").mkdir(parents=True)
    os.mkfifo(tmp_path / "store" / "models" / "fashion-cnn" / "LATEST")
    with pytest.raises(ContractError, match="not a regular file but a FIFO"):
        store.get_bytes("models/fashion-cnn/LATEST")


def test_a_run_whose_store_holds_a_fifo_latest_exits_2_without_waiting(
    tmp_path: Path, data_dir: Path
) -> None:
    # GIVEN a store whose LATEST pointer is a FIFO nobody writes to
    store = tmp_path / "store"
    (store / "models" / "fashion-cnn").mkdir(parents=True)
    os.mkfifo(store / "models" / "fashion-cnn" / "LATEST")
    # WHEN a classify run (which needs the model) starts (bounded: a hang fails the test)
    args = ["bench", "--targets", "local-faas", "--workloads", "classify", "-q"]
    args += ["--store", str(store), "--data-dir", str(data_dir), "--out", str(tmp_path / "run")]
    done = run_shpc(args, shpc_env(tmp_path), tmp_path)
    # THEN it stops at once, exit 2, naming the file and what it is
    assert done.returncode == 2, done.stderr
    assert "LATEST" in done.stderr and "not a regular file but a FIFO" in done.stderr
    assert "Traceback" not in done.stderr


def _data_with_a_fifo(tmp_path: Path, data_dir: Path, fifo_name: str) -> Path:
    copy = tmp_path / "data"
    copy.mkdir()
    for name in fm.missing_files(copy):
        if name == fifo_name:
            os.mkfifo(copy / name)
        else:
            shutil.copy(data_dir / name, copy / name)
    return copy


@pytest.mark.parametrize("name", ["t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz"])
def test_data_verify_refuses_a_fifo_dataset_file_at_once(
    tmp_path: Path, data_dir: Path, name: str
) -> None:
    copy = _data_with_a_fifo(tmp_path, data_dir, name)
    done = run_shpc(["data", "verify", "--data-dir", str(copy)], shpc_env(tmp_path), tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{copy / name}: not a regular file but a FIFO" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_run_refuses_a_fifo_dataset_file_at_once(tmp_path: Path, data_dir: Path) -> None:
    name = "t10k-images-idx3-ubyte.gz"
    copy = _data_with_a_fifo(tmp_path, data_dir, name)
    args = [*BENCH, "--workloads", "dataproc", "--data-dir", str(copy)]
    done = run_shpc([*args, "--out", str(tmp_path / "run")], shpc_env(tmp_path), tmp_path)
    assert done.returncode == 2 and "not a regular file but a FIFO" in done.stderr, done.stderr


def test_read_idx_refuses_a_device(tmp_path: Path) -> None:
    with pytest.raises(fm.DatasetError, match="not a regular file but a character device"):
        fm.read_idx(Path("/dev/zero"))
