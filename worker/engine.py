"""The inference engine: the active model, loaded lazily once per process, and a dynamic
batcher that turns concurrent requests into one ``generate()`` call.

One inference thread owns the model. Requests wait in a queue; the thread takes the first,
gathers more for up to ``max_wait_ms`` or until ``max_batch``, groups them by decoding
settings and decodes each group in one call. Each request gets its own result or its own
exception. Between batches the thread asks (at most every ``reload_every_s``) which model
version is active and swaps it in, so no request is dropped by a reload.

The inference thread is the only one that runs torch: it loads the model too, also when
another thread asks for it first. PyTorch's CPU build parallelises with libgomp, which
gives every thread that runs a parallel region a team of helpers for as long as that thread
lives; once a process has more such threads than cores, libgomp stops letting its helpers
spin between regions, and a batch-32 decode on two cores takes 23% longer
(``bench/torch_threads.py``). A model loaded by one of Celery's pool threads, which live as
long as the worker, did exactly that.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2s_core.checkpoint import CheckpointError, load_checkpoint, weights_digest
from s2s_core.decoding import DecodeConfig, Hypothesis, WordTable, generate, word_table
from s2s_core.device import resolve_device
from s2s_core.mmi import Backward, MMIConfig, Reranked, load_backward, maybe_rerank
from s2s_core.model import Seq2Seq
from s2s_core.tokenizer import Tokenizer
from worker import metrics

log = logging.getLogger(__name__)

# Under load, the first request of a batch waits up to this share of the last batch's time.
LOAD_WAIT_SHARE = 0.25
# (version id, checkpoint folder) of the model that should be serving now.
ActiveSource = Callable[[], tuple[str, Path]]


@dataclass
class LoadedModel:
    version: str
    model: Seq2Seq
    tokenizer: Tokenizer
    meta: dict[str, Any]
    words: WordTable  # the tokenizer's words, for the word-repetition rule
    backward: Backward | None = None  # MMI reranking, when it ships one


@dataclass
class Decoded:
    hypotheses: Sequence[Hypothesis | Reranked]  # reranked (best first) when MMI ran
    version: str
    batch_size: int
    decode_ms: float  # generate() and MMI scoring together
    mmi: MMIConfig | None = None  # the settings that reranked ``hypotheses``, if any


@dataclass
class _Request:
    source: list[int]
    cfg: DecodeConfig
    message: list[int]  # the message's own tokens, which the backward model scores
    future: Future[Decoded] = field(default_factory=Future)


class _Withdrawn:
    """Queued when an announced request will not come: the batcher re-checks its wait."""


_WITHDRAWN = _Withdrawn()


@dataclass
class _ModelRequest:
    """Another thread's call for the serving model, answered by the inference thread."""

    future: Future[LoadedModel] = field(default_factory=Future)


def default_source(model_dir: Path) -> ActiveSource:
    """The checkpoint in ``model_dir``, identified by its weights."""
    if not model_dir.is_dir():
        raise CheckpointError(f"checkpoint {model_dir}: not a directory")
    if not (model_dir / "model.safetensors").is_file():
        raise CheckpointError(f"checkpoint {model_dir}: missing model.safetensors")
    digest = weights_digest(model_dir)
    return lambda: (digest, model_dir)


class Engine:
    def __init__(
        self,
        source: ActiveSource,
        device: str = "auto",
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        reload_every_s: float = 2.0,
    ) -> None:
        self.source, self.device = source, resolve_device(device)
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.reload_every_s = reload_every_s
        self._queue: queue.Queue[_Request | _ModelRequest | _Withdrawn | None] = queue.Queue()
        self._model: LoadedModel | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_batch, self._queued_after, self._last_busy = 0, 0, 0.0
        self._coming = 0  # requests announced by their callers and not yet submitted
        self._coming_lock = threading.Lock()
        self._announced = threading.local()  # .active: this thread has one announced

    def loaded(self) -> LoadedModel:
        """The serving model; the inference thread loads it on first use."""
        model = self._model
        if model is not None:
            return model
        self._ensure_thread()
        request = _ModelRequest()
        self._queue.put(request)
        return request.future.result()

    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Announces a request this thread is preparing (looking up its context), so an idle
        batcher keeps its batch open for it instead of leaving without it. A ``submit`` in
        the block delivers the announced request; leaving the block without one withdraws
        the announcement."""
        with self._coming_lock:
            self._coming += 1
        self._announced.active = True
        try:
            yield
        finally:
            if self._end_announcement():
                self._queue.put(_WITHDRAWN)  # a batcher waiting for it stops waiting

    def submit(
        self, source: list[int], cfg: DecodeConfig, message: list[int] | None = None
    ) -> Future[Decoded]:
        """Queues one decode; ``message`` (the tokens of the turn being answered) lets a
        model with a backward model rerank the n-best by MMI."""
        self._ensure_thread()
        request = _Request(source, cfg, message if message is not None else source)
        self._queue.put(request)
        self._end_announcement()  # after queueing it: never seen as gone
        return request.future

    def _end_announcement(self) -> bool:
        """Ends this thread's announcement, if it has one (True then)."""
        if not getattr(self._announced, "active", False):
            return False
        self._announced.active = False
        with self._coming_lock:
            self._coming -= 1
        return True

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="s2s-inference", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                return
            self._maybe_reload()
            groups: dict[DecodeConfig, list[_Request]] = {}
            for request in batch:
                groups.setdefault(request.cfg, []).append(request)
            start = time.monotonic()
            for cfg, requests in groups.items():
                self._decode(cfg, requests)
            self._last_batch, self._last_busy = len(batch), time.monotonic() - start
            self._queued_after = self._queue.qsize()

    def _cap(self) -> float:
        """The longest the first request waits for company: ``max_wait_ms``, or a share of
        the last batch's decode time when that is longer (one batch of 2n decodes faster
        than two of n, so a short wait pays for itself)."""
        return max(self.max_wait, LOAD_WAIT_SHARE * self._last_busy)

    def _gather(self) -> list[_Request] | None:
        """The next batch: the first request, and company until the cap.

        Under load it waits until the last batch's cohort is back together with the requests
        that queued while it decoded. They count because people answer replies: requests
        that miss a batch form a second cohort, and waiting only for the last batch's would
        keep the two alternating forever, each batch half full; waiting for both merges them
        into one batch, which then stays whole. Without a cohort (idle, or single requests)
        it waits while announced requests are on their way (see ``preparing``), and
        ``max_wait_ms`` after each arrival for unannounced ones: a burst is taken whole
        while it keeps coming, and a lone request waits only ``max_wait_ms``.
        """
        first = self._take(None)
        while isinstance(first, _Withdrawn):
            first = self._take(None)
        if first is None:
            return None
        batch, cap = [first], time.monotonic() + self._cap()
        cohort = min(self.max_batch, self._last_batch + self._queued_after)
        under_load = cohort > 1
        deadline = cap if under_load else min(cap, time.monotonic() + self.max_wait)
        while len(batch) < self.max_batch:
            if under_load:
                until = deadline if len(batch) < cohort else 0.0
            else:
                until = cap if self._coming > 0 else deadline
            try:
                item = self._take(max(until - time.monotonic(), 0.0))
            except queue.Empty:
                break
            if isinstance(item, _Withdrawn):
                continue
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(item)
            if not under_load:
                deadline = min(cap, time.monotonic() + self.max_wait)
        return batch

    def _take(self, timeout: float | None) -> _Request | _Withdrawn | None:
        """The next queued request (or withdrawal), or ``queue.Empty`` when none comes
        within ``timeout`` (``None``: wait for one). Calls for the model met on the way are
        answered here."""
        while True:
            item = self._queue.get(timeout=timeout)
            if not isinstance(item, _ModelRequest):
                return item
            try:
                item.future.set_result(self._serving())
            except Exception as exc:  # e.g. a broken checkpoint: the caller's error
                item.future.set_exception(exc)

    def _serving(self) -> LoadedModel:
        """The serving model, loading it first if there is none (inference thread only)."""
        if self._model is None:
            self._model = self._load(*self.source())
        return self._model

    def _decode(self, cfg: DecodeConfig, requests: list[_Request]) -> None:
        try:
            serving = self._serving()
        except Exception as exc:  # no model: every request gets the error, one load tried
            for request in requests:
                request.future.set_exception(exc)
            return
        try:
            start = time.perf_counter()
            nbest = generate(serving.model, [r.source for r in requests], cfg, serving.words)
            messages = [r.message for r in requests]
            results, mmi = maybe_rerank(serving.backward, messages, nbest)
            ms = (time.perf_counter() - start) * 1000
        except Exception as exc:  # the thread lives on; only the faulty request fails
            if len(requests) > 1:  # the model is loaded: retrying alone reloads nothing
                for request in requests:
                    self._decode(cfg, [request])
            else:
                requests[0].future.set_exception(exc)
            return
        metrics.BATCH_SIZE.observe(len(requests))
        metrics.DECODE.observe(ms / 1000)
        for request, hyps in zip(requests, results, strict=True):
            request.future.set_result(Decoded(hyps, serving.version, len(requests), ms, mmi))

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if self._model is None or now - self._checked_at < self.reload_every_s:
            return
        self._checked_at = now
        try:
            version, path = self.source()
            if version != self._model.version:
                self._model = self._load(version, path)
        except Exception:
            log.exception("model reload failed; still serving %s", self._model.version[:12])

    def _load(self, version: str, path: Path) -> LoadedModel:
        model, tokenizer, meta = load_checkpoint(path, self.device)
        backward = load_backward(path, tokenizer, meta, self.device)
        metrics.MODEL_LOADED.set(1)
        log.info(
            "serving model %s from %s on %s (%s)",
            version[:12],
            path,
            self.device,
            f"MMI reranking, weight {backward.cfg.weight}" if backward else "no MMI reranking",
        )
        if self._model is None:
            _freeze_the_heap()  # once: a replaced model's garbage must stay collectable
        return LoadedModel(version, model, tokenizer, meta, word_table(tokenizer), backward)


def _freeze_the_heap() -> None:
    """Moves what the process holds once it serves (torch, SQLAlchemy, Celery, the model)
    out of the garbage collector's reach. Left in, every full collection walked all of it:
    ~100 ms with every thread stopped, once per ~200 replies, which split the batch it
    fell into. Replies' own objects are collected as before."""
    gc.collect()
    gc.freeze()
