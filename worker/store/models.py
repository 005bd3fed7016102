"""The dialogue schema: SQLAlchemy 2 typed ORM. The database is the source of truth for
every dialogue; unique constraints make every write idempotent (one user turn per Telegram
message, one bot turn per user turn, one current conversation per chat, one active model)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# Telegram ids exceed 32 bits; SQLite only auto-increments INTEGER primary keys.
Id = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # Telegram
    username: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    forgotten_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (CheckConstraint("type IN ('private', 'group')", name="type"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # Telegram
    type: Mapped[str] = mapped_column(String(16), default="private")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        # At most one open conversation per chat, so concurrent writers agree on it.
        Index(
            "uq_conversations_open_chat",
            "chat_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Turn(Base):
    __tablename__ = "turns"
    __table_args__ = (
        CheckConstraint("speaker IN ('user', 'bot')", name="speaker"),
        UniqueConstraint("chat_id", "telegram_message_id", name="uq_turns_chat_message"),
        UniqueConstraint("reply_to_id", name="uq_turns_reply_to_id"),
        Index("ix_turns_conversation_created", "conversation_id", "id"),
        Index("ix_turns_created_at", "created_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(BigInteger)  # denormalized for the message key
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    speaker: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint("status IN ('candidate', 'active', 'canary', 'retired')", name="status"),
        CheckConstraint(
            "canary_share IS NULL OR (canary_share BETWEEN 1 AND 99)", name="canary_share"
        ),
        Index(
            "uq_model_versions_one_active",
            "status",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index(
            "uq_model_versions_one_canary",
            "status",
            unique=True,
            sqlite_where=text("status = 'canary'"),
            postgresql_where=text("status = 'canary'"),
        ),
    )
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the weights
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # status canary: the percentage of chats it answers beside the active version
    canary_share: Mapped[int | None] = mapped_column(Integer)


class Generation(Base):
    __tablename__ = "generations"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    turn_id: Mapped[int] = mapped_column(
        ForeignKey("turns.id", ondelete="CASCADE"), unique=True
    )  # the bot turn
    model_version: Mapped[str | None] = mapped_column(String(64), index=True)
    decoding: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    candidates: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{text, score}]
    queue_wait_ms: Mapped[float | None] = mapped_column(Float)
    decode_ms: Mapped[float | None] = mapped_column(Float)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    batch_size: Mapped[int | None] = mapped_column(Integer)


class Feedback(Base):
    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("value IN (-1, 1)", name="value"),
        UniqueConstraint("turn_id", "user_id", name="uq_feedback_turn_user"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    value: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
