"""The collector's thresholds while fan-outs run: raised, shared, and always put back."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from serverless_hpc.netloop import FANOUT_GC_THRESHOLD, fanout_collector


@pytest.fixture(autouse=True)
def _thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_raised_inside_restored_after_even_on_an_error() -> None:
    with pytest.raises(RuntimeError), fanout_collector():
        assert gc.get_threshold() == (FANOUT_GC_THRESHOLD, 10, 10)
        raise RuntimeError("the fan-out failed")
    assert gc.get_threshold() == (700, 10, 10)


def test_nested_and_concurrent_fanouts_restore_once_the_last_ends() -> None:
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with fanout_collector():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    with fanout_collector():
        thread.start()
        assert inside.wait(10)
    # the first block ended while the other thread's still runs: still raised
    assert gc.get_threshold()[0] == FANOUT_GC_THRESHOLD
    release.set()
    thread.join(10)
    assert gc.get_threshold() == (700, 10, 10)


def test_collection_switched_off_by_a_zero_threshold_stays_off() -> None:
    gc.set_threshold(0, 10, 10)
    with fanout_collector():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold() == (0, 10, 10)
