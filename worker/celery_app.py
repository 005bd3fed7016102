"""The Celery application, configured from settings (REDIS_URL, BROKER_VISIBILITY_TIMEOUT).

JSON only (a pickled message is refused); late acknowledgement with rejection on a lost
worker, so a killed worker's tasks are redelivered; one prefetched task per thread, so the
threads feeding the batcher are the only ones holding tasks; no result backend traffic.
"""

from __future__ import annotations

from celery import Celery

from s2s_contract.broker import TRANSPORT
from s2s_contract.settings import Settings, get_settings
from s2s_contract.tasks import INFERENCE_QUEUE, TASK_QUEUES


def create_app(settings: Settings) -> Celery:
    app = Celery("s2s", broker=settings.redis_url or "redis://127.0.0.1:6379/0")
    app.conf.update(
        broker_transport=TRANSPORT,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        broker_transport_options=_transport_options(settings.broker_visibility_timeout),
        broker_connection_retry_on_startup=True,
        task_default_queue=INFERENCE_QUEUE,
        task_routes={name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
        worker_hijack_root_logger=False,
    )
    return app


# How long the lock a worker takes to redeliver unacknowledged tasks outlives that worker:
# a restore takes milliseconds, but a worker killed while holding the lock stopped every
# worker's restores for kombu's default five minutes. Two restorers cannot redeliver one task
# twice (each redelivery is a transaction watching the unacknowledged set).
RESTORE_LOCK_S = 30


def _transport_options(visibility_timeout: int) -> dict[str, int]:
    """Redis redelivers a task unacknowledged for ``visibility_timeout`` seconds; sweep for
    such tasks often enough (kombu's default sweep is about every 100 s) that a killed
    worker's tasks come back soon after the timeout."""
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": max(1, min(10, visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": RESTORE_LOCK_S,
    }


app = create_app(get_settings())
app.autodiscover_tasks(["worker"], related_name="tasks", force=True)
