"""Celery tasks out, the Redis replies stream in: the bot's transport when REDIS_URL is set.

Replies are read through a consumer group, so a restarted bot resumes where it stopped
(its own unacknowledged entries first) and several webhook replicas share the stream.
Entries nobody acknowledged for ``CLAIM_IDLE_S`` (a crashed bot's, under a consumer name
that will never come back, or a delivery that failed here) are claimed (XAUTOCLAIM) every
``CLAIM_EVERY_S`` and delivered again; one that failed ``MAX_DELIVERIES`` times goes to the
``s2s:replies:dead`` stream, logged and counted, instead of being retried forever.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError as BrokerUnreachable
from redis import Redis
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.transport import Delivery, TransportDown
from s2s_contract.broker import TRANSPORT
from s2s_contract.client import send_reply
from s2s_contract.tasks import (
    FEEDBACK_TASK,
    FORGET_TASK,
    INFERENCE_QUEUE,
    MODEL_INFO_KEY,
    REPLIES_STREAM,
    RESET_TASK,
    TASK_QUEUES,
    FeedbackRequest,
    ForgetRequest,
    ReplyEvent,
    ReplyRequest,
    ResetRequest,
)

log = logging.getLogger(__name__)
GROUP = "bot"
SEEN_TTL_S = 2 * 24 * 3600  # Telegram keeps undelivered updates for 24 hours
DEAD_LETTERS = f"{REPLIES_STREAM}:dead"
CLAIM_EVERY_S = 15.0
CLAIM_IDLE_S = 30.0  # far beyond one delivery (sendMessage retries included)
MAX_DELIVERIES = 10
STYLE_TTL_S = 90 * 24 * 3600


def async_client(redis_url: str) -> aioredis.Redis:
    """An asyncio client that survives a Redis restart: a pooled connection the server
    closed meanwhile is retried on a fresh one (twice, 50 ms apart and up), instead of
    telling the user the service is down. The sync client does this by default."""
    return aioredis.Redis.from_url(
        redis_url,
        socket_connect_timeout=5,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
    )


def sender(redis_url: str) -> Celery:
    """A Celery app that only sends tasks by name (the bot never imports the worker)."""
    app = Celery("s2s-bot", broker=redis_url)
    app.conf.update(
        broker_transport=TRANSPORT,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
    )
    return app


class RedisTransport:
    def __init__(self, redis_url: str, consumer: str | None = None) -> None:
        self.redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        self.aredis = async_client(redis_url)
        self.celery = sender(redis_url)
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"

    async def _sync(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except (RedisError, OSError, BrokerUnreachable) as exc:
            raise TransportDown(str(exc)) from exc

    async def ask(self, request: ReplyRequest) -> None:
        await self._sync(self._ask, request)

    def _ask(self, request: ReplyRequest) -> None:
        send_reply(self.redis, self.celery, request)  # the worker reads the context from the db

    def _send(self, name: str, payload: dict[str, Any]) -> None:
        self.celery.send_task(name, args=[payload], queue=TASK_QUEUES[name])

    async def feedback(self, request: FeedbackRequest) -> None:
        await self._sync(self._send, FEEDBACK_TASK, request.model_dump())

    async def forget(self, request: ForgetRequest) -> None:
        await self._sync(self._send, FORGET_TASK, request.model_dump())

    async def reset(self, chat_id: int) -> None:
        await self._sync(self._send, RESET_TASK, ResetRequest(chat_id=chat_id).model_dump())

    async def replies(self) -> AsyncIterator[Delivery]:
        backlog = True  # first this consumer's own entries left unacknowledged by a crash
        claimed_at = time.monotonic()
        while True:
            try:
                await self._ensure_group()
                if time.monotonic() - claimed_at >= CLAIM_EVERY_S:
                    claimed_at = time.monotonic()
                    entries = await self._claim_idle()
                else:
                    start = "0" if backlog else ">"
                    answer: Any = await self.aredis.xreadgroup(
                        GROUP, self.consumer, {REPLIES_STREAM: start}, count=64, block=1000
                    )
                    entries = answer[0][1] if answer else []
                    if backlog and not entries:
                        backlog = False
                        continue
            except (RedisError, OSError) as exc:
                log.warning("replies stream unavailable (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for entry_id, fields in entries:
                raw = fields.get(b"event") or fields.get("event")
                try:
                    event = ReplyEvent.model_validate_json(raw)
                except ValueError:
                    log.error("dropping a malformed replies-stream entry %s", entry_id)
                    await self._ack(entry_id)
                    continue
                yield Delivery(event, functools.partial(self._ack, entry_id))

    async def _claim_idle(self) -> list[tuple[Any, Any]]:
        """Entries idle in any consumer for ``CLAIM_IDLE_S``, now this one's; those delivered
        ``MAX_DELIVERIES`` times are dead-lettered instead of returned."""
        idle_ms = int(CLAIM_IDLE_S * 1000)
        claimed: list[tuple[Any, Any]] = []
        start: Any = "0-0"
        while True:
            answer = await self.aredis.xautoclaim(
                REPLIES_STREAM, GROUP, self.consumer, idle_ms, start_id=start, count=64
            )
            start, entries = answer[0], answer[1]
            claimed += [(entry_id, fields) for entry_id, fields in entries if fields]
            if start in (b"0-0", "0-0") or not entries:
                break
        if not claimed:
            return []
        counts = {
            p["message_id"]: int(p["times_delivered"])
            for p in await self.aredis.xpending_range(
                REPLIES_STREAM,
                GROUP,
                claimed[0][0],
                claimed[-1][0],
                len(claimed) + 64,
                consumername=self.consumer,
            )
        }
        alive = []
        for entry_id, fields in claimed:
            if counts.get(entry_id, 0) > MAX_DELIVERIES:
                await self._dead_letter(entry_id, fields)
            else:
                alive.append((entry_id, fields))
        log.info(
            "claimed %d idle replies (%d dead-lettered)", len(claimed), len(claimed) - len(alive)
        )
        return alive

    async def _dead_letter(self, entry_id: Any, fields: Any) -> None:
        log.error(
            "reply %s undeliverable after %d attempts: dead-lettered", entry_id, MAX_DELIVERIES
        )
        pipe = self.aredis.pipeline()
        pipe.xadd(DEAD_LETTERS, fields, maxlen=10_000, approximate=True)
        pipe.xack(REPLIES_STREAM, GROUP, entry_id)
        await pipe.execute()

    async def _ensure_group(self) -> None:
        try:
            # From the start of the stream: after a Redis restart the worker may publish before
            # the group exists again; delivered markers keep old entries from going out twice.
            await self.aredis.xgroup_create(REPLIES_STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _ack(self, entry_id: Any) -> None:
        await self.aredis.xack(REPLIES_STREAM, GROUP, entry_id)

    async def model_info(self) -> dict[str, Any] | None:
        raw = await self._sync(self.redis.get, MODEL_INFO_KEY)
        return json.loads(raw) if raw else None

    async def stats(self) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            try:
                undelivered = self.redis.xpending(REPLIES_STREAM, GROUP)["pending"]
            except ResponseError:  # no group yet: nothing was ever delivered
                undelivered = 0
            return {
                "queued replies": self.redis.llen(INFERENCE_QUEUE),
                "undelivered replies": undelivered,
            }

        return await self._sync(read)

    async def close(self) -> None:
        await self.aredis.aclose()
        self.redis.close()


class RedisState:
    """ChatState shared by every bot replica through Redis."""

    def __init__(self, redis_url: str) -> None:
        self.redis = async_client(redis_url)

    async def seen(self, chat_id: int, message_id: int) -> bool:
        try:
            return bool(await self.redis.exists(f"s2s:bot:seen:{chat_id}:{message_id}"))
        except (RedisError, OSError) as exc:
            raise TransportDown(str(exc)) from exc

    async def mark_seen(self, chat_id: int, message_id: int) -> None:
        try:
            await self.redis.set(f"s2s:bot:seen:{chat_id}:{message_id}", 1, ex=SEEN_TTL_S)
        except (RedisError, OSError) as exc:
            raise TransportDown(str(exc)) from exc

    async def delivered(self, chat_id: int, message_id: int) -> bool:
        return bool(await self.redis.exists(f"s2s:bot:delivered:{chat_id}:{message_id}"))

    async def mark_delivered(self, chat_id: int, message_id: int) -> None:
        await self.redis.set(f"s2s:bot:delivered:{chat_id}:{message_id}", 1, ex=SEEN_TTL_S)

    async def style(self, chat_id: int) -> str | None:
        try:
            raw = await self.redis.get(f"s2s:bot:style:{chat_id}")
        except (RedisError, OSError):
            return None  # the default style serves while Redis is away
        return raw.decode() if isinstance(raw, bytes) else raw

    async def set_style(self, chat_id: int, style: str) -> None:
        try:
            await self.redis.set(f"s2s:bot:style:{chat_id}", style, ex=STYLE_TTL_S)
        except (RedisError, OSError) as exc:
            raise TransportDown(str(exc)) from exc

    async def forget_chat(self, chat_id: int) -> None:
        try:
            keys = [f"s2s:bot:style:{chat_id}"]
            for kind in ("seen", "delivered"):
                keys += [k async for k in self.redis.scan_iter(f"s2s:bot:{kind}:{chat_id}:*")]
            await self.redis.delete(*keys)
        except (RedisError, OSError) as exc:
            raise TransportDown(str(exc)) from exc
