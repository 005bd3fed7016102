"""``s2s worker``: a Celery worker with defaults that suit the device."""

from __future__ import annotations

import math
import os
import socket
from typing import Annotated

import typer

from s2s_cli.options import fail, settings_or_exit
from s2s_contract.tasks import INFERENCE_QUEUE, MAINTENANCE_QUEUE, TRAINING_QUEUE


def prefetch_multiplier(concurrency: int) -> int:
    """Celery prefetches ``multiplier x concurrency`` unacknowledged messages, and a batch's
    messages stay unacknowledged until it returns: room for two full batches (one working,
    one filling) keeps the batches full."""
    from s2s_contract.settings import get_settings

    return max(1, math.ceil(2 * get_settings().batch_max_size / concurrency))


def worker(
    concurrency: Annotated[
        int,
        typer.Option(min=1, help="Threads: batches in flight at once (one decodes, others store)."),
    ] = 8,
    queues: Annotated[
        str,
        typer.Option(
            help=f"Queues to consume (a trainer: --queues {TRAINING_QUEUE} --concurrency 1)."
        ),
    ] = f"{INFERENCE_QUEUE},{MAINTENANCE_QUEUE}",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run an inference worker (threads pool: CUDA never meets a fork)."""
    if not os.environ.get("REDIS_URL"):
        typer.echo("error: REDIS_URL is not set (the worker consumes tasks from Redis)", err=True)
        raise typer.Exit(code=2)
    settings = settings_or_exit()  # a bad variable is one line here, not a Celery traceback
    from celery.bin.celery import celery

    from worker import metrics

    try:  # before Celery starts: a port in use is one line and no worker
        metrics.serve(settings.metrics_port)
    except metrics.MetricsPortInUse as exc:
        fail(str(exc))

    # Celery's own command line, not app.worker_main: worker_main (and app.start) drop the
    # status click returns, so a worker stopped by an unrecoverable error exited 0 and a
    # restart-on-failure supervisor left the service down.
    code = celery.main(
        [
            "--app=worker.celery_app:app",
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency}",
            f"--prefetch-multiplier={prefetch_multiplier(concurrency)}",
            f"--queues={queues}",
            f"--loglevel={loglevel}",
            f"--hostname=s2s-{os.getpid()}@{socket.gethostname()}",
            "--without-gossip",
            "--without-mingle",
        ],
        standalone_mode=False,
    )
    raise typer.Exit(code=code if isinstance(code, int) else 0)
