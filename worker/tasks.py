"""Celery tasks: validate, call the service, retry what is transient. Bad payloads are
logged and dropped (acknowledged), never retried, and never take the worker down."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import TimeoutError as DecodeTimeout
from contextlib import contextmanager
from typing import Any

from celery import Task
from celery.exceptions import Reject
from celery.signals import worker_ready
from celery.utils.time import get_exponential_backoff_interval
from pydantic import BaseModel, ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError, LockNotOwnedError, RedisError
from redis.exceptions import TimeoutError as RedisTimeout
from sqlalchemy.exc import OperationalError

from s2s_contract.settings import get_settings
from s2s_contract.tasks import (
    FEEDBACK_TASK,
    FORGET_TASK,
    REPLY_TASK,
    RESET_TASK,
    RETRAIN_LOCK,
    RETRAIN_TASK,
    FeedbackRequest,
    ForgetRequest,
    ReplyRequest,
    ResetRequest,
    RetrainRequest,
    chat_lock_key,
)
from worker import metrics, runtime, sweeper
from worker.celery_app import app
from worker.inbox import ChatInbox

log = logging.getLogger(__name__)
TRANSIENT = (OperationalError, RedisConnectionError, RedisTimeout, DecodeTimeout, LockError)
# A chat's lock outlives a killed holder by at most LOCK_TIMEOUT_S. A live holder renews it
# every LOCK_RENEW_S for as long as its work takes (several messages, each up to the decode
# and store timeouts: longer than the TTL). A task that cannot get the lock within
# LOCK_WAIT_S goes back to the queue instead of holding a thread.
LOCK_TIMEOUT_S = 30
LOCK_RENEW_S = LOCK_TIMEOUT_S / 3
LOCK_WAIT_S = 10
# A chat's next message often arrives while the previous task is still releasing the lock;
# redis-py's default poll of 100 ms would add that to its reply.
LOCK_POLL_S = 0.02
MAX_RETRIES = 20


def _parse(schema: type[BaseModel], payload: Any, task: str) -> Any:
    try:
        return schema.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        log.error("%s: rejected malformed payload (%s)", task, problems)
        metrics.TASK_ERRORS.labels(task, "malformed").inc()
        return None


def _run(task: Task, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except TRANSIENT as exc:
        # Celery's own backoff with full jitter (a burst of retries after an outage spreads
        # out instead of arriving together). Not autoretry_for: a retry the broker cannot
        # take must be requeued below, which autoretry would drop.
        countdown = get_exponential_backoff_interval(1, task.request.retries, 30, True)
        log.warning("%s: transient %s, retry in %ss", task.name, type(exc).__name__, countdown)
        try:
            retry = task.retry(exc=exc, countdown=countdown, max_retries=MAX_RETRIES, throw=False)
        except Reject as unpublished:
            # Celery could not publish the retry (the broker is down) and would drop the
            # message. Requeue this delivery instead; if Redis cannot take even that, the
            # message stays unacknowledged there and comes back after the visibility timeout.
            log.warning("%s: retry not published (%s); requeued", task.name, unpublished.reason)
            raise Reject(unpublished.reason, requeue=True) from exc
        raise retry from exc


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    metrics.serve(settings.metrics_port)
    sweeper.start(runtime.redis_client(), app, settings.pending_sweep_after_s)
    threads = getattr(getattr(sender, "pool", None), "limit", None)
    if threads:
        try:
            runtime.open_redis_connections(runtime.redis_client(), int(threads))
        except RedisConnectionError as exc:  # the tasks retry; their threads connect later
            log.warning("could not open Redis connections ahead: %s", exc)


@contextmanager
def holding(lock: Any, chat_id: int) -> Iterator[None]:
    """Keeps an acquired chat lock for as long as the block runs: a watchdog thread renews
    its TTL every ``LOCK_RENEW_S``, so only a dead holder's lock expires. A lock found lost
    (expired and taken, or deleted) means two workers may have answered one chat: that is
    logged and counted as the bug it is, never retried (the block's work is done)."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(LOCK_RENEW_S):
            try:
                lock.reacquire()
            except LockError as exc:
                log.error("chat %s: lock lost while answering (%s)", chat_id, exc)
                metrics.TASK_ERRORS.labels(REPLY_TASK, "lock_lost").inc()
                return
            except RedisError as exc:  # Redis away for a moment: the TTL covers the next try
                log.warning("chat %s: lock not renewed (%s)", chat_id, exc)

    watchdog = threading.Thread(target=renew, name=f"lock-{chat_id}", daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        stop.set()
        watchdog.join()
        try:
            lock.release()
        except LockNotOwnedError as exc:
            log.error("chat %s: lock lost before release (%s)", chat_id, exc)
            metrics.TASK_ERRORS.labels(REPLY_TASK, "lock_lost").inc()


@app.task(name=REPLY_TASK, bind=True)
def reply(self: Task, payload: Any) -> None:
    """Answer one user message, and any earlier pending message of its chat first: under
    the chat's lock, messages are answered in the order they were sent."""
    req = _parse(ReplyRequest, payload, REPLY_TASK)
    if req is None:
        return

    def in_order() -> None:
        client = runtime.redis_client()
        lock = client.lock(
            chat_lock_key(req.chat_id),
            timeout=LOCK_TIMEOUT_S,
            blocking_timeout=LOCK_WAIT_S,
            sleep=LOCK_POLL_S,
            thread_local=False,  # one Lock per task, renewed from holding()'s watchdog thread
        )
        if not lock.acquire():
            raise LockError(f"chat {req.chat_id} busy")
        with holding(lock, req.chat_id):
            service, inbox = runtime.service(), ChatInbox(client)

            def answered() -> bool:
                return service.store.find_reply(req.chat_id, req.message_id) is not None

            for message in inbox.due(req, answered):
                service.reply(message)
                inbox.done(message)

    _run(self, in_order)


@app.task(name=FEEDBACK_TASK, bind=True)
def feedback(self: Task, payload: Any) -> None:
    req = _parse(FeedbackRequest, payload, FEEDBACK_TASK)
    if req is not None:
        try:
            _run(self, lambda: runtime.service().feedback(req))
        except ValueError as exc:  # e.g. a vote on a turn that was forgotten meanwhile
            log.error("%s: %s", FEEDBACK_TASK, exc)


@app.task(name=FORGET_TASK, bind=True)
def forget(self: Task, payload: Any) -> None:
    req = _parse(ForgetRequest, payload, FORGET_TASK)
    if req is not None:

        def everywhere() -> None:
            dropped = ChatInbox(runtime.redis_client()).forget(req.user_id, req.chat_ids)
            runtime.service().forget(req)
            log.info("forgot %d unanswered messages", dropped)

        _run(self, everywhere)


@app.task(name=RESET_TASK, bind=True)
def reset(self: Task, payload: Any) -> None:
    req = _parse(ResetRequest, payload, RESET_TASK)
    if req is not None:
        _run(self, lambda: runtime.service().reset(req))


@app.task(name=RETRAIN_TASK, bind=True)
def retrain(self: Task, payload: Any) -> None:
    """Long work on the maintenance queue: single-flight under a Redis lock, so a redelivery
    (a run can outlast the visibility timeout) finds it running and leaves."""
    from pathlib import Path

    from worker.retrain import RetrainPlan
    from worker.retrain import retrain as run_retrain

    req = _parse(RetrainRequest, payload, RETRAIN_TASK)
    if req is None:
        return
    settings = get_settings()
    lock = runtime.redis_client().lock(RETRAIN_LOCK, timeout=24 * 3600, blocking=False)
    if not lock.acquire():
        log.info("%s: a retraining is already running", RETRAIN_TASK)
        return
    try:
        service = runtime.service()
        _, baseline = runtime.registry_source(service.store, settings)()
        plan = RetrainPlan(
            Path(baseline),
            settings.retrain_dir,
            epochs=req.epochs,
            mix=req.mix,
            replay_limit=req.replay_limit,
            min_pairs=req.min_pairs,
            device=settings.device,
        )
        result = _run(self, lambda: run_retrain(service.store, plan))
        log.info("%s: %s", RETRAIN_TASK, {k: result[k] for k in ("registered", "promoted")})
    finally:
        lock.release()
