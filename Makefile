# Two commands on a fresh machine: `make demo` and `make test`. Everything else is set up by them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup system demo test lint bench clean gpu-check gpu-wheels

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned to the CPU wheel on this machine's disk (a bare `torch` pulls CUDA builds)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[all,dev]'
	rm -f $(VENV)/.installed-* && touch $@

# Debian's Chromium for the browser tests (never `playwright install`: no downloads but registries)
system:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

setup: $(STAMP) system

demo: setup
	$(BIN)/guanaco demo

# PostgreSQL is part of the suite: if it cannot start, the script says why and the run stops here.
test: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	url=$$(bash scripts/postgres-test-db.sh) && GUANACO_TEST_POSTGRES_URL=$$url $(BIN)/python -m pytest

# lint-imports checks the layers of docs/architecture.md (contracts in pyproject.toml)
lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

bench: setup
	$(BIN)/python bench/ratings.py

# The GPU path (docs/gpu.md): run on a GPU machine with .gpu-kit carried; stops at once without CUDA.
gpu-check:
	bash scripts/gpu-check.sh $(or $(OUT),gpu-check-out)

gpu-wheels: setup
	bash scripts/gpu-wheels.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache .grimp_cache
