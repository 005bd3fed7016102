# syntax=docker/dockerfile:1
# Schema migrations (`s2s db upgrade`): SQLAlchemy, Alembic and psycopg only. No torch, no
# CUDA: the migrate service must not pull the multi-GB worker image to run Alembic.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements/constraints.txt ./requirements/
# The project goes in with --no-deps (its full list would pull torch); the store's own
# dependencies at the versions the tests ran with.
RUN pip install -c requirements/constraints.txt "sqlalchemy>=2.0.30" "alembic>=1.13" \
    "psycopg[binary]>=3.2" "pydantic-settings>=2.4" "typer>=0.12"
COPY pyproject.toml README.md alembic.ini ./
COPY s2s_cli ./s2s_cli
COPY s2s_contract ./s2s_contract
COPY worker ./worker
COPY bot ./bot
COPY migrations ./migrations
# Editable: migrations are found beside the worker package, at /app/migrations.
RUN pip install --no-deps -e .

FROM python:${PYTHON_VERSION}-slim
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin s2s
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
USER s2s
CMD ["s2s", "db", "upgrade"]
