"""Per-process resources, created lazily on first use (never in ``worker_process_init``,
whose handlers are killed after a few seconds and which the threads pool never sends)."""

from __future__ import annotations

import threading
from pathlib import Path

import redis

from s2s_contract.settings import Settings, get_settings
from worker.engine import ActiveSource, CanarySource, Engine, default_source
from worker.service import RedisPublisher, ReplyService
from worker.store import DialogueStore

_lock = threading.Lock()
_service: ReplyService | None = None
_redis: redis.Redis | None = None


def registry_source(store: DialogueStore, settings: Settings) -> ActiveSource:
    """The store's active model version, else the checkpoint in MODEL_DIR."""
    has_default = (settings.model_dir / "model.safetensors").is_file()
    fallback = default_source(settings.model_dir) if has_default else None

    def active() -> tuple[str, Path]:
        found = store.registry.active_model()
        if found is not None:
            return found[0], Path(found[1])
        if fallback is None:
            raise FileNotFoundError(f"no active model registered and none in {settings.model_dir}")
        return fallback()

    return active


def canary_source(store: DialogueStore) -> CanarySource:
    """The store's canary version, if one is running."""

    def canary() -> tuple[str, Path, int] | None:
        found = store.registry.canary()
        return None if found is None else (found[0], Path(found[1]), found[2])

    return canary


def serving_engine(store: DialogueStore, settings: Settings) -> Engine:
    """The engine on the registry's active model and canary, sized by the settings."""
    return Engine(
        registry_source(store, settings),
        settings.device,
        settings.batch_max_size,
        canary_source=canary_source(store),
        corpus_cache=settings.retrieval_dir,
    )


def service() -> ReplyService:
    global _service, _redis
    with _lock:
        if _service is None:
            settings = get_settings()
            store = DialogueStore(settings.database_url)
            engine = serving_engine(store, settings)
            _redis = redis.Redis.from_url(settings.redis_url) if settings.redis_url else None
            _service = ReplyService(store, engine, RedisPublisher(_redis) if _redis else None)
        return _service


def redis_client() -> redis.Redis:
    service()
    if _redis is None:
        raise RuntimeError("REDIS_URL is not set")
    return _redis
