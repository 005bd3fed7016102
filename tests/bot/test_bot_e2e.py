"""End to end: scripted Telegram users → fake Bot API server → the real `s2s bot` process →
the worker (a real Celery worker with Redis, or the in-process single-process mode) → the
database → replies back through the same server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import text

from bot.texts import FORGET_ASK, FORGET_DONE, RATE_LIMITED, RESET_DONE, TEXT_ONLY, printable
from bot.votes import NOT_YOURS
from s2s_contract.tasks import REPLIES_STREAM, ReplyEvent
from tests.utils.fake_telegram import BOT_USERNAME, FakeTelegram, Sent
from tests.utils.services import bot_env, bot_process, scratch_redis_url, worker_process
from worker.store import DialogueStore
from worker.store.migrate import upgrade

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # the celery case: Redis


@pytest.fixture(params=["single-process", "celery"])
def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, checkpoint_dir: Path
) -> Iterator[dict[str, Any]]:
    fake = FakeTelegram().start()
    db_url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    upgrade(db_url)
    env = bot_env(
        fake.token,
        fake.base_url,
        db_url,
        checkpoint_dir,
        ADMIN_IDS="1",
        BOT_REPLY_TIMEOUT_S="60",
        REDIS_URL="",
        BOT_HEARTBEAT_FILE=str(tmp_path / "heartbeat"),
    )
    with ExitStack() as stack:
        if request.param == "celery":
            env["REDIS_URL"] = scratch_redis_url()
            stack.enter_context(worker_process(env, tmp_path / "worker.log"))
        proc = stack.enter_context(bot_process(env, tmp_path / "bot.log"))
        store = DialogueStore(db_url)
        try:
            fake.wait_for(lambda: "getUpdates" in fake.calls, timeout=60)
            yield {
                "fake": fake,
                "store": store,
                "proc": proc,
                "log": tmp_path / "bot.log",
                "redis": env["REDIS_URL"] or None,
            }
        finally:
            store.engine.dispose()
            fake.stop()
    log_text = (tmp_path / "bot.log").read_text(errors="replace")
    assert fake.token not in log_text, "the token reached the bot's log"


def _one_reply(fake: FakeTelegram, message: dict[str, Any], timeout: float = 60) -> Sent:
    replies = fake.wait_for(lambda: fake.replies_to(message), timeout=timeout)
    return replies[0]  # type: ignore[no-any-return]


def _redis_traces(url: str, user: int) -> list[str]:
    """Keys and reply-stream entries that still carry the user's id."""
    client = redis.Redis.from_url(url)
    try:
        keys = [k.decode() for k in client.scan_iter(f"s2s:*:{user}*")]
        for entry_id, fields in client.xrange(REPLIES_STREAM):
            event = ReplyEvent.model_validate_json(fields[b"event"])
            if user in (event.user_id, event.chat_id):
                keys.append(f"{REPLIES_STREAM} {entry_id.decode()}")
        return keys
    finally:
        client.close()


def _rows_with(store: DialogueStore, words: str) -> int:
    with store.engine.connect() as conn:
        query = text("SELECT count(*) FROM turns WHERE text LIKE :w")
        return int(conn.execute(query, {"w": f"%{words}%"}).scalar_one())


def test_users_chat_rate_and_leave(deployment: dict[str, Any]) -> None:
    fake: FakeTelegram = deployment["fake"]
    store: DialogueStore = deployment["store"]
    assert float((deployment["log"].parent / "heartbeat").read_text()) > 0

    # A text gets one reply, as a reply to it, with 👍/👎; the exchange is in the database.
    hello = fake.user_message(101, 101, "hello there")
    reply = _one_reply(fake, hello)
    assert [b["text"] for b in reply.buttons] == ["👍", "👎"]
    stored = store.find_reply(101, hello["message_id"])
    assert stored is not None and printable(stored.text) in reply.text

    # 👍 is answered at once and stored.
    query_id = fake.press(101, reply, reply.buttons[0]["callback_data"])
    fake.wait_for(lambda: query_id in fake.answered)
    fake.wait_for(lambda: _feedback(store, stored.bot_turn_id) == [1])

    # A button press with garbage data is answered and changes nothing.
    junk = fake.press(101, reply, "fb:oops")
    fake.wait_for(lambda: junk in fake.answered)
    assert _feedback(store, stored.bot_turn_id) == [1]

    # Someone else pressing 👎 on this reply, or forging the data for it, is refused politely.
    down = reply.buttons[1]["callback_data"]
    other = fake.press(303, reply, down)
    forged = fake.press(101, reply, down.rsplit(":", 1)[0] + ":AAAAAAAAAAAA")
    fake.wait_for(lambda: other in fake.answered and forged in fake.answered)
    assert fake.answers[other] == fake.answers[forged] == NOT_YOURS
    assert _feedback(store, stored.bot_turn_id) == [1]

    # Telegram re-sends the update: no second reply. An edit is not answered again either.
    fake.redeliver("message", hello)
    fake.edit(hello, "hello again")
    follow = fake.user_message(101, 101, "how are you")
    _one_reply(fake, follow)
    assert len(fake.replies_to(hello)) == 1

    # Non-text gets the text-only notice.
    sticker = fake.user_message(
        101,
        101,
        sticker={
            "file_id": "s",
            "file_unique_id": "s",
            "type": "regular",
            "width": 1,
            "height": 1,
            "is_animated": False,
            "is_video": False,
        },
    )
    assert _one_reply(fake, sticker).text == TEXT_ONLY

    # Groups: silent unless mentioned; the mention is stripped before decoding.
    ignored = fake.user_message(-500, 102, "just chatting", chat_type="group")
    called = fake.user_message(-500, 102, f"@{BOT_USERNAME} what is up", chat_type="group")
    _one_reply(fake, called)
    assert fake.replies_to(ignored) == []
    group_reply = store.find_reply(-500, called["message_id"])
    assert group_reply is not None
    assert _rows_with(store, f"@{BOT_USERNAME}") == 0

    # A huge message is cut, and the reply says so.
    huge = fake.user_message(103, 103, "word " * 4000)
    assert _one_reply(fake, huge).text.startswith("(Your message was long")

    # Flood control: a 429 delays the reply but does not lose it.
    fake.limit_next = 1
    limited = fake.user_message(104, 104, "fine thanks")
    _one_reply(fake, limited)
    assert fake.limit_next == 0  # the 429 was met (and waited out by the rate limiter)

    # /reset starts a new conversation.
    reset = fake.user_message(101, 101, "/reset")
    assert _one_reply(fake, reset).text == RESET_DONE

    # /forget asks, then deletes every row with the user's words.
    secret = fake.user_message(105, 105, "nothing much secret words")
    _one_reply(fake, secret)
    assert _rows_with(store, "secret words") == 1
    ask = _one_reply(fake, fake.user_message(105, 105, "/forget"))
    assert ask.text == FORGET_ASK
    fake.press(105, ask, "forget:yes")
    fake.wait_for(lambda: any(e.get("text") == FORGET_DONE for e in fake.edits))
    fake.wait_for(lambda: _rows_with(store, "secret words") == 0)
    if deployment["redis"]:  # nor anything of theirs in Redis: inbox, stream, bot state
        fake.wait_for(lambda: _redis_traces(deployment["redis"], 105) == [])

    # Over the rate limit (20 a minute): 20 replies, one polite notice, one message dropped.
    # (Updates are handled concurrently, so which message hits the limit is not fixed.)
    burst = [fake.user_message(106, 106, f"burst {i}") for i in range(22)]
    fake.wait_for(lambda: sum(bool(fake.replies_to(m)) for m in burst) == 21, timeout=120)
    answers = [[s.text for s in fake.replies_to(m)] for m in burst]
    assert sorted(len(a) for a in answers) == [0] + [1] * 21
    assert sum(a == [RATE_LIMITED] for a in answers) == 1

    # 30 users × 10 messages: every one answered exactly once.
    sent = fake.crowd(30, 10, 1000, "message {i} from user {u}")
    assert fake.answered_once(sent, timeout=240)
    assert deployment["proc"].poll() is None


def _feedback(store: DialogueStore, turn_id: int) -> list[int]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT value FROM feedback WHERE turn_id = :t"), {"t": turn_id})
        return [int(r[0]) for r in rows]
