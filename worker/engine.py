"""The inference engine: the active model, loaded lazily once per process, and the one
thread that decodes with it.

Callers hand it whole batches (a worker's batch of messages, or a batch of one from
``s2s chat``). The inference thread takes the next batch and every other batch queued
meanwhile, groups their requests by decoding settings and decodes each group in one call of
at most ``max_batch`` inputs. Under load it waits, briefly, for the rest of its cohort
(``company_wait``): people answer replies, so the requests of one decode come back
together, and a cohort split across two worker batches would otherwise stay split, two
half-full decodes alternating for ever. Each request gets its own result or its own
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
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2s_core.checkpoint import CheckpointError, load_checkpoint, weights_digest
from s2s_core.choice import Candidate, as_candidates
from s2s_core.decoding import DecodeConfig, Hypothesis, WordTable, generate, word_table
from s2s_core.device import resolve_device
from s2s_core.hybrid import Hybrid, Seq2SeqScorer, load_hybrid, rank_pools
from s2s_core.mmi import Backward, MMIConfig, Reranked, load_backward, maybe_rerank
from s2s_core.model import Seq2Seq
from s2s_core.quality import NONE, Stock, learned_stock
from s2s_core.ranker import RankerUnavailable
from s2s_core.refine import Refiner, load_refiner
from s2s_core.retrieval import RetrievalUnavailable
from s2s_core.tokenizer import Tokenizer
from worker import metrics

log = logging.getLogger(__name__)

# Under load, the first batch of a decode waits at most this share of the last decode's time.
LOAD_WAIT_SHARE = 0.25
# (version id, checkpoint folder) of the model that should be serving now.
ActiveSource = Callable[[], tuple[str, Path]]
# (version id, checkpoint folder, share of chats in percent) of the canary, if any.
CanarySource = Callable[[], tuple[str, Path, int] | None]


@dataclass
class LoadedModel:
    version: str
    model: Seq2Seq
    tokenizer: Tokenizer
    meta: dict[str, Any]
    words: WordTable  # the tokenizer's words, for the word-repetition rule
    backward: Backward | None = None  # MMI reranking, when it ships one
    hybrid: Hybrid | None = None  # corpus replies and the ranker, when it asks for them
    refiner: Refiner | None = None  # a retrieve-and-refine model's retrieval
    stock: Stock = NONE  # the checkpoint's own stock sentences (s2s_core.stock)


@dataclass
class Decoded:
    hypotheses: Sequence[Hypothesis | Reranked]  # reranked (best first) when MMI ran
    version: str
    batch_size: int
    decode_ms: float  # generate() and MMI scoring together
    mmi: MMIConfig | None = None  # the settings that reranked ``hypotheses``, if any
    # The hypotheses beside corpus replies, ranked (s2s_core.hybrid), when the item asked
    # for them and the model has a hybrid pool; the choice then picks among these.
    pool: list[Candidate] | None = None
    # A refine model's: the corpus replies its decodes read (stored with the reply).
    read: list[str] | None = None


@dataclass
class _Request:
    source: list[int]
    cfg: DecodeConfig
    message: list[int]  # the message's own tokens, which the backward model scores
    version: str | None  # the canary's version: decoded by it; else by the active model
    conversation: list[str] | None = None  # the turns, for corpus replies beside the n-best
    turns: list[str] | None = None  # the turns, for a refine model's retrieval
    future: Future[Decoded] = field(default_factory=Future)


@dataclass
class _ModelRequest:
    """Another thread's call for the serving model, answered by the inference thread."""

    future: Future[LoadedModel] = field(default_factory=Future)


def company_wait(have: int, cohort: int, waited_s: float, last_busy_s: float) -> float:
    """How much longer the inference thread waits for more requests before decoding the
    ``have`` it holds: while fewer than the last cohort (the last decode's requests and
    those that queued during it) are here, until ``LOAD_WAIT_SHARE`` of the last decode's
    time has passed; otherwise (idle, or the cohort whole) not at all. One batch of 2n
    decodes faster than two of n, so a short wait pays for itself."""
    if have >= cohort:
        return 0.0
    return max(LOAD_WAIT_SHARE * last_busy_s - waited_s, 0.0)


def default_source(model_dir: Path) -> ActiveSource:
    """The checkpoint in ``model_dir``, identified by its weights."""
    if not model_dir.is_dir():
        raise CheckpointError(f"checkpoint {model_dir}: not a directory")
    if not (model_dir / "model.safetensors").is_file():
        raise CheckpointError(f"checkpoint {model_dir}: missing model.safetensors")
    digest = weights_digest(model_dir)
    return lambda: (digest, model_dir)


@dataclass(frozen=True)
class DecodeItem:
    """One input to decode: the encoder input, the settings, and the message's own tokens
    (which a backward model scores for MMI reranking; the source when ``None``)."""

    source: list[int]
    cfg: DecodeConfig
    message: list[int] | None = None
    version: str | None = None  # the canary's version id to decode with it; else the active
    # The conversation's turns (oldest first, the message last) when the reply style wants
    # corpus replies beside the generated ones; None: the n-best alone.
    conversation: list[str] | None = None
    # The same turns whatever the style: a refine model decodes on what they retrieve.
    turns: list[str] | None = None


class Engine:
    def __init__(
        self,
        source: ActiveSource,
        device: str = "auto",
        max_batch: int = 32,
        reload_every_s: float = 2.0,
        canary_source: CanarySource | None = None,
        corpus_cache: Path | None = None,
    ) -> None:
        self.source, self.canary_source = source, canary_source
        # Where the public corpus' retrieval index is cached; None: no corpus replies.
        self.corpus_cache = corpus_cache
        self.device = resolve_device(device)
        self.max_batch, self.reload_every_s = max_batch, reload_every_s
        self._queue: queue.Queue[list[_Request] | _ModelRequest | None] = queue.Queue()
        self._model: LoadedModel | None = None
        self._canary: tuple[LoadedModel, int] | None = None  # the canary and its share
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cohort, self._last_busy = 0, 0.0

    def loaded(self) -> LoadedModel:
        """The serving model; the inference thread loads it on first use."""
        model = self._model
        if model is not None:
            return model
        self._ensure_thread()
        request = _ModelRequest()
        self._queue.put(request)
        return request.future.result()

    def canary(self) -> tuple[LoadedModel, int] | None:
        """The canary model beside the active one, with its share of chats in percent."""
        return self._canary

    def submit(self, items: Sequence[DecodeItem]) -> list[Future[Decoded]]:
        """Queues a batch; one future per item, in order."""
        self._ensure_thread()
        batch = [
            _Request(
                i.source,
                i.cfg,
                i.message if i.message is not None else i.source,
                i.version,
                i.conversation,
                i.turns,
            )
            for i in items
        ]
        if batch:
            self._queue.put(batch)
        return [request.future for request in batch]

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
            requests = self._next()
            if requests is None:
                return
            self._maybe_reload()
            try:
                serving = self._serving()
            except Exception as exc:  # no model: every request gets the error, one load tried
                for request in requests:
                    request.future.set_exception(exc)
                continue
            models = {serving.version: serving}
            if self._canary is not None:
                models[self._canary[0].version] = self._canary[0]
            groups: dict[tuple[str, DecodeConfig], list[_Request]] = {}
            for request in requests:
                version = request.version if request.version in models else serving.version
                groups.setdefault((version, request.cfg), []).append(request)
            start = time.monotonic()
            for (version, cfg), group in groups.items():
                for at in range(0, len(group), self.max_batch):
                    self._decode(models[version], cfg, group[at : at + self.max_batch])
            self._last_busy = time.monotonic() - start
            with self._queue.mutex:
                queued = sum(len(b) for b in self._queue.queue if isinstance(b, list))
            self._cohort = min(len(requests) + queued, self.max_batch)

    def _next(self) -> list[_Request] | None:
        """The next batch, every batch queued behind it, and under load what comes within
        ``company_wait``; ``None`` once closed. Calls for the model met on the way are
        answered here."""
        requests: list[_Request] = []
        first_at = 0.0
        item = self._queue.get()
        while True:
            if item is None:
                if not requests:
                    return None
                self._queue.put(None)  # stop after this batch
                return requests
            if isinstance(item, _ModelRequest):
                try:
                    item.future.set_result(self._serving())
                except Exception as exc:  # e.g. a broken checkpoint: the caller's error
                    item.future.set_exception(exc)
            else:
                first_at = first_at or time.monotonic()
                requests.extend(item)
            if not requests:
                item = self._queue.get()
                continue
            waited = time.monotonic() - first_at
            wait = company_wait(len(requests), self._cohort, waited, self._last_busy)
            try:
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                return requests

    def _serving(self) -> LoadedModel:
        """The serving model, loading it first if there is none (inference thread only)."""
        if self._model is None:
            self._model = self._load(*self.source())
            self._refresh_canary()
        return self._model

    def _decode(self, serving: LoadedModel, cfg: DecodeConfig, requests: list[_Request]) -> None:
        try:
            start = time.perf_counter()
            sources = [r.source for r in requests]
            read: list[list[str] | None] = [None] * len(requests)
            if serving.refiner is None:
                nbest = generate(serving.model, sources, cfg, serving.words)
            else:
                turns = [r.turns or [] for r in requests]
                nbest, found = serving.refiner.generate(
                    serving.model, sources, turns, cfg, serving.words
                )
                read = list(found)
            messages = [r.message for r in requests]
            results, mmi = maybe_rerank(serving.backward, messages, nbest)
            pools = self._pools(serving, requests, results)
            ms = (time.perf_counter() - start) * 1000
        except Exception as exc:  # the thread lives on; only the faulty request fails
            if len(requests) > 1:
                for request in requests:
                    self._decode(serving, cfg, [request])
            else:
                requests[0].future.set_exception(exc)
            return
        metrics.BATCH_SIZE.observe(len(requests))
        metrics.DECODE.observe(ms / 1000)
        for request, hyps, pool, texts in zip(requests, results, pools, read, strict=True):
            request.future.set_result(
                Decoded(hyps, serving.version, len(requests), ms, mmi, pool, texts)
            )

    @staticmethod
    def _pools(
        serving: LoadedModel,
        requests: list[_Request],
        nbest: Sequence[Sequence[Hypothesis | Reranked]],
    ) -> list[list[Candidate] | None]:
        """For the requests that asked for corpus replies, their n-best beside them, ranked
        in one retrieval pass and one ranker call for the whole batch."""
        wanted = [i for i, r in enumerate(requests) if r.conversation is not None]
        pools: list[list[Candidate] | None] = [None] * len(requests)
        if serving.hybrid is None or not wanted:
            return pools
        target_len = serving.meta.get("data", {}).get("max_tgt_len")
        generated = [as_candidates(nbest[i], serving.tokenizer, target_len) for i in wanted]
        turns = [requests[i].conversation or [] for i in wanted]
        scorer = Seq2SeqScorer(
            serving.model, serving.tokenizer, serving.backward, int(target_len or 32)
        )
        sources = [requests[i].source for i in wanted]
        ranked = rank_pools(serving.hybrid, turns, generated, scorer, sources)
        for i, pool in zip(wanted, ranked, strict=True):
            pools[i] = pool
        return pools

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
        self._refresh_canary()

    def _refresh_canary(self) -> None:
        """Loads, drops or re-shares the canary as the registry says; a canary that fails
        to load is logged and the active model answers its chats."""
        if self.canary_source is None:
            return
        try:
            found = self.canary_source()
            if found is None:
                self._canary = None
                return
            version, path, share = found
            if self._canary is None or self._canary[0].version != version:
                self._canary = (self._load(version, path), share)
            elif self._canary[1] != share:
                self._canary = (self._canary[0], share)
        except Exception:
            log.exception("canary load failed; the active model answers every chat")
            self._canary = None

    def _load(self, version: str, path: Path) -> LoadedModel:
        model, tokenizer, meta = load_checkpoint(path, self.device)
        backward = load_backward(path, tokenizer, meta, self.device)
        hybrid = self._hybrid(path, meta)
        metrics.MODEL_LOADED.set(1)
        log.info(
            "serving model %s from %s on %s (%s; %s)",
            version[:12],
            path,
            self.device,
            f"MMI reranking, weight {backward.cfg.weight}" if backward else "no MMI reranking",
            f"{hybrid.cfg.retrieved} corpus replies per message, ranked by {hybrid.ranker.name}"
            if hybrid
            else "no corpus replies",
        )
        if self._model is None:
            _freeze_the_heap()  # once: a replaced model's garbage must stay collectable
        words = word_table(tokenizer)
        ranker = (hybrid.ranker, hybrid.vectors) if hybrid else None
        refiner = load_refiner(meta, model.config, tokenizer, self.corpus_cache, ranker, path)
        stock = learned_stock(meta)  # checked by load_checkpoint
        return LoadedModel(version, model, tokenizer, meta, words, backward, hybrid, refiner, stock)

    def _hybrid(self, path: Path, meta: dict[str, Any]) -> Hybrid | None:
        """The checkpoint's hybrid pool; one the worker cannot build (the ranker or bm25s
        not installed, an unwritable cache) is logged and the model answers with its own
        replies: a reply without corpus candidates beats no reply."""
        if self.corpus_cache is None:
            return None
        try:
            return load_hybrid(path, meta, self.corpus_cache, str(self.device))
        except (RankerUnavailable, RetrievalUnavailable, OSError) as exc:
            log.error("no corpus replies: %s", exc)
            return None


def _freeze_the_heap() -> None:
    """Moves what the process holds once it serves (torch, SQLAlchemy, Celery, the model)
    out of the garbage collector's reach. Left in, every full collection walked all of it:
    ~100 ms with every thread stopped, once per ~200 replies, which split the batch it
    fell into. Replies' own objects are collected as before."""
    gc.collect()
    gc.freeze()
