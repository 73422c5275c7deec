# The README's commands. Each sets itself up first: a fresh clone needs nothing else.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test check format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

run: setup  ## load the demo environment into ./ringfence.db and serve it
	$(BIN)/ringfence demo
	$(BIN)/ringfence serve --host $(HOST) --port $(PORT)

test: setup  ## the whole suite
	$(BIN)/python -m pytest

check: setup  ## format, lint, types, import contracts, then the whole suite
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

format: setup
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

$(VENV)/.bench-$(shell cksum pyproject.toml | cut -d' ' -f1): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	rm -f $(VENV)/.bench-*
	touch $@

bench: setup $(VENV)/.bench-$(shell cksum pyproject.toml | cut -d' ' -f1)  ## the benchmark suite (BENCH_FULL=1 for long runs and the chart; see docs/performance.md)
	@command -v wrk >/dev/null || { echo "make bench needs wrk (Debian: apt-get install wrk)"; exit 1; }
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
