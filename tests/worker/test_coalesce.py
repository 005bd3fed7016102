"""The coalescer: what queues up while it runs goes into the next call, and a faulty item
fails alone."""

from __future__ import annotations

import threading

import pytest

from worker.coalesce import Coalescer


def test_items_that_queue_up_meanwhile_share_one_call() -> None:
    calls: list[list[int]] = []
    busy, release = threading.Event(), threading.Event()

    def run(items: list[int]) -> list[int]:
        calls.append(items)
        busy.set()
        release.wait(30)
        return [2 * i for i in items]

    coalescer: Coalescer[int, int] = Coalescer(run, "test")
    first = coalescer.submit(1)
    assert busy.wait(30)  # the lone first item runs at once, without waiting for company
    rest = [coalescer.submit(i) for i in range(2, 7)]
    release.set()
    assert first.result(30) == 2 and [f.result(30) for f in rest] == [4, 6, 8, 10, 12]
    assert calls == [[1], [2, 3, 4, 5, 6]]
    coalescer.close()


def test_a_group_is_capped() -> None:
    calls: list[list[int]] = []
    gate = threading.Event()

    def run(items: list[int]) -> list[int]:
        gate.wait(30)
        calls.append(items)
        return items

    coalescer: Coalescer[int, int] = Coalescer(run, "test", max_items=3)
    futures = [coalescer.submit(i) for i in range(7)]
    gate.set()
    assert [f.result(30) for f in futures] == list(range(7))
    assert all(len(c) <= 3 for c in calls) and [i for c in calls for i in c] == list(range(7))
    coalescer.close()


def test_a_faulty_item_fails_alone() -> None:
    def run(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky")
        return [-i for i in items]

    coalescer: Coalescer[int, int] = Coalescer(run, "test")
    gate = threading.Event()
    coalescer.submit(0).add_done_callback(lambda _: gate.wait(30))  # hold the thread
    futures = [coalescer.submit(i) for i in (12, 13, 14)]
    gate.set()
    assert futures[0].result(30) == -12 and futures[2].result(30) == -14
    with pytest.raises(ValueError, match="unlucky"):
        futures[1].result(30)
    coalescer.close()


def test_a_wrong_number_of_results_is_an_error() -> None:
    coalescer: Coalescer[int, int] = Coalescer(lambda items: [], "test")
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        coalescer.submit(1).result(30)
    coalescer.close()
