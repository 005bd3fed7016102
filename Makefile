# One bootstrap for every target: .venv is created and the project installed on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of this release lies on the CI machines' disk; GPU images override it,
# e.g. make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint format chat bench deploy-smoke lock clean

# Silent on stdout (progress goes to stderr), so `printf ... | make chat` prints replies only.
$(STAMP): pyproject.toml requirements/constraints.txt
	@echo "setting up $(VENV) (first run only)..." >&2
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/python -m pip install --quiet --upgrade pip >&2
	@$(BIN)/python -m pip install --quiet $(TORCH_SPEC) >&2
	@$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]' >&2
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not integration"

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

chat: $(STAMP)
	@$(BIN)/s2s chat

bench: $(STAMP)
	$(BIN)/python bench/train.py
	$(BIN)/python bench/decode.py

# Builds the images and runs the compose stack against a fake Telegram (~10 min cold). Needs
# Docker, or podman with podman-compose. Not part of `make test`.
deploy-smoke: $(STAMP)
	$(BIN)/python -m tests.deploy.smoke

# Re-pins requirements/constraints.txt (the versions `make install` and the images take) to
# the newest releases pyproject.toml allows; torch stays with TORCH_SPEC.
lock:
	@test -x .venv-lock/bin/pip-compile || { $(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install --quiet pip-tools==7.6.2; }
	.venv-lock/bin/pip-compile --quiet --upgrade --extra dev --strip-extras --unsafe-package torch \
		--no-emit-index-url --no-emit-find-links --output-file requirements/constraints.txt pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
