"""The reply service: a batch of messages in, their stored and published replies out.

The same code answers a worker's batch of Celery messages and ``s2s chat`` (a batch of
one), as one unit: which messages were answered already and the chats' recent turns in one
lookup, one decode per round (a chat's second message in the batch waits for its first
reply, which is in its context), the candidate choice, one transaction, one publish.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from redis import Redis

from s2s_contract.styles import CORPUS_STYLES
from s2s_contract.tasks import (
    MODEL_INFO_KEY,
    REPLIES_STREAM,
    FeedbackRequest,
    ForgetRequest,
    ReplyEvent,
    ReplyRequest,
    ResetRequest,
    pending_key,
)
from s2s_core.choice import choose, choose_among, user_turns_before
from s2s_core.consistency import earlier_answer
from s2s_core.corpora import Turn
from s2s_core.data import encode_context
from s2s_core.decoding import DecodeConfig
from s2s_core.tokenizer import Tokenizer
from worker import metrics
from worker.engine import Decoded, DecodeItem, Engine, LoadedModel
from worker.replies import decode_config
from worker.store import DialogueStore, Exchange, GenerationInfo, StoredReply

log = logging.getLogger(__name__)
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
# A batch waits this long for its decoding (behind at most a batch or two of others)
# before it is sent back to the queue as transient work.
DECODE_TIMEOUT_S = 20.0
# Turns of a chat read before each reply: the model reads its own window of them, the
# choice all of them (the bot asked "What's your favorite food?" again four turns later
# when it only remembered three; what it said it likes must hold twenty turns later).
RECENT_TURNS = 40


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
        "fine_tuned_from": Path(meta["init_from"]).name if meta.get("init_from") else None,
        "train_pairs": meta.get("train_pairs"),
        "corpus_replies": bool(meta.get("hybrid")),
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
    """Puts the replies onto the stream the bot consumes and takes their messages out of
    the chats' inboxes, in one transaction: a message redelivered after a crash is either
    still pending and unpublished, or published and gone from its inbox (then left alone),
    so a reply is published once."""

    def __init__(self, redis: Redis, stream_maxlen: int = 100_000) -> None:
        self.redis = redis
        self.maxlen = stream_maxlen

    def publish(self, events: list[ReplyEvent]) -> None:
        if not events:
            return
        pipe = self.redis.pipeline(transaction=True)
        for event in events:
            pipe.xadd(
                REPLIES_STREAM,
                {"event": event.model_dump_json()},
                maxlen=self.maxlen,
                approximate=True,
            )
            pipe.hdel(pending_key(event.chat_id), str(event.message_id))
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


Key = tuple[int, int]  # (chat id, message id)


@dataclass
class BatchResult:
    """The stored reply of each message answered, and the error of each that failed (it
    stays in its chat's inbox; the chat's later messages in the batch wait with it)."""

    replies: dict[Key, StoredReply] = field(default_factory=dict)
    failed: dict[Key, Exception] = field(default_factory=dict)


def _key(req: ReplyRequest) -> Key:
    return (req.chat_id, req.message_id)


class ReplyService:
    def __init__(self, store: DialogueStore, engine: Engine, publisher: Publisher | None) -> None:
        self.store, self.engine, self.publisher = store, engine, publisher
        self._announced = ""  # the model version last announced for /about

    def reply(self, req: ReplyRequest) -> StoredReply:
        """One message: a batch of one."""
        result = self.reply_batch([req])
        if _key(req) in result.failed:
            raise result.failed[_key(req)]
        return result.replies[_key(req)]

    def reply_batch(self, requests: list[ReplyRequest]) -> BatchResult:
        """Answers each message once, a chat's messages in message-id order; a message
        answered before is published again (delivery is at-least-once)."""
        serving = self.engine.loaded()
        self._announce(serving)
        canary = self.engine.canary()

        def model_for(chat_id: int) -> LoadedModel:
            return canary[0] if canary is not None and in_canary(chat_id, canary[1]) else serving

        by_chat: dict[int, list[ReplyRequest]] = {}
        for req in sorted({_key(r): r for r in requests}.values(), key=_key):
            by_chat.setdefault(req.chat_id, []).append(req)
        answered = self.store.find_replies([_key(r) for reqs in by_chat.values() for r in reqs])
        waiting = {
            chat: [r for r in reqs if _key(r) not in answered] for chat, reqs in by_chat.items()
        }
        serving_models = [serving] if canary is None else [serving, canary[0]]
        depth = max(RECENT_TURNS, *(context_turns(m.meta) for m in serving_models))
        asking = [chat for chat, reqs in waiting.items() if reqs]
        history = self.store.recent_contexts(asking, depth) if asking and depth > 0 else {}
        result = BatchResult(replies={k: answered[k] for k in answered})
        fresh: list[tuple[Exchange, ReplyRequest]] = []
        while any(waiting.values()):
            round_ = [reqs.pop(0) for reqs in waiting.values() if reqs]
            decoded = self._decode(round_, history, model_for)
            for req, outcome in zip(round_, decoded, strict=True):
                if isinstance(outcome, Exception):
                    for failed in [req, *waiting[req.chat_id]]:
                        result.failed[_key(failed)] = outcome
                    waiting[req.chat_id] = []
                    continue
                fresh.append((outcome, req))
                said = history.setdefault(req.chat_id, [])
                said += [("user", req.text), ("bot", outcome.reply_text)]
                del said[: max(len(said) - depth, 0)]
        stored = self.store.store_exchanges([exchange for exchange, _ in fresh]) if fresh else []
        result.replies.update({_key(req): s for (_, req), s in zip(fresh, stored, strict=True)})
        if self.publisher is not None:
            self.publisher.publish(
                [
                    reply_event(req, result.replies[_key(req)])
                    for reqs in by_chat.values()
                    for req in reqs
                    if _key(req) in result.replies and not result.replies[_key(req)].forgotten
                ]
            )
        for stored_reply in result.replies.values():
            metrics.REPLIES.labels(
                "forgotten"
                if stored_reply.forgotten
                else "new"
                if stored_reply.created
                else "repeat"
            ).inc()
        return result

    def _announce(self, serving: LoadedModel) -> None:
        if self.publisher is not None and serving.version != self._announced:
            self.publisher.announce_model(model_summary(serving.version, serving.meta))
            self._announced = serving.version

    def _decode(
        self,
        requests: list[ReplyRequest],
        history: dict[int, list[tuple[str, str]]],
        model_for: Callable[[int], LoadedModel],
    ) -> list[Exchange | Exception]:
        """One round: each chat's next message decoded in one engine batch (by the model
        that answers its chat) and its reply chosen among the n-best; the exchange to store,
        or the message's own error."""
        models = [model_for(req.chat_id) for req in requests]
        items = []
        for req, model in zip(requests, models, strict=True):
            before = [Turn(text, speaker) for speaker, text in history.get(req.chat_id, [])]
            turns = [text for _, text in history.get(req.chat_id, [])] + [req.text]
            items.append(
                DecodeItem(
                    encoder_input(model.tokenizer, model.meta, before, req.text),
                    decode_config(req.style, model.meta.get("decode")),
                    model.tokenizer.encode(req.text),
                    model.version,
                    turns if req.style in CORPUS_STYLES else None,
                    turns,
                )
            )
        futures = self.engine.submit(items)
        outcomes: list[Exchange | Exception] = []
        for req, model, item, future in zip(requests, models, items, futures, strict=True):
            error = future.exception(timeout=DECODE_TIMEOUT_S)  # a stuck engine: transient
            if error is not None:
                log.error("chat %s: decoding failed (%s)", req.chat_id, type(error).__name__)
                outcomes.append(error if isinstance(error, Exception) else RuntimeError(error))
                continue
            said = history.get(req.chat_id, [])
            outcomes.append(_exchange(req, model, item.cfg, future.result(), said))
        return outcomes

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


def _exchange(
    req: ReplyRequest,
    serving: LoadedModel,
    cfg: DecodeConfig,
    decoded: Decoded,
    history: list[tuple[str, str]],
) -> Exchange:
    """The reply chosen among the decoded n-best, as the exchange to store."""
    recent_bot = [text for speaker, text in history if speaker == "bot"]
    earlier = earlier_answer(history, req.text)
    if decoded.pool is not None:
        choice = choose_among(
            decoded.pool,
            req.text,
            recent_bot,
            user_before=user_turns_before(history),
            answered_before=earlier,
            stock=serving.stock,
        )
    else:
        choice = choose(
            decoded.hypotheses,
            serving.tokenizer,
            req.text,
            recent_bot,
            user_before=user_turns_before(history),
            target_len=serving.meta.get("data", {}).get("max_tgt_len"),
            answered_before=earlier,
            stock=serving.stock,
        )
    wait = (time.time() - req.enqueued_at) * 1000 - decoded.decode_ms if req.enqueued_at else None
    if wait is not None:
        metrics.QUEUE_WAIT.observe(max(wait, 0.0) / 1000)
    generation = GenerationInfo(
        model_version=decoded.version,
        decoding={
            **cfg.to_dict(),
            "chosen": choice.index,
            "source": choice.source,
            **({"mmi": asdict(decoded.mmi)} if decoded.mmi else {}),
            **(
                {"hybrid": serving.hybrid.describe()}
                if decoded.pool is not None and serving.hybrid
                else {}
            ),
            **({"refined_from": decoded.read} if decoded.read is not None else {}),
        },
        candidates=choice.candidates,
        queue_wait_ms=wait,
        decode_ms=decoded.decode_ms,
        worker_id=WORKER_ID,
        batch_size=decoded.batch_size,
    )
    return Exchange(
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


def in_canary(chat_id: int, share: int) -> bool:
    """Whether the canary answers this chat: the chat's bucket (0-99, from a hash of its id:
    the same in every worker and after every restart, so a conversation stays with one
    version) is below the canary's share."""
    digest = hashlib.blake2b(str(chat_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < share


def reply_event(req: ReplyRequest, stored: StoredReply) -> ReplyEvent:
    """What the bot delivers: the stored reply to the request's message."""
    return ReplyEvent(
        chat_id=req.chat_id,
        message_id=req.message_id,
        bot_turn_id=stored.bot_turn_id,
        text=stored.text,
        user_id=req.user_id,
    )
