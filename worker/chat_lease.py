"""The chat locks a worker holds while it answers a batch: one lease over many chats.

A batch takes the lock of every chat it answers in one round trip (``SET NX PX``, one
token for the whole batch); chats locked by another worker are left for later by the
caller. While the batch works, a watchdog thread renews every lock it holds every
``RENEW_S`` (one script call), so only a dead holder's locks expire, after ``TTL_S``. A
lock found lost (expired and taken, or deleted) means two workers may answer one chat: that
is logged and counted as the bug it is, never retried (the batch's work is done by then).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from redis.exceptions import RedisError

from s2s_contract.tasks import REPLY_TASK, chat_lock_key
from worker import metrics

log = logging.getLogger(__name__)

# A killed holder's chats wait at most TTL_S; a live holder renews well within it.
TTL_S = 30.0
RENEW_S = TTL_S / 3

# KEYS: the chats' lock keys; ARGV[1]: the batch's token, ARGV[2]: the TTL in ms (0: release).
# Renews (or deletes) each lock that still holds the token; returns the keys that do not.
_RENEW_OR_RELEASE = """
local lost = {}
for _, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[1] then
    if ARGV[2] == '0' then redis.call('del', key) else redis.call('pexpire', key, ARGV[2]) end
  else
    table.insert(lost, key)
  end
end
return lost
"""


class ChatLease:
    def __init__(self, redis: Any, ttl_s: float = TTL_S, renew_s: float = RENEW_S) -> None:
        self.redis, self.ttl_ms, self.renew_s = redis, int(ttl_s * 1000), renew_s
        self.token = uuid.uuid4().hex
        self.held: list[int] = []
        self._script = redis.register_script(_RENEW_OR_RELEASE)

    def acquire(self, chat_ids: Iterable[int]) -> list[int]:
        """Takes the locks that are free; returns the chats now held (in the order asked)."""
        wanted = list(dict.fromkeys(chat_ids))
        pipe = self.redis.pipeline(transaction=False)
        for chat_id in wanted:
            pipe.set(chat_lock_key(chat_id), self.token, nx=True, px=self.ttl_ms)
        taken = [chat for chat, ok in zip(wanted, pipe.execute(), strict=True) if ok]
        self.held.extend(taken)
        return taken

    def renew(self) -> list[int]:
        """Extends every held lock; returns the chats whose lock was lost (no longer held)."""
        lost = self._call(self.ttl_ms)
        self.held = [chat for chat in self.held if chat not in lost]
        return lost

    def release(self) -> list[int]:
        """Deletes every held lock that is still this lease's; returns the lost ones."""
        lost = self._call(0)
        self.held = []
        return lost

    def _call(self, ttl_ms: int) -> list[int]:
        if not self.held:
            return []
        keys = [chat_lock_key(chat) for chat in self.held]
        answer = self._script(keys, [self.token, ttl_ms])
        lost = {k.decode() if isinstance(k, bytes) else k for k in answer}
        return [chat for chat, key in zip(self.held, keys, strict=True) if key in lost]

    @contextmanager
    def kept(self) -> Iterator[None]:
        """Renews the held locks from a watchdog thread while the block runs, then releases
        them."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.renew_s):
                try:
                    _report_lost(self.renew(), "while answering")
                except RedisError as exc:  # Redis away for a moment: the TTL covers a retry
                    log.warning("chat locks not renewed (%s)", type(exc).__name__)

        watchdog = threading.Thread(target=renew, name="s2s-chat-lease", daemon=True)
        watchdog.start()
        try:
            yield
        finally:
            stop.set()
            watchdog.join()
            try:
                _report_lost(self.release(), "before release")
            except RedisError as exc:  # the locks expire after TTL_S instead
                log.warning("chat locks not released (%s)", type(exc).__name__)


def _report_lost(chats: list[int], when: str) -> None:
    for chat_id in chats:
        log.error("chat %s: lock lost %s (another worker may answer it too)", chat_id, when)
        metrics.TASK_ERRORS.labels(REPLY_TASK, "lock_lost").inc()
