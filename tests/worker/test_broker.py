"""Redis plumbing: the broker transport and the reply threads' connections."""

from __future__ import annotations

import pytest
import redis

from bot.redis_transport import sender
from s2s_contract.broker import Channel
from s2s_contract.settings import Settings
from tests.utils.services import scratch_redis_url
from worker.celery_app import create_app

pytestmark = pytest.mark.integration  # Redis at REDIS_URL: missing under CI fails the run


@pytest.fixture
def url() -> str:
    return scratch_redis_url()


def test_worker_and_bot_use_it_and_a_channel_keeps_one_client(url: str) -> None:
    for app in (create_app(Settings(redis_url=url)), sender(url)):
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            assert isinstance(channel, Channel)
            first = channel._create_client()
            assert channel._create_client() is first
            with channel.conn_or_acquire() as client:
                assert client is first
            channel._pool = None  # as kombu does when it drops its connections
            fresh = channel._create_client()
            assert fresh is not first and fresh.connection_pool is channel.pool
            assert channel._create_client(asynchronous=True) is not fresh  # the poller's own


def test_a_closed_connection_is_a_connection_error_not_a_crash(url: str) -> None:
    """kombu's Connection.collect() drops the transport's connection info before a channel
    it missed restores its unacknowledged messages; building a client then must raise what
    Celery's reconnect loop ignores, not AttributeError (kombu #582), which stops a worker."""
    raw = redis.Redis.from_url(url)
    raw.flushdb()
    app = create_app(Settings(redis_url=url))
    connection = app.connection_for_write()
    channel = connection.default_channel
    app.send_task("s2s.test", args=[1], queue="probe", connection=connection)
    assert channel.basic_get("probe", no_ack=False) is not None  # delivered, unacknowledged
    channel._disconnect_pools()
    connection.transport.client = None  # what Connection.collect() leaves behind
    with pytest.raises(redis.exceptions.ConnectionError):
        channel.qos.restore_unacked()
    assert isinstance(redis.exceptions.ConnectionError(), connection.connection_errors)
    channel.qos._delivered.clear()  # nothing left for kombu's restore-at-exit finalizer
    raw.flushdb()


def test_tasks_travel_through_it(url: str) -> None:
    """Published, received and acknowledged through the channel's shared client."""
    raw = redis.Redis.from_url(url)
    raw.flushdb()
    app = create_app(Settings(redis_url=url))
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for i in range(3):
            app.send_task("s2s.test", args=[i], queue="probe", connection=connection)
        received = []
        for _ in range(3):
            message = channel.basic_get("probe", no_ack=False)
            assert message is not None
            received.append(message.decode()[0][0])
            message.ack()
        assert sorted(received) == [0, 1, 2]
        assert channel.basic_get("probe") is None
    assert raw.zcard("unacked_index") == 0  # every acknowledgement reached Redis
    raw.flushdb()


def test_a_burst_is_read_in_bulk_recorded_first_and_acknowledged_together(url: str) -> None:
    """One BRPOP, then the rest of the burst in one round trip: in order, each message's
    unacknowledged entry written before it is delivered; deferred acknowledgements reach
    Redis together at the next flush."""
    from kombu import Consumer, Queue

    raw = redis.Redis.from_url(url)
    raw.flushdb()
    app = create_app(Settings(redis_url=url))
    with app.connection_for_write() as connection:
        for i in range(10):
            app.send_task("s2s.test", args=[i], queue="probe", connection=connection)
        channel = connection.default_channel
        received = []

        def on_message(body: object, message: object) -> None:
            assert raw.hexists("unacked", message.delivery_tag)  # type: ignore[attr-defined]
            received.append(message)

        consumer = Consumer(channel, [Queue("probe")], callbacks=[on_message], accept=["json"])
        consumer.qos(prefetch_count=100)
        with consumer:
            connection.drain_events(timeout=5)  # one read
        assert [m.payload[0][0] for m in received] == list(range(10))  # type: ignore[attr-defined]
        channel.qos.defer_acks = True
        for message in received:
            message.ack()  # type: ignore[attr-defined]
        assert raw.zcard("unacked_index") == 10  # not yet written
        channel.qos.flush_acks()
        assert raw.zcard("unacked_index") == 0 and raw.hlen("unacked") == 0
    raw.flushdb()


def test_a_killed_workers_restore_lock_outlives_it_by_seconds_not_minutes(url: str) -> None:
    """The lock a worker holds while it redelivers unacknowledged tasks: were it killed
    holding it, every other worker's redeliveries would wait for its expiry (kombu's
    default: five minutes)."""
    from kombu.transport.redis import Mutex

    from worker.celery_app import RESTORE_LOCK_S

    with create_app(Settings(redis_url=url)).connection_for_write() as connection:
        channel = connection.default_channel
        key, expire = channel.unacked_mutex_key, channel.unacked_mutex_expire
        with channel.conn_or_acquire() as client, Mutex(client, key, expire):
            assert 0 < client.ttl(key) <= RESTORE_LOCK_S == 30
