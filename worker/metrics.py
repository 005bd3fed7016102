"""Prometheus metrics of the worker process, served over HTTP on METRICS_PORT (also the
health check: the endpoint answers while the worker lives and reports whether a model is
loaded)."""

from __future__ import annotations

import logging
import threading

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

QUEUE_WAIT = Histogram("s2s_queue_wait_seconds", "Enqueue by the bot to decode start")
BATCH_SIZE = Histogram(
    "s2s_batch_size", "Requests per generate() call", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
DECODE = Histogram("s2s_decode_seconds", "One batched generate() call")
REPLIES = Counter("s2s_replies_total", "Replies published", ["outcome"])  # new | repeat
TASK_ERRORS = Counter("s2s_task_errors_total", "Task failures", ["task", "kind"])
MODEL_LOADED = Gauge("s2s_model_loaded", "1 once a model serves, else 0")

_started = threading.Event()


class MetricsPortInUse(RuntimeError):
    """The endpoint's port cannot be bound (another process serves it)."""


def serve(port: int) -> None:
    """Starts the metrics endpoint once per process (port 0: off). A port another process
    holds is an error, not a worker without an endpoint: the health check would then probe
    that other process."""
    if port and not _started.is_set():
        try:
            start_http_server(port)
        except OSError as exc:
            raise MetricsPortInUse(
                f"METRICS_PORT {port} cannot be served ({exc.strerror or exc}); another worker "
                "on this machine? Give each worker its own METRICS_PORT, or 0 to turn the "
                "endpoint off"
            ) from None
        _started.set()
        log.info("metrics on :%d/metrics", port)
