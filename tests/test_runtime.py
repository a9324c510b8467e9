"""The process tuning `hotline serve` applies once it listens."""

from __future__ import annotations

import gc
import sys

import pytest

from hotline.runtime import GC_THRESHOLDS, SWITCH_INTERVAL_S, settle_heap, shorten_gil_switch


def test_settle_heap_freezes_start_up_objects_and_makes_collections_rarer() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 10_000  # the libraries and the app, skipped from now on
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.isenabled()  # cycles created later are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_writer_threads_get_the_gil_back_from_a_busy_loop_sooner() -> None:
    before = sys.getswitchinterval()
    try:
        shorten_gil_switch()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
    finally:
        sys.setswitchinterval(before)
