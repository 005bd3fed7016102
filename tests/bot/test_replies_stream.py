"""The replies stream (real Redis, a scratch database): entries a dead bot left behind are
claimed and delivered, and an undeliverable one is dead-lettered, not retried forever."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

import bot.redis_transport as stream
from bot.redis_transport import DEAD_LETTERS, GROUP, RedisTransport
from s2s_contract.tasks import REPLIES_STREAM, ReplyEvent
from tests.utils.services import scratch_redis_url

pytestmark = pytest.mark.integration


@pytest.fixture
def url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(stream, "CLAIM_EVERY_S", 0.2)
    monkeypatch.setattr(stream, "CLAIM_IDLE_S", 0.05)
    url = scratch_redis_url()
    yield url
    redis.Redis.from_url(url).flushdb()


def publish(client: redis.Redis, n: int) -> None:
    for i in range(n):
        event = ReplyEvent(chat_id=5, message_id=i + 1, bot_turn_id=i + 1, text=f"reply {i}")
        client.xadd(REPLIES_STREAM, {"event": event.model_dump_json()})


async def take(transport: RedisTransport, n: int, ack: bool) -> list[int]:
    got: list[int] = []
    async for delivery in transport.replies():
        got.append(delivery.event.message_id)
        if ack:
            await delivery.ack()
        if len(got) == n:
            break
    return got


def test_a_dead_bots_replies_are_claimed_by_the_next(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.xgroup_create(REPLIES_STREAM, GROUP, id="0", mkstream=True)
    publish(client, 3)
    client.xreadgroup(GROUP, "crashed:123", {REPLIES_STREAM: ">"}, count=10)  # never acked

    async def scenario() -> list[int]:
        await asyncio.sleep(0.1)  # idle longer than CLAIM_IDLE_S
        transport = RedisTransport(url, consumer="restarted:456")
        try:
            return await asyncio.wait_for(take(transport, 3, ack=True), 10)
        finally:
            await transport.close()

    assert sorted(asyncio.run(scenario())) == [1, 2, 3]
    assert client.xpending(REPLIES_STREAM, GROUP)["pending"] == 0


def test_an_undeliverable_reply_is_dead_lettered(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "MAX_DELIVERIES", 3)
    client = redis.Redis.from_url(url)
    publish(client, 1)

    async def scenario() -> None:
        transport = RedisTransport(url, consumer="bot:1")
        try:
            for _ in range(4):  # delivered, never acknowledged (Telegram keeps failing)
                await asyncio.wait_for(take(transport, 1, ack=False), 10)
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.1)
            await transport._claim_idle()
        finally:
            await transport.close()

    asyncio.run(scenario())
    assert client.xlen(DEAD_LETTERS) == 1
    assert client.xpending(REPLIES_STREAM, GROUP)["pending"] == 0
