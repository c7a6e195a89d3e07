"""The local model store and bundle versioning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serverless_hpc.contract import InvalidRequest, NotFound
from serverless_hpc.store import LocalStore, load_metadata, open_store, resolve_version, save_bundle


def test_bundle_round_trip_and_latest_pointer(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    v1 = save_bundle(store, "m", {"model.tflite": b"one"}, {"acc": 0.5})
    v2 = save_bundle(store, "m", {"model.tflite": b"two"}, {"acc": 0.6})
    assert v1 != v2
    assert resolve_version(store, "m") == v2
    assert resolve_version(store, "m", v1) == v1
    assert store.get_bytes(f"models/m/{v1}/model.tflite") == b"one"
    meta = load_metadata(store, "m", v2)
    assert meta["acc"] == 0.6 and meta["version"] == v2 and meta["files"] == ["model.tflite"]


def test_missing_model_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="run the workload that writes it first"):
        resolve_version(LocalStore(tmp_path), "fashion-cnn")


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a/./b", "sp ace", ""])
def test_keys_cannot_escape_the_store(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidRequest, match="invalid object key"):
        LocalStore(tmp_path).put_bytes(key, b"x")


def test_writes_are_atomic_no_temp_files_left(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("a/b.json", json.dumps({"x": 1}).encode())
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.json"]


def test_unsupported_uri_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="unsupported store URI"):
        open_store("gs://bucket/x")
