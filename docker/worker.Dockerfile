# syntax=docker/dockerfile:1
# The inference worker (and the trainer: the same image on the training queue).
# CUDA torch by default; the CPU variant: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, from the chosen index, so the project's range never swaps it for another build.
RUN pip install ${TORCH_SPEC} --index-url ${TORCH_INDEX_URL}
WORKDIR /app
COPY requirements/constraints.txt ./requirements/
COPY pyproject.toml README.md alembic.ini ./
COPY s2s_core ./s2s_core
COPY s2s_cli ./s2s_cli
COPY s2s_contract ./s2s_contract
COPY worker ./worker
COPY bot ./bot
COPY migrations ./migrations
# Editable: migrations are found beside the worker package, at /app/migrations. The other
# libraries at the versions the tests ran with (requirements/constraints.txt).
RUN pip install -c requirements/constraints.txt -e .
# The public corpus' search index for the hybrid reply style, built once here (~20 s) rather
# than by every worker at its first message (s2s_core/retrieval.py).
RUN python -c "from s2s_core.retrieval import CorpusIndex; CorpusIndex.cached('var/retrieval')"

FROM python:${PYTHON_VERSION}-slim
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin s2s
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# The worker may add the ranker's corpus vectors beside the index (s2s models index).
RUN chown -R s2s /app/var
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 MODEL_DIR=/models/default METRICS_PORT=9464
USER s2s
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=3)"
CMD ["s2s", "worker"]
