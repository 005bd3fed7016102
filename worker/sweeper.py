"""Answers messages no task will answer: a sweep over the chats' inboxes.

Every message is registered in its chat's inbox (``s2s:pending:<chat>``) before its task is
sent, and leaves it only once answered. A task can still vanish: kombu's Redis transport pops
a message from the queue before it records it as unacknowledged, and a Redis killed between
the two (or a worker dying with it) takes the task with it (seen in
tests/faults/test_redis_restart.py, about one run in five). The inbox still holds the message,
so a sweep sends a new task for any entry registered longer than ``older_than_s`` ago. A
duplicate task is harmless: the chat's lock, its inbox and the store answer each message once.

One sweep runs every ``SWEEP_EVERY_S`` across all workers (a Redis lock elects it), and an
entry is re-sent at most once per ``older_than_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pydantic import ValidationError
from redis.exceptions import RedisError

from s2s_contract.tasks import REPLY_TASK, TASK_QUEUES, ReplyRequest

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 10.0
SWEEP_LOCK = "s2s:lock:sweep"
SWEPT = "s2s:swept:{chat}:{message}"  # this entry was re-sent recently


def sweep(redis: Any, celery: Any, older_than_s: float, now: float | None = None) -> int:
    """Sends a new task for each inbox entry registered more than ``older_than_s`` ago and not
    re-sent within that time; returns how many it sent."""
    now = time.time() if now is None else now
    sent = 0
    for key in redis.scan_iter(match="s2s:pending:*", count=500):
        for raw in redis.hvals(key):
            try:
                request = ReplyRequest.model_validate_json(raw)
            except ValidationError:
                continue  # the inbox drops it with a log line when its chat is next answered
            if request.enqueued_at is None or now - request.enqueued_at < older_than_s:
                continue
            marker = SWEPT.format(chat=request.chat_id, message=request.message_id)
            if not redis.set(marker, 1, nx=True, ex=max(int(older_than_s), 1)):
                continue
            celery.send_task(REPLY_TASK, args=[request.model_dump()], queue=TASK_QUEUES[REPLY_TASK])
            sent += 1
    if sent:
        log.warning("re-sent %d unanswered messages older than %.0f s", sent, older_than_s)
    return sent


def start(redis: Any, celery: Any, older_than_s: float) -> threading.Thread:
    """The sweeping thread of one worker process."""

    def loop() -> None:
        while True:
            time.sleep(SWEEP_EVERY_S)
            try:
                if redis.set(SWEEP_LOCK, 1, nx=True, ex=max(int(SWEEP_EVERY_S), 1)):
                    sweep(redis, celery, older_than_s)
            except RedisError as exc:  # Redis away: the next round tries again
                log.warning("inbox sweep skipped: %s", type(exc).__name__)
            except Exception:  # never let the thread die: it is the last line of defence
                log.exception("inbox sweep failed")

    thread = threading.Thread(target=loop, name="s2s-sweeper", daemon=True)
    thread.start()
    return thread
