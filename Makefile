# Thin aliases over the project's own commands. Every target installs what it needs into .venv.
# Variables: PYTHON (interpreter for the venv), TARGETS (bench targets), BENCH_ARGS (extra shpc options).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
SHPC   := $(VENV)/bin/shpc
TARGETS ?= local-faas,standalone
BENCH_ARGS ?=

# Stamps record which extras are installed; they are redone when pyproject.toml changes.
RUN_STAMP := $(VENV)/.stamp-run
DEV_STAMP := $(VENV)/.stamp-dev

.PHONY: help run bench test lint report clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=...)" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[train]"
	@touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[train,dev]"
	@touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)  ## the whole local benchmark (train, classify 3000 images at 1/5/10/15 shards, dataproc)
	$(SHPC) bench --targets $(TARGETS) $(BENCH_ARGS)

bench: $(RUN_STAMP)  ## shpc bench on TARGETS=... with BENCH_ARGS=...
	$(SHPC) bench --targets $(TARGETS) $(BENCH_ARGS)

lint: $(DEV_STAMP)  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy serverless_hpc

test: lint  ## lint, then the whole test suite
	$(VENV)/bin/pytest -q

clean:  ## remove the venv and caches (results/ is kept)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
