"""On the real Fashion-MNIST files: the data, a short training run, classify and dataproc.

Skipped, with the reason, when the files are absent (see ``data_dir`` in conftest).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from serverless_hpc import handler
from serverless_hpc.data import fashion_mnist as fm
from serverless_hpc.store import (
    bundle_key,
    load_metadata,
    open_store,
    resolve_version,
    save_bundle,
)
from serverless_hpc.targets.base import TargetSettings
from serverless_hpc.targets.local_faas import LocalFaasTarget
from serverless_hpc.workloads.base import Context
from serverless_hpc.workloads.dataproc import reduce_partials
from serverless_hpc.workloads.spec import split_ranges
from serverless_hpc.workloads.train import export as train_export

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
    parts = [run(s.start, s.end) for s in split_ranges(10000, 7)]
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
    labels = "".join(classify(s.start, s.end)["labels"] for s in split_ranges(3000, 5))
    assert labels == full["labels"][:3000]
    truth = fm.load_split("test", data_dir)[1][:3000]
    assert sum(int(a == b) for a, b in zip(map(int, labels), truth, strict=True)) == round(
        sum(classify(s.start, s.end)["correct"] for s in split_ranges(3000, 3))
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


# --- Training in-process: the parity check on the real path, and repeatability -------------
# These call ``handler.handle`` in this process (not through a local-faas worker) so that a
# monkeypatch applies, and train briefly: 1000 images, one epoch (a few seconds each here).

SHORT_TRAINING = {"epochs": 1, "train_limit": 1000}


def _train_in_process(ctx: Context, seed: int) -> dict:
    resp = handler.handle(
        {"workload": "train", "params": {**SHORT_TRAINING, "seed": seed}}, platform="test", ctx=ctx
    )
    return resp


def _tflite(store_uri: str, version: str) -> bytes:
    return open_store(store_uri).get_bytes(bundle_key("fashion-cnn", version, "model.tflite"))


def _logits(tflite: bytes, images: np.ndarray) -> np.ndarray:
    """Raw LiteRT outputs (not just labels), one thread so the arithmetic order is fixed."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite, num_threads=1)
    inp = interp.get_input_details()[0]
    x = images.astype(np.float32).reshape(-1, 28, 28, 1) / np.float32(255.0)
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    out: np.ndarray = interp.get_tensor(interp.get_output_details()[0]["index"])
    return out.copy()


@pytest.mark.slow
def test_an_export_that_disagrees_fails_the_run_and_keeps_latest(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a store whose LATEST points at an earlier good bundle
    store_uri = str(tmp_path / "store")
    store = open_store(store_uri)
    previous = save_bundle(store, "fashion-cnn", {"model.tflite": b"earlier"}, {"seed": 0})
    bundles_before = sorted(p.name for p in (tmp_path / "store/models/fashion-cnn").iterdir())
    # AND a LiteRT export that disagrees with Keras on 0.5% of the test set: the real export
    # runs, then 50 of its labels are moved on by one class
    real_litert_labels = train_export.litert_labels
    calls: list[int] = []

    def disagreeing_labels(tflite: bytes, x: np.ndarray) -> np.ndarray:
        out = real_litert_labels(tflite, x).copy()
        out[:50] = (out[:50] + 1) % fm.NUM_CLASSES
        calls.append(len(x))
        return out

    monkeypatch.setattr(train_export, "litert_labels", disagreeing_labels)
    # WHEN the train workload runs through the one handler
    resp = _train_in_process(Context(data_dir=data_dir, store_uri=store_uri), seed=3)
    # THEN it fails with ExportMismatch, naming agreement and both accuracies
    assert calls == [10000], "the perturbed export was never checked"
    assert resp["ok"] is False, resp
    assert resp["error"]["type"] == "ExportMismatch"
    assert "agreement 99.5000%" in resp["error"]["message"]
    assert re.search(r"accuracy 0\.\d{4} vs 0\.\d{4}", resp["error"]["message"])
    # AND the store is as it was: LATEST not moved, no new bundle written
    assert resolve_version(store, "fashion-cnn") == previous
    assert sorted(p.name for p in (tmp_path / "store/models/fashion-cnn").iterdir()) == (
        bundles_before
    )


@pytest.fixture(scope="module")
def seeded_trainings(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three short in-process trainings into one store: seed 7, seed 7 again, then seed 8."""
    store_uri = str(tmp_path_factory.mktemp("seeded-store"))
    ctx = Context(data_dir=data_dir, store_uri=store_uri)
    runs = {}
    for key, seed in (("a", 7), ("a_again", 7), ("b", 8)):
        resp = _train_in_process(ctx, seed)
        assert resp["ok"], resp
        runs[key] = resp["result"]
    tflite = {key: _tflite(store_uri, r["version"]) for key, r in runs.items()}
    images = fm.load_split("test", data_dir)[0][:1000]
    return {
        "result": runs,
        "sha256": {key: hashlib.sha256(blob).hexdigest() for key, blob in tflite.items()},
        "logits": {key: _logits(blob, images) for key, blob in tflite.items()},
    }


@pytest.mark.slow
def test_the_same_seed_trains_the_same_model(seeded_trainings: dict) -> None:
    a, again = seeded_trainings["result"]["a"], seeded_trainings["result"]["a_again"]
    assert a["version"] != again["version"]  # two bundles, really trained twice
    assert again["test_accuracy"] == a["test_accuracy"]
    assert again["litert_accuracy"] == a["litert_accuracy"]
    assert again["agreement"] == a["agreement"]
    # Bit-identical outputs of the two exports: the same weights, not just the same accuracy.
    logits = seeded_trainings["logits"]
    assert np.array_equal(logits["a"], logits["a_again"])


@pytest.mark.slow
def test_the_same_seed_gives_a_byte_identical_tflite(seeded_trainings: dict) -> None:
    # Keras names layers from per-process counters and the names are stored in the .tflite:
    # without a fresh Keras session per run, a warm instance's second training differed here.
    sha = seeded_trainings["sha256"]
    assert sha["a"] == sha["a_again"]


@pytest.mark.slow
def test_a_different_seed_trains_a_different_model(seeded_trainings: dict) -> None:
    sha, logits = seeded_trainings["sha256"], seeded_trainings["logits"]
    assert sha["b"] not in (sha["a"], sha["a_again"])
    # Different weights, not just different names inside the file.
    assert not np.allclose(logits["b"], logits["a"])


def test_a_warm_classify_instance_loads_the_model_once_whatever_the_shard_size(
    trained: dict, data_dir: Path
) -> None:
    settings = TargetSettings(data_dir=data_dir, store_uri=trained["store"])
    with LocalFaasTarget(settings) as target:
        outs = [
            target.invoke({"workload": "classify", "params": {"end": end}}, timeout_s=60)
            for end in (600, 200, 3000, 600)
        ]
    assert all(o.ok for o in outs), [o.response for o in outs]
    assert len({o.instance for o in outs}) == 1  # one warm instance served them all
    loaded = [o.response["result"]["model_loaded"] for o in outs]
    assert loaded == [True, False, False, False]
