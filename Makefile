# Thin aliases over the project's own commands. Every target installs what it needs into .venv.
# Variables: PYTHON (interpreter for the venv), TARGETS (bench targets), RUN_TRAIN_ON (targets that
# train in `make run`), RUN_EPOCHS (its training's epochs), BENCH_ARGS (extra shpc options),
# SERVE_ARGS (shpc serve options, e.g. --host/--port/--results).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
SHPC   := $(VENV)/bin/shpc
TARGETS ?= local-faas,standalone
# `make run` trains on the first target only (the others classify with the model it wrote), for
# RUN_EPOCHS epochs (0.90 test accuracy comes at epoch 7; the default training is 15), to keep
# within ten minutes on a busy 2-core machine: RUN_TRAIN_ON=local-faas,standalone trains on both,
# RUN_EPOCHS=15 trains the full default.
comma := ,
RUN_TRAIN_ON ?= $(firstword $(subst $(comma), ,$(TARGETS)))
RUN_EPOCHS ?= 10
BENCH_ARGS ?=
SERVE_ARGS ?=

# Stamps record which extras are installed; they are redone when pyproject.toml changes.
RUN_STAMP   := $(VENV)/.stamp-run
BENCH_STAMP := $(VENV)/.stamp-bench
DEV_STAMP   := $(VENV)/.stamp-dev
CDK_STAMP   := $(VENV)/.stamp-cdk
SERVE_STAMP := $(VENV)/.stamp-serve
OW_ARGS ?=
CDK_ARGS ?=
# The CDK CLI comes from npm into node_modules/ (pinned in package-lock.json): no global install.
CDK_CLI := node_modules/.bin/cdk
# cdk.json runs "python3 app.py": the venv goes first on PATH so that python3 is ours.
CDK := JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 CDK_DISABLE_VERSION_CHECK=1 PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CDK_CLI)

.PHONY: help run bench serve test lint clean ow-apply ow-destroy ow-status synth deploy destroy recreate status images

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
	$(PY) -m pip install --quiet -e ".[train,aws,openwhisk,cdk,serve,dev]"
	@touch $@ $(RUN_STAMP) $(BENCH_STAMP) $(CDK_STAMP) $(SERVE_STAMP)

# The dashboard runs shpc bench children: it needs what bench needs, plus the serve extra.
$(SERVE_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[train,aws,openwhisk,serve]"
	@touch $@ $(RUN_STAMP) $(BENCH_STAMP)

$(CDK_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[cdk,aws]"
	@touch $@

$(CDK_CLI): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "error: npm not found: install Node.js/npm for the CDK CLI (npm ci)" >&2; exit 2; }
	npm ci --no-audit --no-fund
	@touch $@

# make test installs the CDK CLI only where npm exists; elsewhere the synth tests skip, saying why.
TEST_CDK_CLI := $(if $(shell command -v npm 2>/dev/null),$(CDK_CLI))

# checkov (run on the synthesized templates by the tests) gets a venv of its own: it pins
# boto3, packaging and others to versions the project does not use.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
$(CHECKOV): tests/infra/requirements-checkov.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=...)" >&2; exit 2; }
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r tests/infra/requirements-checkov.txt
	@touch $@

run: $(RUN_STAMP)  ## the whole local benchmark (train, classify 3000 images at 1/5/10/15 shards, dataproc)
	$(SHPC) bench --targets $(TARGETS) --train-on $(RUN_TRAIN_ON) --train-epochs $(RUN_EPOCHS) $(BENCH_ARGS)

bench: $(BENCH_STAMP)  ## shpc bench on TARGETS=... with BENCH_ARGS=...
	$(SHPC) bench --targets $(TARGETS) $(BENCH_ARGS)

serve: $(SERVE_STAMP)  ## web dashboard on http://127.0.0.1:8000/ over results/ (SERVE_ARGS=...)
	$(SHPC) serve $(SERVE_ARGS)

lint: $(DEV_STAMP)  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy serverless_hpc

test: lint $(TEST_CDK_CLI) $(CHECKOV)  ## lint, then the whole test suite (CDK synth, cfn-lint, cdk-nag, checkov where npm is)
	@if [ -z "$(TEST_CDK_CLI)" ] && [ ! -x $(CDK_CLI) ]; then \
	  if command -v node >/dev/null 2>&1; then echo "npm not found: the CDK synth tests (tests/infra/test_synth_cli.py) will be skipped"; \
	  else echo "node/npm not found: the CDK synth and template tests (tests/infra/test_synth_cli.py, test_stacks.py) will be skipped"; fi; \
	fi
	$(VENV)/bin/pytest -q

synth: $(CDK_STAMP) $(CDK_CLI)  ## AWS: cdk synth (cdk-nag AwsSolutions checked) into cdk.out/
	$(CDK) synth --quiet $(CDK_ARGS)

deploy: $(CDK_STAMP) $(CDK_CLI)  ## AWS: deploy all stacks, images and the dataset (credentials + Docker)
	$(CDK) deploy --all --require-approval never $(CDK_ARGS)

destroy: $(CDK_STAMP) $(CDK_CLI)  ## AWS: destroy all stacks, bucket contents included
	$(CDK) destroy --all --force $(CDK_ARGS)

recreate:  ## AWS: destroy, then deploy
	$(MAKE) destroy
	$(MAKE) deploy

status: $(BENCH_STAMP)  ## AWS: resources tagged project=serverless-hpc still alive
	$(SHPC) status

images:  ## AWS: build the Lambda images where a Docker engine runs and print their sizes
	@if docker info >/dev/null 2>&1; then \
	  for img in lean train; do \
	    DOCKER_BUILDKIT=1 docker build -q -f lambdas/Dockerfile.$$img -t serverless-hpc-$$img . >/dev/null || exit 1; \
	    docker image inspect serverless-hpc-$$img --format "serverless-hpc-$$img: {{.Size}} bytes"; \
	  done; \
	else echo "no Docker engine: image builds skipped (cdk deploy builds them where Docker runs)"; fi

ow-apply: $(BENCH_STAMP)  ## OpenWhisk: create/update the package and actions (OW_ARGS="--image-lean IMG ...")
	$(SHPC) ow apply $(OW_ARGS)

ow-destroy: $(BENCH_STAMP)  ## OpenWhisk: delete this project's actions, then its package
	$(SHPC) ow destroy $(OW_ARGS)

ow-status: $(BENCH_STAMP)  ## OpenWhisk: list the package and actions that exist
	$(SHPC) ow status $(OW_ARGS)

clean:  ## remove the venv and caches (results/ is kept)
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
