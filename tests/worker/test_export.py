"""Logged conversations exported as training pairs: exactly the expected pairs, on SQLite and
PostgreSQL; flat memory on a large history; the command's output and errors."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from s2s_cli.main import app
from tests.worker.test_store import exchange
from worker.replay import load_inputs
from worker.store import DialogueStore
from worker.store.export import HELD_OUT_SHARE, ExportFilter, export_pairs, in_part
from worker.store.migrate import upgrade
from worker.store.models import Chat, Conversation, Turn, User, utcnow
from worker.store.records import rating


def seed(store: DialogueStore) -> None:
    """A private chat with 👍 and 👎, a second chat repeating the first's opening, a user who
    then asks to be forgotten, and a group chat."""
    chat1 = [
        store.store_exchange(exchange(1, 1, 1, "hi", "hello!")),
        store.store_exchange(exchange(1, 1, 2, "how are you", "fine thanks")),
        store.store_exchange(exchange(1, 1, 3, "bye now", "see you")),
    ]
    store.record_feedback(chat1[1].bot_turn_id, 1, 1)
    store.record_feedback(chat1[2].bot_turn_id, 1, -1)
    store.store_exchange(exchange(2, 2, 1, "hi", "hello!"))
    disputed = store.store_exchange(exchange(2, 2, 2, "how are you", "fine thanks"))
    store.store_exchange(exchange(-10, 4, 1, "hey all", "hey"))
    store.store_exchange(exchange(-10, 5, 2, "what's up", "not much"))
    store.record_feedback(disputed.bot_turn_id, 2, -1)  # 👎: not a target
    store.store_exchange(exchange(3, 3, 1, "secret stuff", "ok"))
    kept = store.store_exchange(exchange(3, 3, 2, "more secret", "sure"))
    store.record_feedback(kept.bot_turn_id, 3, 1)
    store.forget_user(3)


def pairs(store: DialogueStore, **options: object) -> tuple[list[dict[str, object]], dict]:
    out = io.StringIO()
    counts = export_pairs(store, out, ExportFilter(**options))  # type: ignore[arg-type]
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    return [{"context": r["context"], "response": r["response"]} for r in rows], dict(counts)


def turns(*spoken: tuple[str, str]) -> list[dict[str, str]]:
    return [{"speaker": who, "text": what} for who, what in spoken]


def test_export_gives_exactly_the_expected_pairs(store: DialogueStore) -> None:
    seed(store)
    exported, counts = pairs(store)
    assert exported == [
        # what the person said after the bot spoke: the person is the replier ("bot")
        {"context": turns(("bot", "hi"), ("user", "hello!")), "response": "how are you"},
        # a 👍 reply, speakers as they were
        {
            "context": turns(("user", "hi"), ("bot", "hello!"), ("user", "how are you")),
            "response": "fine thanks",
        },
        {
            "context": turns(("user", "hello!"), ("bot", "how are you"), ("user", "fine thanks")),
            "response": "bye now",
        },
        {"context": turns(("bot", "hey all"), ("user", "hey")), "response": "what's up"},
    ]
    assert counts == {"human": 3, "liked": 1, "dropped: duplicate": 1}
    human, _ = pairs(store, targets="human")
    liked, _ = pairs(store, targets="liked")
    assert len(human) == 3 and liked == [exported[1]]
    nothing, _ = pairs(store, since=utcnow())
    assert nothing == []


@pytest.mark.slow
def test_export_memory_stays_flat_on_200k_turns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'big.sqlite3'}"
    upgrade(url)
    store = DialogueStore(url)
    conversations, per = 20_000, 10
    now = utcnow()
    with store.engine.begin() as conn:
        conn.execute(insert(User), [{"id": 1, "created_at": now}])
        conn.execute(insert(Chat), [{"id": 1, "type": "private", "created_at": now}])
        conn.execute(
            insert(Conversation),
            [  # one open conversation per chat: the others have ended
                {"id": c + 1, "chat_id": 1, "started_at": now, "ended_at": now}
                for c in range(conversations)
            ],
        )
        conn.execute(
            insert(Turn),
            [
                {
                    "conversation_id": c + 1,
                    "chat_id": 1,
                    "user_id": 1 if t % 2 == 0 else None,
                    "speaker": "user" if t % 2 == 0 else "bot",
                    "text": f"conversation {c} turn {t}",
                    "created_at": now,
                }
                for c in range(conversations)
                for t in range(per)
            ],
        )
    tracemalloc.start()
    with open(tmp_path / "pairs.jsonl", "w") as out:
        counts = export_pairs(store, out, ExportFilter(targets="human"))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    store.engine.dispose()
    assert counts["human"] == conversations * (per // 2 - 1)
    # Holding 200k turns as rows would take hundreds of MB; pages and digests stay small.
    assert peak < 20_000_000, f"peak {peak / 1e6:.1f} MB"


def test_export_command_writes_jsonl_and_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    upgrade(url)
    store = DialogueStore(url)
    seed(store)
    store.engine.dispose()
    out = tmp_path / "pairs.jsonl"
    result = CliRunner().invoke(app, ["export", "--out", str(out)], env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["human"] == 3 and summary["liked"] == 1
    assert len(out.read_text().splitlines()) == 4


def test_export_writes_through_a_link_into_new_folders_and_refuses_what_is_no_file(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    upgrade(url)
    store = DialogueStore(url)
    seed(store)
    store.engine.dispose()
    env = {"DATABASE_URL": url}
    target = tmp_path / "target.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert CliRunner().invoke(app, ["export", "--out", str(link)], env=env).exit_code == 0
    assert link.is_symlink() and len(target.read_text().splitlines()) == 4
    nested = tmp_path / "a" / "b" / "pairs.jsonl"
    assert CliRunner().invoke(app, ["export", "--out", str(nested)], env=env).exit_code == 0
    assert nested.is_file()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        refused = CliRunner().invoke(app, ["export", "--out", str(path)], env=env)
        assert refused.exit_code == 2 and str(path) in refused.output
        assert ".partial" not in refused.output
    assert fifo.exists() and not fifo.is_file()  # left as it was


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--targets", "all"], "targets must be one of"),
        (["--since", "yesterday"], "--since must be an ISO date"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "since must be before until"),
        (["--context-turns", "0"], "context_turns"),
        (["--part", "test"], "part must be one of"),
    ],
)
def test_export_command_refuses_bad_arguments(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "pairs.jsonl"
    result = CliRunner().invoke(
        app,
        ["export", "--out", str(out), *args],
        env={"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"},
    )
    assert result.exit_code == 2 and message in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("lowest", "highest", "expected"),
    [(None, None, 0), (1, 1, 1), (-1, -1, -1), (-1, 1, -1)],  # a 👎 outweighs any 👍
)
def test_one_definition_of_a_liked_reply(
    lowest: int | None, highest: int | None, expected: int
) -> None:
    assert rating(lowest, highest) == expected


def test_replay_and_export_agree_on_what_was_liked(store: DialogueStore) -> None:
    seed(store)
    exported, _ = pairs(store, targets="liked")
    inputs = load_inputs(store, limit=100, part="all")
    assert [e.response for e in inputs.liked] == [p["response"] for p in exported]
    assert [e.response for e in inputs.disliked] == ["see you", "fine thanks"]
    assert len(inputs.logged) == 7  # every bot reply of users not forgotten


def test_the_split_is_fixed_whole_conversations_and_about_a_fifth_held_out() -> None:
    ids = range(1, 10_001)
    held_out = {i for i in ids if in_part(i, "held-out")}
    fine_tune = {i for i in ids if in_part(i, "fine-tune")}
    assert held_out.isdisjoint(fine_tune) and held_out | fine_tune == set(ids)
    assert abs(len(held_out) / len(ids) - HELD_OUT_SHARE) < 0.01
    assert in_part("7", "held-out") == in_part(7, "held-out")  # ids from records are strings
    assert all(in_part(i, "all") for i in (1, 2, 3))
