"""The bot's settings, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from telegram import Update

from s2s_contract.settings import Settings, parse_ids


@dataclass(frozen=True)
class BotConfig:
    admin_ids: frozenset[int] = frozenset()
    allowed_chat_ids: frozenset[int] = frozenset()  # empty: every chat
    rate_limit: int = 20  # messages per user per minute
    reply_timeout_s: float = 30.0  # "typing…" this long at most, then one apology
    typing_every_s: float = 4.0  # Telegram shows "typing" for 5 s
    max_input_chars: int = 500
    heartbeat_file: Path | None = None  # touched every HEARTBEAT_S while the loop runs

    @classmethod
    def from_settings(cls, settings: Settings) -> BotConfig:
        return cls(
            admin_ids=parse_ids(settings.admin_ids),
            allowed_chat_ids=parse_ids(settings.allowed_chat_ids),
            rate_limit=settings.bot_rate_limit,
            reply_timeout_s=settings.bot_reply_timeout_s,
            max_input_chars=settings.bot_max_input_chars,
            heartbeat_file=settings.bot_heartbeat_file,
        )

    def allows(self, update: Update) -> bool:
        """Whether the update comes from a chat the bot answers (ALLOWED_CHAT_IDS)."""
        chat = update.effective_chat
        return chat is not None and (not self.allowed_chat_ids or chat.id in self.allowed_chat_ids)
