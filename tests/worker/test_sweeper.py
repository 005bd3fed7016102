"""The inbox sweep (real Redis, a scratch database): a registered message whose task
vanished gets a new one, once per interval; fresh messages are left to their own task."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from s2s_contract.tasks import REPLY_TASK, ReplyRequest, pending_key
from worker.sweeper import sweep

pytestmark = pytest.mark.integration


class Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def send_task(self, name: str, args: list[Any], queue: str) -> None:
        self.sent.append((name, args[0]))


def register(client: redis.Redis, chat: int, message: int, at: float) -> None:
    request = ReplyRequest(
        chat_id=chat, user_id=chat, message_id=message, text="hi", enqueued_at=at
    )
    client.hset(pending_key(chat), str(message), request.model_dump_json())


def test_an_orphaned_message_gets_a_new_task_once_per_interval(client: redis.Redis) -> None:
    register(client, 1, 10, at=1000.0)  # two minutes old at now=1120
    register(client, 2, 20, at=1100.0)  # twenty seconds old: its own task may be queued
    client.hset(pending_key(3), "30", "not json")
    celery = Sender()
    assert sweep(client, celery, older_than_s=60, now=1120.0) == 1
    assert [(name, payload["message_id"]) for name, payload in celery.sent] == [(REPLY_TASK, 10)]
    assert sweep(client, celery, older_than_s=60, now=1121.0) == 0  # not again this interval
    client.delete("s2s:swept:1:10")  # the interval passed
    assert sweep(client, celery, older_than_s=60, now=1190.0) == 2  # and chat 2's is old now


def test_a_worker_sweeps_even_when_its_metrics_port_is_taken(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Celery swallows an error in a worker_ready handler: a taken metrics port raised there
    before the sweeper started, and a worker (the survivor of a killed one, on CI) ran with
    no sweeper, so a message its peer took with it was never answered."""
    import socket

    from s2s_contract.settings import get_settings
    from worker import metrics, tasks

    started: list[float] = []
    monkeypatch.setattr(tasks.runtime, "redis_client", lambda: "redis")
    monkeypatch.setattr(tasks.sweeper, "start", lambda _r, _a, older: started.append(older))
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        monkeypatch.setattr(get_settings(), "metrics_port", taken.getsockname()[1])
        monkeypatch.setattr(metrics, "_started", type(metrics._started)())
        tasks._on_ready()
    assert started == [get_settings().pending_sweep_after_s]
    assert "cannot be served" in caplog.text
