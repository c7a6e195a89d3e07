"""``classify``: label test images ``[start, end)`` with the exported LiteRT model, in one batch.

This path never imports TensorFlow: the ``.tflite`` model is run by ``ai-edge-litert``, whose
import costs a fraction of TensorFlow's time and memory; that is what keeps a serverless
classify function's cold start and memory small. Interpreters are cached per model version
and batch size, so a warm instance pays the model load once.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from serverless_hpc.contract import PLATFORM_ERROR, ContractError, InvalidRequest
from serverless_hpc.data import fashion_mnist as fm
from serverless_hpc.data.catalog import SPLIT_SIZES
from serverless_hpc.host import available_cpus
from serverless_hpc.store import LATEST, bundle_key, check_model_name, open_store, resolve_version
from serverless_hpc.workloads.base import Context, Output, Params, parse_params
from serverless_hpc.workloads.classify import DEFAULT_IMAGES, MODEL

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter

TEST_SIZE = SPLIT_SIZES["test"]


class ClassifyParams(Params):
    """Which test images to label, with which model bundle."""

    start: int = Field(default=0, ge=0, lt=TEST_SIZE)
    end: int = Field(default=DEFAULT_IMAGES, gt=0, le=TEST_SIZE)
    model: str = MODEL
    version: str = LATEST
    threads: int | None = Field(default=None, ge=1, le=64)
    return_labels: bool = True


_interpreters: dict[tuple[str, str, str, int], Interpreter] = {}
_lock = threading.Lock()


def preload() -> None:
    """Import LiteRT now, so a cold start's import cost is measured as such."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: F401


def _interpreter(
    store_uri: str | None, name: str, version: str, batch: int, threads: int
) -> tuple[Interpreter, bool]:
    """A ready interpreter for this model with its input sized to ``batch``.

    One interpreter per model version and thread count stays cached in a warm instance; a
    new batch size only resizes its input tensors (no reload, no second copy of the model).
    Returns True when the model was loaded from the store now.
    """
    from ai_edge_litert.interpreter import Interpreter

    store = open_store(store_uri)
    key = (store.uri, name, version, threads)
    with _lock:
        interp = _interpreters.get(key)
    loaded = interp is None
    if interp is None:
        path = store.local_path(bundle_key(name, version, "model.tflite"))
        try:
            interp = Interpreter(model_path=str(path), num_threads=threads)
        except ValueError as exc:  # LiteRT's message does not say which file
            raise ContractError(
                f"{store.uri}: {bundle_key(name, version, 'model.tflite')} is not a LiteRT "
                f"model ({exc}); train again or point LATEST at a good version",
                error_type=PLATFORM_ERROR,
            ) from None
        with _lock:
            _interpreters[key] = interp
    inp = interp.get_input_details()[0]
    if loaded or int(inp["shape"][0]) != batch:
        interp.resize_tensor_input(inp["index"], [batch, 28, 28, 1])
        interp.allocate_tensors()
    return interp, loaded


def predict(interp: Interpreter, images: np.ndarray) -> np.ndarray:
    """Predicted labels of ``images`` (uint8, ``(n, 28, 28)``) in one ``invoke``."""
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    x = images.astype(np.float32).reshape(-1, 28, 28, 1) / np.float32(255.0)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    labels: np.ndarray = interp.get_tensor(out["index"]).argmax(axis=1).astype(np.uint8)
    return labels


def encode_labels(labels: np.ndarray) -> str:
    """Labels 0..9 as one digit each: 3000 labels are a 3000-character string."""
    return (
        labels.astype(np.uint8).tobytes().translate(bytes(range(48, 58)).ljust(256, b"?")).decode()
    )


def run(raw: dict[str, Any], ctx: Context) -> Output:
    """Classify the requested shard and report its accuracy against the true labels."""
    p = parse_params(ClassifyParams, raw)
    if p.start >= p.end:
        raise InvalidRequest(f"params.start ({p.start}) must be < params.end ({p.end})")
    check_model_name(p.model)
    t0 = time.perf_counter()
    images, labels = fm.load_split("test", ctx.data_dir)
    store = open_store(ctx.store_uri)
    version = resolve_version(store, p.model, p.version)
    threads = p.threads or available_cpus()
    interp, loaded = _interpreter(store.uri, p.model, version, p.end - p.start, threads)
    t1 = time.perf_counter()
    predicted = predict(interp, images[p.start : p.end])
    t2 = time.perf_counter()
    truth = labels[p.start : p.end]
    correct = int((predicted == truth).sum())
    n = p.end - p.start
    result: dict[str, Any] = {
        "start": p.start,
        "end": p.end,
        "n": n,
        "correct": correct,
        "accuracy": correct / n,
        "model": p.model,
        "model_version": version,
        "threads": threads,
        "model_loaded": loaded,
    }
    if p.return_labels:
        result["labels"] = encode_labels(predicted)
    return Output(result=result, load_ms=(t1 - t0) * 1e3, compute_ms=(t2 - t1) * 1e3)
