"""Many threads' small jobs run as one call: a group commit for the worker's database and
Redis work.

A worker runs one Celery thread per pending reply. When a batch of replies comes back
from the engine, those threads all want a transaction and a Redis round trip at once; done
one by one, they contend for the GIL, the database's write lock and the connection pool,
and the batch's replies trickle out over hundreds of milliseconds. A ``Coalescer`` hands
everything queued to one call instead. Unlike the engine's batcher it never waits for
company: an idle coalescer runs a lone item at once, and what arrives meanwhile forms the
next group.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """Runs ``run`` over up to ``max_items`` queued items at a time, in one thread.

    ``run`` returns one result per item, in order. When a group fails, each of its items
    is run alone, so a faulty item fails by itself and the others still get their results.
    """

    def __init__(
        self, run: Callable[[list[Item]], list[Result]], name: str, max_items: int = 64
    ) -> None:
        self.run, self.name, self.max_items = run, name, max_items
        self._queue: queue.Queue[tuple[Item, Future[Result]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, item: Item) -> Future[Result]:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
        future: Future[Result] = Future()
        self._queue.put((item, future))
        return future

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=10)
                self._thread = None

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self.max_items:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(item)
            self._run(group)

    def _run(self, group: list[tuple[Item, Future[Result]]]) -> None:
        try:
            results = self.run([item for item, _ in group])
            if len(results) != len(group):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(group)} items")
        except Exception as exc:  # the thread lives on; only a faulty item fails
            if len(group) > 1:
                log.warning(
                    "%s: a group of %d failed (%s); running each alone",
                    self.name,
                    len(group),
                    type(exc).__name__,
                )
                for one in group:
                    self._run([one])
            else:
                group[0][1].set_exception(exc)
            return
        for (_, future), result in zip(group, results, strict=True):
            future.set_result(result)
