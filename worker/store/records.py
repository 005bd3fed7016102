"""Plain values that cross the store's boundary (no ORM objects leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FEEDBACK_VALUES = (-1, 1)


def storable_text(text: str) -> str:
    """What the store keeps of a text: everything exactly, except NUL characters, which
    PostgreSQL refuses in text columns (removed on every database alike)."""
    return text.replace("\x00", "")


@dataclass(frozen=True)
class GenerationInfo:
    model_version: str | None = None
    decoding: dict[str, Any] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)  # [{"text", "score"}]
    queue_wait_ms: float | None = None
    decode_ms: float | None = None
    worker_id: str | None = None
    batch_size: int | None = None


@dataclass(frozen=True)
class Exchange:
    """One user message and the bot's reply, as the worker stores them."""

    chat_id: int
    user_id: int
    message_id: int  # the user's Telegram message id: the idempotency key with chat_id
    user_text: str
    reply_text: str
    generation: GenerationInfo = field(default_factory=GenerationInfo)
    chat_type: str = "private"
    username: str | None = None
    language: str | None = None
    sent_at: float | None = None  # unix time the bot queued the message (None: unknown)


@dataclass(frozen=True)
class StoredReply:
    user_turn_id: int
    bot_turn_id: int
    text: str
    created: bool  # False: this message had been answered before; text is that reply
    # True: the user asked to be forgotten after sending it; nothing was stored (ids are 0)
    forgotten: bool = False


def rating(lowest_vote: int | None, highest_vote: int | None) -> int:
    """The one definition of a liked reply: +1 when someone rated it 👍 and nobody 👎,
    -1 when anyone rated it 👎 (a 👎 is never a training target), 0 when unrated."""
    if lowest_vote == -1:
        return -1
    return 1 if highest_vote == 1 else 0


@dataclass(frozen=True)
class LoggedTurn:
    """One stored turn as exports and replay read it."""

    id: int
    speaker: str  # user | bot
    text: str
    created_at: datetime  # timezone-aware UTC on every database
    user_forgotten: bool  # its user asked to be forgotten: never exported
    reply_to_id: int | None = None
    model_version: str | None = None  # bot turns: the model that wrote it
    decoding: dict[str, Any] | None = None  # bot turns: the settings it was decoded with
    rating: int = 0  # see ``rating``


@dataclass(frozen=True)
class LoggedConversation:
    id: int
    turns: list[LoggedTurn]  # in the order they were said
