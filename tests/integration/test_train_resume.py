"""Resumable and data-parallel training, for real: TensorFlow, the real data, tiny trainings.

Every training here is 1-3 epochs on at most 3000 images. They check: a checkpoint restores
weights and optimizer state exactly; a chain that stops at its deadline and resumes trains
the byte-identical model; a real local-faas instance killed mid-leg loses at most the epoch
in progress; a data-parallel round goes through S3 (moto).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serverless_hpc.store import bundle_key, open_store
from serverless_hpc.targets.base import TargetSettings
from serverless_hpc.targets.local_faas import LocalFaasTarget
from serverless_hpc.workloads.base import Context
from serverless_hpc.workloads.train import checkpoint as ck
from serverless_hpc.workloads.train.params import TrainParams
from tests.doubles.aws import moto_aws

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY = {"epochs": 2, "train_limit": 1000, "eval_each_epoch": False}


def _train() -> Any:
    pytest.importorskip("tensorflow")
    from serverless_hpc.workloads.train import function

    return function


@pytest.fixture(scope="module")
def chained_and_not(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One uninterrupted training, and the same training as a chain stopped after epoch 1."""
    f = _train()
    store_dir = tmp_path_factory.mktemp("store")
    ctx = Context(data_dir=data_dir, store_uri=str(store_dir))
    straight = f.run(dict(TINY), ctx)
    params = {**TINY, "chain": "test/c0"}
    # a deadline already past: the leg trains its one compulsory epoch and stops
    first = f.run(params, Context(data_dir=data_dir, store_uri=str(store_dir), deadline=0.0))
    ckpt_bytes = open_store(str(store_dir)).get_bytes(ck.checkpoint_key("fashion-cnn", "test/c0"))
    second = f.run(params, ctx)
    return {
        "f": f,
        "store": open_store(str(store_dir)),
        "straight": straight.result,
        "first": first.result,
        "second": second.result,
        "ckpt": ck.Checkpoint.from_bytes(ckpt_bytes),
    }


def test_a_leg_stops_at_its_deadline_and_says_continue(chained_and_not: dict[str, Any]) -> None:
    first = chained_and_not["first"]
    assert first["status"] == "continue"
    assert first["epoch"] == 1 and first["epochs"] == 2
    assert first["checkpoint"] == ck.checkpoint_key("fashion-cnn", "test/c0")
    assert chained_and_not["ckpt"].epoch == 1


def test_the_checkpoint_restores_weights_and_optimizer_state(
    chained_and_not: dict[str, Any],
) -> None:
    from serverless_hpc.workloads.train import model as m

    ckpt = chained_and_not["ckpt"]
    p = TrainParams.model_validate({**TINY, "chain": "test/c0"})
    model = m.fresh_model(p, m.steps(1000, p.batch_size))
    fresh_weights, _ = m.get_state(model)
    m.set_state(model, ckpt.model, ckpt.optimizer)
    weights, opt = m.get_state(model)
    for a, b in zip(ckpt.model + ckpt.optimizer, weights + opt, strict=True):
        np.testing.assert_array_equal(a, b)
    # the state is a trained one, not the initialisation: weights moved, Adam stepped
    assert any(not np.array_equal(a, b) for a, b in zip(fresh_weights, weights, strict=True))
    assert int(opt[0]) == m.steps(1000, p.batch_size)  # Adam's step counter after 1 epoch


def test_a_chained_training_is_byte_identical_to_an_uninterrupted_one(
    chained_and_not: dict[str, Any],
) -> None:
    store, straight, second = (chained_and_not[k] for k in ("store", "straight", "second"))
    assert second["status"] == "done"
    assert second["test_accuracy"] == straight["test_accuracy"]
    assert [e["train_loss"] for e in second["progress"]] == [
        e["train_loss"] for e in straight["progress"]
    ]
    a = store.get_bytes(bundle_key("fashion-cnn", straight["version"], "model.tflite"))
    b = store.get_bytes(bundle_key("fashion-cnn", second["version"], "model.tflite"))
    assert a == b


def test_a_chain_refuses_other_parameters(chained_and_not: dict[str, Any], data_dir: Path) -> None:
    from serverless_hpc.contract import InvalidRequest

    f, store = chained_and_not["f"], chained_and_not["store"]
    params = {**TINY, "chain": "test/other"}
    key = ck.checkpoint_key("fashion-cnn", "test/other")
    store.put_bytes(key, chained_and_not["ckpt"].to_bytes())  # started with TINY's params
    with pytest.raises(InvalidRequest, match="resumes only with the parameters"):
        f.run({**params, "learning_rate": 0.01}, Context(data_dir=data_dir, store_uri=store.uri))


def test_a_killed_local_faas_instance_loses_at_most_the_epoch_in_progress(
    data_dir: Path, tmp_path: Path
) -> None:
    # GIVEN a chained 3-epoch training on a real local-faas instance
    _train()
    store = open_store(str(tmp_path / "store"))
    settings = TargetSettings(data_dir=data_dir, store_uri=store.uri, concurrency=1)
    params = {"epochs": 3, "train_limit": 3000, "eval_each_epoch": False, "chain": "t/kill"}
    request = {"workload": "train", "params": params}
    key = ck.checkpoint_key("fashion-cnn", "t/kill")
    killed: dict[str, Any] = {}
    with LocalFaasTarget(settings) as target:

        def kill_after_first_checkpoint() -> None:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and not store.exists(key):
                time.sleep(0.05)
            killed["epoch"] = ck.Checkpoint.from_bytes(store.get_bytes(key)).epoch
            killed["t"] = time.time()
            for worker in target.pool.busy():  # the instance this test started
                worker.proc.kill()

        killer = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
        killer.start()
        # WHEN its instance is killed after the first checkpoint
        first = target.invoke(request, timeout_s=600)
        killer.join(timeout=60)
        # AND the driver invokes it again
        second = target.invoke(request, timeout_s=600)
    # THEN the first leg failed as the platform's doing, and the second finished the training
    assert not first.ok and first.error and first.error.startswith("PlatformError")
    assert second.ok, second.error
    result = second.response["result"]
    assert result["status"] == "done" and result["epoch"] == 3
    done_before = [e for e in result["progress"] if e["t_unix"] < killed["t"]]
    redone = [e for e in result["progress"] if e["t_unix"] >= killed["t"]]
    # the checkpointed epochs were kept, not trained again; only the rest was trained
    assert [e["epoch"] for e in done_before] == list(range(1, killed["epoch"] + 1))
    assert [e["epoch"] for e in redone] == list(range(killed["epoch"] + 1, 4))


def test_a_data_parallel_round_goes_through_s3(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = _train()
    with moto_aws(monkeypatch, tmp_path / "s3cache"):
        import boto3

        boto3.client("s3").create_bucket(Bucket="results")
        ctx = Context(data_dir=data_dir, store_uri="s3://results")
        base = {"epochs": 1, "train_limit": 600, "workers": 2, "round": 0, "chain": "r/dp"}
        # GIVEN two workers that trained round 0 on their halves and stored their weights
        outs = [f.run({**base, "worker": i}, ctx).result for i in range(2)]
        assert [o["items"] for o in outs] == [300, 300]
        store = open_store("s3://results")
        w = [ck.Checkpoint.from_bytes(store.get_bytes(o["checkpoint"])) for o in outs]
        assert not np.array_equal(w[0].model[0], w[1].model[0])  # different shards
        # WHEN the combine step runs
        done = f.run(dict(base), ctx).result
        # THEN it exported the averaged model as a bundle in S3 and reported its accuracy
        assert done["status"] == "done" and done["round"] == 0
        assert store.get_bytes("models/fashion-cnn/LATEST").decode() == done["version"]
        assert 0.0 < done["progress"][0]["test_accuracy"] == done["test_accuracy"]
        # AND the chain's scratch objects are deleted by prefix, the bundle kept
        assert done["scratch"] == ck.chain_prefix("fashion-cnn", "r/dp")
        assert store.delete_prefix(done["scratch"]) == 2
        assert not store.exists(outs[0]["checkpoint"])
        assert store.exists(bundle_key("fashion-cnn", done["version"], "model.tflite"))


def test_a_data_parallel_epoch_in_two_rounds_averages_twice_and_evaluates_once(
    data_dir: Path, tmp_path: Path
) -> None:
    f = _train()
    ctx = Context(data_dir=data_dir, store_uri=str(tmp_path / "store"))
    base = {
        "epochs": 1,
        "train_limit": 600,
        "workers": 2,
        "syncs_per_epoch": 2,
        "chain": "r/dp2",
    }
    # GIVEN one epoch split into two rounds: each worker trains half its 300-image shard
    first = [f.run({**base, "round": 0, "worker": i}, ctx).result for i in range(2)]
    assert [o["items"] for o in first] == [150, 150]
    # WHEN the first round is combined THEN the training goes on, not evaluated mid-epoch
    mid = f.run({**base, "round": 0}, ctx).result
    assert mid["status"] == "continue" and mid["epoch"] == 0 and mid["rounds"] == 2
    assert mid["test_accuracy"] is None and mid["progress"] == []
    # AND the second round starts from the average and trains the other halves
    second = [f.run({**base, "round": 1, "worker": i}, ctx).result for i in range(2)]
    assert [o["items"] for o in second] == [150, 150]
    done = f.run({**base, "round": 1}, ctx).result
    # THEN the epoch ends with one evaluation and the export
    assert done["status"] == "done"
    assert [(p["epoch"], p["round"]) for p in done["progress"]] == [(1, 1)]
    assert 0.0 < done["progress"][0]["test_accuracy"] == done["test_accuracy"]
    # AND a round past the last is refused
    with pytest.raises(ValueError, match="past the last round"):
        TrainParams.model_validate({**base, "round": 2})
