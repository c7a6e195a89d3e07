"""``train.check_parity``: when a LiteRT export is accepted and when it fails the run.

The rule (module docstring of ``serverless_hpc.workloads.train.export``): the export's labels must
agree with Keras on at least 99.9% of the test set, and its accuracy must be within 0.1 point
of Keras's; otherwise ``ExportMismatch``. ``check_parity`` is pure (arrays in, a report or an
error out), so every boundary is tested here on made-up label arrays, without TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pytest

from serverless_hpc.contract import EXPORT_MISMATCH, ContractError
from serverless_hpc.workloads.train.export import MAX_ACCURACY_DELTA, MIN_AGREEMENT, check_parity

N = 10_000  # the size of the Fashion-MNIST test set, which train checks parity on


def labels(n: int = N, correct: int = 9000) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth and Keras labels of which exactly the first ``correct`` are right."""
    truth = (np.arange(n) % 10).astype(np.uint8)
    keras_pred = truth.copy()
    keras_pred[correct:] = (truth[correct:] + 1) % 10
    return truth, keras_pred


def flip(pred: np.ndarray, idx: np.ndarray | range) -> np.ndarray:
    """A copy of ``pred`` with the labels at ``idx`` moved on by one class.

    With ``labels``' truth, a label Keras got right becomes wrong, and a wrong one stays wrong.
    """
    out = pred.copy()
    idx = np.asarray(idx)
    out[idx] = (pred[idx] + 1) % 10
    return out


def test_the_thresholds_are_the_documented_ones() -> None:
    assert MIN_AGREEMENT == 0.999  # 99.9% of the test set
    assert MAX_ACCURACY_DELTA == 0.001  # 0.1 (percentage) point


def test_a_perfect_export_is_accepted_and_reported() -> None:
    # GIVEN an export whose labels are exactly Keras's
    truth, keras_pred = labels(correct=8765)
    # WHEN parity is checked THEN the report says so
    report = check_parity(keras_pred, keras_pred.copy(), truth)
    assert report == {"agreement": 1.0, "keras_accuracy": 0.8765, "litert_accuracy": 0.8765}


def test_exactly_99_9_percent_agreement_is_accepted() -> None:
    # 10 of 10,000 labels differ, all where Keras was wrong already: accuracy is unchanged.
    truth, keras_pred = labels(correct=9000)
    lite_pred = flip(keras_pred, range(N - 10, N))
    assert (lite_pred != truth)[N - 10 :].all()
    report = check_parity(keras_pred, lite_pred, truth)
    assert report["agreement"] == MIN_AGREEMENT
    assert report["keras_accuracy"] == report["litert_accuracy"] == 0.9


def test_one_label_below_99_9_percent_agreement_fails_with_export_mismatch() -> None:
    # 11 of 10,000 labels differ (99.89%), accuracy still identical: agreement alone fails it.
    truth, keras_pred = labels(correct=9000)
    lite_pred = flip(keras_pred, range(N - 11, N))
    with pytest.raises(ContractError) as err:
        check_parity(keras_pred, lite_pred, truth)
    assert err.value.error_type == EXPORT_MISMATCH == "ExportMismatch"
    message = str(err.value)
    assert "agreement 99.8900%" in message and ">= 99.9%" in message
    assert "accuracy 0.9000 vs 0.9000" in message


def test_agreement_boundary_holds_on_a_smaller_set_too() -> None:
    # 999/1000 is exactly 99.9% (float division is correctly rounded): accepted; 998 is not.
    truth, keras_pred = labels(n=1000, correct=900)
    assert check_parity(keras_pred, flip(keras_pred, [999]), truth)["agreement"] == 0.999
    with pytest.raises(ContractError, match=r"agreement 99\.8000%"):
        check_parity(keras_pred, flip(keras_pred, [998, 999]), truth)


def test_an_export_that_loses_accuracy_fails_and_names_both_accuracies() -> None:
    # 20 labels Keras got right are wrong in the export: 0.2 point lower accuracy (and 99.8%
    # agreement: see below why the accuracy bound never fires on its own).
    truth, keras_pred = labels(correct=9000)
    lite_pred = flip(keras_pred, range(20))
    with pytest.raises(ContractError) as err:
        check_parity(keras_pred, lite_pred, truth)
    assert err.value.error_type == EXPORT_MISMATCH
    message = str(err.value)
    assert "agreement 99.8000%" in message
    assert "accuracy 0.8980 vs 0.9000" in message and "within 0.001" in message
    assert err.value.to_response() == {
        "ok": False,
        "error": {"type": "ExportMismatch", "message": message},
    }


def test_an_export_that_gains_accuracy_fails_too() -> None:
    # The bound is on the absolute difference: an export "better" than Keras is still wrong.
    truth, keras_pred = labels(correct=9000)
    lite_pred = keras_pred.copy()
    lite_pred[9000:9020] = truth[9000:9020]
    with pytest.raises(ContractError, match=r"accuracy 0\.9020 vs 0\.9000"):
        check_parity(keras_pred, lite_pred, truth)


@pytest.mark.parametrize("direction", ["worse", "better"])
def test_an_accuracy_difference_under_0_1_point_is_accepted(direction: str) -> None:
    # 9 images (0.09 point), all in one direction, at 99.91% agreement.
    truth, keras_pred = labels(correct=9000)
    lite_pred = keras_pred.copy()
    if direction == "worse":
        lite_pred = flip(keras_pred, range(9))
    else:
        lite_pred[9000:9009] = truth[9000:9009]
    report = check_parity(keras_pred, lite_pred, truth)
    assert abs(report["litert_accuracy"] - report["keras_accuracy"]) == pytest.approx(0.0009)


def test_the_accuracy_bound_is_implied_by_the_agreement_bound() -> None:
    """Both accuracies are against the same truth, so they differ by at most the share of
    labels that disagree: |acc_keras - acc_lite| <= 1 - agreement. With agreement >= 99.9%
    the difference is <= 0.1 point, so the accuracy bound can only matter exactly at the edge
    (10 of 10,000 labels differ, all in the same direction): see the next test."""
    rng = np.random.default_rng(0)
    truth, keras_pred = labels(correct=9000)
    for _ in range(200):
        idx = rng.choice(N, size=int(rng.integers(0, 30)), replace=False)
        lite_pred = keras_pred.copy()
        lite_pred[idx] = rng.integers(0, 10, size=idx.size)
        disagree = int((lite_pred != keras_pred).sum())
        if disagree == 10:
            continue  # the edge, covered below
        if disagree < 10:
            check_parity(keras_pred, lite_pred, truth)
        else:
            with pytest.raises(ContractError, match="agreement"):
                check_parity(keras_pred, lite_pred, truth)


@pytest.mark.parametrize("keras_correct", [8650, 9000, 9120])
def test_exactly_0_1_point_off_at_99_9_percent_agreement_is_accepted(keras_correct: int) -> None:
    # GIVEN an export that differs on exactly 10 of 10,000 labels (agreement exactly 99.9%,
    # accepted on its own), all 10 of them images Keras classified correctly
    truth, keras_pred = labels(correct=keras_correct)
    lite_pred = flip(keras_pred, range(10))
    assert (keras_pred == truth).sum() - (lite_pred == truth).sum() == 10  # 0.1 point exactly
    # WHEN / THEN the docstring's "within 0.1 point" accepts it
    report = check_parity(keras_pred, lite_pred, truth)
    assert report["agreement"] == MIN_AGREEMENT


def test_an_empty_or_misshapen_prediction_is_refused() -> None:
    empty = np.array([], dtype=np.int64)
    with pytest.raises(ContractError, match="one label per test image"):
        check_parity(empty, empty, empty)
    truth = np.zeros(10, dtype=np.int64)
    with pytest.raises(ContractError, match="one label per test image"):
        check_parity(truth, truth[:9], truth)
