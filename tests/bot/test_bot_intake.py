"""The bot's text intake in-process, with small fakes for Telegram and the transport: a
message is marked seen only once it is queued."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from bot.config import BotConfig
from bot.handlers import ChatBot
from bot.texts import DOWN, FORGET_DONE
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


def test_odd_but_harmless_messages_are_queued_not_dropped() -> None:
    """A 40-character language code and a lone surrogate in the text used to fail
    validation (or logging) and drop the message silently."""

    async def scenario() -> FlakyTransport:
        transport = FlakyTransport(failures=0)
        chatbot = ChatBot(BotConfig(reply_timeout_s=0.05), transport, MemoryState())  # type: ignore[arg-type]
        odd = update(2, "caf\ud800e time")
        odd.message.from_user.language_code = "x" * 40
        await chatbot.text(odd, SimpleNamespace(bot=FakeBot()))  # type: ignore[arg-type]
        await asyncio.gather(*chatbot._tasks, return_exceptions=True)
        return transport

    (request,) = asyncio.run(scenario()).queued
    assert request.text == "cafe time" and request.language == "x" * 16
    request.model_dump_json()  # encodable: nothing of the surrogate left


class Query:
    """A callback query as PTB hands it over, minus the network."""

    def __init__(self, data: str | None, message: Any) -> None:
        self.data, self.message = data, message
        self.from_user = SimpleNamespace(id=7)
        self.answers: list[str | None] = []

    async def answer(self, text: str | None = None, **_: Any) -> None:
        self.answers.append(text)

    async def edit_message_text(self, text: str) -> None:
        if self.message is None or getattr(self.message, "inaccessible", False):
            raise TypeError("This message is not accessible")  # what PTB raises


class RecordingTransport(FlakyTransport):
    def __init__(self, failures: int = 0) -> None:
        super().__init__(failures)
        self.forgotten: list[Any] = []

    async def forget(self, request: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise TransportDown("connection refused")
        self.forgotten.append(request)


def press(transport: RecordingTransport, query: Query) -> None:
    chatbot = ChatBot(BotConfig(), transport, MemoryState())  # type: ignore[arg-type]
    asyncio.run(chatbot.buttons.press(SimpleNamespace(callback_query=query), None))  # type: ignore[arg-type]


def test_forget_works_on_a_question_that_can_no_longer_be_edited() -> None:
    transport = RecordingTransport()
    old = SimpleNamespace(chat=SimpleNamespace(id=7), inaccessible=True)
    query = Query("forget:yes", old)
    press(transport, query)
    assert [r.user_id for r in transport.forgotten] == [7]
    assert query.answers == [FORGET_DONE]  # told once, after the outcome


def test_callbacks_are_answered_exactly_once() -> None:
    no_data = Query(None, None)
    press(RecordingTransport(), no_data)
    assert no_data.answers == [None]
    down = Query("forget:yes", SimpleNamespace(chat=SimpleNamespace(id=7)))
    press(RecordingTransport(failures=1), down)
    assert down.answers == [DOWN]  # not "done" first and "down" second


class AboutTransport:
    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info

    async def model_info(self) -> dict[str, Any]:
        return self.info


def test_about_says_how_the_model_was_trained_in_good_english() -> None:
    from worker.service import model_summary

    def about(meta: dict[str, Any]) -> str:
        info = model_summary("f" * 64, meta)
        bot = FakeBot()
        chatbot = ChatBot(BotConfig(), AboutTransport(info), MemoryState())  # type: ignore[arg-type]
        asyncio.run(chatbot.commands.about(update(9, "/about"), SimpleNamespace(bot=bot)))  # type: ignore[arg-type]
        return bot.said[0]

    fine_tuned = {"training": {"steps": 1}, "command": "s2s train --init-from /m/default"}
    said = about({**fine_tuned, "init_from": "/m/default", "train_pairs": 32})
    assert "fine-tuned from default on 32 pairs (1 step)" in said
    assert "fine-tuned (1 step)" in about(fine_tuned)  # a checkpoint from before the origin
    assert "trained for 13,560 steps" in about({"training": {"steps": 13560}})
