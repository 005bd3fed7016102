"""What a bot transport hands over, shared by the bot and the worker's in-process transport
(neither may import the other)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from s2s_contract.tasks import ReplyEvent


class TransportDown(Exception):
    """The transport cannot take work now (Redis unreachable, pool closed)."""


@dataclass(frozen=True)
class Delivery:
    """A reply to send; ``ack`` once Telegram accepted it (until then it may come again)."""

    event: ReplyEvent
    ack: Callable[[], Awaitable[None]]
