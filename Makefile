# Thin aliases over the project's own commands. Every target installs what it needs into .venv.
# Variables: PYTHON (interpreter for the venv), TARGETS (bench targets), BENCH_ARGS (extra shpc options).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
SHPC   := $(VENV)/bin/shpc
TARGETS ?= local-faas,standalone
BENCH_ARGS ?=

# Stamps record which extras are installed; they are redone when pyproject.toml changes.
RUN_STAMP   := $(VENV)/.stamp-run
BENCH_STAMP := $(VENV)/.stamp-bench
DEV_STAMP   := $(VENV)/.stamp-dev
OW_ARGS ?=

.PHONY: help run bench test lint clean ow-apply ow-destroy ow-status

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=...)" >&2; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[train]"
	@touch $@

# bench may drive cloud targets too: their clients (boto3, requests) are light.
$(BENCH_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[train,aws,openwhisk]"
	@touch $@ $(RUN_STAMP)

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[train,aws,openwhisk,dev]"
	@touch $@ $(RUN_STAMP) $(BENCH_STAMP)

run: $(RUN_STAMP)  ## the whole local benchmark (train, classify 3000 images at 1/5/10/15 shards, dataproc)
	$(SHPC) bench --targets $(TARGETS) $(BENCH_ARGS)

bench: $(BENCH_STAMP)  ## shpc bench on TARGETS=... with BENCH_ARGS=...
	$(SHPC) bench --targets $(TARGETS) $(BENCH_ARGS)

lint: $(DEV_STAMP)  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy serverless_hpc

test: lint  ## lint, then the whole test suite
	$(VENV)/bin/pytest -q

ow-apply: $(BENCH_STAMP)  ## OpenWhisk: create/update the package and actions (OW_ARGS="--image-lean IMG ...")
	$(SHPC) ow apply $(OW_ARGS)

ow-destroy: $(BENCH_STAMP)  ## OpenWhisk: delete this project's actions, then its package
	$(SHPC) ow destroy $(OW_ARGS)

ow-status: $(BENCH_STAMP)  ## OpenWhisk: list the package and actions that exist
	$(SHPC) ow status $(OW_ARGS)

clean:  ## remove the venv and caches (results/ is kept)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
