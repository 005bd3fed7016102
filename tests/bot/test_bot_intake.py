"""The bot's text intake in-process, with small fakes for Telegram and the transport: a
message is marked seen only once it is queued."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from bot.handlers import DOWN, BotConfig, ChatBot
from bot.transport import MemoryState, TransportDown
from s2s_contract.tasks import ReplyRequest


class FlakyTransport:
    """Refuses the first ``failures`` requests (the broker is down), then queues them."""

    def __init__(self, failures: int) -> None:
        self.failures, self.queued = failures, []  # type: ignore[var-annotated]

    async def ask(self, request: ReplyRequest) -> None:
        if self.failures:
            self.failures -= 1
            raise TransportDown("connection refused")
        self.queued.append(request)


class FakeBot:
    id, username = 99, "s2sbot"

    def __init__(self) -> None:
        self.said: list[str] = []

    async def send_message(self, chat_id: int, text: str, **_: Any) -> None:
        self.said.append(text)

    async def send_chat_action(self, chat_id: int, action: str, **_: Any) -> None:
        pass


def update(message_id: int, text: str) -> Any:
    chat = SimpleNamespace(id=7, type="private")
    user = SimpleNamespace(id=7, username=None, language_code=None)
    message = SimpleNamespace(
        text=text, from_user=user, chat=chat, message_id=message_id, reply_to_message=None
    )
    return SimpleNamespace(message=message, effective_chat=chat)


def test_a_message_that_could_not_be_queued_is_not_marked_seen() -> None:
    """Telegram re-sends an update the bot did not confirm: after a failed queueing (or a
    crash before it), the re-sent update must be queued, not dropped as a repeat."""

    async def scenario() -> tuple[FlakyTransport, FakeBot]:
        transport, bot = FlakyTransport(failures=1), FakeBot()
        chatbot = ChatBot(BotConfig(reply_timeout_s=0.05), transport, MemoryState())  # type: ignore[arg-type]
        context = SimpleNamespace(bot=bot)
        await chatbot.text(update(1, "hello"), context)  # type: ignore[arg-type]
        await chatbot.text(update(1, "hello"), context)  # type: ignore[arg-type]
        await chatbot.text(update(1, "hello"), context)  # type: ignore[arg-type]
        await asyncio.gather(*chatbot._tasks, return_exceptions=True)
        return transport, bot

    transport, bot = asyncio.run(scenario())
    assert [r.message_id for r in transport.queued] == [1]  # queued once, on the re-send
    assert bot.said[0] == DOWN
