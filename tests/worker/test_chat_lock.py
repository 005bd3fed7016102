"""A batch's chat locks: taken in one round trip where free, held for as long as the work
takes, released only where still its own; a lost lock is a logged bug, not a retry (real
Redis, a scratch database)."""

from __future__ import annotations

import logging
import time

import pytest
import redis

from s2s_contract.tasks import chat_lock_key
from worker.chat_lease import ChatLease

pytestmark = pytest.mark.integration


def test_a_batch_takes_the_free_chats_and_leaves_the_busy_ones(client: redis.Redis) -> None:
    rival = ChatLease(client)
    assert rival.acquire([2]) == [2]
    lease = ChatLease(client)
    assert lease.acquire([1, 2, 3, 1]) == [1, 3]
    assert lease.release() == []
    assert client.get(chat_lock_key(1)) is None and client.get(chat_lock_key(3)) is None
    assert client.get(chat_lock_key(2)) == rival.token.encode()  # the rival's stays


def test_work_longer_than_the_ttl_keeps_the_locks(client: redis.Redis) -> None:
    """The defect: a 30 s lock guarded up to 20 s of decoding and 30 s of storing, and
    expired mid-work, letting a second worker answer the chat at once."""
    lease = ChatLease(client, ttl_s=0.4, renew_s=0.1)
    lease.acquire([1, 2])
    with lease.kept():
        time.sleep(1.2)  # three TTLs: without renewal another worker would get the chats
        assert ChatLease(client).acquire([1, 2]) == []
    assert client.get(chat_lock_key(1)) is None  # released at the end
    assert ChatLease(client).acquire([1, 2]) == [1, 2]


def test_without_renewal_the_ttl_frees_a_dead_holders_chats(client: redis.Redis) -> None:
    ChatLease(client, ttl_s=0.2).acquire([4])  # its holder is killed: nothing renews it
    assert ChatLease(client).acquire([4]) == []
    time.sleep(0.3)
    assert ChatLease(client).acquire([4]) == [4]


def test_a_lost_lock_is_logged_once_and_not_released_from_its_new_holder(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    lease = ChatLease(client, ttl_s=5, renew_s=0.1)
    lease.acquire([5, 6])
    thief = ChatLease(client)
    with caplog.at_level(logging.ERROR, logger="worker.chat_lease"), lease.kept():
        client.delete(chat_lock_key(5))  # expired, as under a long stall ...
        assert thief.acquire([5]) == [5]  # ... and taken by another worker
        time.sleep(0.35)  # several renewals
    assert caplog.text.count("chat 5: lock lost") == 1
    assert "chat 6" not in caplog.text
    assert client.get(chat_lock_key(5)) == thief.token.encode()
