"""A chat's lock is held for as long as the work takes, and a lost lock is a logged bug,
not a retry (real Redis, a scratch database)."""

from __future__ import annotations

import logging
import time

import pytest
import redis

import worker.tasks
from worker.tasks import holding

pytestmark = pytest.mark.integration


def test_work_longer_than_the_ttl_keeps_the_lock(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker.tasks, "LOCK_RENEW_S", 0.1)
    lock = client.lock("s2s:lock:chat:1", timeout=0.4, thread_local=False)
    assert lock.acquire()
    rival = client.lock("s2s:lock:chat:1", timeout=0.4)
    with holding(lock, 1):
        time.sleep(1.2)  # three TTLs: without renewal another worker would get the chat
        assert not rival.acquire(blocking=False)
    assert client.get("s2s:lock:chat:1") is None  # released at the end


def test_a_lost_lock_is_logged_not_retried(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(worker.tasks, "LOCK_RENEW_S", 0.1)
    lock = client.lock("s2s:lock:chat:2", timeout=5, thread_local=False)
    assert lock.acquire()
    with caplog.at_level(logging.ERROR, logger="worker.tasks"), holding(lock, 2):
        client.delete("s2s:lock:chat:2")  # expired and gone, as under a long stall
        time.sleep(0.3)
    assert "chat 2: lock lost" in caplog.text
