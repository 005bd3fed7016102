"""The bot's Redis clients after a Redis restart: a stale pooled connection is retried, not
reported as "my reply service is unreachable" (a private redis-server the test restarts)."""

from __future__ import annotations

import asyncio

import pytest

from bot.redis_transport import RedisState
from tests.utils.services import PrivateRedis

pytestmark = pytest.mark.integration


def test_state_works_after_an_idle_redis_restart() -> None:
    server = PrivateRedis()
    server.start()
    try:
        state = RedisState(server.url)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(state.mark_seen(1, 1))  # a pooled connection now exists
        server.stop()
        server.start()  # same port, fresh process: the pooled connection is dead
        assert loop.run_until_complete(state.seen(1, 2)) is False  # no TransportDown
        loop.run_until_complete(state.redis.aclose())
        loop.close()
    finally:
        server.stop()


def test_a_redis_server_that_cannot_start_is_not_left_behind() -> None:
    """Its port taken, redis-server exits at start: the failure says so and nothing of it
    stays (a timed-out start used to leave the server running behind the failed test)."""
    import socket

    server = PrivateRedis()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        with pytest.raises(AssertionError, match="exited at start"):
            server.start()
    assert server.proc is None
