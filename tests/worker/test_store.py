"""The dialogue store, every test on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from worker.store import DialogueStore, Exchange, GenerationInfo
from worker.store.export import logged_exchanges
from worker.store.migrate import check, downgrade, upgrade
from worker.store.models import Base, Feedback, Generation, Turn, User

_ids = itertools.count(1)


def exchange(
    chat: int = 10,
    user: int = 20,
    message: int | None = None,
    text_: str = "hi",
    reply: str = "hello",
    version: str = "v1",
) -> Exchange:
    return Exchange(
        chat_id=chat,
        user_id=user,
        message_id=message or next(_ids),
        user_text=text_,
        reply_text=reply,
        username="ann",
        language="en",
        generation=GenerationInfo(
            model_version=version,
            decoding={"beam_size": 5},
            candidates=[{"text": reply, "score": -1.5}],
            decode_ms=12.5,
            worker_id="w1",
            batch_size=4,
        ),
    )


def count(store: DialogueStore, model: type) -> int:
    with store.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_migrations_round_trip_without_drift(database_url: str) -> None:
    upgrade(database_url)
    check(database_url)  # models and migrations agree
    downgrade(database_url, "base")
    store = DialogueStore(database_url)
    with store.engine.connect() as conn:
        tables = set(store.engine.dialect.get_table_names(conn))
    assert not tables & set(Base.metadata.tables)
    store.engine.dispose()
    upgrade(database_url)
    check(database_url)


def test_exchange_is_stored_once(store: DialogueStore) -> None:
    first = store.store_exchange(exchange(message=1, reply="first answer"))
    again = store.store_exchange(exchange(message=1, reply="a different answer"))
    assert first.created and not again.created
    assert again.text == "first answer" and again.bot_turn_id == first.bot_turn_id
    assert count(store, Turn) == 2 and count(store, Generation) == 1
    assert store.find_reply(10, 1) == again
    assert store.find_reply(10, 2) is None


def test_group_commit_stores_each_exchange_as_alone(store: DialogueStore) -> None:
    """One call for many exchanges: several chats, one chat twice (its turns alternate),
    a copy of a message in the same call and one answered by an earlier call."""
    earlier = store.store_exchange(exchange(chat=1, message=1, reply="already"))
    batch = [
        exchange(chat=1, message=1, reply="ignored"),
        exchange(chat=2, user=21, message=1, text_="a?", reply="a!"),
        exchange(chat=3, user=22, message=1, text_="b?", reply="b!"),
        exchange(chat=2, user=21, message=2, text_="c?", reply="c!"),
        exchange(chat=3, user=22, message=1, text_="b?", reply="other"),
    ]
    stored = store.store_exchanges(batch)
    assert [s.created for s in stored] == [False, True, True, True, False]
    assert stored[0] == replace(earlier, created=False)
    assert [s.text for s in stored] == ["already", "a!", "b!", "c!", "b!"]
    assert stored[4].bot_turn_id == stored[2].bot_turn_id
    assert store.recent_context(2, 4) == [
        ("user", "a?"),
        ("bot", "a!"),
        ("user", "c?"),
        ("bot", "c!"),
    ]
    assert count(store, Turn) == 2 + 6 and count(store, Generation) == 1 + 3
    assert store.find_replies([(2, 1), (2, 2), (3, 1), (3, 9)]) == {
        (2, 1): replace(stored[1], created=False),
        (2, 2): replace(stored[3], created=False),
        (3, 1): replace(stored[2], created=False),
    }
    assert store.recent_contexts([2, 3, 99], 2) == {
        2: [("user", "c?"), ("bot", "c!")],
        3: [("user", "b?"), ("bot", "b!")],
        99: [],
    }


def test_recent_context_and_reset(store: DialogueStore) -> None:
    for i in range(4):
        store.store_exchange(exchange(chat=7, message=100 + i, text_=f"q{i}", reply=f"a{i}"))
    assert store.recent_context(7, 3) == [("bot", "a2"), ("user", "q3"), ("bot", "a3")]
    assert store.reset_conversation(7)
    assert store.recent_context(7, 3) == []
    store.store_exchange(exchange(chat=7, message=200, text_="new", reply="fresh"))
    assert store.recent_context(7, 5) == [("user", "new"), ("bot", "fresh")]
    assert not store.reset_conversation(999)


def test_concurrent_writers_store_each_exchange_once(store: DialogueStore) -> None:
    exchanges = [exchange(chat=1000 + i % 7, message=i + 1, text_=f"m{i}") for i in range(200)]

    def write_all(_: int) -> None:
        for ex in exchanges:
            store.store_exchange(ex)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write_all, range(8)))
    assert count(store, Turn) == 400 and count(store, Generation) == 200


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("nul\x00inside\x00", "nulinside"),
        ("x" * 100_000, "x" * 100_000),
        ("emoji 👩‍👩‍👧 🇯🇵", "emoji 👩‍👩‍👧 🇯🇵"),
        ("שלום עולם مرحبا", "שלום עולם مرحبا"),
        ("zero\u200bwidth\u200d\ufeff", "zero\u200bwidth\u200d\ufeff"),
    ],
)
def test_awkward_text_round_trips(store: DialogueStore, given: str, kept: str) -> None:
    stored = store.store_exchange(exchange(chat=5, text_=given, reply=given))
    assert stored.text == kept
    assert store.recent_context(5, 2) == [("user", kept), ("bot", kept)]


def test_feedback_one_vote_per_turn_by_the_user_it_answered(store: DialogueStore) -> None:
    reply = store.store_exchange(exchange())
    store.record_feedback(reply.bot_turn_id, 20, 1)
    store.record_feedback(reply.bot_turn_id, 20, -1)
    with pytest.raises(ValueError, match="not theirs"):
        store.record_feedback(reply.bot_turn_id, 21, 1)  # a forged vote: someone else's turn
    with store.sessions() as s:
        votes = dict(s.execute(select(Feedback.user_id, Feedback.value)).all())
    assert votes == {20: -1}
    for bad in (0, 2, True, "1"):
        with pytest.raises(ValueError, match="feedback value"):
            store.record_feedback(reply.bot_turn_id, 20, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a bot turn"):
        store.record_feedback(reply.user_turn_id, 20, 1)


def test_forget_user_removes_every_trace(store: DialogueStore) -> None:
    for i in range(500):  # 1,000 turns: 500 of theirs, 500 replies to them
        theirs = store.store_exchange(
            exchange(chat=42, user=42, message=i + 1, text_=f"secret-{i}", reply=f"echo secret-{i}")
        )
    store.store_exchange(exchange(chat=43, user=43, message=1, text_="other"))
    store.record_feedback(theirs.bot_turn_id, 42, 1)
    counts = store.forget_user(42)
    assert counts["user_turns"] == 500 and counts["bot_turns"] == 500
    assert counts["generations"] == 500 and counts["feedback"] == 1
    assert counts["conversations"] == 1 and counts["chats"] == 1
    with store.sessions() as s:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if column.type.python_type is str:
                    hits = s.scalar(
                        select(func.count()).select_from(table).where(column.like("%secret%"))
                    )
                    assert hits == 0, f"{table.name}.{column.name}"
        assert (
            s.scalar(select(func.count()).select_from(Feedback).where(Feedback.user_id == 42)) == 0
        )
        user = s.get(User, 42)
        assert user is not None and user.username is None and user.forgotten_at is not None
    assert store.recent_context(43, 2) == [("user", "other"), ("bot", "hello")]


def test_export_streams_pairs_by_date_range(store: DialogueStore) -> None:
    for chat in range(5):
        for i in range(3):
            store.store_exchange(
                exchange(chat=300 + chat, message=i + 1, text_=f"c{chat}q{i}", reply=f"c{chat}a{i}")
            )
    now = datetime.now(UTC)
    records = list(
        logged_exchanges(store, now - timedelta(hours=1), now + timedelta(hours=1), context_turns=2)
    )
    assert len(records) == 15
    third = next(r for r in records if r["response"] == "c1a2")
    assert third["context"] == [
        {"speaker": "bot", "text": "c1a1"},
        {"speaker": "user", "text": "c1q2"},
    ]
    assert third["meta"]["model_version"] == "v1"
    pages = list(store.conversation_pages(now - timedelta(hours=1), now + timedelta(hours=1), 2))
    assert [len(page) for page in pages] == [2, 2, 1]  # five conversations, two per page
    assert all(len(c.turns) == 6 for page in pages for c in page)
    assert list(logged_exchanges(store, now + timedelta(hours=1), now + timedelta(hours=2))) == []


def test_stats(store: DialogueStore) -> None:
    a = store.store_exchange(exchange(version="v1"))
    b = store.store_exchange(exchange(version="v2"))
    c = store.store_exchange(exchange(chat=11, user=21, version="v2"))
    store.record_feedback(a.bot_turn_id, 20, 1)
    store.record_feedback(b.bot_turn_id, 20, -1)
    store.record_feedback(c.bot_turn_id, 21, 1)
    stats = store.stats()
    assert sum(d["messages"] for d in stats["messages_per_day"]) == 6
    by_model = {m["model_version"]: m for m in stats["feedback_by_model"]}
    assert by_model["v1"]["positive_ratio"] == 1.0 and by_model["v2"]["votes"] == 2
    assert by_model["v2"]["positive_ratio"] == 0.5


def test_model_registry_keeps_one_active(store: DialogueStore) -> None:
    assert store.registry.active_model() is None
    store.registry.register_model("aaa", "/models/a", {"ppl": 90.0})
    store.registry.register_model("bbb", "/models/b", {"ppl": 80.0})
    store.registry.promote("aaa")
    store.registry.promote("bbb")
    assert store.registry.active_model() == ("bbb", "/models/b")
    with store.sessions() as s:
        statuses = dict(s.execute(text("SELECT id, status FROM model_versions")).all())
    assert statuses == {"aaa": "retired", "bbb": "active"}
    with pytest.raises(ValueError, match="unknown model version"):
        store.registry.promote("ccc")


def test_reply_lookups_read_turns_through_indexes(tmp_path: Path) -> None:
    """SQLite plans of the worker's per-reply queries: no full scan of the turns (a row-value
    IN list or a join ordered by turn id would read the whole table on every reply)."""
    url = f"sqlite:///{tmp_path / 'plans.sqlite3'}"
    upgrade(url)
    store = DialogueStore(url)
    store.store_exchanges([exchange(chat=c, message=1) for c in range(1, 5)])
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", capture)
    store.find_replies([(1, 1), (2, 1), (3, 2)])
    store.recent_contexts([1, 2, 3], 3)
    store.store_exchanges([exchange(chat=c, message=2) for c in range(1, 5)])
    event.remove(store.engine, "before_cursor_execute", capture)
    assert len(statements) >= 4
    with store.engine.connect() as conn:
        for statement, params in statements:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
            scans = [row[-1] for row in plan if row[-1].startswith("SCAN turns")]
            assert not scans, (statement, plan)
    store.engine.dispose()


def test_reply_lookups_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    """On SQLite the lookups read a WAL snapshot: while another connection holds the write
    lock they answer at once (a read beginning IMMEDIATE would sleep in SQLite's busy
    handler until the writer commits) and do not see its uncommitted turns."""
    import threading

    url = f"sqlite:///{tmp_path / 'reads.sqlite3'}"
    upgrade(url)
    store = DialogueStore(url)
    store.store_exchanges([exchange(chat=1, message=1)])
    writing, done = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with store.sessions() as s, s.begin():
            s.execute(text("UPDATE turns SET text = 'edited' WHERE chat_id = 1"))
            writing.set()
            done.wait(timeout=30)

    writer = threading.Thread(target=hold_the_write_lock)
    writer.start()
    assert writing.wait(timeout=10)
    answers: list[Any] = []
    reader = threading.Thread(
        target=lambda: answers.append(
            (
                store.find_replies([(1, 1)]),
                store.recent_context(1, 3),
                store.registry.active_model(),
            )
        )
    )
    reader.start()
    reader.join(timeout=5)
    done.set()
    writer.join(timeout=30)
    assert answers, "the lookups waited for the writer"
    replies, context, _ = answers[0]
    assert replies[(1, 1)].text == "hello"
    assert context == [("user", "hi"), ("bot", "hello")]
    store.engine.dispose()


def test_a_message_sent_before_forget_is_not_stored_after_it(store: DialogueStore) -> None:
    """A message still in flight when its user confirmed /forget must not bring their
    words back; what they send afterwards is stored as usual."""
    before = time.time()
    store.store_exchange(exchange(chat=77, user=77, message=1, text_="first words"))
    time.sleep(0.01)
    store.forget_user(77)
    late = replace(exchange(chat=77, user=77, message=2, text_="late secret"), sent_at=before)
    dropped = store.store_exchange(late)
    assert dropped.forgotten and not dropped.created
    assert store.find_reply(77, 2) is None and store.recent_context(77, 10) == []
    fresh = replace(exchange(chat=77, user=77, message=3, text_="hello again"), sent_at=time.time())
    assert not store.store_exchange(fresh).forgotten
    assert store.recent_context(77, 10)[0] == ("user", "hello again")
