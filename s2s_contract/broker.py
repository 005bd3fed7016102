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
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

# The value of Celery's ``broker_transport`` setting (the URL's scheme still names Redis).
TRANSPORT = "s2s_contract.broker:Transport"
log = logging.getLogger(__name__)


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

    def _brpop_read(self, **options: Any) -> Any:
        try:
            return super()._brpop_read(**options)
        except (ValueError, TypeError, KeyError) as exc:  # JSONDecodeError is a ValueError
            log.error(
                "dropped a broker entry that is not a task message (%s: %s); it was "
                "already taken off its queue, the worker goes on",
                type(exc).__name__,
                exc,
            )
            return False


class Transport(kombu_redis.Transport):
    Channel = Channel
