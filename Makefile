# One bootstrap for every target: .venv is created and the project installed on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of this release lies on the CI machines' disk; GPU images override it,
# e.g. make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint format chat bench clean

# Silent on stdout (progress goes to stderr), so `printf ... | make chat` prints replies only.
$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (first run only)..." >&2
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/python -m pip install --quiet --upgrade pip >&2
	@$(BIN)/python -m pip install --quiet $(TORCH_SPEC) >&2
	@$(BIN)/python -m pip install --quiet -e '.[dev]' >&2
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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
