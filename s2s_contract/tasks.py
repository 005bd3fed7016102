"""Task names, queues, Redis keys and payload schemas: the bot sends, the worker obeys.

Payloads are JSON; each schema forbids unknown fields so a malformed message is refused
loudly instead of half-understood.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from s2s_contract.styles import DEFAULT_STYLE, Style

REPLY_TASK = "s2s.reply"
FEEDBACK_TASK = "s2s.feedback"
FORGET_TASK = "s2s.forget"
RESET_TASK = "s2s.reset"
RETRAIN_TASK = "s2s.retrain"

INFERENCE_QUEUE = "inference"
MAINTENANCE_QUEUE = "maintenance"
# Retraining runs torch for many minutes: only a trainer process consumes this queue, so
# training never shares a serving worker's device and threads.
TRAINING_QUEUE = "training"
TASK_QUEUES = {
    REPLY_TASK: INFERENCE_QUEUE,
    FEEDBACK_TASK: MAINTENANCE_QUEUE,
    FORGET_TASK: MAINTENANCE_QUEUE,
    RESET_TASK: MAINTENANCE_QUEUE,
    RETRAIN_TASK: TRAINING_QUEUE,
}
RETRAIN_LOCK = "s2s:lock:retrain"  # one retraining at a time, redeliveries included

REPLIES_STREAM = "s2s:replies"  # the worker XADDs every reply; the bot's group consumes it
MODEL_INFO_KEY = "s2s:model"  # JSON: the version workers serve and its headline numbers
MAX_TEXT = 4096  # Telegram's message limit


def pending_key(chat_id: int) -> str:
    """Redis hash of the chat's messages sent to the worker and not yet answered
    (message id → ReplyRequest JSON). The worker answers them in message-id order."""
    return f"s2s:pending:{chat_id}"


def chat_lock_key(chat_id: int) -> str:
    """Redis lock that keeps one chat's messages in order."""
    return f"s2s:lock:chat:{chat_id}"


# Ids are stored as PostgreSQL bigint: anything wider is refused here, at the edge, instead
# of failing as "bigint out of range" after the user was told all is well.
BigInt = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContextTurn(_Payload):
    speaker: Literal["user", "bot"]
    text: str = Field(max_length=MAX_TEXT)


class ReplyRequest(_Payload):
    chat_id: BigInt
    user_id: BigInt
    message_id: BigInt
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    # Ignored: bots before the database became the only source of context sent their Redis
    # copy of the chat's recent turns here. Accepted so their queued messages are not
    # refused during an upgrade; to be dropped in the next release.
    context: list[ContextTurn] = Field(default_factory=list, max_length=50)
    style: Style = DEFAULT_STYLE
    chat_type: Literal["private", "group"] = "private"
    username: str | None = Field(default=None, max_length=64)
    language: str | None = Field(default=None, max_length=16)
    enqueued_at: float | None = None  # unix time the bot sent it (queue-wait metric)


class FeedbackRequest(_Payload):
    turn_id: BigInt
    user_id: BigInt
    value: Literal[-1, 1]


class ForgetRequest(_Payload):
    user_id: BigInt
    chat_ids: list[BigInt] = Field(default_factory=list)  # inboxes to drop their messages from


class ResetRequest(_Payload):
    chat_id: BigInt


class RetrainRequest(_Payload):
    """Export → fine-tune the serving model → replay → register; promote if the gate passes."""

    epochs: int = Field(default=1, ge=1, le=50)
    mix: float = Field(default=0.5, ge=0.0, lt=1.0)
    replay_limit: int = Field(default=500, ge=1, le=100_000)
    min_pairs: int = Field(default=20, ge=1)


class ReplyEvent(_Payload):
    """What the worker publishes on the replies stream."""

    chat_id: BigInt
    message_id: BigInt
    bot_turn_id: BigInt
    text: str
    user_id: BigInt | None = None  # whom the reply answers (may vote on it); None: chat_id
