"""The one small interface between the bot and whatever answers it.

``RedisTransport`` (bot/redis_transport.py) sends Celery tasks by name and reads replies from
the Redis stream; the single-process transport (worker/local_transport.py, wired in by the
command line) runs the worker's reply service in a thread pool. Handlers see only this.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from s2s_contract.tasks import FeedbackRequest, ForgetRequest, ReplyRequest
from s2s_contract.transport import Delivery, TransportDown

__all__ = ["ChatState", "Delivery", "MemoryState", "RateLimiter", "Transport", "TransportDown"]


class Transport(Protocol):
    async def ask(self, request: ReplyRequest) -> None:
        """Queue ``request`` (its context is filled in here); raises TransportDown."""

    async def feedback(self, request: FeedbackRequest) -> None: ...

    async def forget(self, request: ForgetRequest) -> None: ...

    async def reset(self, chat_id: int) -> None: ...

    def replies(self) -> AsyncIterator[Delivery]:
        """Replies to deliver, forever; survives outages by waiting and reconnecting."""

    async def model_info(self) -> dict[str, Any] | None:
        """The serving model's version and headline numbers, if known."""

    async def stats(self) -> dict[str, Any]:
        """Queue depths and the like, for /stats."""

    async def close(self) -> None: ...


class ChatState(Protocol):
    """What the bot remembers per chat: seen updates, delivered replies, reply style."""

    async def seen(self, chat_id: int, message_id: int) -> bool:
        """Whether this message was already queued (Telegram re-sends updates)."""

    async def mark_seen(self, chat_id: int, message_id: int) -> None:
        """Remembers that the message is queued: called only once it is, so a bot killed
        before that still answers Telegram's redelivery of the update."""

    async def delivered(self, chat_id: int, message_id: int) -> bool: ...

    async def mark_delivered(self, chat_id: int, message_id: int) -> None: ...

    async def style(self, chat_id: int) -> str | None: ...

    async def set_style(self, chat_id: int, style: str) -> None: ...

    async def forget_chat(self, chat_id: int) -> None:
        """Drops everything remembered about the chat (after /forget in a private chat)."""


@dataclass
class MemoryState:
    """ChatState for one process (single-process mode): bounded, newest kept."""

    capacity: int = 100_000
    _seen: OrderedDict[tuple[int, int], None] = field(default_factory=OrderedDict)
    _delivered: OrderedDict[tuple[int, int], None] = field(default_factory=OrderedDict)
    _styles: dict[int, str] = field(default_factory=dict)

    def _add(self, bucket: OrderedDict[tuple[int, int], None], key: tuple[int, int]) -> bool:
        if key in bucket:
            return False
        bucket[key] = None
        if len(bucket) > self.capacity:
            bucket.popitem(last=False)
        return True

    async def seen(self, chat_id: int, message_id: int) -> bool:
        return (chat_id, message_id) in self._seen

    async def mark_seen(self, chat_id: int, message_id: int) -> None:
        self._add(self._seen, (chat_id, message_id))

    async def delivered(self, chat_id: int, message_id: int) -> bool:
        return (chat_id, message_id) in self._delivered

    async def mark_delivered(self, chat_id: int, message_id: int) -> None:
        self._add(self._delivered, (chat_id, message_id))

    async def style(self, chat_id: int) -> str | None:
        return self._styles.get(chat_id)

    async def set_style(self, chat_id: int, style: str) -> None:
        self._styles[chat_id] = style

    async def forget_chat(self, chat_id: int) -> None:
        for bucket in (self._seen, self._delivered):
            for key in [k for k in bucket if k[0] == chat_id]:
                del bucket[key]
        self._styles.pop(chat_id, None)


@dataclass
class RateLimiter:
    """At most ``limit`` messages per user in any ``window_s``; one notice per window.
    Users quiet for a whole window are forgotten (at most once per window, all at once), so
    the memory follows the users active in the last two windows, not every user ever seen."""

    limit: int
    window_s: float = 60.0
    _times: dict[int, list[float]] = field(default_factory=dict)
    _noticed: dict[int, float] = field(default_factory=dict)
    _pruned_at: float = 0.0

    def allow(self, user_id: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self._prune(now)
        recent = [t for t in self._times.get(user_id, []) if now - t < self.window_s]
        if len(recent) >= self.limit:
            self._times[user_id] = recent
            return False
        recent.append(now)
        self._times[user_id] = recent
        return True

    def should_notify(self, user_id: int, now: float | None = None) -> bool:
        """Whether a refused message deserves the notice (once per window per user)."""
        now = time.monotonic() if now is None else now
        if now - self._noticed.get(user_id, -self.window_s) < self.window_s:
            return False
        self._noticed[user_id] = now
        return True

    def __len__(self) -> int:
        """Users remembered."""
        return len(self._times.keys() | self._noticed.keys())

    def _prune(self, now: float) -> None:
        if now - self._pruned_at < self.window_s:
            return
        self._pruned_at = now
        self._times = {
            u: ts for u, ts in self._times.items() if ts and now - ts[-1] < self.window_s
        }
        self._noticed = {u: t for u, t in self._noticed.items() if now - t < self.window_s}
