"""The chats' pending messages in Redis (real Redis, a scratch database)."""

from __future__ import annotations

import pytest
import redis

from s2s_contract.tasks import ReplyRequest, pending_key
from tests.utils.services import SCRATCH_REDIS_DB, scratch_url
from worker.inbox import ChatInbox


def pend(client: redis.Redis, chat: int, user: int, message: int, text: str) -> None:
    request = ReplyRequest(chat_id=chat, user_id=user, message_id=message, text=text)
    client.hset(pending_key(chat), str(message), request.model_dump_json())


@pytest.mark.integration
def test_forget_drops_the_users_unanswered_text_and_keeps_the_others(
    client: redis.Redis,
) -> None:
    pend(client, -10, 5, 1, "my secret")
    pend(client, -10, 6, 2, "someone else's words")
    pend(client, 5, 5, 3, "private secret")
    client.hset(pending_key(-10), "4", "not json")
    inbox = ChatInbox(client)
    assert inbox.forget(5, [-10, 5]) == 2
    left = b" ".join(client.hvals(pending_key(-10))) + b" ".join(client.hvals(pending_key(5)))
    assert b"secret" not in left and b"someone else's words" in left


@pytest.mark.integration
def test_due_is_each_chats_inbox_up_to_its_newest_requested_message(
    client: redis.Redis,
) -> None:
    """In message-id order per chat: pending messages up to the newest one asked about
    (a later one waits for its own task), an unregistered message unless answered before,
    a malformed entry dropped."""
    for message in (1, 2, 4):
        pend(client, 1, 1, message, f"m{message}")
    client.hset(pending_key(1), "3", "not json")
    looked_up: list[list[tuple[int, int]]] = []

    def answered(keys: list[tuple[int, int]]) -> set[tuple[int, int]]:
        looked_up.append(keys)
        return {(2, 7)}

    asked = [
        ReplyRequest(chat_id=1, user_id=1, message_id=2, text="m2"),
        ReplyRequest(chat_id=2, user_id=2, message_id=7, text="answered before"),
        ReplyRequest(chat_id=2, user_id=2, message_id=8, text="never registered"),
    ]
    due = ChatInbox(client).due(asked, answered)
    assert [(r.chat_id, r.message_id) for r in due] == [(1, 1), (1, 2), (2, 8)]
    assert looked_up == [[(2, 7), (2, 8)]]  # only the unregistered ones
    assert sorted(client.hkeys(pending_key(1))) == [b"1", b"2", b"4"]  # "3" dropped


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379"),
        ("redis://:pw@host:6380/3", "redis://:pw@host:6380"),
    ],
)
def test_tests_flush_only_their_scratch_database(base: str, expected: str) -> None:
    """A URL without a database number means database 0: tests must not flush it."""
    assert scratch_url(base) == f"{expected}/{SCRATCH_REDIS_DB}"
