"""The Celery broker transport every sender and worker uses: kombu's Redis transport, with
one Redis client per channel instead of one per command.

kombu builds a new ``redis.Redis`` for each command it sends outside its polling
connection: every published task, every late acknowledgement, every prefetched task's
entry in the unacked index. redis-py 8 fills a case-insensitive table of some 300 response
callbacks in each client's constructor, about half a millisecond of CPU: more than the
command itself, and on a worker all of it on the consumer thread, under the GIL that the
reply threads need too. A client only wraps the connection pool and is safe to share
between threads, so the channel keeps one (and builds a new one if kombu replaces its
pool). Behaviour is otherwise kombu's own, except on a connection kombu has already closed:
there kombu's own ``_create_client`` rebuilds a pool from the closed connection's parameters
and fails with ``AttributeError: 'NoneType' object has no attribute 'hostname'`` (kombu
issue #582), which Celery takes for an unrecoverable error and stops the worker; this
channel raises a connection error instead, which Celery's reconnect loop expects, and the
unacknowledged messages come back through the visibility timeout. And an entry on a queue
that is not a kombu message (not JSON, or JSON of another shape), which kombu's read loop
raises from and Celery takes for an unrecoverable error, is dropped with a log line: BRPOP
has already taken it off the queue, and one stray entry must not stop every worker that
reads it.

Messages are taken and acknowledged in bulk. kombu reads one message per BRPOP and writes
its unacknowledged entry, then later removes it, in a round trip each: three round trips of
Python on the consumer thread per message, which capped a worker at ~110 messages/s with
the consumer thread busy all the time (py-spy, bench/pipeline.py at 256 chats). After a
BRPOP delivers one message, this channel takes up to ``DRAIN_MAX`` more from the same queue
(``RPOP key count``, as many as the prefetch allows), writes their unacknowledged entries
in one pipeline and only then delivers them; and on a worker's event loop, the
acknowledgements of one loop turn are removed from Redis in one pipeline at the next turn
(before a shutdown restores what is left). A message popped but not yet recorded can be
lost with the process, as with kombu's own BRPOP: the chats' inboxes and the sweeper
(worker/sweeper.py) answer such a message.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

# The value of Celery's ``broker_transport`` setting (the URL's scheme still names Redis).
TRANSPORT = "s2s_contract.broker:Transport"
log = logging.getLogger(__name__)
# Most messages taken off a queue in one round trip after a BRPOP.
DRAIN_MAX = 64


class QoS(kombu_redis.QoS):
    """kombu's unacknowledged-message bookkeeping, in bulk (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recorded: set[str] = set()  # tags whose unacked entry a bulk read wrote
        self._acks: list[str] = []  # acknowledged tags not yet removed from Redis
        self.defer_acks = False  # True once an event loop flushes them every turn

    def record(self, raws: list[dict[str, Any]]) -> None:
        """Writes the unacked entries of messages about to be delivered, in one pipeline."""
        if not raws:
            return
        now = time.time()
        with self.pipe_or_acquire() as pipe:
            for raw in raws:
                tag, info = raw["properties"]["delivery_tag"], raw["properties"]["delivery_info"]
                pipe.zadd(self.unacked_index_key, {tag: now})
                pipe.hset(
                    self.unacked_key, tag, dumps([raw, info["exchange"], info["routing_key"]])
                )
            pipe.execute()
        self._recorded.update(raw["properties"]["delivery_tag"] for raw in raws)

    def append(self, message: Any, delivery_tag: str) -> None:
        if delivery_tag in self._recorded:
            self._recorded.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)
        else:
            super().append(message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        if not self.defer_acks:
            super().ack(delivery_tag)
            return
        self._acks.append(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def flush_acks(self) -> None:
        """Removes the acknowledged messages' entries from Redis in one pipeline; kept for
        the next turn if Redis is away (meanwhile they can only come back as repeats)."""
        if not self._acks:
            return
        tags, self._acks = self._acks, []
        try:
            with self.pipe_or_acquire() as pipe:
                for tag in tags:
                    self._remove_from_indices(tag, pipe)
                pipe.execute()
        except redis.exceptions.RedisError as exc:
            self._acks = tags + self._acks
            log.warning("acknowledgements not written (%s); next turn", type(exc).__name__)

    def restore_unacked(self, client: Any = None) -> None:
        self.flush_acks()
        super().restore_unacked(client)


class Channel(kombu_redis.Channel):
    _shared_client: tuple[Any, Any] | None = None  # (the pool it wraps, the client)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the polling connection: kombu already keeps that client
            return super()._create_client(asynchronous=True)
        if self._pool is None and self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection is closed")
        pool = self.pool
        shared = self._shared_client
        if shared is None or shared[0] is not pool:
            shared = self._shared_client = (pool, super()._create_client())
        return shared[1]

    QoS = QoS

    def _brpop_read(self, **options: Any) -> Any:
        try:
            if not super()._brpop_read(**options):
                return False
        except (ValueError, TypeError, KeyError) as exc:  # JSONDecodeError is a ValueError
            _dropped(exc)
            return False
        self._drain(self._queue_cycle.items[-1])  # BRPOP's queue, rotated to the end
        return True

    def _drain(self, queue: str) -> None:
        """Delivers up to ``DRAIN_MAX`` more messages of ``queue``, recorded first."""
        room = self.qos.can_consume_max_estimate()
        room = DRAIN_MAX if room is None else min(room, DRAIN_MAX)
        if room <= 0:
            return
        with self.conn_or_acquire() as client:
            items = client.rpop(self._q_for_pri(queue, 0), room) or []
        raws = []
        for item in items:
            try:
                raw = loads(bytes_to_str(item))
                raw["properties"]["delivery_info"]["routing_key"]  # a kombu message's shape
                raws.append(raw)
            except (ValueError, TypeError, KeyError) as exc:
                _dropped(exc)
        self.qos.record(raws)
        for raw in raws:
            try:
                self.connection._deliver(raw, queue)
            except (ValueError, TypeError, KeyError) as exc:
                _dropped(exc)


def _dropped(exc: Exception) -> None:
    log.error(
        "dropped a broker entry that is not a task message (%s: %s); it was "
        "already taken off its queue, the worker goes on",
        type(exc).__name__,
        exc,
    )


class Transport(kombu_redis.Transport):
    Channel = Channel

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        """On a worker's event loop: each turn first writes the acknowledgements the last
        turn made (see the module docstring)."""
        super().register_with_event_loop(connection, loop)
        for channel in self.channels:
            channel.qos.defer_acks = True
        loop.on_tick.add(self._flush_acks)

    def _flush_acks(self) -> None:
        for channel in self.channels:
            if channel.qos.defer_acks:
                channel.qos.flush_acks()
