# Conveyor: two commands on a fresh Debian machine (as root): `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench graph system-packages clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

# Server binaries the test suite starts privately (its own data dirs and ports).
system-packages:
	@bash scripts/install-system-packages.sh

demo: $(STAMP)
	@bash examples/quickstart/run.sh

# lint-imports: the layer contracts in pyproject.toml ([tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	PYTHONPATH=src $(BIN)/lint-imports

# Which package imports which, and any cycle (DEPTH=2 for modules, WHY="a b" for the imports from a into b).
graph: $(STAMP)
	PYTHONPATH=src $(BIN)/python scripts/package_graph.py $(if $(DEPTH),--depth $(DEPTH)) $(if $(WHY),--why $(WHY))

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers, a test file's tests on one (each worker starts its own private servers):
# most tests wait on servers and processes, so this halves the wall time on 2 cores.
# Bytecode is written even where PYTHONDONTWRITEBYTECODE is set: every `conveyor` child
# process the suite starts (CLI calls, task workers) then reads compiled
# modules instead of compiling src/ again (about 10% of a CLI-heavy file's time).
# The 25 slowest tests are listed at the end: where the suite's time goes.
test: system-packages $(STAMP) lint typecheck
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -q -n 2 --dist loadfile --durations=25

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# Every path in one table, written to docs/benchmarks.md (bench/all.py): 500k rows / updates,
# 3 rounds; QUICK=1 for a smoke run; ROWS= UPDATES= LAKE_ROWS= CHANGES= ROUNDS= PATHS=fixed,pg-pg,...
bench: system-packages $(STAMP)
	$(BIN)/python bench/all.py $(if $(QUICK),--quick) $(if $(ROWS),--rows $(ROWS)) $(if $(UPDATES),--updates $(UPDATES)) $(if $(LAKE_ROWS),--lake-rows $(LAKE_ROWS)) $(if $(CHANGES),--changes $(CHANGES)) $(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(PATHS),--paths $(PATHS))

# Full-load benchmark alone against psql COPY references (bench/README.md); 5M rows
# by default (long), e.g. `make bench-full ROWS=500000 ROUNDS=3`.
.PHONY: bench-full
bench-full: system-packages $(STAMP)
	$(BIN)/python bench/full_load.py $(if $(ROWS),--rows $(ROWS)) $(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(CASES),--cases $(CASES))

# Change-capture benchmark against pg_recvlogical (bench/cdc.py); 500k updates
# by default, e.g. `make bench-cdc UPDATES=100000 ROUNDS=3`, or QUICK=1 (CI-sized).
.PHONY: bench-cdc
bench-cdc: system-packages $(STAMP)
	$(BIN)/python bench/cdc.py $(if $(UPDATES),--updates $(UPDATES)) $(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(CDC_CASES),--cases $(CDC_CASES)) $(if $(QUICK),--quick)

# Lake curation benchmark against a DuckDB SQL merge (bench/curate.py); 1M-row
# full load + 200k changes by default, e.g. `make bench-curate LAKE_FORMAT=csv` (CURATE_ENGINE=spark: also on Spark).
.PHONY: bench-curate
bench-curate: $(STAMP)
	$(BIN)/python bench/curate.py $(if $(LAKE_ROWS),--rows $(LAKE_ROWS)) $(if $(CHANGES),--changes $(CHANGES)) $(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(LAKE_FORMAT),--format $(LAKE_FORMAT)) $(if $(CURATE_CASES),--cases $(CURATE_CASES)) $(if $(CURATE_ENGINE),--engine $(CURATE_ENGINE))

clean:
	rm -rf $(VENV) .conveyor build *.egg-info
