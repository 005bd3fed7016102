"""Configuration from environment variables (and ``.env``), every one optional with an
embedded default, so the one-machine mode needs none of them."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
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
    # Where the public corpus' retrieval index is cached (built on first use, ~20 s).
    retrieval_dir: Path = VAR_DIR / "retrieval"
    # Where the retrain task keeps its runs (exported pairs, candidates, replay reports).
    retrain_dir: Path = VAR_DIR / "retrain"
    # auto: cuda when available, else cpu.
    device: str = "auto"
    # Seconds before Redis redelivers an unacknowledged task.
    broker_visibility_timeout: int = Field(default=3600, ge=1)
    # A message registered this long without an answer gets a new task (worker/sweeper.py).
    pending_sweep_after_s: float = Field(default=120.0, gt=0)
    # Batching: most messages a worker answers as one batch (and per generate() call), and
    # how often it hands what it has buffered to a batch when fewer came (celery-batches'
    # flush_every and flush_interval).
    batch_max_size: int = Field(default=32, ge=1)
    batch_max_wait_ms: float = Field(default=10.0, ge=0)
    # Worker Prometheus metrics / health endpoint (0: off).
    metrics_port: int = Field(default=9464, ge=0, le=65535)

    # The bot: admins who may use /stats, chats it answers (empty: all), limits and patience.
    admin_ids: str = ""  # comma-separated Telegram user ids
    allowed_chat_ids: str = ""  # comma-separated chat ids; empty: every chat
    bot_rate_limit: int = Field(default=20, ge=1)  # messages per user per minute
    bot_reply_timeout_s: float = Field(default=30.0, gt=0)  # then one apology
    bot_max_input_chars: int = Field(default=500, ge=1, le=4096)  # longer input is cut
    telegram_webhook_secret: str | None = None
    # The bot touches this file every few seconds while its event loop runs (container
    # healthchecks read its age); unset: no file.
    bot_heartbeat_file: Path | None = None

    @field_validator("admin_ids", "allowed_chat_ids")
    @classmethod
    def _id_list(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                int(part)
            except ValueError:
                raise ValueError(f"expected comma-separated integer ids, got {part!r}") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        # The forms libpq and most hosts print, read with the driver we ship (psycopg 3).
        for plain in ("postgres://", "postgresql://"):
            if value.startswith(plain):
                return "postgresql+psycopg://" + value[len(plain) :]
        if not value.startswith(("sqlite", "postgresql+psycopg://")):
            raise ValueError(
                "must be sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB "
                "(postgres:// and postgresql:// are read as the latter)"
            )
        return value


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it and never quotes it (a URL
    may carry a password)."""


def load_settings() -> Settings:
    """The settings, or ConfigError with one line per invalid variable."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"{str(e['loc'][0]).upper() if e['loc'] else 'configuration'}: "
            f"{str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors(include_input=False, include_url=False)
        ]
        raise ConfigError("; ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def parse_ids(value: str) -> frozenset[int]:
    """The ids in a comma-separated setting (validated by Settings)."""
    return frozenset(int(p) for p in value.split(",") if p.strip())
