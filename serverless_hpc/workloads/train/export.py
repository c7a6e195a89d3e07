"""``train``'s finish: evaluate the trained model on the held-out test set, export it to
LiteRT, check the export against Keras and save the bundle.

Accuracy is measured on the full held-out test set (10,000 images the model never saw) and
reported as such. The export is only accepted when the LiteRT model agrees with Keras: its
labels must match on at least 99.9% of the test set and its accuracy must be within 0.1
point; otherwise the run fails with ``ExportMismatch`` and the ``LATEST`` pointer is not moved.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from serverless_hpc.contract import EXPORT_MISMATCH, ContractError
from serverless_hpc.data import fashion_mnist as fm
from serverless_hpc.store import Store, save_bundle
from serverless_hpc.workloads.train.params import TrainParams, learning_rate_factor, worker_batch

log = logging.getLogger(__name__)

#: Minimum LiteRT/Keras label agreement and maximum accuracy difference for a valid export.
MIN_AGREEMENT = 0.999
MAX_ACCURACY_DELTA = 0.001


def litert_labels(tflite: bytes, x: np.ndarray) -> np.ndarray:
    """Labels the exported model gives for ``x``, run by LiteRT exactly as ``classify`` does."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite, num_threads=os.cpu_count() or 1)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    out: np.ndarray = interp.get_tensor(interp.get_output_details()[0]["index"]).argmax(axis=1)
    return out


def check_parity(
    keras_pred: np.ndarray, lite_pred: np.ndarray, truth: np.ndarray
) -> dict[str, float]:
    """Compare Keras and LiteRT labels; raise ``ExportMismatch`` when they disagree too much.

    Limits: labels agree on at least 99.9% of the images, and accuracies are within 0.1
    point, both bounds inclusive. They are checked on integer counts, because in floating
    point 8650/10000 - 8640/10000 exceeds 0.001 and an export exactly 0.1 point off would
    be refused. (With 99.9% agreement the accuracy bound always holds, since the accuracies
    can differ by at most the share of disagreeing labels; it is kept as the stated promise.)
    """
    n = int(truth.size)
    if n == 0 or keras_pred.shape != truth.shape or lite_pred.shape != truth.shape:
        raise ContractError(
            f"parity check needs one label per test image: keras {keras_pred.shape}, "
            f"litert {lite_pred.shape}, truth {truth.shape}",
            error_type=EXPORT_MISMATCH,
        )
    agree = int((keras_pred == lite_pred).sum())
    keras_ok = int((keras_pred == truth).sum())
    lite_ok = int((lite_pred == truth).sum())
    report = {
        "agreement": agree / n,
        "keras_accuracy": keras_ok / n,
        "litert_accuracy": lite_ok / n,
    }
    # Both bounds in per mille, compared exactly: agree/n >= 0.999 <=> 1000*agree >= 999*n.
    min_agree, max_delta = round(MIN_AGREEMENT * 1000), round(MAX_ACCURACY_DELTA * 1000)
    if 1000 * agree < min_agree * n or 1000 * abs(keras_ok - lite_ok) > max_delta * n:
        raise ContractError(
            f"LiteRT export disagrees with Keras: agreement {agree / n:.4%} "
            f"(need >= {MIN_AGREEMENT:.1%}), accuracy {lite_ok / n:.4f} vs {keras_ok / n:.4f} "
            f"(need within {MAX_ACCURACY_DELTA})",
            error_type=EXPORT_MISMATCH,
        )
    return report


def finish(
    model: Any,
    p: TrainParams,
    xte: np.ndarray,
    yte: np.ndarray,
    store: Store,
    train_items: int,
    progress: list[dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, float]]:
    """Evaluate, export to LiteRT, check parity and save the bundle; the result and timings."""
    import keras
    import tensorflow as tf

    t2 = time.perf_counter()
    keras_pred = model.predict(xte, batch_size=1000, verbose=0).argmax(axis=1)
    t3 = time.perf_counter()
    tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    lite_pred = litert_labels(tflite, xte)
    parity = check_parity(keras_pred, lite_pred, yte)
    t4 = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        keras_path = Path(tmp) / "model.keras"
        model.save(keras_path)
        keras_bytes = keras_path.read_bytes()
    summary = io.StringIO()
    model.summary(print_fn=lambda line, **_: summary.write(line + "\n"))
    last = progress[-1] if progress else {}
    metadata = {
        "test_accuracy": parity["keras_accuracy"],
        "test_accuracy_measured_on": "Fashion-MNIST t10k, all 10000 held-out images",
        "litert_accuracy": parity["litert_accuracy"],
        "litert_keras_agreement": parity["agreement"],
        "train_items": train_items,
        "epochs": p.epochs,
        "workers": p.workers,
        "batch_size": p.batch_size,
        "worker_batch_size": worker_batch(p),
        "learning_rate_factor": learning_rate_factor(p),
        "syncs_per_epoch": p.syncs_per_epoch,
        "learning_rate": p.learning_rate,
        "augment": p.augment,
        "seed": p.seed,
        "final_train_loss": last.get("train_loss"),
        "final_train_accuracy": last.get("train_accuracy"),
        "progress": progress,
        "dataset_md5": {**fm.dataset_md5s("train"), **fm.dataset_md5s("test")},
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "params": int(model.count_params()),
        "summary": summary.getvalue(),
    }
    version = save_bundle(
        store, p.model, {"model.keras": keras_bytes, "model.tflite": tflite}, metadata
    )
    t5 = time.perf_counter()
    log.info("trained %s/%s: test accuracy %.4f", p.model, version, parity["keras_accuracy"])
    result = {
        "model": p.model,
        "version": version,
        "test_accuracy": parity["keras_accuracy"],
        "litert_accuracy": parity["litert_accuracy"],
        "agreement": parity["agreement"],
        "epochs": p.epochs,
        "train_items": train_items,
        "tflite_bytes": len(tflite),
    }
    timings = {
        "evaluate_ms": (t3 - t2) * 1e3,
        "export_ms": (t4 - t3) * 1e3,
        "save_ms": (t5 - t4) * 1e3,
    }
    return result, timings
