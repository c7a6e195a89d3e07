"""On the real Fashion-MNIST files: the data, a short training run, classify and dataproc.

Skipped, with the reason, when the files are absent (see ``data_dir`` in conftest).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from serverless_hpc import handler
from serverless_hpc.data import fashion_mnist as fm
from serverless_hpc.store import load_metadata, open_store
from serverless_hpc.targets.base import TargetSettings
from serverless_hpc.targets.local_faas import LocalFaasTarget
from serverless_hpc.workloads.base import Context
from serverless_hpc.workloads.classify import decode_labels
from serverless_hpc.workloads.dataproc import reduce_partials

pytestmark = pytest.mark.integration


def test_the_files_are_the_canonical_ones(data_dir: Path) -> None:
    x_train, y_train = fm.load_split("train", data_dir)
    x_test, y_test = fm.load_split("test", data_dir)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert round(float(x_train.mean()), 4) == 72.9404
    assert round(float(x_test.mean()), 4) == 73.1466
    assert y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert y_test[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert np.bincount(y_test).tolist() == [1000] * 10


def test_dataproc_reduce_over_shards_equals_one_shard_on_real_data(data_dir: Path) -> None:
    ctx = Context(data_dir=data_dir)

    def run(start: int, end: int) -> dict:
        resp = handler.handle(
            {"workload": "dataproc", "params": {"start": start, "end": end}},
            platform="test",
            ctx=ctx,
        )
        assert resp["ok"], resp
        return resp["result"]

    whole = reduce_partials([run(0, 10000)])
    parts = [run(s.start, s.end) for s in fm.split_shards(10000, 7)]
    assert reduce_partials(parts) == whole
    assert [c["count"] for c in whole["classes"]] == [1000] * 10


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A short training run through a local-faas function instance (TensorFlow in a process)."""
    store = tmp_path_factory.mktemp("store")
    settings = TargetSettings(data_dir=data_dir, store_uri=str(store), log_dir=store / "logs")
    with LocalFaasTarget(settings) as target:
        out = target.invoke(
            {"workload": "train", "params": {"epochs": 1, "train_limit": 6000, "seed": 1}},
            timeout_s=600,
        )
    assert out.ok, out.response
    return {"store": str(store), "result": out.response["result"], "outcome": out}


def test_training_measures_accuracy_on_the_held_out_set_and_checks_the_export(
    trained: dict,
) -> None:
    result = trained["result"]
    assert 0.6 < result["test_accuracy"] < 1.0
    assert result["agreement"] >= 0.999
    assert abs(result["litert_accuracy"] - result["test_accuracy"]) <= 0.001
    meta = load_metadata(open_store(trained["store"]), "fashion-cnn", result["version"])
    assert meta["test_accuracy"] == result["test_accuracy"]
    assert meta["train_items"] == 6000 and meta["seed"] == 1
    assert meta["dataset_md5"]["t10k-images-idx3-ubyte.gz"] == "bef4ecab320f06d8554ea6380940ec79"
    store = open_store(trained["store"])
    for name in ("model.keras", "model.tflite", "metadata.json"):
        assert store.exists(f"models/fashion-cnn/{result['version']}/{name}")


def test_classify_agrees_with_the_training_report_and_across_shards(
    trained: dict, data_dir: Path
) -> None:
    ctx = Context(data_dir=data_dir, store_uri=trained["store"])

    def classify(start: int, end: int) -> dict:
        req = {"workload": "classify", "params": {"start": start, "end": end}}
        resp = handler.handle(req, platform="test", ctx=ctx)
        assert resp["ok"], resp
        return resp["result"]

    # The whole test set through classify gives exactly the accuracy train recorded for LiteRT.
    full = classify(0, 10000)
    assert full["accuracy"] == trained["result"]["litert_accuracy"]
    # Sharded classification gives the same labels as one batch.
    labels = "".join(classify(s.start, s.end)["labels"] for s in fm.split_shards(3000, 5))
    assert labels == full["labels"][:3000]
    truth = fm.load_split("test", data_dir)[1][:3000]
    assert sum(int(a == b) for a, b in zip(decode_labels(labels), truth, strict=True)) == round(
        sum(classify(s.start, s.end)["correct"] for s in fm.split_shards(3000, 3))
    )


def test_classify_path_never_imports_tensorflow(trained: dict, data_dir: Path) -> None:
    # A fresh local-faas instance for classify: its process must not load TensorFlow.
    settings = TargetSettings(data_dir=data_dir, store_uri=trained["store"])
    probe = {"workload": "classify", "params": {"end": 10}}
    with LocalFaasTarget(settings) as target:
        out = target.invoke(probe, timeout_s=60, force_cold=True)
    assert out.ok, out.response
    assert out.max_rss_mb is not None and out.max_rss_mb < 400  # TensorFlow alone is ~540 MB
    import subprocess
    import sys

    code = (
        "import sys, json; from serverless_hpc import handler; from serverless_hpc.workloads.base import Context;"
        f"r = handler.handle({json.dumps(probe)}, platform='t', ctx=Context(data_dir={str(data_dir)!r}, store_uri={trained['store']!r}));"
        "assert r['ok'], r; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    assert loaded == []
