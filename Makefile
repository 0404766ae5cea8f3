# Two commands on a fresh machine: `make run` and `make test`. Both are idempotent.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PORT ?= 7071
PYTEST_ARGS ?=

.PHONY: run test lint typecheck unit bench db-start db-stop clean help

help:
	@echo "make run   - set up everything and serve the app on http://127.0.0.1:$(PORT)"
	@echo "make test  - set up everything, then ruff, mypy and pytest (what CI runs)"

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found (Python 3.11+ is required)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency declarations change.
$(STAMP): $(BIN)/python pyproject.toml requirements.txt
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e '.[dev]'
	touch $(STAMP)

# Test peers from npm (a real OIDC provider, Azurite), pinned by package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm not found (Node.js 20+ is required for the test peers)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

db-start: $(STAMP)
	$(BIN)/asep db migrate

db-stop: $(STAMP)
	$(BIN)/asep db stop

run: db-start
	$(BIN)/asep seed
	$(BIN)/asep serve --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy .

test: db-start $(NODE_STAMP) lint typecheck
	ASEP_ENV=test $(BIN)/pytest -n 2 $(PYTEST_ARGS)

bench: db-start
	$(BIN)/python bench/rls_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
