"""Redis and the worker go away and come back: nothing is lost, nothing is answered twice.

Real processes: a private redis-server with an append-only file, the `s2s worker`, a SQLite
database. Each scenario ends with every message published exactly once and the database
holding one user turn and one bot turn per message. (Redis `kill -9` under traffic is in
test_redis_restart.py, a database outage in test_database_outage.py.)
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select

from s2s_core import Tokenizer
from tests.conftest import slow_checkpoint
from tests.utils.services import wait_for, worker_process
from tests.utils.traffic import published, send_messages
from worker.store.models import Turn

pytestmark = pytest.mark.integration


def burst(first_chat: int, chats: int, messages: int, tag: str) -> list[tuple[int, int, str]]:
    return [(first_chat + c, m + 1, f"{tag} {m}") for m in range(messages) for c in range(chats)]


def all_answered_once(rig: dict[str, Any], sent: list[tuple[int, int, str]]) -> None:
    expected = {(chat, message) for chat, message, _ in sent}
    url = rig["server"].url
    wait_for(lambda: expected <= set(published(url)), 150, "every message answered")
    time.sleep(2)  # anything answered twice would show by now
    counts = published(url)
    assert {k: counts[k] for k in expected if counts[k] != 1} == {}
    with rig["store"].sessions() as s:
        turns = s.execute(select(Turn.speaker, func.count()).group_by(Turn.speaker)).all()
    assert dict(turns) == {"user": len(expected), "bot": len(expected)}


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_redis_down_under_traffic_and_back_without_later_traffic(
    rig: dict[str, Any], how: str
) -> None:
    """Redis stopped (SIGTERM: it saves and exits) or killed (its append-only file keeps
    every write) 0.5 s into a 60-message burst, back 5 s later, and nobody writes again:
    what was queued, half-answered or lost with the connection is answered by redelivery or
    the inbox sweep alone. (Killed with later traffic: test_redis_restart.py.)"""
    sent = burst(100, 20, 3, "before")
    with worker_process(rig["env"], rig["tmp"] / "worker.log") as worker:
        send_messages(rig["server"].url, sent)
        time.sleep(0.5)
        if how == "SIGTERM":
            rig["server"].stop()
        else:
            rig["server"].kill()
        time.sleep(5)
        rig["server"].start()
        all_answered_once(rig, sent)
        assert worker.poll() is None


def test_redis_restarted_while_idle_then_new_traffic(rig: dict[str, Any]) -> None:
    """A restart nobody saw (no traffic): the worker's pooled connections are stale, and the
    next messages must not be lost to them."""
    first = burst(200, 5, 1, "first")
    later = burst(300, 20, 2, "later")
    with worker_process(rig["env"], rig["tmp"] / "worker.log") as worker:
        send_messages(rig["server"].url, first)
        all_answered_once(rig, first)
        rig["server"].stop()
        rig["server"].start()
        time.sleep(3)  # the worker notices on its own, or on the next message
        send_messages(rig["server"].url, later)
        all_answered_once(rig, first + later)
        assert worker.poll() is None


def test_the_only_worker_killed_mid_batch_and_restarted(
    rig: dict[str, Any], tiny_tokenizer: Tokenizer
) -> None:
    """SIGKILL with a batch in flight and messages prefetched; a new worker started 3 s
    later answers them all (its predecessor's chat locks expire, its unacknowledged
    messages come back after the visibility timeout) and doubles none."""
    sent = burst(400, 30, 4, "killed")
    url = rig["server"].url
    rig["env"]["MODEL_DIR"] = str(slow_checkpoint(rig["tmp"], tiny_tokenizer))
    with worker_process(rig["env"], rig["tmp"] / "first.log") as first:
        send_messages(url, sent)
        wait_for(lambda: sum(published(url).values()) >= 10, 60, "work under way")
        first.kill()
        first.wait()
    assert sum(published(url).values()) < len(sent)  # it died with work left
    time.sleep(3)
    with worker_process(rig["env"], rig["tmp"] / "second.log") as second:
        all_answered_once(rig, sent)
        assert second.poll() is None
