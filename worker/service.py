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
from typing import Any, Protocol

from redis import Redis

from s2s_contract.tasks import (
    CONTEXT_TURNS,
    MODEL_INFO_KEY,
    REPLIES_STREAM,
    FeedbackRequest,
    ForgetRequest,
    ReplyEvent,
    ReplyRequest,
    ResetRequest,
    context_key,
)
from s2s_core.corpora import Turn
from s2s_core.data import encode_context
from worker import metrics
from worker.engine import Engine
from worker.replies import choose, decode_config
from worker.store import DialogueStore, Exchange, GenerationInfo, StoredReply

log = logging.getLogger(__name__)
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
DECODE_TIMEOUT_S = 20.0


class Publisher(Protocol):
    def publish(self, event: ReplyEvent) -> None: ...
    def clear_context(self, chat_ids: list[int]) -> None: ...
    def announce_model(self, info: dict[str, Any]) -> None: ...


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
    }


class RedisPublisher:
    """Pushes the bot turn onto the chat's recent context and the reply onto the stream."""

    def __init__(self, redis: Redis, stream_maxlen: int = 100_000) -> None:
        self.redis = redis
        self.maxlen = stream_maxlen

    def publish(self, event: ReplyEvent) -> None:
        pipe = self.redis.pipeline()
        key = context_key(event.chat_id)
        pipe.rpush(key, json.dumps({"speaker": "bot", "text": event.text}))
        pipe.ltrim(key, -CONTEXT_TURNS, -1)
        pipe.xadd(
            REPLIES_STREAM, {"event": event.model_dump_json()}, maxlen=self.maxlen, approximate=True
        )
        pipe.execute()

    def clear_context(self, chat_ids: list[int]) -> None:
        if chat_ids:
            self.redis.delete(*(context_key(c) for c in chat_ids))

    def announce_model(self, info: dict[str, Any]) -> None:
        self.redis.set(MODEL_INFO_KEY, json.dumps(info))


class ReplyService:
    def __init__(self, store: DialogueStore, engine: Engine, publisher: Publisher | None) -> None:
        self.store, self.engine, self.publisher = store, engine, publisher
        self._announced = ""  # the model version last announced for /about

    def reply(self, req: ReplyRequest) -> StoredReply:
        stored = self.store.find_reply(req.chat_id, req.message_id)
        if stored is None:
            stored = self._answer(req)
        metrics.REPLIES.labels("new" if stored.created else "repeat").inc()
        if self.publisher is not None:  # a repeat re-publishes: delivery is at-least-once
            self.publisher.publish(
                ReplyEvent(
                    chat_id=req.chat_id,
                    message_id=req.message_id,
                    bot_turn_id=stored.bot_turn_id,
                    text=stored.text,
                )
            )
        return stored

    def _answer(self, req: ReplyRequest) -> StoredReply:
        serving = self.engine.loaded()
        if self.publisher is not None and serving.version != self._announced:
            self.publisher.announce_model(model_summary(serving.version, serving.meta))
            self._announced = serving.version
        data = serving.meta.get("data", {})
        context_turns = int(data.get("context_turns", 3))
        history = self.store.recent_context(req.chat_id, context_turns)
        turns = [Turn(text, speaker) for speaker, text in history] + [Turn(req.text, "user")]
        turns = turns[-context_turns:]
        source = encode_context(serving.tokenizer, turns, int(data.get("max_src_len", 64)))
        cfg = decode_config(req.style, serving.meta.get("decode"))
        decoded = self.engine.submit(source, cfg).result(timeout=DECODE_TIMEOUT_S)
        recent_bot = [text for speaker, text in history if speaker == "bot"]
        choice = choose(decoded.hypotheses, serving.tokenizer, recent_bot)
        wait = (
            (time.time() - req.enqueued_at) * 1000 - decoded.decode_ms if req.enqueued_at else None
        )
        generation = GenerationInfo(
            model_version=decoded.version,
            decoding={**cfg.to_dict(), "chosen": choice.index},
            candidates=choice.candidates,
            queue_wait_ms=wait,
            decode_ms=decoded.decode_ms,
            worker_id=WORKER_ID,
            batch_size=decoded.batch_size,
        )
        return self.store.store_exchange(
            Exchange(
                chat_id=req.chat_id,
                user_id=req.user_id,
                message_id=req.message_id,
                user_text=req.text,
                reply_text=choice.text,
                generation=generation,
                chat_type=req.chat_type,
                username=req.username,
                language=req.language,
            )
        )

    def feedback(self, req: FeedbackRequest) -> None:
        self.store.record_feedback(req.turn_id, req.user_id, req.value)

    def forget(self, req: ForgetRequest) -> dict[str, int]:
        counts = self.store.forget_user(req.user_id)
        if self.publisher is not None:
            self.publisher.clear_context(req.chat_ids)
        log.info("forgot user: %s", counts)
        return counts

    def reset(self, req: ResetRequest) -> None:
        self.store.reset_conversation(req.chat_id)
        if self.publisher is not None:
            self.publisher.clear_context([req.chat_id])
