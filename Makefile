# Conveyor: two commands on a fresh Debian machine (as root): `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench system-packages clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Server binaries the test suite starts privately (its own data dirs and ports).
system-packages:
	@bash scripts/install-system-packages.sh

demo: $(STAMP)
	@bash examples/quickstart/run.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

test: system-packages $(STAMP) lint typecheck
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

bench: system-packages $(STAMP)
	@echo 'bench/full_load.py is not built yet (docs/status.md)'; exit 1

clean:
	rm -rf $(VENV) .conveyor build *.egg-info
