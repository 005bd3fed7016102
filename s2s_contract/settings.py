"""Configuration from environment variables (and ``.env``), every one optional with an
embedded default, so the one-machine mode needs none of them."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Dialogue history: a SQLite file under var/ by default, PostgreSQL in production.
    database_url: str = Field(default=f"sqlite:///{VAR_DIR / 's2s.sqlite3'}")
    # Unset: single-process mode (no Celery, no Redis).
    redis_url: str | None = None
    telegram_token: str | None = None
    # The Bot API base URL as python-telegram-bot's base_url takes it.
    telegram_api_url: str = "https://api.telegram.org/bot"
    model_dir: Path = Path("models/default")
    # auto: cuda when available, else cpu.
    device: str = "auto"
    # Seconds before Redis redelivers an unacknowledged task.
    broker_visibility_timeout: int = Field(default=3600, ge=1)
    # Dynamic batching: most requests per generate() call, and how long the first one
    # waits for company.
    batch_max_size: int = Field(default=32, ge=1)
    batch_max_wait_ms: float = Field(default=10.0, ge=0)
    # Worker Prometheus metrics / health endpoint (0: off).
    metrics_port: int = Field(default=9464, ge=0, le=65535)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("DATABASE_URL must be a sqlite:// or postgresql+psycopg:// URL")
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
