"""End to end: scripted Telegram users → fake Bot API server → the real `s2s bot` process →
the worker (a real Celery worker with Redis, or the in-process single-process mode) → the
database → replies back through the same server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
import redis
from sqlalchemy import text

from bot.texts import FORGET_ASK, FORGET_DONE, RATE_LIMITED, RESET_DONE, TEXT_ONLY, printable
from bot.votes import NOT_YOURS
from s2s_contract.tasks import REPLIES_STREAM, ReplyEvent
from s2s_core import Tokenizer, save_checkpoint
from tests.conftest import TEXTS, tiny_model
from tests.utils.fake_telegram import BOT_USERNAME, FakeTelegram, Sent
from tests.utils.services import bot_env, bot_process, scratch_redis_url, worker_process
from worker.store import DialogueStore
from worker.store.migrate import upgrade

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # the celery case: Redis


@pytest.fixture(scope="module", params=["single-process", "celery"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One bot (and worker) per deployment kind, shared by this module's tests: each test
    is one behaviour, with users of its own."""
    tmp_path = tmp_path_factory.mktemp(request.param)
    tokenizer = Tokenizer.train(TEXTS, vocab_size=300)
    model = tiny_model(tokenizer.vocab_size, attention="luong")
    checkpoint_dir = save_checkpoint(tmp_path / "ckpt", model, tokenizer, {"name": "tiny"})
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
    assert _errors_quoting(fake.texts, tmp_path) == [], "a user's words in an ERROR log line"


def _errors_quoting(texts: list[str], folder: Path) -> list[str]:
    """ERROR and CRITICAL log lines (bot and worker) that quote something a user wrote:
    operators read those lines, users' words stay out of them."""
    words = {t for t in texts if len(t) >= 8 and not t.startswith("/")}
    found = []
    for log in folder.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if (" ERROR " in line or " CRITICAL " in line) and any(w in line for w in words):
                found.append(f"{log.name}: {line[:200]}")
    return found


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


def test_a_text_gets_one_reply_with_vote_buttons_and_is_stored(
    deployment: dict[str, Any],
) -> None:
    fake, store = deployment["fake"], deployment["store"]
    assert float((deployment["log"].parent / "heartbeat").read_text()) > 0
    hello = fake.user_message(101, 101, "hello there")
    reply = _one_reply(fake, hello)
    assert [b["text"] for b in reply.buttons] == ["👍", "👎"]
    stored = store.find_reply(101, hello["message_id"])
    assert stored is not None and printable(stored.text) in reply.text


def test_a_vote_is_stored_and_junk_or_foreign_votes_change_nothing(
    deployment: dict[str, Any],
) -> None:
    fake, store = deployment["fake"], deployment["store"]
    hello = fake.user_message(107, 107, "hello there")
    reply = _one_reply(fake, hello)
    stored = store.find_reply(107, hello["message_id"])
    assert stored is not None
    query_id = fake.press(107, reply, reply.buttons[0]["callback_data"])  # 👍
    fake.wait_for(lambda: query_id in fake.answered)
    fake.wait_for(lambda: _feedback(store, stored.bot_turn_id) == [1])
    junk = fake.press(107, reply, "fb:oops")
    fake.wait_for(lambda: junk in fake.answered)
    # Someone else pressing 👎 on this reply, or forging the data for it, is refused politely.
    down = reply.buttons[1]["callback_data"]
    other = fake.press(303, reply, down)
    forged = fake.press(107, reply, down.rsplit(":", 1)[0] + ":AAAAAAAAAAAA")
    fake.wait_for(lambda: other in fake.answered and forged in fake.answered)
    assert fake.answers[other] == fake.answers[forged] == NOT_YOURS
    assert _feedback(store, stored.bot_turn_id) == [1]


def test_a_redelivered_or_edited_update_gets_no_second_reply(deployment: dict[str, Any]) -> None:
    fake = deployment["fake"]
    hello = fake.user_message(108, 108, "hello there")
    _one_reply(fake, hello)
    fake.redeliver("message", hello)
    fake.edit(hello, "hello again")
    _one_reply(fake, fake.user_message(108, 108, "how are you"))  # both handled by now
    assert len(fake.replies_to(hello)) == 1


def test_non_text_gets_the_text_only_notice(deployment: dict[str, Any]) -> None:
    fake = deployment["fake"]
    sticker = fake.user_message(
        109,
        109,
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


def test_in_a_group_only_a_mention_is_answered_and_the_mention_is_not_stored(
    deployment: dict[str, Any],
) -> None:
    fake, store = deployment["fake"], deployment["store"]
    ignored = fake.user_message(-500, 102, "just chatting", chat_type="group")
    called = fake.user_message(-500, 102, f"@{BOT_USERNAME} what is up", chat_type="group")
    _one_reply(fake, called)
    assert fake.replies_to(ignored) == []
    assert store.find_reply(-500, called["message_id"]) is not None
    assert _rows_with(store, f"@{BOT_USERNAME}") == 0


def test_a_huge_message_is_cut_and_the_reply_says_so(deployment: dict[str, Any]) -> None:
    fake = deployment["fake"]
    huge = fake.user_message(103, 103, "word " * 4000)
    assert _one_reply(fake, huge).text.startswith("(Your message was long")


def test_flood_control_delays_a_reply_without_losing_it(deployment: dict[str, Any]) -> None:
    fake = deployment["fake"]
    fake.limited.clear()
    fake.limit_next = 1
    limited = fake.user_message(104, 104, "fine thanks")
    _one_reply(fake, limited)
    assert fake.limited == [104]  # this reply met the 429, and was sent after it


def test_reset_starts_a_new_conversation(deployment: dict[str, Any]) -> None:
    fake, store = deployment["fake"], deployment["store"]
    first = fake.user_message(110, 110, "hello there")
    _one_reply(fake, first)
    assert _one_reply(fake, fake.user_message(110, 110, "/reset")).text == RESET_DONE
    after = fake.user_message(110, 110, "how are you")
    _one_reply(fake, after)
    assert store.recent_context(110, 10) == [("user", "how are you"), ("bot", ANY)]


def test_forget_deletes_the_users_words_everywhere(deployment: dict[str, Any]) -> None:
    fake, store = deployment["fake"], deployment["store"]
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


def test_over_the_rate_limit_one_notice_and_one_message_dropped(
    deployment: dict[str, Any],
) -> None:
    """20 a minute: 20 replies, one polite notice, one message dropped. (Updates are
    handled concurrently, so which message hits the limit is not fixed.)"""
    fake = deployment["fake"]
    burst = [fake.user_message(106, 106, f"burst {i}") for i in range(22)]
    fake.wait_for(lambda: sum(bool(fake.replies_to(m)) for m in burst) == 21, timeout=120)
    answers = [[s.text for s in fake.replies_to(m)] for m in burst]
    assert sorted(len(a) for a in answers) == [0] + [1] * 21
    assert sum(a == [RATE_LIMITED] for a in answers) == 1


def test_a_crowd_is_answered_exactly_once(deployment: dict[str, Any]) -> None:
    """30 users × 10 messages: every one answered exactly once."""
    fake = deployment["fake"]
    sent = fake.crowd(30, 10, 1000, "message {i} from user {u}")
    assert fake.answered_once(sent, timeout=240)
    assert deployment["proc"].poll() is None


def _feedback(store: DialogueStore, turn_id: int) -> list[int]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT value FROM feedback WHERE turn_id = :t"), {"t": turn_id})
        return [int(r[0]) for r in rows]
