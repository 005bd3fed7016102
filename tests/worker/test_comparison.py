"""Two versions compared on what people did with their replies (SQLite and PostgreSQL), and
the CLI that promotes on it; every figure checked against a hand count."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from s2s_cli.main import app
from worker.store import DialogueStore, Exchange, GenerationInfo
from worker.store.comparison import compare, wilson

runner = CliRunner()


def say(store: DialogueStore, chat: int, message: int, version: str, vote: int = 0) -> None:
    """One exchange written by ``version``, voted on by the user it answered."""
    generation = GenerationInfo(model_version=version, decode_ms=10.0 * message)
    exchange = Exchange(chat, chat, message, f"message {message}", "a reply", generation)
    stored = store.store_exchange(exchange)
    if vote:
        store.record_feedback(stored.bot_turn_id, chat, vote)


def seed(store: DialogueStore) -> None:
    # a: 4 replies, 2 liked, 1 disliked; it opened 3 conversations (4, 2, 2 turns), in one
    # of which the user wrote again.
    say(store, 1, 1, "a", +1)
    say(store, 1, 2, "a", -1)
    say(store, 2, 1, "a")
    say(store, 3, 1, "a", +1)
    # b: 3 replies, 2 liked; it opened 2 conversations (2, 4 turns), one continued.
    say(store, 4, 1, "b")
    say(store, 5, 1, "b", +1)
    say(store, 5, 2, "b", +1)


@pytest.mark.parametrize(
    ("hits", "total", "low", "high"),
    [(2, 4, 0.1500, 0.8500), (0, 10, 0.0, 0.2775), (0, 0, 0.0, 0.0)],
)
def test_wilson_interval(hits: int, total: int, low: float, high: float) -> None:
    assert wilson(hits, total) == pytest.approx((low, high), abs=1e-4)


def test_the_figures_match_a_hand_count(store: DialogueStore) -> None:
    seed(store)
    a, b = compare(store.reads, ["a", "b"])
    assert (a.replies, a.liked.hits, a.disliked.hits) == (4, 2, 1)
    assert a.liked.interval == pytest.approx((0.15, 0.85), abs=1e-4)
    assert (a.conversations, a.continued.hits) == (3, 1)
    assert a.mean_turns == pytest.approx(8 / 3)
    assert a.decode_ms_p50 == pytest.approx(10.0)  # 10, 20, 10, 10
    assert a.replies_per_s is None  # served for milliseconds here: no rate to speak of
    assert (b.replies, b.liked.hits, b.disliked.hits) == (3, 2, 0)
    assert (b.conversations, b.continued.hits, b.mean_turns) == (2, 1, 3.0)
    assert compare(store.reads, ["c"])[0].replies == 0  # never served: all zero, no error


def test_models_compare_prints_the_table_and_json(database_url: str, store: DialogueStore) -> None:
    seed(store)
    env = {"DATABASE_URL": database_url}
    table = runner.invoke(app, ["models", "compare", "a", "b"], env=env)
    assert table.exit_code == 0, table.output
    assert "liked (👍)" in table.stdout and "50.0% [15.0%, 85.0%] (2/4)" in table.stdout
    data = json.loads(runner.invoke(app, ["models", "compare", "a", "b", "--json"], env=env).stdout)
    assert [v["version"] for v in data] == ["a", "b"] and data[1]["liked"]["hits"] == 2
    future = runner.invoke(app, ["models", "compare", "a", "b", "--since", "2999-01-01"], env=env)
    assert "no replies in this window" in future.stdout
    bad = runner.invoke(app, ["models", "compare", "a", "b", "--since", "yesterday"], env=env)
    assert bad.exit_code == 2 and "ISO date" in bad.output and "Traceback" not in bad.output


def test_promote_require_better_needs_intervals_apart(
    database_url: str, store: DialogueStore
) -> None:
    store.registry.register_model("cand", "/nowhere", {})
    store.registry.register_model("base", "/nowhere", {})
    for chat in range(10, 14):  # 4 of 4 liked against 1 of 4: better, but not yet shown
        say(store, chat, 1, "cand", +1)
        say(store, chat + 100, 1, "base", +1 if chat == 10 else -1)
    env = {"DATABASE_URL": database_url}
    refused = runner.invoke(app, ["models", "promote", "cand", "--require-better", "base"], env=env)
    assert refused.exit_code == 2 and "too few votes (cand 4, base 4)" in refused.output
    assert store.registry.active_model() is None
    for chat in range(20, 36):  # 12 of 20 liked against 9 of 20: not shown better
        say(store, chat, 1, "cand", +1 if chat < 28 else -1)
        say(store, chat + 100, 1, "base", +1 if chat < 28 else -1)
    refused = runner.invoke(app, ["models", "promote", "cand", "--require-better", "base"], env=env)
    assert refused.exit_code == 2 and "intervals overlap" in refused.output, refused.output
    for chat in range(40, 80):  # 52 of 60 against 9 of 60
        say(store, chat, 1, "cand", +1)
        say(store, chat + 100, 1, "base", -1)
    promoted = runner.invoke(
        app, ["models", "promote", "cand", "--require-better", "base"], env=env
    )
    assert promoted.exit_code == 0, promoted.output
    assert store.registry.active_model() == ("cand", "/nowhere")
