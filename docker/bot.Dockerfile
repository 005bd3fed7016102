# syntax=docker/dockerfile:1
# The Telegram bot: slim, no torch, no SQL. It needs REDIS_URL (workers answer it through
# Celery); the single-process mode needs the worker image.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Only what the bot imports: the project itself goes in with --no-deps (its full dependency
# list would pull torch).
WORKDIR /app
# At the versions the tests ran with (requirements/constraints.txt, see the README).
COPY requirements/constraints.txt ./requirements/
RUN pip install -c requirements/constraints.txt \
    "python-telegram-bot[rate-limiter,webhooks]>=22.4,<23" "celery[redis]>=5.4" \
    "redis>=5.0" "pydantic-settings>=2.4" "typer>=0.12"
COPY pyproject.toml README.md ./
COPY s2s_cli ./s2s_cli
COPY s2s_contract ./s2s_contract
COPY bot ./bot
RUN pip install --no-deps .

FROM python:${PYTHON_VERSION}-slim
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin s2s
COPY --from=build /opt/venv /opt/venv
WORKDIR /home/s2s
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 BOT_HEARTBEAT_FILE=/tmp/s2s-bot.heartbeat
USER s2s
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD find /tmp/s2s-bot.heartbeat -mmin -1 | grep -q .
CMD ["s2s", "bot"]
