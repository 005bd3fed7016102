"""A real worker process (threads pool) against real Redis and a real database."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from s2s_contract.client import send_reply
from s2s_contract.settings import Settings
from s2s_contract.tasks import (
    INFERENCE_QUEUE,
    REPLIES_STREAM,
    REPLY_TASK,
    ReplyEvent,
    ReplyRequest,
    pending_key,
)
from tests.conftest import slow_checkpoint
from tests.utils.services import free_port, scratch_redis_url, wait_for, worker_process
from worker.celery_app import create_app
from worker.chat_lease import ChatLease
from worker.store import DialogueStore
from worker.store.migrate import upgrade
from worker.store.models import Generation, Turn

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path: Path, checkpoint_dir: Path) -> Iterator[dict[str, object]]:
    redis_url = scratch_redis_url()
    db_url = f"sqlite:///{tmp_path / 'worker.sqlite3'}"
    upgrade(db_url)
    port = free_port()
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": db_url,
        "MODEL_DIR": str(checkpoint_dir),
        "DEVICE": "cpu",
        "BROKER_VISIBILITY_TIMEOUT": "30",
        "METRICS_PORT": str(port),
    }
    producer = create_app(Settings(redis_url=redis_url))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = DialogueStore(db_url)
    with worker_process(env, tmp_path / "worker.log") as proc:
        yield {
            "producer": producer,
            "redis": client,
            "store": store,
            "proc": proc,
            "log": tmp_path / "worker.log",
            "metrics": f"http://127.0.0.1:{port}/metrics",
        }
    store.engine.dispose()
    client.flushdb()
    client.close()


def payload(chat: int, message: int, text: str = "hello there") -> dict[str, object]:
    return {
        "chat_id": chat,
        "user_id": chat,
        "message_id": message,
        "text": text,
        "enqueued_at": time.time(),
    }


def send(producer: object, client: redis.Redis, chat: int, message: int, text: str = "hi") -> None:
    """As the bot sends: registered as pending for its chat, then queued."""
    send_reply(client, producer, ReplyRequest.model_validate(payload(chat, message, text)))


def events(client: redis.Redis) -> list[ReplyEvent]:
    return [
        ReplyEvent.model_validate_json(fields["event"])
        for _, fields in client.xrange(REPLIES_STREAM)
    ]


def count(store: DialogueStore, model: type) -> int:
    with store.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_concurrent_replies_are_stored_and_published_once(stack: dict) -> None:
    producer, client, store = stack["producer"], stack["redis"], stack["store"]
    for message in range(5):
        for chat in range(40):
            send(producer, client, 1000 + chat, message + 1, f"m{message}")
    wait_for(lambda: client.xlen(REPLIES_STREAM) >= 200, 180, "200 replies on the stream")
    published = events(client)
    assert len({(e.chat_id, e.message_id) for e in published}) == len(published) == 200
    assert count(store, Generation) == 200 and count(store, Turn) == 400
    # Per-chat order: each chat's messages were answered in the order they were sent.
    for chat in range(40):
        order = [e.message_id for e in published if e.chat_id == 1000 + chat]
        assert order == sorted(order)
    assert not any(client.exists(pending_key(1000 + c)) for c in range(40))
    assert not client.keys("s2s:context:*")  # the database is the only copy of the context
    assert stack["proc"].poll() is None
    with urllib.request.urlopen(stack["metrics"], timeout=5) as response:
        exposed = response.read().decode()
    assert 's2s_replies_total{outcome="new"} 200.0' in exposed
    assert "s2s_model_loaded 1.0" in exposed
    assert "s2s_queue_wait_seconds_count 200.0" in exposed  # every payload had enqueued_at


def test_duplicate_delivery_stores_and_publishes_one_reply(stack: dict) -> None:
    producer, client, store = stack["producer"], stack["redis"], stack["store"]
    send(producer, client, 7, 1)
    producer.send_task(REPLY_TASK, args=[payload(7, 1)])  # the broker delivers it again
    send(producer, client, 7, 2)  # a later message proves both duplicates were handled
    wait_for(lambda: client.xlen(REPLIES_STREAM) >= 2, 60, "both messages answered")
    time.sleep(1)
    assert [e.message_id for e in events(client)] == [1, 2]
    assert count(store, Generation) == 2


def test_malformed_payload_is_rejected_and_the_worker_lives(stack: dict) -> None:
    producer, client = stack["producer"], stack["redis"]
    for bad in (
        {"chat_id": "seven"},
        {**payload(8, 1), "text": ""},
        "not an object",
        {**payload(8, 2), "extra": 1},
        {**payload(8, 4), "user_id": 2**70},  # reached PostgreSQL as "bigint out of range"
    ):
        producer.send_task(REPLY_TASK, args=[bad])
    producer.send_task(REPLY_TASK, args=[payload(8, 3)])
    wait_for(lambda: client.xlen(REPLIES_STREAM) >= 1, 60, "the good reply")
    assert [e.message_id for e in events(client)] == [3]
    assert stack["proc"].poll() is None
    assert "rejected malformed payload" in Path(stack["log"]).read_text()


def test_a_chat_another_worker_holds_waits_and_the_others_go_on(stack: dict) -> None:
    """A batch leaves a chat locked elsewhere for later (sent back with a countdown) and
    answers the rest; once the lock is free, the chat is answered."""
    producer, client = stack["producer"], stack["redis"]
    rival = ChatLease(client)
    assert rival.acquire([9]) == [9]
    send(producer, client, 9, 1)
    send(producer, client, 10, 1)
    wait_for(lambda: client.xlen(REPLIES_STREAM) >= 1, 60, "the free chat answered")
    time.sleep(1.5)  # several countdowns: the held chat is not answered meanwhile
    assert [e.chat_id for e in events(client)] == [10]
    rival.release()
    wait_for(lambda: client.xlen(REPLIES_STREAM) >= 2, 60, "the held chat answered")
    assert [e.chat_id for e in events(client)] == [10, 9]


def where_things_stand(client: redis.Redis, store: DialogueStore, logs: Path) -> str:
    """What a timed-out fault test saw: the counts on every side, the keys left, and the
    surviving worker's last log lines (a failure on CI is read from this alone)."""
    queue = client.llen(INFERENCE_QUEUE)
    inboxes = {k: client.hlen(k) for k in client.scan_iter(match="s2s:pending:*")}
    tail = (logs / "b.log").read_text(errors="replace").splitlines()[-40:]
    return (
        f"stored {count(store, Generation)}, published {client.xlen(REPLIES_STREAM)}, "
        f"queued {queue}, unacked {client.hlen('unacked')} "
        f"(index {client.zcard('unacked_index')}), "
        f"restore mutex ttl {client.ttl('unacked_mutex')}, "
        f"chat locks {sorted(client.scan_iter(match='s2s:lock:chat:*'))}, "
        f"pending messages {sum(inboxes.values())} in {len(inboxes)} chats; "
        "b.log ends:\n" + "\n".join(tail)
    )


@pytest.mark.slow
def test_killed_worker_loses_nothing(tmp_path: Path, tiny_tokenizer: object) -> None:
    """Two workers, 300 queued replies, one worker SIGKILLed mid-batch: its unacknowledged
    messages come back after the (short) visibility timeout, its chat locks expire, and
    every message ends with exactly one stored and one published reply."""
    slow_dir = slow_checkpoint(tmp_path, tiny_tokenizer)
    redis_url = scratch_redis_url()
    db_url = f"sqlite:///{tmp_path / 'crash.sqlite3'}"
    upgrade(db_url)
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": db_url,
        "MODEL_DIR": str(slow_dir),
        "DEVICE": "cpu",
        "BROKER_VISIBILITY_TIMEOUT": "8",
    }
    producer = create_app(Settings(redis_url=redis_url))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = DialogueStore(db_url)
    for i in range(300):
        send(producer, client, 2000 + i % 60, i + 1)
    with (
        worker_process(env, tmp_path / "a.log", concurrency=8) as victim,
        worker_process(env, tmp_path / "b.log", concurrency=8),
    ):
        wait_for(lambda: client.xlen(REPLIES_STREAM) >= 40, 120, "work under way")
        victim.kill()  # SIGKILL: no warm shutdown, no acknowledgements
        victim.wait()
        try:
            wait_for(lambda: count(store, Generation) >= 300, 180, "all 300 replies stored")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {where_things_stand(client, store, tmp_path)}") from None
        time.sleep(2)
    published = [(e.chat_id, e.message_id) for e in events(client)]
    assert len(published) == len(set(published)) == 300  # each published once
    assert count(store, Generation) == 300 and count(store, Turn) == 600
    for chat in range(2000, 2060):  # and each chat's in the order sent
        order = [m for c, m in published if c == chat]
        assert order == sorted(order)
    store.engine.dispose()
    client.flushdb()


@pytest.mark.slow
def test_sigterm_finishes_the_batch_in_flight(tmp_path: Path, tiny_tokenizer: object) -> None:
    """SIGTERM is a warm shutdown: the worker exits 0 after finishing and acknowledging what it
    was decoding; a second worker answers the rest; no task is answered or published twice
    (an unacknowledged finished task would come back after the visibility timeout)."""
    import signal

    env = {
        "REDIS_URL": scratch_redis_url(),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'term.sqlite3'}",
        "MODEL_DIR": str(slow_checkpoint(tmp_path, tiny_tokenizer)),
        "DEVICE": "cpu",
        "BROKER_VISIBILITY_TIMEOUT": "6",
        "METRICS_PORT": "0",
    }
    upgrade(env["DATABASE_URL"])
    producer = create_app(Settings(redis_url=env["REDIS_URL"]))
    client = redis.Redis.from_url(env["REDIS_URL"], decode_responses=True)
    store = DialogueStore(env["DATABASE_URL"])
    for i in range(120):
        send(producer, client, 4000 + i % 40, i + 1)
    with worker_process(env, tmp_path / "a.log", concurrency=8) as first:
        wait_for(lambda: client.xlen(REPLIES_STREAM) >= 10, 120, "work under way")
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    done_by_first = count(store, Generation)
    assert done_by_first >= 10
    with worker_process(env, tmp_path / "b.log", concurrency=8):
        wait_for(lambda: count(store, Generation) >= 120, 180, "all 120 replies stored")
        time.sleep(8)  # past the visibility timeout: anything unacknowledged would be back
    published = [(e.chat_id, e.message_id) for e in events(client)]
    assert len(published) == len(set(published)) == 120
    assert count(store, Generation) == 120 and count(store, Turn) == 240
    assert "Warm shutdown" in (tmp_path / "a.log").read_text()
    store.engine.dispose()
    client.flushdb()


@pytest.mark.slow
def test_hot_reload_switches_versions_without_dropping(
    tmp_path: Path, tiny_tokenizer: object
) -> None:
    from s2s_core import save_checkpoint
    from s2s_core.checkpoint import weights_digest
    from tests.conftest import tiny_model

    vocab = tiny_tokenizer.vocab_size  # type: ignore[attr-defined]
    old = save_checkpoint(tmp_path / "old", tiny_model(vocab), tiny_tokenizer, {})  # type: ignore[arg-type]
    new = save_checkpoint(
        tmp_path / "new", tiny_model(vocab, attention="luong"), tiny_tokenizer, {}
    )  # type: ignore[arg-type]
    redis_url = scratch_redis_url()
    db_url = f"sqlite:///{tmp_path / 'reload.sqlite3'}"
    upgrade(db_url)
    store = DialogueStore(db_url)
    old_id, new_id = weights_digest(old), weights_digest(new)
    store.registry.register_model(old_id, str(old), {})
    store.registry.register_model(new_id, str(new), {})
    store.registry.promote(old_id)
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": db_url,
        "MODEL_DIR": str(tmp_path / "none"),
        "DEVICE": "cpu",
        "BROKER_VISIBILITY_TIMEOUT": "30",
    }
    producer = create_app(Settings(redis_url=redis_url))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with worker_process(env, tmp_path / "w.log", concurrency=4):
        for i in range(60):
            send(producer, client, 3000 + i % 5, i + 1)
            if i == 20:
                wait_for(
                    lambda: client.xlen(REPLIES_STREAM) >= 10, 60, "replies from the old model"
                )
                store.registry.promote(new_id)
            time.sleep(0.1)
        wait_for(lambda: client.xlen(REPLIES_STREAM) >= 60, 120, "all 60 replies")
    with store.sessions() as s:
        versions = [
            v for (v,) in s.execute(select(Generation.model_version).order_by(Generation.id)).all()
        ]
    assert len(versions) == 60
    assert versions[0] == old_id and versions[-1] == new_id
    switch = versions.index(new_id)
    assert all(v == new_id for v in versions[switch:])  # no flip-flopping back
    store.engine.dispose()
    client.flushdb()


@pytest.mark.slow
def test_retrain_task_registers_a_candidate(tmp_path: Path, checkpoint_dir: Path) -> None:
    """The retrain task runs the whole cycle on a trainer (a worker on the training queue,
    as compose's trainer service); a second request while it runs is turned away by the
    lock, not run twice."""
    from s2s_contract.tasks import RETRAIN_TASK, TASK_QUEUES, TRAINING_QUEUE
    from tests.utils.services import s2s_process
    from tests.worker.test_retrain import seeded_store

    store, db_url = seeded_store(tmp_path)
    env = {
        "REDIS_URL": scratch_redis_url(),
        "DATABASE_URL": db_url,
        "MODEL_DIR": str(checkpoint_dir),
        "DEVICE": "cpu",
        "METRICS_PORT": "0",
        "RETRAIN_DIR": str(tmp_path / "retrain"),
    }
    producer = create_app(Settings(redis_url=env["REDIS_URL"]))
    request = {"mix": 0.0, "min_pairs": 5, "replay_limit": 10}
    trainer = ["worker", "--queues", TRAINING_QUEUE, "--concurrency", "2"]
    with s2s_process(trainer, env, tmp_path / "worker.log"):
        for _ in range(2):
            producer.send_task(RETRAIN_TASK, args=[request], queue=TASK_QUEUES[RETRAIN_TASK])
        wait_for(lambda: store.registry.list_models(), 120, "a registered candidate")
        time.sleep(3)
    runs = list((tmp_path / "retrain").iterdir())
    assert len(runs) == 1 and (runs[0] / "replay" / "report.html").is_file()
    assert len(store.registry.list_models()) == 1
    assert "a retraining is already running" in (tmp_path / "worker.log").read_text()
    store.engine.dispose()
