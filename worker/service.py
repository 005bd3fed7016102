"""The reply service: one utterance in, one stored and published reply out.

The same code answers Celery tasks and ``s2s chat``: idempotency check, context from the
store (the source of truth), batched decoding, candidate choice, one transaction, publish.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from redis import Redis

from s2s_contract.tasks import (
    MODEL_INFO_KEY,
    REPLIES_STREAM,
    FeedbackRequest,
    ForgetRequest,
    ReplyEvent,
    ReplyRequest,
    ResetRequest,
)
from s2s_core.choice import choose
from s2s_core.corpora import Turn
from s2s_core.data import encode_context
from s2s_core.decoding import DecodeConfig
from s2s_core.tokenizer import Tokenizer
from worker import metrics
from worker.coalesce import Coalescer
from worker.engine import Decoded, Engine, LoadedModel
from worker.replies import decode_config
from worker.store import DialogueStore, Exchange, GenerationInfo, StoredReply

log = logging.getLogger(__name__)
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
DECODE_TIMEOUT_S = 20.0
# Lookups and writes wait behind at most one group of others; a stuck database fails the
# task (retried later) instead of holding its thread.
STORE_TIMEOUT_S = 30.0


class Publisher(Protocol):
    def publish(self, events: list[ReplyEvent]) -> None: ...
    def announce_model(self, info: dict[str, Any]) -> None: ...
    def forget(self, user_id: int) -> int: ...


def model_summary(version: str, meta: dict[str, Any]) -> dict[str, Any]:
    """What /about tells users: the version and the card's headline numbers."""
    tests = [e for e in meta.get("evaluations", []) if "perplexity" in e]
    return {
        "version": version,
        "name": meta.get("name", "Seq2Seq model"),
        "test_perplexity": max(tests, key=lambda e: e["pairs"])["perplexity"]["perplexity"]
        if tests
        else None,
        "valid_perplexity": (meta.get("best") or {}).get("valid_ppl"),
        "trained_steps": (meta.get("training") or {}).get("steps"),
        "fine_tuned": "--init-from" in str(meta.get("command", "")),
    }


def context_turns(meta: dict[str, Any]) -> int:
    """How many turns, the message included, the model reads (its training window)."""
    return int(meta.get("data", {}).get("context_turns", 3))


def encoder_input(
    tokenizer: Tokenizer, meta: dict[str, Any], before: list[Turn], text: str
) -> list[int]:
    """The model's input for a user message after the turns ``before`` it: the last
    ``context_turns`` turns, the message included, speaker-tagged and cut from the left to
    the model's ``max_src_len`` tokens."""
    window = [*before, Turn(text, "user")][-context_turns(meta) :]
    return encode_context(tokenizer, window, int(meta.get("data", {}).get("max_src_len", 64)))


class RedisPublisher:
    """Puts the replies onto the stream the bot consumes, all in one round trip."""

    def __init__(self, redis: Redis, stream_maxlen: int = 100_000) -> None:
        self.redis = redis
        self.maxlen = stream_maxlen

    def publish(self, events: list[ReplyEvent]) -> None:
        pipe = self.redis.pipeline()
        for event in events:
            pipe.xadd(
                REPLIES_STREAM,
                {"event": event.model_dump_json()},
                maxlen=self.maxlen,
                approximate=True,
            )
        pipe.execute()

    def announce_model(self, info: dict[str, Any]) -> None:
        self.redis.set(MODEL_INFO_KEY, json.dumps(info))

    def forget(self, user_id: int) -> int:
        """Deletes the replies to the user from the stream (delivered or not: they carry
        the user's id and the bot's words to them); returns how many."""
        doomed: list[Any] = []
        start: Any = "-"
        while True:
            entries: Any = self.redis.xrange(REPLIES_STREAM, min=start, count=1000) or []
            for entry_id, fields in entries:
                try:
                    event = ReplyEvent.model_validate_json((fields or {})[b"event"])
                except (KeyError, ValueError):
                    continue
                if user_id in (event.user_id, event.chat_id):
                    doomed.append(entry_id)
            if len(entries) < 1000:
                break
            last = entries[-1][0]
            start = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        return int(self.redis.xdel(REPLIES_STREAM, *doomed)) if doomed else 0


@dataclass(frozen=True)
class _Lookup:
    answered: StoredReply | None  # the reply stored earlier, when this is a repeat
    history: list[tuple[str, str]]  # (speaker, text) turns before the message, oldest first


class ReplyService:
    """Concurrent ``reply`` calls share their database and Redis work: lookups go through
    one coalescer and writes with their publishing through another (see worker.coalesce),
    so a batch of replies costs a few transactions instead of one or more each."""

    def __init__(self, store: DialogueStore, engine: Engine, publisher: Publisher | None) -> None:
        self.store, self.engine, self.publisher = store, engine, publisher
        self._announced = ""  # the model version last announced for /about
        self._lookups: Coalescer[tuple[ReplyRequest, int], _Lookup] = Coalescer(
            self._look_up, "s2s-lookup"
        )
        self._writes: Coalescer[tuple[Exchange, ReplyRequest], StoredReply] = Coalescer(
            self._write, "s2s-write"
        )

    def reply(self, req: ReplyRequest) -> StoredReply:
        serving = self.engine.loaded()
        with self.engine.preparing():  # an idle batcher keeps its batch open for this one
            lookup = self._lookups.submit((req, context_turns(serving.meta)))
            found = lookup.result(timeout=STORE_TIMEOUT_S)
            if found.answered is None:
                cfg, decoding = self._decode(req, serving, found.history)
        if found.answered is None:
            stored = self._finish(req, serving, found.history, cfg, decoding)
        else:
            stored = found.answered
            if self.publisher is not None:  # a repeat re-publishes: delivery is at-least-once
                self.publisher.publish([reply_event(req, stored)])
        outcome = "forgotten" if stored.forgotten else "new" if stored.created else "repeat"
        metrics.REPLIES.labels(outcome).inc()
        return stored

    def _decode(
        self, req: ReplyRequest, serving: LoadedModel, history: list[tuple[str, str]]
    ) -> tuple[DecodeConfig, Future[Decoded]]:
        if self.publisher is not None and serving.version != self._announced:
            self.publisher.announce_model(model_summary(serving.version, serving.meta))
            self._announced = serving.version
        before = [Turn(text, speaker) for speaker, text in history]
        source = encoder_input(serving.tokenizer, serving.meta, before, req.text)
        cfg = decode_config(req.style, serving.meta.get("decode"))
        message = serving.tokenizer.encode(req.text)
        return cfg, self.engine.submit(source, cfg, message)

    def _finish(
        self,
        req: ReplyRequest,
        serving: LoadedModel,
        history: list[tuple[str, str]],
        cfg: DecodeConfig,
        decoding: Future[Decoded],
    ) -> StoredReply:
        """The decoded reply chosen among its n-best, stored and published."""
        decoded = decoding.result(timeout=DECODE_TIMEOUT_S)
        recent_bot = [text for speaker, text in history if speaker == "bot"]
        choice = choose(decoded.hypotheses, serving.tokenizer, req.text, recent_bot)
        wait = (
            (time.time() - req.enqueued_at) * 1000 - decoded.decode_ms if req.enqueued_at else None
        )
        if wait is not None:
            metrics.QUEUE_WAIT.observe(max(wait, 0.0) / 1000)
        generation = GenerationInfo(
            model_version=decoded.version,
            decoding={
                **cfg.to_dict(),
                "chosen": choice.index,
                **({"mmi": asdict(decoded.mmi)} if decoded.mmi else {}),
            },
            candidates=choice.candidates,
            queue_wait_ms=wait,
            decode_ms=decoded.decode_ms,
            worker_id=WORKER_ID,
            batch_size=decoded.batch_size,
        )
        exchange = Exchange(
            chat_id=req.chat_id,
            user_id=req.user_id,
            message_id=req.message_id,
            user_text=req.text,
            reply_text=choice.text,
            generation=generation,
            chat_type=req.chat_type,
            username=req.username,
            language=req.language,
            sent_at=req.enqueued_at,
        )
        return self._writes.submit((exchange, req)).result(timeout=STORE_TIMEOUT_S)

    def _look_up(self, items: list[tuple[ReplyRequest, int]]) -> list[_Lookup]:
        """Which messages were answered already, and the recent turns of the others' chats:
        two queries for the whole group."""
        answered = self.store.find_replies([(r.chat_id, r.message_id) for r, _ in items])
        unanswered = [(r, n) for r, n in items if (r.chat_id, r.message_id) not in answered]
        depth = max((n for _, n in unanswered), default=0)
        contexts = self.store.recent_contexts([r.chat_id for r, _ in unanswered], depth)
        return [
            _Lookup(
                answered.get((r.chat_id, r.message_id)),
                contexts.get(r.chat_id, [])[-n:] if n > 0 else [],
            )
            for r, n in items
        ]

    def _write(self, items: list[tuple[Exchange, ReplyRequest]]) -> list[StoredReply]:
        """One transaction for the group's exchanges, then one Redis round trip publishing
        them: a reply is published only once it is stored."""
        stored = self.store.store_exchanges([exchange for exchange, _ in items])
        if self.publisher is not None:
            self.publisher.publish(
                [
                    reply_event(req, s)
                    for (_, req), s in zip(items, stored, strict=True)
                    if not s.forgotten  # its user asked to be forgotten meanwhile
                ]
            )
        return stored

    def feedback(self, req: FeedbackRequest) -> None:
        self.store.record_feedback(req.turn_id, req.user_id, req.value)

    def forget(self, req: ForgetRequest) -> dict[str, int]:
        counts = self.store.forget_user(req.user_id)
        if self.publisher is not None:
            counts["published_replies"] = self.publisher.forget(req.user_id)
        log.info("forgot user: %s", counts)
        return counts

    def reset(self, req: ResetRequest) -> None:
        self.store.reset_conversation(req.chat_id)


def reply_event(req: ReplyRequest, stored: StoredReply) -> ReplyEvent:
    """What the bot delivers: the stored reply to the request's message."""
    return ReplyEvent(
        chat_id=req.chat_id,
        message_id=req.message_id,
        bot_turn_id=stored.bot_turn_id,
        text=stored.text,
        user_id=req.user_id,
    )
