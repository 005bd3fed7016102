"""Celery tasks: validate, call the service, retry what is transient. Bad payloads are
logged and dropped (acknowledged), never retried, and never take the worker down."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Collection
from concurrent.futures import TimeoutError as DecodeTimeout
from queue import Queue
from typing import Any

from celery import Task
from celery.exceptions import Reject
from celery.signals import worker_ready
from celery.utils.time import get_exponential_backoff_interval
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task
from pydantic import BaseModel, ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
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
    TASK_QUEUES,
    FeedbackRequest,
    ForgetRequest,
    ReplyRequest,
    ResetRequest,
    RetrainRequest,
)
from worker import metrics, runtime, sweeper
from worker.celery_app import app
from worker.chat_lease import ChatLease
from worker.inbox import ChatInbox

log = logging.getLogger(__name__)
TRANSIENT = (OperationalError, RedisConnectionError, RedisTimeout, DecodeTimeout)
MAX_RETRIES = 20
# A message whose chat another worker is answering comes back after this long.
BUSY_RETRY_S = 0.25


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
    """The sweeper first: it is what answers a message a killed worker took with it, and an
    error here (Celery logs and swallows it) must not leave a worker without one. ``s2s
    worker`` has bound the metrics port before Celery started (a port in use stops it)."""
    settings = get_settings()
    sweeper.start(runtime.redis_client(), app, settings.pending_sweep_after_s)
    try:
        metrics.serve(settings.metrics_port)
    except metrics.MetricsPortInUse as exc:
        log.error("%s", exc)


class ReplyBatch(Batches):
    """celery-batches' task base: the worker's buffered reply messages reach the task as one
    list (``flush_every`` of them, or what came within ``flush_interval``). Each message is
    acknowledged when the batch returns (late acknowledgement: a killed worker's batch is
    redelivered whole), except those the batch hands back, which go back to the queue."""

    def Strategy(self, task: Any, app: Any, consumer: Any) -> Any:
        """Called on every consumer (re)start. After a broker connection is lost the
        consumer restarts with a fresh event loop: the repeating flush timer is gone, and
        the buffered requests belong to the closed channel (kombu restores their messages
        to the queue; they cannot be acknowledged). celery-batches keeps both, and its
        buffer then never flushed again: a full prefetch of stale requests, no timer, no
        new deliveries (tests/faults/test_redis_restart.py). Start clean instead."""
        timer: Any = getattr(self, "_tref", None)
        if timer is not None:
            timer.cancel()
        self._tref = None
        self._buffer: Queue[Any] = Queue()
        self._pending: Queue[Any] = Queue()
        self._count = itertools.count(1)
        return super().Strategy(task, app, consumer)

    def flush(self, requests: Collection[Any]) -> Any:
        batch = ([SimpleRequest.from_request(r) for r in requests],)

        def on_return(handed_back: set[str] | None) -> None:
            for request in requests:
                if handed_back and request.id in handed_back:
                    request.reject(requeue=True)
                else:
                    request.acknowledge()

        return self._pool.apply_async(
            apply_batches_task, (self, batch, 0, None), callback=on_return
        )


_settings = get_settings()


@app.task(
    name=REPLY_TASK,
    base=ReplyBatch,
    bind=True,
    acks_late=True,
    flush_every=_settings.batch_max_size,
    flush_interval=_settings.batch_max_wait_ms / 1000,
)
def reply(self: Task, deliveries: list[SimpleRequest]) -> set[str]:
    """Answer a batch of user messages as one unit, each chat's in the order they were sent
    (with any earlier message still in its inbox). Chats another worker is answering are
    sent back for later. Returns the deliveries to requeue (their retry could not be sent)."""
    mine: list[tuple[SimpleRequest, ReplyRequest]] = []
    for delivery in deliveries:
        args, kwargs = list(delivery.args or ()), delivery.kwargs or {}
        given = args[0] if len(args) == 1 and not kwargs else {"args": args, "kwargs": kwargs}
        req = _parse(ReplyRequest, given, REPLY_TASK)
        if req is not None:
            mine.append((delivery, req))
    if not mine:
        return set()
    client = runtime.redis_client()
    lease = ChatLease(client)
    try:
        held = set(lease.acquire(req.chat_id for _, req in mine))
    except TRANSIENT as exc:
        return _later(mine, exc)
    busy = [(d, req) for d, req in mine if req.chat_id not in held]
    handed_back = _later(busy, None)
    mine = [(d, req) for d, req in mine if req.chat_id in held]
    with lease.kept():
        try:
            service = runtime.service()
            due = ChatInbox(client).due(
                [req for _, req in mine], lambda keys: set(service.store.find_replies(keys))
            )
            result = service.reply_batch(due)
        except TRANSIENT as exc:
            return handed_back | _later(mine, exc)
    for error in result.failed.values():
        metrics.TASK_ERRORS.labels(REPLY_TASK, type(error).__name__).inc()
    return handed_back


def _later(
    deliveries: list[tuple[SimpleRequest, ReplyRequest]], error: Exception | None
) -> set[str]:
    """Sends each message again with a countdown: after ``error`` (transient), with Celery's
    exponential backoff and full jitter, counted against ``MAX_RETRIES``; without one (its
    chat is busy elsewhere), after ``BUSY_RETRY_S``. Returns the deliveries whose new copy
    the broker could not take: the caller requeues those instead."""
    if error is not None and deliveries:
        log.warning(
            "%s: transient %s, %d retried", REPLY_TASK, type(error).__name__, len(deliveries)
        )
    handed_back: set[str] = set()
    for delivery, req in deliveries:
        retries = int((delivery.request_dict or {}).get("retries") or 0)
        countdown = BUSY_RETRY_S
        if error is not None:
            if retries >= MAX_RETRIES:
                log.error(
                    "%s: gave up after %d retries (%s)", REPLY_TASK, retries, type(error).__name__
                )
                continue  # the message stays in its inbox: the sweeper sends it again
            retries += 1
            countdown = get_exponential_backoff_interval(1, retries, 30, True)
        try:
            app.send_task(
                REPLY_TASK,
                args=[req.model_dump()],
                queue=TASK_QUEUES[REPLY_TASK],
                countdown=countdown,
                retries=retries,
            )
        except Exception as exc:  # the broker is away too: requeue this delivery instead
            log.warning("%s: retry not sent (%s); requeued", REPLY_TASK, type(exc).__name__)
            handed_back.add(str(delivery.id))
    return handed_back


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
    """Long work on the training queue (a trainer process only): single-flight under a
    Redis lock, so a redelivery (a run can outlast the visibility timeout) finds it running
    and leaves."""
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
